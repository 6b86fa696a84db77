/*
 * Starting the workload: the spec applied in the child (cgroup, limits, credentials, cwd…), then
 * exec; a failure reported back through a pipe. Apart because it runs in the child, before exec.
 */

/* Indexed by the STEP_ numbers of wire.h (src/control/wire.ts StartStep): an exec session's FAILED carries them. */
static const char *const step_names[] = {
	[STEP_FORK] = "fork", [STEP_SETSID] = "setsid", [STEP_CGROUP] = "joining the cgroup",
	[STEP_OOM] = "writing oom_score_adj", [STEP_HOSTNAME] = "sethostname", [STEP_RLIMIT] = "setrlimit",
	[STEP_CAPBSET] = "dropping capabilities from the bounding set", [STEP_SETGROUPS] = "setgroups",
	[STEP_SETGID] = "setresgid", [STEP_SETUID] = "setresuid", [STEP_NNP] = "setting no_new_privs",
	[STEP_CWD] = "chdir", [STEP_SIGNALS] = "resetting signals", [STEP_EXEC] = "exec", [STEP_USER] = "resolving the user",
	[STEP_STDIO] = "setting up stdin, stdout and stderr",
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

/*
 * The signals this supervisor ignores (SIGPIPE, and any it inherited ignored): what a started
 * process must get back to SIG_DFL, as exec(2) keeps ignored ones. Asked of the kernel once (64
 * calls) and kept — the supervisor changes no disposition after open_channels() — so a start
 * resets only these instead of every signal. An exec session's parent asks before its
 * clone(CLONE_VM) child reads it.
 */
static u64 ignored_signals(void)
{
	static u64 mask;
	static int known;
	for (int sig = 1; sig <= 64 && !known; sig++) {
		struct sigaction_k old = { 0, 0, 0, 0 };
		if (sig != SIGKILL && sig != 19 && k_sigaction_get(sig, &old) == 0 && old.handler == (void *)1 /* SIG_IGN */)
			mask |= 1ULL << (sig - 1);
	}
	known = 1;
	return mask;
}

/*
 * Everything between fork and exec, in the order that keeps each step permitted; never returns on
 * success. Writes nothing outside its own stack frame: an exec session runs it in a
 * clone(CLONE_VM) child that shares the supervisor's memory.
 */
static struct start_failure apply_spec_and_exec(const struct spec *spec, int new_session)
{
	static const int no_priority = 0;
	struct start_failure failure = { 0, 0, 0 };
	u64 empty = 0, ignored = ignored_signals();
	long ret;
#define FAIL_IF(cond, stepname, detailvalue) do { if ((ret = (cond)) < 0) { failure.step = stepname; failure.err = (int)-ret; failure.detail = (detailvalue); return failure; } } while (0)
	/* The supervisor's SCHED_BATCH (main.c) is not the program's: back to SCHED_OTHER, which a
	 * process may always return to from another normal policy (no error to handle). */
	k_sched_setscheduler(0, SCHED_OTHER, &no_priority);
	if (new_session)
		FAIL_IF(k_setsid(), STEP_SETSID, 0);
	/* A terminal after setsid: opening it as the session leader makes it the controlling one. */
	if (spec->pty >= 0) {
		struct line slave = { .len = 0 };
		int fd;
		put_str(&slave, "/dev/pts/");
		put_num(&slave, spec->pty);
		slave.text[slave.len] = 0;
		FAIL_IF(fd = k_open(slave.text, O_RDWR), STEP_STDIO, spec->pty);
		FAIL_IF(k_ioctl(fd, TIOCSCTTY, 0), STEP_STDIO, spec->pty);
		for (int i = 0; i < 3; i++)
			FAIL_IF(k_dup3(fd, i), STEP_STDIO, i);
		if (fd > 2)
			k_close(fd);
	}
	for (int i = 0; i < 3; i++)
		if (spec->stdio[i] >= 0)
			FAIL_IF(k_dup3(spec->stdio[i], i), STEP_STDIO, i);
	if (spec->cgroup) {
		char procs[4096];
		FAIL_IF(join_path(procs, sizeof(procs), spec->cgroup, "cgroup.procs") ? -36 : 0, STEP_CGROUP, 0);
		FAIL_IF(write_file(procs, "0"), STEP_CGROUP, 0);
	}
	if (spec->oom)
		FAIL_IF(write_file("/proc/self/oom_score_adj", spec->oom), STEP_OOM, 0);
	if (spec->hostname)
		FAIL_IF(k_sethostname(spec->hostname, str_len(spec->hostname)), STEP_HOSTNAME, 0);
	for (int i = 0; i < spec->nrlimits; i++)
		FAIL_IF(k_prlimit(spec->rlimit_res[i], &spec->rlimits[i]), STEP_RLIMIT, spec->rlimit_res[i]);
	/* The bounding set needs CAP_SETPCAP: before the user switch drops it. */
	if (spec->has_capkeep) {
		for (int cap = 0; cap < 64; cap++) {
			if (spec->capkeep & (1ULL << cap))
				continue;
			ret = k_prctl(PR_CAPBSET_DROP, (unsigned long)cap);
			if (ret == -EINVAL)
				break; /* past the kernel's last capability */
			FAIL_IF(ret, STEP_CAPBSET, cap);
		}
	}
	if (spec->has_user) {
		FAIL_IF(k_setgroups((size_t)spec->ngroups, spec->groups), STEP_SETGROUPS, spec->ngroups);
		FAIL_IF(k_setresgid(spec->gid), STEP_SETGID, spec->gid);
		FAIL_IF(k_setresuid(spec->uid), STEP_SETUID, spec->uid);
	}
	if (spec->nnp)
		FAIL_IF(k_prctl(PR_SET_NO_NEW_PRIVS, 1), STEP_NNP, 0);
	/* After the user switch: the directory must be the user's to enter. */
	if (spec->cwd)
		FAIL_IF(k_chdir(spec->cwd), STEP_CWD, 0);
	/* What an exec'd agent would have: no blocked and no ignored signals (exec resets handled ones). */
	for (int sig = 1; sig <= 64; sig++) {
		struct sigaction_k dfl = { 0, 0, 0, 0 };
		if (ignored & (1ULL << (sig - 1)))
			k_sigaction(sig, &dfl);
	}
	FAIL_IF(k_sigprocmask(SIG_SETMASK, &empty, 0), STEP_SIGNALS, 0);
	FAIL_IF(exec_program(spec->argv, spec->envp), STEP_EXEC, 0);
#undef FAIL_IF
	return failure;
}

static void describe_start_failure(const struct start_failure *failure)
{
	const char *what = failure->step >= 0 && failure->step <= STEP_STDIO && step_names[failure->step] ? step_names[failure->step] : "starting";
	switch (failure->step) {
	case STEP_EXEC: say(ERR, "cannot start the workload: exec %s: %e", opt.spec.argv[0], failure->err); break;
	case STEP_CWD: say(ERR, "cannot start the workload: chdir %s: %e", opt.spec.cwd, failure->err); break;
	case STEP_CGROUP: say(ERR, "cannot start the workload: joining cgroup %s: %e", opt.spec.cgroup, failure->err); break;
	case STEP_HOSTNAME: say(ERR, "cannot start the workload: sethostname %s: %e", opt.spec.hostname, failure->err); break;
	default: say(ERR, "cannot start the workload: %s (%l): %e", what, failure->detail, failure->err); break;
	}
}

/* In the child: the environment plus BURROW_NOTIFY_FD=N (an earlier one dropped). */
static void with_notify_env(int fd)
{
	static char *env[1024];
	static struct line entry;
	size_t n = 0;
	for (char **e = opt.spec.envp; *e && n < sizeof(env) / sizeof(env[0]) - 2; e++)
		if (!starts_with(*e, "BURROW_NOTIFY_FD="))
			env[n++] = *e;
	put_str(&entry, "BURROW_NOTIFY_FD=");
	put_num(&entry, fd);
	entry.text[entry.len] = 0;
	env[n++] = entry.text;
	env[n] = 0;
	opt.spec.envp = env;
}

static pid_t start_workload(void)
{
	int pipe_fds[2];
	struct start_failure failure = { 0, 0, 0 };
	long n;
	pid_t child;
	if (k_pipe2(pipe_fds, O_CLOEXEC) < 0)
		return -1;
	if (opt.warm) {
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
		failure = apply_spec_and_exec(&opt.spec, 1);
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
