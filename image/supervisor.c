/*
 * burrow's resident supervisor: what PID 1 does for the workload's whole life once burrow (Bun)
 * has set the machine up. burrow execs this program as PID 1 (a child survives its parent's exec),
 * so the ~110 MB runtime is gone and what stays costs a few pages and no wake-ups.
 *
 *   supervisor [KEY=VALUE…] -- PROGRAM ARGS…   start the workload (microvm supervise mode)
 *   supervisor adopt=PID [KEY=VALUE…]           supervise a child burrow already started (paravisor)
 *   supervisor exec=1 [KEY=VALUE…] -- PROGRAM…   apply the workload spec and exec it as PID 1
 *   … point=PORT …                               first wait at the snapshot point (either role)
 *
 * With warm=PORT the workload gets a socket (BURROW_NOTIFY_FD) and may ask for a warm snapshot
 * once it is ready by writing READY=1 to it: the supervisor says "ready" on the control port PORT,
 * the host saves the VM, and on every restore the supervisor credits the host's entropy, reseeds
 * the CRNG, sets the clock, and hands the workload its resume message on the same socket. The
 * wire format is src/snapshot/protocol.ts's (encodeWarmResume, encodeReady, encodeResumed).
 *
 * With point=PORT (the snapshot point, burrow.snapshot=1) it says "ready" on PORT before doing
 * anything else and blocks; the host saves the VM there, with burrow (Bun) already gone. Every
 * restore sends one line (encodePointResume): entropy and clock as for a warm snapshot, then the
 * instance's arguments and variables replace the saved ones, and the supervisor goes on with its
 * role (exec=1: the agent becomes PID 1).
 *
 * Duties: reap every child on SIGCHLD; treat signals to PID 1 as VM control (busybox and systemd
 * spellings); on any stop — a control signal, the workload's exit, the host's request on the stop
 * port — SIGTERM, a grace period, SIGKILL, the exit-status line for the host, then the teardown
 * (swapoff, unmount in reverse order or remount read-only, sync, freeze hidden layers) inside a
 * deadline, then reboot(2). The keys are written by src/modes/supervisor-handoff.ts; the exit
 * status line matches src/exit-marker.ts and the stop request src/stop-port.ts.
 */
#include <stdarg.h>
#include "supervisor-sys.h"

enum action { ACT_POWEROFF, ACT_REBOOT, ACT_HALT, ACT_EXIT, ACT_IGNORE, ACT_SHELL };
static const char *const action_names[] = { "poweroff", "reboot", "halt", "exit", "ignore", "shell" };
enum phase { RUNNING, TERMINATING, KILLING, ENDING };
enum severity { ERR = 3, WARN = 4, INFO = 5, DEBUG = 6 };

#define MAX_GROUPS 256
#define MAX_RLIMITS 16
#define MAX_FREEZE 4
/* The teardown's bound (src/stop-port.ts TEARDOWN_BUDGET_MS): a stuck filesystem never hangs the VM. */
#define TEARDOWN_BUDGET_MS 5000
/* After SIGKILL to everything, how long processes get to go (uninterruptible sleep may hold some). */
#define KILL_WAIT_MS 2000

struct options {
	pid_t adopt;
	int exec_only;
	enum action onexit, ctrl_alt_del, onfail;
	long stop_timeout_ms;
	const char *runid;
	int console_level; /* lines of this severity or less urgent go to fd 2 too; 0: never */
	int facility;
	int log_level;
	const char *stop_port;
	const char *warm_port;
	const char *point_port;
	int freeze_fds[MAX_FREEZE];
	int nfreeze;
	/* The workload spec, applied in the child before exec. */
	int has_user;
	u32 uid, gid, groups[MAX_GROUPS];
	int ngroups;
	const char *cwd, *hostname, *cgroup, *oom;
	int rlimit_res[MAX_RLIMITS];
	struct rlimit_k rlimits[MAX_RLIMITS];
	int nrlimits;
	int nnp, has_capkeep;
	u64 capkeep;
	char **argv;
	char **envp;
};

static struct options opt = {
	.onexit = ACT_POWEROFF, .ctrl_alt_del = ACT_REBOOT, .onfail = ACT_POWEROFF, .stop_timeout_ms = 5000,
	.console_level = 0, .facility = 1, .log_level = INFO,
};

/* ---- small string helpers -------------------------------------------------------------- */

static size_t str_len(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static int str_eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static int starts_with(const char *s, const char *prefix)
{
	while (*prefix)
		if (*s++ != *prefix++)
			return 0;
	return 1;
}

/* Decimal (or, with base 16, hex) digits only, no overflow; 0 on success. */
static int parse_u64(const char *s, int base, u64 *out)
{
	u64 value = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		int digit = *s >= '0' && *s <= '9' ? *s - '0' : base == 16 && *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 : base == 16 && *s >= 'A' && *s <= 'F' ? *s - 'A' + 10 : -1;
		if (digit < 0 || value > (~0ULL - (u64)digit) / (u64)base)
			return -1;
		value = value * (u64)base + (u64)digit;
	}
	*out = value;
	return 0;
}

static const char *errno_name(int err)
{
	static const char *const names[] = {
		[1] = "EPERM", [2] = "ENOENT", [3] = "ESRCH", [4] = "EINTR", [5] = "EIO", [6] = "ENXIO",
		[7] = "E2BIG", [8] = "ENOEXEC", [9] = "EBADF", [10] = "ECHILD", [11] = "EAGAIN",
		[12] = "ENOMEM", [13] = "EACCES", [14] = "EFAULT", [16] = "EBUSY", [17] = "EEXIST",
		[19] = "ENODEV", [20] = "ENOTDIR", [21] = "EISDIR", [22] = "EINVAL", [24] = "EMFILE",
		[26] = "ETXTBSY", [28] = "ENOSPC", [30] = "EROFS", [36] = "ENAMETOOLONG", [38] = "ENOSYS",
		[25] = "ENOTTY", [40] = "ELOOP", [95] = "EOPNOTSUPP", [110] = "ETIMEDOUT",
	};
	if (err > 0 && err < (int)(sizeof(names) / sizeof(names[0])) && names[err])
		return names[err];
	return 0;
}

/* ---- logging: one record per line to /dev/kmsg, and to the console when the kernel will not echo it */

static int kmsg_fd = -1;
static int console_fd = -1;

struct line {
	char text[600];
	size_t len;
};

static void put_str(struct line *l, const char *s)
{
	while (s && *s && l->len < sizeof(l->text) - 2)
		l->text[l->len++] = *s++;
}

static void put_num(struct line *l, long n)
{
	char digits[24];
	int i = 0;
	unsigned long u = n < 0 ? -(unsigned long)n : (unsigned long)n;
	if (n < 0)
		put_str(l, "-");
	do
		digits[i++] = (char)('0' + u % 10);
	while ((u /= 10) && i < 23);
	while (i && l->len < sizeof(l->text) - 2)
		l->text[l->len++] = digits[--i];
}

/* %s string, %d int, %l long, %e errno (a negative syscall result or an errno). */
static void format(struct line *l, const char *fmt, va_list args)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%' || !fmt[1]) {
			char c[2] = { *fmt, 0 };
			put_str(l, c);
			continue;
		}
		switch (*++fmt) {
		case 's': put_str(l, va_arg(args, const char *)); break;
		case 'd': put_num(l, va_arg(args, int)); break;
		case 'l': put_num(l, va_arg(args, long)); break;
		case 'e': {
			int err = va_arg(args, int);
			const char *name = errno_name(err < 0 ? -err : err);
			if (name) {
				put_str(l, name);
			} else {
				put_str(l, "errno ");
				put_num(l, err < 0 ? -err : err);
			}
			break;
		}
		default: put_str(l, "%"); break;
		}
	}
}

static void say(enum severity severity, const char *fmt, ...)
{
	static const char *const labels[] = { [ERR] = "error: ", [WARN] = "warning: ", [INFO] = "", [DEBUG] = "debug: " };
	struct line body = { .len = 0 };
	va_list args;
	if ((int)severity > opt.log_level)
		return;
	va_start(args, fmt);
	format(&body, fmt, args);
	va_end(args);
	body.text[body.len] = 0;
	if (kmsg_fd >= 0) {
		struct line record = { .len = 0 };
		put_str(&record, "<");
		put_num(&record, opt.facility * 8 + severity);
		put_str(&record, ">burrow: ");
		put_str(&record, body.text);
		record.text[record.len++] = '\n';
		k_write(kmsg_fd, record.text, record.len);
	}
	/* The kernel prints kmsg records more urgent than console_loglevel itself. */
	if (opt.console_level > 0 && ((int)severity >= opt.console_level || kmsg_fd < 0)) {
		struct line out = { .len = 0 };
		put_str(&out, "burrow: ");
		put_str(&out, labels[severity]);
		put_str(&out, body.text);
		out.text[out.len++] = '\n';
		k_write(2, out.text, out.len);
	}
}

/* The line `burrow run` trusts (src/exit-marker.ts), on /dev/console: stderr may be a device the host does not read. */
static void announce_exit_status(int status)
{
	struct line l = { .len = 0 };
	put_str(&l, "burrow: guest exit status ");
	put_num(&l, status);
	if (opt.runid) {
		put_str(&l, " run ");
		put_str(&l, opt.runid);
	}
	l.text[l.len++] = '\n';
	k_write(console_fd >= 0 ? console_fd : 2, l.text, l.len);
}

/* ---- options --------------------------------------------------------------------------- */

static int parse_action(const char *value, enum action *out, int allow_exit, int allow_ignore, int allow_shell)
{
	for (int i = 0; i < (int)(sizeof(action_names) / sizeof(action_names[0])); i++) {
		if (!str_eq(value, action_names[i]))
			continue;
		if ((i == ACT_EXIT && !allow_exit) || (i == ACT_IGNORE && !allow_ignore) || (i == ACT_SHELL && !allow_shell))
			return -1;
		*out = (enum action)i;
		return 0;
	}
	return -1;
}

static int parse_limit(const char *s, u64 *out)
{
	if (str_eq(s, "inf")) {
		*out = ~0ULL;
		return 0;
	}
	return parse_u64(s, 10, out);
}

/* rlimit=RES:SOFT:HARD */
static int parse_rlimit(char *value)
{
	char *parts[3] = { value, 0, 0 };
	u64 res;
	for (int i = 1; i < 3; i++) {
		char *colon = parts[i - 1];
		while (*colon && *colon != ':')
			colon++;
		if (!*colon)
			return -1;
		*colon = 0;
		parts[i] = colon + 1;
	}
	if (opt.nrlimits >= MAX_RLIMITS || parse_u64(parts[0], 10, &res) || res > 15)
		return -1;
	if (parse_limit(parts[1], &opt.rlimits[opt.nrlimits].cur) || parse_limit(parts[2], &opt.rlimits[opt.nrlimits].max))
		return -1;
	if (opt.rlimits[opt.nrlimits].cur > opt.rlimits[opt.nrlimits].max)
		return -1;
	opt.rlimit_res[opt.nrlimits++] = (int)res;
	return 0;
}

static int parse_groups(const char *value)
{
	opt.ngroups = 0;
	while (*value) {
		char number[16];
		int n = 0;
		u64 gid;
		while (*value && *value != ',' && n < 15)
			number[n++] = *value++;
		number[n] = 0;
		if (*value == ',')
			value++;
		if (opt.ngroups >= MAX_GROUPS || parse_u64(number, 10, &gid) || gid > 0xfffffffeULL)
			return -1;
		opt.groups[opt.ngroups++] = (u32)gid;
	}
	return 0;
}

static int parse_option(char *word)
{
	char *value = word;
	u64 number;
	while (*value && *value != '=')
		value++;
	if (!*value)
		return -1;
	*value++ = 0;
	if (str_eq(word, "adopt"))
		return parse_u64(value, 10, &number) || number < 2 || number > 0x3fffffff ? -1 : (opt.adopt = (pid_t)number, 0);
	if (str_eq(word, "exec"))
		return (opt.exec_only = str_eq(value, "1")) ? 0 : -1;
	if (str_eq(word, "onexit"))
		return parse_action(value, &opt.onexit, 1, 0, 0);
	if (str_eq(word, "onfail"))
		return parse_action(value, &opt.onfail, 0, 0, 1);
	if (str_eq(word, "ctrl-alt-del"))
		return parse_action(value, &opt.ctrl_alt_del, 0, 1, 0);
	if (str_eq(word, "stop-timeout"))
		return parse_u64(value, 10, &number) || number > 600000 ? -1 : (opt.stop_timeout_ms = (long)number, 0);
	if (str_eq(word, "runid"))
		return (opt.runid = value), 0;
	if (str_eq(word, "console-level"))
		return parse_u64(value, 10, &number) || number > 8 ? -1 : (opt.console_level = (int)number, 0);
	if (str_eq(word, "facility"))
		return parse_u64(value, 10, &number) || number > 23 ? -1 : (opt.facility = (int)number, 0);
	if (str_eq(word, "log"))
		return parse_u64(value, 10, &number) || number > 7 ? -1 : (opt.log_level = (int)number, 0);
	if (str_eq(word, "stop-port"))
		return (opt.stop_port = value), 0;
	if (str_eq(word, "warm"))
		return value[0] == '/' ? (opt.warm_port = value, 0) : -1;
	if (str_eq(word, "point"))
		return value[0] == '/' ? (opt.point_port = value, 0) : -1;
	if (str_eq(word, "freeze-fd"))
		return parse_u64(value, 10, &number) || number > 1023 || opt.nfreeze >= MAX_FREEZE ? -1 : (opt.freeze_fds[opt.nfreeze++] = (int)number, 0);
	if (str_eq(word, "uid"))
		return parse_u64(value, 10, &number) || number > 0xfffffffeULL ? -1 : (opt.uid = (u32)number, opt.has_user = 1, 0);
	if (str_eq(word, "gid"))
		return parse_u64(value, 10, &number) || number > 0xfffffffeULL ? -1 : (opt.gid = (u32)number, 0);
	if (str_eq(word, "groups"))
		return parse_groups(value);
	if (str_eq(word, "cwd"))
		return value[0] == '/' ? (opt.cwd = value, 0) : -1;
	if (str_eq(word, "hostname"))
		return str_len(value) >= 1 && str_len(value) <= 64 ? (opt.hostname = value, 0) : -1;
	if (str_eq(word, "cgroup"))
		return value[0] == '/' ? (opt.cgroup = value, 0) : -1;
	if (str_eq(word, "rlimit"))
		return parse_rlimit(value);
	if (str_eq(word, "nnp"))
		return (opt.nnp = str_eq(value, "1")) ? 0 : -1;
	if (str_eq(word, "capkeep"))
		return parse_u64(value, 16, &opt.capkeep) ? -1 : (opt.has_capkeep = 1, 0);
	if (str_eq(word, "oom")) {
		const char *digits = value[0] == '-' ? value + 1 : value;
		return parse_u64(digits, 10, &number) || number > 1000 ? -1 : (opt.oom = value, 0);
	}
	return -1;
}

/* ---- starting the workload ------------------------------------------------------------- */

enum start_step {
	STEP_SETSID, STEP_CGROUP, STEP_OOM, STEP_HOSTNAME, STEP_RLIMIT, STEP_CAPBSET, STEP_SETGROUPS,
	STEP_SETGID, STEP_SETUID, STEP_NNP, STEP_CWD, STEP_SIGNALS, STEP_EXEC,
};
static const char *const step_names[] = {
	"setsid", "joining the cgroup", "writing oom_score_adj", "sethostname", "setrlimit",
	"dropping capabilities from the bounding set", "setgroups", "setresgid", "setresuid",
	"setting no_new_privs", "chdir", "resetting signals", "exec",
};

struct start_failure {
	int step;
	int err;
	long detail;
};

static int write_file(const char *path, const char *text)
{
	int fd = k_open(path, O_WRONLY | O_CLOEXEC);
	long written;
	if (fd < 0)
		return fd;
	written = k_write(fd, text, str_len(text));
	k_close(fd);
	return written < 0 ? (int)written : 0;
}

static int join_path(char *out, size_t size, const char *dir, const char *name)
{
	size_t n = 0;
	for (const char *s = dir; *s; s++)
		if (n < size - 1)
			out[n++] = *s;
	if (n < size - 1)
		out[n++] = '/';
	for (const char *s = name; *s; s++)
		if (n < size - 1)
			out[n++] = *s;
	out[n] = 0;
	return n < size - 1 ? 0 : -1;
}

/* PROGRAM without a slash is looked up in the workload's PATH, as a shell would. */
static int exec_program(char **argv, char **envp)
{
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	char candidate[4096];
	int last = -2;
	for (const char *s = argv[0]; *s; s++)
		if (*s == '/')
			return k_execve(argv[0], argv, envp);
	for (char **env = envp; *env; env++)
		if (starts_with(*env, "PATH="))
			path = *env + 5;
	while (*path) {
		char dir[4096];
		size_t n = 0;
		while (*path && *path != ':')
			if (n < sizeof(dir) - 1)
				dir[n++] = *path++;
		dir[n] = 0;
		if (*path == ':')
			path++;
		if (!n || join_path(candidate, sizeof(candidate), dir, argv[0]))
			continue;
		last = k_execve(candidate, argv, envp);
		/* Keep looking only where the file is not there; anything else is the real error. */
		if (last != -2 && last != -20 && last != -13)
			return last;
	}
	return last;
}

/* Everything between fork and exec, in the order that keeps each step permitted; never returns on success. */
static struct start_failure apply_spec_and_exec(int new_session)
{
	struct start_failure failure = { 0, 0, 0 };
	u64 empty = 0;
	long ret;
#define FAIL_IF(cond, stepname, detailvalue) do { if ((ret = (cond)) < 0) { failure.step = stepname; failure.err = (int)-ret; failure.detail = (detailvalue); return failure; } } while (0)
	if (new_session)
		FAIL_IF(k_setsid(), STEP_SETSID, 0);
	if (opt.cgroup) {
		char procs[4096];
		FAIL_IF(join_path(procs, sizeof(procs), opt.cgroup, "cgroup.procs") ? -36 : 0, STEP_CGROUP, 0);
		FAIL_IF(write_file(procs, "0"), STEP_CGROUP, 0);
	}
	if (opt.oom)
		FAIL_IF(write_file("/proc/self/oom_score_adj", opt.oom), STEP_OOM, 0);
	if (opt.hostname)
		FAIL_IF(k_sethostname(opt.hostname, str_len(opt.hostname)), STEP_HOSTNAME, 0);
	for (int i = 0; i < opt.nrlimits; i++)
		FAIL_IF(k_prlimit(opt.rlimit_res[i], &opt.rlimits[i]), STEP_RLIMIT, opt.rlimit_res[i]);
	/* The bounding set needs CAP_SETPCAP: before the user switch drops it. */
	if (opt.has_capkeep) {
		for (int cap = 0; cap < 64; cap++) {
			if (opt.capkeep & (1ULL << cap))
				continue;
			ret = k_prctl(PR_CAPBSET_DROP, (unsigned long)cap);
			if (ret == -EINVAL)
				break; /* past the kernel's last capability */
			FAIL_IF(ret, STEP_CAPBSET, cap);
		}
	}
	if (opt.has_user) {
		FAIL_IF(k_setgroups((size_t)opt.ngroups, opt.groups), STEP_SETGROUPS, opt.ngroups);
		FAIL_IF(k_setresgid(opt.gid), STEP_SETGID, opt.gid);
		FAIL_IF(k_setresuid(opt.uid), STEP_SETUID, opt.uid);
	}
	if (opt.nnp)
		FAIL_IF(k_prctl(PR_SET_NO_NEW_PRIVS, 1), STEP_NNP, 0);
	/* After the user switch: the directory must be the user's to enter. */
	if (opt.cwd)
		FAIL_IF(k_chdir(opt.cwd), STEP_CWD, 0);
	/* What an exec'd agent would have: no blocked and no ignored signals. */
	for (int sig = 1; sig <= 64; sig++) {
		struct sigaction_k dfl = { 0, 0, 0, 0 };
		if (sig != SIGKILL && sig != 19)
			k_sigaction(sig, &dfl);
	}
	FAIL_IF(k_sigprocmask(SIG_SETMASK, &empty, 0), STEP_SIGNALS, 0);
	FAIL_IF(exec_program(opt.argv, opt.envp), STEP_EXEC, 0);
#undef FAIL_IF
	return failure;
}

static void describe_start_failure(const struct start_failure *failure)
{
	const char *what = failure->step >= 0 && failure->step <= STEP_EXEC ? step_names[failure->step] : "starting";
	switch (failure->step) {
	case STEP_EXEC: say(ERR, "cannot start the workload: exec %s: %e", opt.argv[0], failure->err); break;
	case STEP_CWD: say(ERR, "cannot start the workload: chdir %s: %e", opt.cwd, failure->err); break;
	case STEP_CGROUP: say(ERR, "cannot start the workload: joining cgroup %s: %e", opt.cgroup, failure->err); break;
	case STEP_HOSTNAME: say(ERR, "cannot start the workload: sethostname %s: %e", opt.hostname, failure->err); break;
	default: say(ERR, "cannot start the workload: %s (%l): %e", what, failure->detail, failure->err); break;
	}
}

/* ---- reading /proc files ------------------------------------------------------------ */

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

static int kmsg_oom_kill_since_mark(void)
{
	static char record[1024];
	if (kmsg_reader < 0)
		return 0;
	for (;;) {
		long n = k_read(kmsg_reader, record, sizeof(record) - 1);
		if (n == -EPIPE)
			continue; /* records overwritten under us: the next read goes on from the oldest left */
		if (n <= 0)
			return 0; /* -EAGAIN: nothing more */
		record[n] = 0;
		/* "Out of memory: Killed process N" and "Memory cgroup out of memory: Killed process N". */
		for (char *at = record; *at; at++)
			if (starts_with(at, "Out of memory: Killed process ") || starts_with(at, "out of memory: Killed process "))
				return 1;
	}
}

/* mountinfo and /proc/swaps spell space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *out = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = 0;
}

/* Split one line in place into fields separated by spaces or tabs (/proc/swaps pads with both). */
static int split_fields(char *line, char **fields, int max)
{
	int n = 0;
	while (*line && n < max) {
		while (*line == ' ' || *line == '\t')
			*line++ = 0;
		if (!*line)
			break;
		fields[n++] = line;
		while (*line && *line != ' ' && *line != '\t')
			line++;
		if (*line)
			*line++ = 0;
	}
	return n;
}

/* ---- the teardown: runs in a child, so the parent can give up on it at the deadline ------- */

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

/* ---- the supervisor proper ------------------------------------------------------------ */

static int signal_fd = -1, stop_fd = -1;
/* Warm snapshots: our end of the workload's notify socket, the control port while a resume is awaited. */
static int notify_fd = -1, notify_child_fd = -1, control_fd = -1;
enum warm_state { WARM_OFF, WARM_IDLE, WARM_AWAITING, WARM_DONE };
static enum warm_state warm = WARM_OFF;
static long control_retry_at = -1;
static int warm_failed;
static pid_t workload;
static int workload_status = -1; /* the wait status once it ended */
static enum phase phase = RUNNING;
static enum action ending = ACT_POWEROFF;
static long deadline = -1;
static long oom_before = -1;
static long reaped;

static int status_code(int wait_status)
{
	return (wait_status & 0x7f) ? 128 + (wait_status & 0x7f) : (wait_status >> 8) & 0xff;
}

static void report_workload_end(int wait_status)
{
	int sig = wait_status & 0x7f;
	int oom = sig == SIGKILL && (oom_before >= 0 ? oom_kills() > oom_before : kmsg_oom_kill_since_mark());
	/* An adopted child is the paravisor's worker: underhill_init's words for its end. */
	if (opt.adopt && !sig && !status_code(wait_status))
		say(INFO, "worker exited successfully");
	else if (opt.adopt && !sig)
		say(ERR, "worker terminated unsuccessfully: exit status %d", status_code(wait_status));
	else if (opt.adopt)
		say(ERR, "worker terminated unsuccessfully: signal %d%s", sig, oom ? " (the OOM killer)" : "");
	else if (!sig)
		say(INFO, "workload (pid %d) exited with status %d", workload, status_code(wait_status));
	else if (oom)
		say(ERR, "workload (pid %d) was killed by the OOM killer (signal 9): status 137", workload);
	else
		say(INFO, "workload (pid %d) was killed by signal %d: status %d", workload, sig, 128 + sig);
}

/* Collect every child that ended; returns 1 when no child is left at all. */
static int reap(void)
{
	for (;;) {
		int wait_status = 0;
		pid_t pid = k_wait4(-1, &wait_status, WNOHANG);
		if (pid == -ECHILD)
			return 1;
		if (pid <= 0)
			return 0;
		if (pid == workload && workload_status < 0) {
			workload_status = wait_status;
			report_workload_end(wait_status);
		} else {
			reaped++;
		}
	}
}

/*
 * kill(-1) from PID 1 reaches every process but PID 1. Anywhere else (a test on a host, as root) it
 * would reach every process of the machine: then only the workload's group is signalled.
 */
static void kill_everything(int sig)
{
	if (k_getpid() == 1)
		k_kill(-1, sig);
	else if (workload > 0)
		k_kill(-workload, sig);
}

static void begin_stop(enum action action, const char *why)
{
	if (phase != RUNNING) {
		say(DEBUG, "already stopping; %s ignored", why);
		return;
	}
	ending = action;
	phase = TERMINATING;
	deadline = k_now_ms() + opt.stop_timeout_ms;
	say(INFO, "stop (%s): SIGTERM to %s, up to %l ms; then %s", why, workload_status < 0 ? "the workload" : "what is left",
	    opt.stop_timeout_ms, action_names[action]);
	if (workload_status < 0) {
		k_kill(-workload, SIGTERM);
		k_kill(-workload, SIGCONT);
	}
	/* Everything else too: outside the workload's group there is only what it left running. */
	kill_everything(SIGTERM);
	kill_everything(SIGCONT);
}

static void handle_signal(int sig)
{
	switch (sig) {
	case SIGCHLD: break;
	case SIGUSR2: case SIGRTMIN_LIBC + 4: begin_stop(ACT_POWEROFF, sig == SIGUSR2 ? "SIGUSR2" : "SIGRTMIN+4"); break;
	case SIGTERM: case SIGRTMIN_LIBC + 5: begin_stop(ACT_REBOOT, sig == SIGTERM ? "SIGTERM" : "SIGRTMIN+5"); break;
	case SIGUSR1: case SIGRTMIN_LIBC + 3: begin_stop(ACT_HALT, sig == SIGUSR1 ? "SIGUSR1" : "SIGRTMIN+3"); break;
	case SIGINT:
		if (opt.ctrl_alt_del == ACT_IGNORE)
			say(INFO, "Ctrl-Alt-Del ignored (burrow.ctrl-alt-del=ignore)");
		else
			begin_stop(opt.ctrl_alt_del, "Ctrl-Alt-Del");
		break;
	default: say(DEBUG, "signal %d ignored", sig); break;
	}
}

static void read_stop_port(short revents)
{
	char request[64];
	long n;
	if (!(revents & POLLIN)) {
		/* No host on the other end (POLLHUP is level-triggered): stop watching rather than spin. */
		say(DEBUG, "stop port %s: host not connected; graceful stop from the host unavailable", opt.stop_port);
		k_close(stop_fd);
		stop_fd = -1;
		return;
	}
	n = k_read(stop_fd, request, sizeof(request) - 1);
	if (n <= 0)
		return;
	request[n] = 0;
	if (starts_with(request, "poweroff\n"))
		begin_stop(ACT_POWEROFF, "the host's stop request");
	else
		say(WARN, "stop port %s: unknown request ignored", opt.stop_port);
}

/* ---- warm snapshots -------------------------------------------------------------------- */

/* The resume message (two lines, the second for the workload) and the bound on it. */
#define RESUME_MAX 70000
#define WARM_ENTROPY_MIN 64
#define WARM_ENTROPY_MAX 4096
/* While the host side of the port is closed, read() returns 0 and poll reports POLLHUP: look again this often. */
#define CONTROL_RETRY_MS 20
/* 2020-01-01 in ns: a clock before it is not the host's. */
#define PLAUSIBLE_REALTIME_NS 1577836800000000000ULL

static char resume_buffer[RESUME_MAX + 1];
static size_t resume_len;
/* CLOCK_BOOTTIME ms when "ready" went out (the gap to the resume spans the saved time). */
static long boot_ready_ms;

static void sleep_ms(long ms)
{
	struct timespec_k pause = { ms / 1000, (ms % 1000) * 1000000L };
	k_ppoll(0, 0, &pause);
}

static int write_all(int fd, const char *text, size_t len)
{
	while (len) {
		long n = k_write(fd, text, len);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN) {
			sleep_ms(CONTROL_RETRY_MS);
			continue;
		}
		if (n <= 0)
			return n < 0 ? (int)n : -5;
		text += n;
		len -= (size_t)n;
	}
	return 0;
}

static long boottime_ms(void)
{
	struct timespec_k boot = { 0, 0 };
	sys2(NR_clock_gettime, 7 /* CLOCK_BOOTTIME */, &boot);
	return boot.tv_sec * 1000 + boot.tv_nsec / 1000000;
}

/* {"burrow":"snapshot","version":1,"type":"ready","uptimeMs":N}, as burrow's own encodeReady. */
static int write_ready(int fd)
{
	struct line line = { .len = 0 };
	put_str(&line, "{\"burrow\":\"snapshot\",\"version\":1,\"type\":\"ready\",\"uptimeMs\":");
	put_num(&line, boot_ready_ms = boottime_ms());
	put_str(&line, "}");
	line.text[line.len++] = '\n';
	return write_all(fd, line.text, line.len);
}

static void write_resumed(int fd, const char *instance)
{
	struct line resumed = { .len = 0 };
	put_str(&resumed, "{\"burrow\":\"snapshot\",\"version\":1,\"type\":\"resumed\",\"instance\":\"");
	put_str(&resumed, instance);
	put_str(&resumed, "\"}");
	resumed.text[resumed.len++] = '\n';
	write_all(fd, resumed.text, resumed.len);
}

/* The workload asked: say "ready" to the host, which saves the VM while we wait for its resume message. */
static void warm_ready(void)
{
	int fd = k_open(opt.warm_port, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		say(ERR, "warm snapshot: cannot open the control port %s: %e; no snapshot taken", opt.warm_port, fd);
		warm = WARM_DONE;
		return;
	}
	/* Said first: the host pauses the VM as soon as it reads "ready". */
	say(INFO, "warm snapshot: the workload is ready; waiting for the host on %s", opt.warm_port);
	int ret = write_ready(fd);
	if (ret < 0) {
		say(ERR, "warm snapshot: writing ready to %s: %e; no snapshot taken", opt.warm_port, ret);
		k_close(fd);
		warm = WARM_DONE;
		return;
	}
	control_fd = fd;
	resume_len = 0;
	warm = WARM_AWAITING;
}

static int hex_value(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The host's fields every resume line starts with, checked; the entropy decoded into entropy_pool. */
static unsigned char entropy_pool[8 + WARM_ENTROPY_MAX];

static const char *check_host_fields(const char *instance, const char *realtime_text, const char *entropy_hex, u64 *realtime, size_t *bytes)
{
	size_t hex_len = str_len(entropy_hex);
	if (str_len(instance) < 1 || str_len(instance) > 64)
		return "instance: expected 1 to 64 characters";
	for (const char *c = instance; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return "instance: expected letters, digits, '.', '_' or '-'";
	if (parse_u64(realtime_text, 10, realtime) || *realtime < PLAUSIBLE_REALTIME_NS || *realtime >= (1ULL << 63))
		return "realtimeNs: not a plausible wall clock";
	*bytes = hex_len / 2;
	if (hex_len % 2 || *bytes < WARM_ENTROPY_MIN || *bytes > WARM_ENTROPY_MAX)
		return "entropy: expected 64 to 4096 bytes in hex";
	for (size_t i = 0; i < *bytes; i++) {
		int high = hex_value(entropy_hex[2 * i]), low = hex_value(entropy_hex[2 * i + 1]);
		if (high < 0 || low < 0)
			return "entropy: expected lowercase hex";
		entropy_pool[8 + i] = (unsigned char)(high << 4 | low);
	}
	return 0;
}

/* Fresh randomness first (nothing random may be drawn from the cloned state), then the clock. */
static const char *apply_host_fields(u64 realtime, size_t bytes, const char *who)
{
	/* struct rand_pool_info: entropy_count (bits), buf_size (bytes), then the bytes. */
	int bits = (int)(bytes * 8), size = (int)bytes;
	memcpy(entropy_pool, &bits, 4);
	memcpy(entropy_pool + 4, &size, 4);
	int random_fd = k_open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	int ret = random_fd < 0 ? random_fd : k_ioctl(random_fd, RNDADDENTROPY, (long)entropy_pool);
	if (ret == 0)
		ret = k_ioctl(random_fd, RNDRESEEDCRNG, 0);
	if (random_fd >= 0)
		k_close(random_fd);
	memset(entropy_pool, 0, sizeof(entropy_pool));
	if (ret < 0)
		return ret == -1 ? "crediting the host's entropy: EPERM" : "crediting the host's entropy failed";
	struct timespec_k now = { (long)(realtime / 1000000000ULL), (long)(realtime % 1000000000ULL) };
	ret = k_clock_settime_realtime(&now);
	if (ret < 0)
		say(WARN, "%s: clock_settime(CLOCK_REALTIME): %e; the clock is the saved one", who, ret);
	return 0;
}

/* Refuse the restore: the workload must never run on from a cloned RNG state unannounced. */
static void warm_refuse(const char *why)
{
	say(ERR, "warm snapshot: malformed resume message on the control port: %s; stopping the workload rather than let it run on a cloned state", why);
	warm_failed = 1;
	warm = WARM_DONE;
	k_kill(-workload, SIGKILL);
	kill_everything(SIGKILL);
	begin_stop(opt.onfail == ACT_HALT ? ACT_HALT : ACT_POWEROFF, "a malformed resume message");
}

/*
 * "burrow-warm-resume 1 INSTANCE REALTIME_NS ENTROPY_HEX\n" then one line for the workload.
 * Checked whole before anything is applied.
 */
static void warm_resume(char *header, char *message, size_t message_len)
{
	char *fields[6];
	int nfields = split_fields(header, fields, 6);
	u64 realtime;
	size_t bytes;
	if (nfields != 5 || !str_eq(fields[0], "burrow-warm-resume"))
		return warm_refuse("not a warm resume header");
	if (!str_eq(fields[1], "1"))
		return warm_refuse("protocol version is not 1");
	const char *problem = check_host_fields(fields[2], fields[3], fields[4], &realtime, &bytes);
	if (problem)
		return warm_refuse(problem);
	if (message_len == 0 || message[0] != '{')
		return warm_refuse("the workload's message: expected a JSON object line");
	problem = apply_host_fields(realtime, bytes, "warm snapshot");
	if (problem)
		return warm_refuse(problem);

	message[message_len] = '\n';
	int ret = notify_fd < 0 ? -9 : write_all(notify_fd, message, message_len + 1);
	if (ret < 0)
		say(WARN, "warm snapshot: the workload's notify socket: %e; it was not told it was restored", ret);
	write_resumed(control_fd, fields[2]);
	say(INFO, "warm snapshot: resumed as instance %s (%l bytes of host entropy credited, CRNG reseeded, clock set)", fields[2], (long)bytes);
	k_close(control_fd);
	control_fd = -1;
	warm = WARM_DONE;
}

static void read_control(short revents)
{
	long n;
	if (!(revents & POLLIN)) {
		if (resume_len > 0)
			return warm_refuse("the host closed the port in the middle of it");
		/* The host is not connected (yet): level-triggered POLLHUP; look again shortly. */
		control_retry_at = k_now_ms() + CONTROL_RETRY_MS;
		return;
	}
	n = k_read(control_fd, resume_buffer + resume_len, RESUME_MAX - resume_len);
	if (n == 0 && resume_len > 0)
		return warm_refuse("the host closed the port in the middle of it");
	if (n == 0) {
		control_retry_at = k_now_ms() + CONTROL_RETRY_MS;
		return;
	}
	if (n < 0)
		return;
	resume_len += (size_t)n;
	resume_buffer[resume_len] = 0;
	char *first = 0, *second = 0;
	for (size_t i = 0; i < resume_len; i++) {
		if (resume_buffer[i] != '\n')
			continue;
		if (!first) {
			first = resume_buffer + i;
		} else {
			second = resume_buffer + i;
			break;
		}
	}
	if (second) {
		*first = 0;
		*second = 0;
		warm_resume(resume_buffer, first + 1, (size_t)(second - first - 1));
	} else if (resume_len >= RESUME_MAX) {
		warm_refuse("longer than 70000 bytes");
	}
}

static void read_notify(void)
{
	char request[256];
	long n = k_read(notify_fd, request, sizeof(request) - 1);
	if (n <= 0) {
		/* The workload closed its end: it will not ask. */
		if (n != -EINTR) {
			k_close(notify_fd);
			notify_fd = -1;
		}
		return;
	}
	request[n] = 0;
	for (long i = 0; i + 7 <= n; i++)
		if ((i == 0 || request[i - 1] == '\n') && starts_with(request + i, "READY=1")) {
			if (warm == WARM_IDLE)
				warm_ready();
			else
				say(DEBUG, "warm snapshot: READY=1 again ignored");
			return;
		}
	say(DEBUG, "notify socket: message without READY=1 ignored");
}

static void wait_for_events(void)
{
	struct pollfd_k fds[4];
	int kinds[4];
	unsigned long nfds = 0;
	struct timespec_k timeout, *timeout_ptr = 0;
	long wake = deadline;
	fds[nfds] = (struct pollfd_k){ signal_fd, POLLIN, 0 };
	kinds[nfds++] = 0;
	if (stop_fd >= 0 && phase == RUNNING) {
		fds[nfds] = (struct pollfd_k){ stop_fd, POLLIN, 0 };
		kinds[nfds++] = 1;
	}
	if (notify_fd >= 0 && phase == RUNNING && warm == WARM_IDLE) {
		fds[nfds] = (struct pollfd_k){ notify_fd, POLLIN, 0 };
		kinds[nfds++] = 2;
	}
	if (control_fd >= 0 && phase == RUNNING && warm == WARM_AWAITING) {
		if (control_retry_at < 0 || k_now_ms() >= control_retry_at) {
			control_retry_at = -1;
			fds[nfds] = (struct pollfd_k){ control_fd, POLLIN, 0 };
			kinds[nfds++] = 3;
		} else if (wake < 0 || control_retry_at < wake) {
			wake = control_retry_at;
		}
	}
	if (wake >= 0) {
		long left = wake - k_now_ms();
		if (left < 0)
			left = 0;
		timeout.tv_sec = left / 1000;
		timeout.tv_nsec = (left % 1000) * 1000000;
		timeout_ptr = &timeout;
	}
	if (k_ppoll(fds, nfds, timeout_ptr) <= 0)
		return;
	for (unsigned long i = 0; i < nfds; i++) {
		if (!fds[i].revents)
			continue;
		if (kinds[i] == 0 && (fds[i].revents & POLLIN)) {
			struct signalfd_info info;
			while (k_read(signal_fd, &info, sizeof(info)) == (long)sizeof(info))
				handle_signal((int)info.signo);
		} else if (kinds[i] == 1) {
			read_stop_port(fds[i].revents);
		} else if (kinds[i] == 2) {
			read_notify();
		} else if (kinds[i] == 3) {
			read_control(fds[i].revents);
		}
	}
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

static __attribute__((noreturn)) void park(void)
{
	for (;;) {
		struct pollfd_k fds[1] = { { signal_fd, POLLIN, 0 } };
		struct signalfd_info info;
		k_ppoll(fds, signal_fd >= 0 ? 1 : 0, 0);
		while (signal_fd >= 0 && k_read(signal_fd, &info, sizeof(info)) == (long)sizeof(info))
			;
		reap();
	}
}

static __attribute__((noreturn)) void end_vm(int status)
{
	unsigned int cmd;
	phase = ENDING;
	if (ending != ACT_EXIT)
		announce_exit_status(status);
	if (k_getpid() == 1)
		run_teardown();
	if (ending == ACT_EXIT) {
		say(INFO, "exiting with status %d", status);
		k_exit(status);
	}
	say(INFO, "%s", ending == ACT_REBOOT ? "rebooting" : ending == ACT_HALT ? "halting" : "powering off");
	/* Only PID 1 may end the machine: a supervisor started anywhere else just exits. */
	if (k_getpid() != 1)
		k_exit(status);
	cmd = ending == ACT_REBOOT ? LINUX_REBOOT_CMD_RESTART : ending == ACT_HALT ? LINUX_REBOOT_CMD_HALT : LINUX_REBOOT_CMD_POWER_OFF;
	long ret = k_reboot(cmd);
	if (ret < 0)
		say(ERR, "reboot(%s): %e", action_names[ending], (int)ret);
	park();
}

/* A failure before the workload ran: the configured fallback, as burrow's own failed boot would. */
static __attribute__((noreturn)) void fail_start(void)
{
	if (opt.onfail == ACT_SHELL) {
		static char *const sh_argv[] = { "/bin/sh", 0 };
		say(WARN, "dropping to /bin/sh (burrow.onfail=shell)");
		k_execve("/bin/sh", sh_argv, opt.envp);
		say(ERR, "cannot start /bin/sh; powering off");
		opt.onfail = ACT_POWEROFF;
	}
	ending = opt.onfail == ACT_HALT ? ACT_HALT : ACT_POWEROFF;
	end_vm(1);
}

static void supervise(void)
{
	for (;;) {
		/* Reap first: an adopted child may have ended before SIGCHLD was blocked (its signal then lost). */
		int no_children = reap();
		if (phase == RUNNING && workload_status >= 0)
			begin_stop(opt.onexit, "the workload exited");
		if (phase != RUNNING && no_children)
			return;
		if (phase != RUNNING && k_now_ms() >= deadline) {
			if (phase == KILLING) {
				say(WARN, "stop: processes left %d ms after SIGKILL (uninterruptible sleep?); going on", KILL_WAIT_MS);
				return;
			}
			say(WARN, "stop: %s still running %l ms after SIGTERM; SIGKILL to everything left",
			    workload_status < 0 ? "the workload is" : "processes are", opt.stop_timeout_ms);
			kill_everything(SIGKILL);
			phase = KILLING;
			deadline = k_now_ms() + KILL_WAIT_MS;
		}
		wait_for_events();
	}
}

/* In the child: the environment plus BURROW_NOTIFY_FD=N (an earlier one dropped). */
static void with_notify_env(int fd)
{
	static char *env[1024];
	static struct line entry;
	size_t n = 0;
	for (char **e = opt.envp; *e && n < sizeof(env) / sizeof(env[0]) - 2; e++)
		if (!starts_with(*e, "BURROW_NOTIFY_FD="))
			env[n++] = *e;
	put_str(&entry, "BURROW_NOTIFY_FD=");
	put_num(&entry, fd);
	entry.text[entry.len] = 0;
	env[n++] = entry.text;
	env[n] = 0;
	opt.envp = env;
}

static pid_t start_workload(void)
{
	int pipe_fds[2];
	struct start_failure failure = { 0, 0, 0 };
	long n;
	pid_t child;
	if (k_pipe2(pipe_fds, O_CLOEXEC) < 0)
		return -1;
	if (opt.warm_port) {
		int pair[2];
		int ret = k_socketpair(pair);
		if (ret < 0) {
			say(ERR, "warm snapshot: socketpair: %e; the workload cannot ask for a snapshot", ret);
		} else {
			notify_fd = pair[0];
			notify_child_fd = pair[1];
			warm = WARM_IDLE;
		}
	}
	child = k_fork();
	if (child == 0) {
		k_close(pipe_fds[0]);
		if (notify_child_fd >= 0) {
			k_close(notify_fd);
			with_notify_env(notify_child_fd);
		}
		failure = apply_spec_and_exec(1);
		k_write(pipe_fds[1], &failure, sizeof(failure));
		k_exit(127);
	}
	k_close(pipe_fds[1]);
	if (notify_child_fd >= 0) {
		k_close(notify_child_fd);
		notify_child_fd = -1;
	}
	if (child < 0) {
		say(ERR, "cannot start the workload: fork: %e", (int)child);
		return -1;
	}
	/* Nothing to read means the exec happened (the pipe is close-on-exec). */
	do
		n = k_read(pipe_fds[0], &failure, sizeof(failure));
	while (n == -EINTR);
	k_close(pipe_fds[0]);
	if (n == (long)sizeof(failure)) {
		describe_start_failure(&failure);
		return -1;
	}
	return child;
}

/* Where say() and the exit-status line go; once. */
static void open_log(void)
{
	if (kmsg_fd < 0)
		kmsg_fd = k_open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (console_fd < 0)
		console_fd = k_open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
}

static void open_channels(void)
{
	u64 mask = 0;
	static const int handled[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGRTMIN_LIBC + 3, SIGRTMIN_LIBC + 4, SIGRTMIN_LIBC + 5 };
	open_log();
	for (unsigned i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		mask |= 1ULL << (handled[i] - 1);
	/* Blocked signals are queued even for PID 1 (which the kernel spares every signal it has no handler for). */
	k_sigprocmask(SIG_BLOCK, &mask, 0);
	signal_fd = k_signalfd(&mask);
	if (signal_fd < 0)
		say(ERR, "signalfd: %e; control signals will not be seen", signal_fd);
	if (opt.stop_port) {
		stop_fd = k_open(opt.stop_port, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (stop_fd < 0)
			say(DEBUG, "stop port %s: %e; graceful stop from the host unavailable", opt.stop_port, stop_fd);
	}
}

/* ---- the snapshot point ---------------------------------------------------------------- */

/* Bounds of the instance's arguments and variables (src/snapshot/protocol.ts MAX_ARGS, MAX_ENV). */
#define POINT_MAX_ARGS 256
#define POINT_MAX_ENV 64
#define POINT_MAX_INHERITED 1024
#define POINT_RETRY_MIN_MS 5
#define POINT_RETRY_MAX_MS 100

static char *point_argv[POINT_MAX_ARGS + 2];
static char *point_env[POINT_MAX_ENV];
static char *point_envp[POINT_MAX_INHERITED + POINT_MAX_ENV + 2];
static struct line instance_entry;

/* The fallback with the signals the teardown waits on (exec=1 has not opened them yet). */
static __attribute__((noreturn)) void point_fail(void)
{
	open_channels();
	fail_start();
}

/* The agent must never start from a cloned RNG state: one line, then burrow.onfail. */
static __attribute__((noreturn)) void point_refuse(const char *why)
{
	say(ERR, "snapshot: malformed resume message on burrow.control: %s; not starting the agent from a cloned state", why);
	point_fail();
}

/* Lowercase hex decoded in place (the text shrinks by half); a NUL byte is refused. 0 on success. */
static int unhex_in_place(char *text)
{
	char *out = text;
	for (const char *in = text; *in; in += 2) {
		int high = hex_value(in[0]), low = in[1] ? hex_value(in[1]) : -1;
		if (high < 0 || low < 0 || (high | low) == 0)
			return -1;
		*out++ = (char)(high << 4 | low);
	}
	*out = 0;
	return 0;
}

/* "COUNT:HEX,HEX,…" decoded into items (in place); the count, or -1. "1:" is one empty item. */
static int split_hex_list(char *field, char **items, int max)
{
	char *p = field;
	u64 count;
	while (*p && *p != ':')
		p++;
	if (*p != ':')
		return -1;
	*p++ = 0;
	if (parse_u64(field, 10, &count) || count > (u64)max)
		return -1;
	if (count == 0)
		return *p ? -1 : 0;
	for (int i = 0; i < (int)count; i++) {
		items[i] = p;
		while (*p && *p != ',')
			p++;
		if (i < (int)count - 1) {
			if (*p != ',')
				return -1;
			*p++ = 0;
		} else if (*p) {
			return -1;
		}
		if (unhex_in_place(items[i]))
			return -1;
	}
	return (int)count;
}

static int same_name(const char *a, const char *b)
{
	while (*a && *a != '=' && *a == *b)
		a++, b++;
	return (*a == '=' || !*a) && (*b == '=' || !*b);
}

/* Why NAME=VALUE may not be an instance's variable (src/snapshot/protocol.ts), or 0. */
static const char *env_problem(const char *entry)
{
	static const char *const reserved[] = { "PATH", "HOME", "TERM", "KERNEL_BOOT_TIME", "BURROW_INSTANCE" };
	/* src/config/environment.ts RUNTIME_ENV_PREFIXES: they steer the runtime or the loader. */
	static const char *const runtime[] = { "BUN_", "JSC_", "__BUN", "BUNFS", "NODE_", "LD_", "GLIBC_TUNABLES", "MALLOC_" };
	const char *c = entry;
	if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || *c == '_'))
		return "env: expected NAME=VALUE with a variable name";
	for (; *c && *c != '='; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
			return "env: expected NAME=VALUE with a variable name";
	if (*c != '=' || c - entry > 128)
		return "env: expected NAME=VALUE with a variable name";
	for (unsigned i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (same_name(entry, reserved[i]))
			return "env: a variable burrow sets itself cannot be replaced";
	for (unsigned i = 0; i < sizeof(runtime) / sizeof(runtime[0]); i++)
		if (starts_with(entry, runtime[i]))
			return "env: a variable that steers the runtime or the loader cannot be set";
	return 0;
}

/* The saved environment minus what the instance replaces, then BURROW_INSTANCE and the instance's own. */
static void with_instance_env(const char *instance, int nenv)
{
	size_t n = 0;
	for (char **e = opt.envp; *e && n < POINT_MAX_INHERITED; e++) {
		int replaced = same_name(*e, "BURROW_INSTANCE");
		for (int i = 0; i < nenv && !replaced; i++)
			replaced = same_name(*e, point_env[i]);
		if (!replaced)
			point_envp[n++] = *e;
	}
	put_str(&instance_entry, "BURROW_INSTANCE=");
	put_str(&instance_entry, instance);
	instance_entry.text[instance_entry.len] = 0;
	point_envp[n++] = instance_entry.text;
	for (int i = 0; i < nenv; i++)
		point_envp[n++] = point_env[i];
	point_envp[n] = 0;
	opt.envp = point_envp;
}

/* /run/burrow/resume.json: what the boot report's readers want to know of this restore. */
static void record_resume(const char *instance, long resume_ms, size_t entropy_bytes, int nargs, int nenv)
{
	struct line record = { .len = 0 };
	put_str(&record, "{\"instance\":\"");
	put_str(&record, instance);
	put_str(&record, "\",\"readyMs\":");
	put_num(&record, boot_ready_ms);
	put_str(&record, ",\"resumeMs\":");
	put_num(&record, resume_ms);
	put_str(&record, ",\"execMs\":");
	put_num(&record, boottime_ms());
	put_str(&record, ",\"entropyBytes\":");
	put_num(&record, (long)entropy_bytes);
	put_str(&record, ",\"args\":");
	put_num(&record, nargs);
	put_str(&record, ",\"env\":");
	put_num(&record, nenv);
	put_str(&record, "}");
	record.text[record.len++] = '\n';
	int fd = k_open("/run/burrow/resume.json", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC);
	if (fd < 0) {
		say(WARN, "snapshot: cannot write /run/burrow/resume.json: %e", fd);
		return;
	}
	k_write(fd, record.text, record.len);
	k_close(fd);
}

/*
 * "burrow-resume 1 INSTANCE REALTIME_NS ENTROPY_HEX ARGS ENV", ARGS "-" (the saved ones) or
 * "COUNT:HEX,…", ENV "COUNT:HEX,…" of NAME=VALUE. Checked whole before anything is applied;
 * returns the instance.
 */
static const char *point_apply(char *header, long resume_ms)
{
	char *fields[8];
	int nfields = split_fields(header, fields, 8), nargs = -1, nenv;
	u64 realtime;
	size_t bytes;
	if (nfields != 7 || !str_eq(fields[0], "burrow-resume"))
		point_refuse("not a resume line");
	if (!str_eq(fields[1], "1"))
		point_refuse("protocol version is not 1");
	const char *problem = check_host_fields(fields[2], fields[3], fields[4], &realtime, &bytes);
	if (problem)
		point_refuse(problem);
	if (!str_eq(fields[5], "-")) {
		nargs = split_hex_list(fields[5], point_argv + 1, POINT_MAX_ARGS);
		if (nargs < 0)
			point_refuse("args: expected - or COUNT:HEX,... of at most 256 arguments without NUL");
	}
	nenv = split_hex_list(fields[6], point_env, POINT_MAX_ENV);
	if (nenv < 0)
		point_refuse("env: expected COUNT:HEX,... of at most 64 NAME=VALUE without NUL");
	for (int i = 0; i < nenv; i++)
		if ((problem = env_problem(point_env[i])))
			point_refuse(problem);
	problem = apply_host_fields(realtime, bytes, "snapshot");
	if (problem)
		point_refuse(problem);
	if (nargs >= 0) {
		point_argv[0] = opt.argv[0];
		point_argv[nargs + 1] = 0;
		opt.argv = point_argv;
	}
	with_instance_env(fields[2], nenv);
	record_resume(fields[2], resume_ms, bytes, nargs, nenv);
	say(INFO, "resumed as instance %s: %l bytes of host entropy, CRNG reseeded, clock set", fields[2], (long)bytes);
	return fields[2];
}

/* Say "ready" on the control port and block until the host's resume line, then apply it. */
static void snapshot_point(void)
{
	long pause = POINT_RETRY_MIN_MS, n;
	int ret, fd = k_open(opt.point_port, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		say(ERR, "snapshot: cannot open the control port %s: %e", opt.point_port, fd);
		point_fail();
	}
	/* Said first: the host may stop the VM the moment it reads "ready". */
	say(INFO, "snapshot point: ready on burrow.control; waiting for the host's resume message");
	/* The host may not have opened its side yet. */
	while ((ret = write_ready(fd)) == -ENOTCONN || ret == -EPIPE)
		sleep_ms(POINT_RETRY_MIN_MS);
	if (ret < 0) {
		say(ERR, "snapshot: writing ready to %s: %e", opt.point_port, ret);
		point_fail();
	}
	resume_len = 0;
	for (;;) {
		n = k_read(fd, resume_buffer + resume_len, RESUME_MAX - resume_len);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			say(ERR, "snapshot: reading the control port %s: %e; not starting the agent from a cloned state", opt.point_port, (int)n);
			point_fail();
		}
		if (n == 0) {
			/* The host side is closed: before the line starts, look again, backing off. */
			if (resume_len > 0) {
				say(ERR, "snapshot: malformed resume message on burrow.control: the host closed the port in the middle of it (%l bytes received); not starting the agent from a cloned state", (long)resume_len);
				point_fail();
			}
			sleep_ms(pause);
			pause = pause * 2 > POINT_RETRY_MAX_MS ? POINT_RETRY_MAX_MS : pause * 2;
			continue;
		}
		for (long i = 0; i < n; i++) {
			if (resume_buffer[resume_len + (size_t)i] != '\n')
				continue;
			resume_buffer[resume_len + (size_t)i] = 0;
			write_resumed(fd, point_apply(resume_buffer, boottime_ms()));
			k_close(fd);
			return;
		}
		resume_len += (size_t)n;
		if (resume_len >= RESUME_MAX)
			point_refuse("longer than 70000 bytes");
	}
}

int start_c(long *stack)
{
	int argc = (int)stack[0];
	char **argv = (char **)(stack + 1);
	int i;
	opt.envp = argv + argc + 1;
	for (i = 1; i < argc && !str_eq(argv[i], "--"); i++) {
		if (parse_option(argv[i]) == 0)
			continue;
		open_channels();
		say(ERR, "supervisor: bad option %s", argv[i]);
		fail_start();
	}
	if (i < argc)
		opt.argv = argv + i + 1;
	if (opt.point_port) {
		open_log();
		if (!opt.argv || !opt.argv[0]) {
			say(ERR, "supervisor: point= needs -- PROGRAM");
			point_fail();
		}
		snapshot_point();
	}
	if (opt.exec_only) {
		struct start_failure failure;
		if (!opt.argv || !opt.argv[0]) {
			open_channels();
			say(ERR, "supervisor: exec=1 needs -- PROGRAM");
			fail_start();
		}
		failure = apply_spec_and_exec(0);
		open_channels();
		describe_start_failure(&failure);
		fail_start();
	}
	/* Not for exec=1: an agent that becomes PID 1 keeps the kernel's Ctrl-Alt-Del, as after burrow's own exec. */
	if (k_getpid() == 1)
		k_reboot(LINUX_REBOOT_CMD_CAD_OFF); /* Ctrl-Alt-Del becomes SIGINT to PID 1 */
	open_channels();
	oom_before = oom_kills();
	if (oom_before < 0)
		mark_kmsg();
	if (opt.adopt) {
		workload = opt.adopt;
	} else {
		if (!opt.argv || !opt.argv[0]) {
			say(ERR, "supervisor: nothing to run (-- PROGRAM missing)");
			fail_start();
		}
		workload = start_workload();
		if (workload < 0)
			fail_start();
	}
	say(INFO, "supervising pid %d (burrow.onexit=%s, stop timeout %l ms)%s%s", workload, action_names[opt.onexit], opt.stop_timeout_ms,
	    stop_fd >= 0 ? ", host stop port open" : "", warm == WARM_IDLE ? ", warm snapshot on READY=1" : "");
	if (opt.adopt && k_kill(workload, 0) == -3) {
		/* Collected before the hand-off (not a zombie any more): its status is lost. */
		say(ERR, "pid %d is gone; its exit status is unknown", workload);
		workload_status = 255 << 8;
	}
	supervise();
	if (workload_status < 0) {
		say(WARN, "the workload (pid %d) did not end; reporting status 137", workload);
		workload_status = SIGKILL;
	}
	if (reaped)
		say(DEBUG, "reaped %l orphans", reaped);
	end_vm(warm_failed ? 1 : status_code(workload_status));
}
