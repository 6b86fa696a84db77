/*
 * The teardown: swapoff, unmount or remount read-only, sync, freeze hidden layers. It runs in a
 * child, so the parent can give up on it at the deadline; apart because it is that child's whole life.
 */

/* The teardown's bound (src/stop-port.ts TEARDOWN_BUDGET_MS): a stuck filesystem never hangs the VM. */
#define TEARDOWN_BUDGET_MS 5000

static int progress_fd = -1;

static void progress(const char *what, const char *path)
{
	struct line l = { .len = 0 };
	put_str(&l, what);
	put_str(&l, path);
	l.text[l.len++] = '\n';
	k_write(progress_fd, l.text, l.len);
}

static int kernel_api_fs(const char *type)
{
	static const char *const api[] = {
		"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs", "tracefs",
		"bpf", "configfs", "mqueue", "hugetlbfs", "pstore", "efivarfs", "fusectl", "binfmt_misc", "autofs", 0,
	};
	for (int i = 0; api[i]; i++)
		if (str_eq(type, api[i]))
			return 1;
	return 0;
}

static int swapoff_all(void)
{
	char *lines[64];
	int n = 0, count = 0;
	read_file("/proc/swaps");
	for (char *line = file_buffer; *line && n < 64;) {
		char *end = line;
		while (*end && *end != '\n')
			end++;
		if (*end)
			*end++ = 0;
		lines[n++] = line;
		line = end;
	}
	for (int i = 1; i < n; i++) { /* the first line is the header */
		char *fields[1];
		if (split_fields(lines[i], fields, 1) < 1)
			continue;
		unescape(fields[0]);
		progress("swapoff ", fields[0]);
		long ret = k_swapoff(fields[0]);
		if (ret < 0)
			say(WARN, "teardown: swapoff %s: %e", fields[0], (int)ret);
		else
			count++;
	}
	return count;
}

struct unmount_counts { int unmounted, readonly, failed; };

/* Every mount point but / and the kernel's API filesystems, in mount order. */
static int list_mounts(char **points, int max)
{
	int n = 0;
	read_file("/proc/self/mountinfo");
	for (char *line = file_buffer; *line && n < max;) {
		char *end = line, *fields[24];
		int count, dash = -1;
		while (*end && *end != '\n')
			end++;
		if (*end)
			*end++ = 0;
		count = split_fields(line, fields, 24);
		for (int i = 6; i < count; i++)
			if (str_eq(fields[i], "-")) {
				dash = i;
				break;
			}
		line = end;
		if (count < 5 || dash < 0 || dash + 1 >= count)
			continue;
		unescape(fields[4]);
		if (str_eq(fields[4], "/") || kernel_api_fs(fields[dash + 1]))
			continue;
		points[n++] = fields[4];
	}
	return n;
}

/* EINVAL/ENOENT: a mount hidden beneath another (an overlay's layers); its fd is frozen later. */
static int hidden(long ret)
{
	return ret == -EINVAL || ret == -2;
}

/*
 * The last mounted first, pass after pass while a pass frees what blocked another (systemd's
 * shutdown loop); what stays busy is remounted read-only.
 */
static struct unmount_counts unmount_all(void)
{
	static char *points[512];
	struct unmount_counts counts = { 0, 0, 0 };
	int n, busy = 0;
	for (int pass = 0; pass < 4; pass++) {
		int freed = 0;
		busy = 0;
		for (n = list_mounts(points, 512); n--;) {
			long ret;
			progress("umount ", points[n]);
			ret = k_umount2(points[n], 0);
			if (ret == 0)
				counts.unmounted++, freed++;
			else if (!hidden(ret))
				busy++;
		}
		if (!busy || !freed)
			break;
	}
	if (!busy)
		return counts;
	for (n = list_mounts(points, 512); n--;) {
		long ret = k_umount2(points[n], 0);
		if (ret == 0) {
			counts.unmounted++;
			continue;
		}
		if (hidden(ret))
			continue;
		progress("remount read-only ", points[n]);
		if (k_remount(points[n], MS_RDONLY) == 0) {
			counts.readonly++;
			say(DEBUG, "teardown: %s busy (%e), remounted read-only", points[n], (int)ret);
		} else {
			counts.failed++;
			say(WARN, "teardown: cannot unmount %s (%e) nor remount it read-only", points[n], (int)ret);
		}
	}
	return counts;
}

static __attribute__((noreturn)) void teardown_child(void)
{
	long started = k_now_ms();
	int swaps = swapoff_all(), frozen = 0;
	struct unmount_counts counts = unmount_all();
	long root;
	progress("remount read-only ", "/");
	root = k_remount("/", MS_RDONLY);
	if (root < 0)
		say(WARN, "teardown: cannot remount / read-only: %e", (int)root);
	progress("sync", "");
	k_sync();
	/* Layers the root hides (an overlay's upper disk): frozen, an ext4 is clean on disk (journal flushed). */
	for (int i = 0; i < opt.nfreeze; i++) {
		progress("freeze ", "the overlay's upper layer");
		k_syncfs(opt.freeze_fds[i]);
		long ret = k_ioctl(opt.freeze_fds[i], FIFREEZE, 0);
		if (ret == 0)
			frozen++;
		else
			say(WARN, "teardown: cannot freeze the overlay's upper layer (fd %d): %e", opt.freeze_fds[i], (int)ret);
	}
	say(INFO, "teardown: swapoff %d, unmounted %d, read-only %d%s, / %s, synced, froze %d, in %l ms", swaps,
	    counts.unmounted, counts.readonly, counts.failed ? " (some failed)" : "", root == 0 ? "read-only" : "still writable", frozen,
	    k_now_ms() - started);
	k_exit(0);
}

/* Up to TEARDOWN_BUDGET_MS for the teardown child; what it was doing when time ran out is named. */
static void run_teardown(void)
{
	int pipe_fds[2];
	char partial[256], step[256] = "starting";
	size_t partial_len = 0;
	long until = k_now_ms() + TEARDOWN_BUDGET_MS;
	pid_t child;
	if (k_pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) < 0)
		pipe_fds[0] = pipe_fds[1] = -1;
	child = k_fork();
	if (child == 0) {
		progress_fd = pipe_fds[1];
		teardown_child();
	}
	if (child < 0) {
		say(ERR, "teardown: fork: %e; syncing in PID 1", (int)child);
		k_sync();
		return;
	}
	k_close(pipe_fds[1]);
	for (;;) {
		int wait_status;
		pid_t pid;
		long left, n;
		struct pollfd_k fds[1] = { { signal_fd, POLLIN, 0 } };
		struct timespec_k timeout;
		char chunk[256];
		while ((pid = k_wait4(-1, &wait_status, WNOHANG)) > 0)
			if (pid == child) {
				k_close(pipe_fds[0]);
				return;
			}
		/* The child writes each step's name before it starts it: the last complete line is the one under way. */
		while ((n = k_read(pipe_fds[0], chunk, sizeof(chunk))) > 0) {
			for (long i = 0; i < n; i++) {
				if (chunk[i] != '\n') {
					if (partial_len < sizeof(partial) - 1)
						partial[partial_len++] = chunk[i];
					continue;
				}
				memcpy(step, partial, partial_len);
				step[partial_len] = 0;
				partial_len = 0;
			}
		}
		left = until - k_now_ms();
		if (left <= 0)
			break;
		timeout.tv_sec = left / 1000;
		timeout.tv_nsec = (left % 1000) * 1000000;
		k_ppoll(fds, 1, &timeout);
		if (fds[0].revents & POLLIN) {
			struct signalfd_info info;
			while (k_read(signal_fd, &info, sizeof(info)) == (long)sizeof(info))
				; /* SIGCHLD is collected above; control signals no longer change the ending */
		}
	}
	say(ERR, "teardown: not finished after %d ms (stuck at: %s); skipped the rest, ending the VM anyway", TEARDOWN_BUDGET_MS, step);
}
