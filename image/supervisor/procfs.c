/*
 * Reading /proc files into one shared buffer. Apart because the OOM check and the teardown both
 * read through it.
 */

static char file_buffer[1 << 16];

static size_t read_file(const char *path)
{
	int fd = k_open(path, O_RDONLY | O_CLOEXEC);
	size_t total = 0;
	if (fd < 0)
		return 0;
	for (;;) {
		long n = k_read(fd, file_buffer + total, sizeof(file_buffer) - 1 - total);
		if (n <= 0)
			break;
		total += (size_t)n;
		if (total >= sizeof(file_buffer) - 1)
			break;
	}
	k_close(fd);
	file_buffer[total] = 0;
	return total;
}
