/*
 * Telling an OOM kill from any other SIGKILL (/proc/vmstat, else /dev/kmsg). Apart because it is
 * its own kernel interface, consulted only when the workload's end is reported.
 */

/* The kernel's OOM kill count (/proc/vmstat oom_kill): a rise while the workload dies by SIGKILL means the OOM killer did it. */
static long oom_kills(void)
{
	u64 value = 0;
	read_file("/proc/vmstat");
	for (char *line = file_buffer; *line;) {
		char *end = line;
		while (*end && *end != '\n')
			end++;
		if (starts_with(line, "oom_kill ")) {
			char saved = *end;
			*end = 0;
			if (parse_u64(line + 9, 10, &value))
				value = 0;
			*end = saved;
			return (long)value;
		}
		line = *end ? end + 1 : end;
	}
	return -1;
}

/*
 * Without VM event counters (the micro kernel) /proc/vmstat has no oom_kill; the OOM killer's own
 * record in /dev/kmsg says the same. A reader fd positioned at the end when the workload starts
 * sees only what came after.
 */
static int kmsg_reader = -1;

static void mark_kmsg(void)
{
	kmsg_reader = k_open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_reader >= 0 && k_lseek(kmsg_reader, 0, SEEK_END) < 0) {
		k_close(kmsg_reader);
		kmsg_reader = -1;
	}
}

/* OOM kills read from kmsg so far: whether any came, and the last pids (an exec session asks for its own). */
static int kmsg_oom_seen;
static pid_t kmsg_oom_pids[32];
static unsigned kmsg_oom_next;

static void kmsg_oom_scan(void)
{
	static char record[1024];
	if (kmsg_reader < 0)
		return;
	for (;;) {
		long n = k_read(kmsg_reader, record, sizeof(record) - 1);
		if (n == -EPIPE)
			continue; /* records overwritten under us: the next read goes on from the oldest left */
		if (n <= 0)
			return; /* -EAGAIN: nothing more */
		record[n] = 0;
		/* "Out of memory: Killed process N" and "Memory cgroup out of memory: Killed process N". */
		for (char *at = record; *at; at++)
			if (starts_with(at, "Out of memory: Killed process ") || starts_with(at, "out of memory: Killed process ")) {
				char *digits = at + 30, *end = digits;
				u64 pid = 0;
				while (*end >= '0' && *end <= '9')
					end++;
				*end = 0;
				kmsg_oom_seen = 1;
				if (parse_u64(digits, 10, &pid) == 0)
					kmsg_oom_pids[kmsg_oom_next++ % 32] = (pid_t)pid;
				break;
			}
	}
}

static int kmsg_oom_kill_since_mark(void)
{
	kmsg_oom_scan();
	return kmsg_oom_seen;
}

static int kmsg_oom_killed(pid_t pid)
{
	kmsg_oom_scan();
	for (int i = 0; i < 32; i++)
		if (kmsg_oom_pids[i] == pid)
			return 1;
	return 0;
}
