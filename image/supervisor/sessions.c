/*
 * Sessions: the processes the host runs in the guest (EXEC) and its file transfers (PUT, GET;
 * files.c), each under a host-chosen id. An exec'd process is the supervisor's child in its own
 * session and process group, started with the workload's spec (credentials, limits, cgroup)
 * under the request's overrides; its status goes to its session, never to the orphan count, and
 * the orderly stop ends it like the workload. Output moves only within the host's credit, so a
 * process writing without end blocks on its pipe. Under start=host one EXEC carries EF_WORKLOAD:
 * its process becomes the workload and stays its session's, EXITED before WORKLOAD_EXITED.
 */

enum session_kind { S_FREE, S_EXEC, S_PUT, S_GET };

struct session {
	u32 id;
	unsigned char kind;
	/* The host gave it up (CLOSE, a new host): nothing more is reported; the slot waits for the reap. */
	unsigned char abandoned;
	unsigned char out_eof, err_eof, in_eof, reaped, timed_out, tty;
	pid_t pid;
	int in_fd, out_fd, err_fd;
	int wait_status;
	long oom_before;
	long deadline;
	/* Output bytes the host allows (one counter for every stream of the session). */
	u64 credit;
	/* Input bytes taken from the host and not yet credited back (at most INPUT_WINDOW_BYTES). */
	u32 in_unacked;
	/* Of stdin_buffers[slot]: bytes waiting for the pipe, from in_off. */
	u32 in_len, in_off;
	/* Files (files.c). */
	int file_fd;
	u64 size, done;
	u32 mode;
};

static struct session sessions[MAX_SESSIONS];
/* Only the pages a session's stdin really fills are ever touched. */
static unsigned char stdin_buffers[MAX_SESSIONS][INPUT_WINDOW_BYTES];

static int sessions_open(void)
{
	int n = 0;
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i].kind != S_FREE && !sessions[i].abandoned)
			n++;
	return n;
}

static struct session *session_find(u32 id)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i].kind != S_FREE && !sessions[i].abandoned && sessions[i].id == id)
			return &sessions[i];
	return 0;
}

static struct session *session_new(u32 id, int kind)
{
	struct session *free_slot = 0;
	if (session_find(id)) {
		send_error(id, EC_SESSION_EXISTS, "this session id is in use", 0);
		return 0;
	}
	for (int i = 0; i < MAX_SESSIONS && !free_slot; i++)
		if (sessions[i].kind == S_FREE)
			free_slot = &sessions[i];
	if (!free_slot) {
		send_error(id, EC_TOO_MANY_SESSIONS, STR(MAX_SESSIONS) " sessions are open", 0);
		return 0;
	}
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->id = id;
	free_slot->kind = (unsigned char)kind;
	free_slot->in_fd = free_slot->out_fd = free_slot->err_fd = free_slot->file_fd = -1;
	free_slot->deadline = -1;
	free_slot->credit = OUTPUT_WINDOW_BYTES;
	return free_slot;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		k_close(*fd);
	*fd = -1;
}

static void session_free(struct session *s)
{
	close_fd(&s->in_fd);
	close_fd(&s->out_fd);
	close_fd(&s->err_fd);
	close_fd(&s->file_fd);
	s->kind = S_FREE;
}

static int session_slot(const struct session *s)
{
	return (int)(s - sessions);
}

/* ---- exec ------------------------------------------------------------------------------ */

/* An EXEC request's strings, NUL-terminated copies (the frame's bytes are not). */
static char exec_strings[MAX_BODY_BYTES + MAX_EXEC_ARGS + MAX_EXEC_ENV + 64];
static char *exec_argv[MAX_EXEC_ARGS + 1];
static char *exec_env[MAX_EXEC_ENV + 1 + 1024 + 2];
static struct spec exec_spec;
static struct resolved_user exec_user;
static struct line exec_home;

/* The workload's environment, then the request's NAME=VALUE entries over it (a name given twice: the last). */
static void merge_env(char **overrides, int noverrides, const char *home)
{
	size_t n = 0;
	for (char **e = opt.spec.envp; *e && n < 1024; e++) {
		int replaced = home && same_name(*e, "HOME");
		for (int i = 0; i < noverrides && !replaced; i++)
			replaced = same_name(*e, overrides[i]);
		if (!replaced)
			exec_env[n++] = *e;
	}
	if (home) {
		exec_home.len = 0;
		put_str(&exec_home, "HOME=");
		put_str(&exec_home, home);
		exec_home.text[exec_home.len] = 0;
		exec_env[n++] = exec_home.text;
	}
	for (int i = 0; i < noverrides; i++) {
		int later = 0;
		for (int j = i + 1; j < noverrides && !later; j++)
			later = same_name(overrides[i], overrides[j]);
		if (!later)
			exec_env[n++] = overrides[i];
	}
	exec_env[n] = 0;
}

static void send_failed(u32 id, int err, int step, const char *what)
{
	struct line body = { .len = 8 };
	set_u32((unsigned char *)body.text, (u32)err);
	set_u32((unsigned char *)body.text + 4, (u32)step);
	/* The errno travels as a number: the host names it, the text names what failed. */
	put_str(&body, what);
	send_frame(FT_FAILED, id, 0, body.text, body.len);
}

/* Pipes or a pty for the child; the supervisor's ends non-blocking. 0, or a negative errno. */
static int exec_stdio(struct session *s, int want_stdin, int rows, int cols)
{
	int fds[2], ret;
	exec_spec.pty = -1;
	exec_spec.stdio[0] = exec_spec.stdio[1] = exec_spec.stdio[2] = -1;
	if (s->tty) {
		u32 unlock = 0, number = 0;
		unsigned short size[4] = { (unsigned short)rows, (unsigned short)cols, 0, 0 };
		int master = k_open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
		if (master < 0)
			return master;
		if ((ret = k_ioctl(master, TIOCSPTLCK, (long)&unlock)) < 0 || (ret = k_ioctl(master, TIOCGPTN, (long)&number)) < 0) {
			k_close(master);
			return ret;
		}
		k_ioctl(master, TIOCSWINSZ, (long)size);
		s->out_fd = master;
		s->err_eof = 1;
		/* stdin goes through the master too: the session's input pipe is the terminal. */
		s->in_fd = -1;
		exec_spec.pty = (int)number;
		return 0;
	}
	if (want_stdin) {
		if ((ret = k_pipe2(fds, O_CLOEXEC)) < 0)
			return ret;
		exec_spec.stdio[0] = fds[0];
		s->in_fd = fds[1];
		k_fcntl(s->in_fd, F_SETFL, O_NONBLOCK);
	} else {
		s->in_eof = 1;
	}
	if ((ret = k_pipe2(fds, O_CLOEXEC)) < 0)
		return ret;
	exec_spec.stdio[1] = fds[1];
	s->out_fd = fds[0];
	if ((ret = k_pipe2(fds, O_CLOEXEC)) < 0)
		return ret;
	exec_spec.stdio[2] = fds[1];
	s->err_fd = fds[0];
	k_fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
	k_fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
	/* A writer fills a larger pipe before it blocks: fewer switches to this loop per byte (best effort; wire.h). */
	k_fcntl(s->out_fd, F_SETPIPE_SZ, OUTPUT_PIPE_BYTES);
	return 0;
}

static void close_child_ends(void)
{
	for (int i = 0; i < 3; i++)
		if (exec_spec.stdio[i] >= 0) {
			k_close(exec_spec.stdio[i]);
			exec_spec.stdio[i] = -1;
		}
}

/* The record at *at: its tag, value and length; 0 at the end, -1 when it runs past the body. */
static int next_record(const unsigned char *body, u32 len, u32 *at, int *tag, const unsigned char **value, u32 *value_len)
{
	if (*at == len)
		return 0;
	if (len - *at < 6)
		return -1;
	*tag = body[*at] | body[*at + 1] << 8;
	*value_len = get_u32(body + *at + 2);
	if (*value_len > len - *at - 6)
		return -1;
	*value = body + *at + 6;
	*at += 6 + *value_len;
	return 1;
}

/*
 * The clone(CLONE_VM | CLONE_VFORK) child's stack and all it shares with the supervisor: the spec
 * to apply and where a start failure is written. One child at a time (the parent waits until it
 * exec'd or exited), so one stack serves every start; only the pages it touches are resident.
 */
struct spawn_job {
	const struct spec *spec;
	struct start_failure failure;
};
static unsigned char spawn_stack[64 * 1024] __attribute__((aligned(16)));

static int spawn_child(void *arg)
{
	struct spawn_job *job = arg;
	job->failure = apply_spec_and_exec(job->spec, 1);
	return 127;
}

static void exec_request(u32 id, const unsigned char *body, u32 len)
{
	struct session *s;
	struct spawn_job job = { &exec_spec, { 0, 0, 0 } };
	char *overrides[MAX_EXEC_ENV];
	const char *user = 0, *problem = 0;
	int nargs = 0, nenv = 0, want_stdin = 0, is_workload = 0, rows = 0, cols = 0, ret, tag;
	u32 at = 0, value_len, timeout_ms = 0;
	size_t used = 0;
	const unsigned char *value;
	if (phase != RUNNING)
		return send_error(id, EC_STOPPING, "EXEC: the guest is stopping", 0);
	if (!(s = session_new(id, S_EXEC)))
		return;
	exec_spec = opt.spec;
	exec_spec.nrlimits = opt.spec.nrlimits;
	while ((ret = next_record(body, len, &at, &tag, &value, &value_len)) > 0) {
		char *copy = exec_strings + used;
		int is_text = tag == EF_ARG || tag == EF_ENV || tag == EF_CWD || tag == EF_USER;
		if (is_text) {
			for (u32 i = 0; i < value_len; i++)
				if (!value[i])
					problem = "a string holds a NUL byte";
			memcpy(copy, value, value_len);
			copy[value_len] = 0;
			used += value_len + 1;
		}
		if (tag == EF_ARG && nargs < MAX_EXEC_ARGS)
			exec_argv[nargs++] = copy;
		else if (tag == EF_ARG)
			problem = "more than " STR(MAX_EXEC_ARGS) " arguments";
		else if (tag == EF_ENV && nenv < MAX_EXEC_ENV) {
			const char *c = copy;
			if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || *c == '_'))
				problem = "env: expected NAME=VALUE";
			while (*c && *c != '=')
				c++;
			if (*c != '=')
				problem = "env: expected NAME=VALUE";
			overrides[nenv++] = copy;
		} else if (tag == EF_ENV)
			problem = "more than " STR(MAX_EXEC_ENV) " variables";
		else if (tag == EF_CWD)
			exec_spec.cwd = copy[0] == '/' ? copy : (problem = "cwd: expected an absolute path", (char *)0);
		else if (tag == EF_USER)
			user = copy;
		else if (tag == EF_RLIMIT) {
			u32 resource = value_len == 20 ? get_u32(value) : 99;
			int slot = 0;
			if (resource > 15 || get_u64(value + 4) > get_u64(value + 12)) {
				problem = "rlimit: expected resource 0-15 with soft <= hard";
				continue;
			}
			while (slot < exec_spec.nrlimits && exec_spec.rlimit_res[slot] != (int)resource)
				slot++;
			if (slot == MAX_RLIMITS) {
				problem = "rlimit: too many";
				continue;
			}
			exec_spec.rlimit_res[slot] = (int)resource;
			exec_spec.rlimits[slot].cur = get_u64(value + 4);
			exec_spec.rlimits[slot].max = get_u64(value + 12);
			if (slot == exec_spec.nrlimits)
				exec_spec.nrlimits++;
		} else if (tag == EF_TTY && value_len == 4) {
			s->tty = 1;
			rows = value[0] | value[1] << 8;
			cols = value[2] | value[3] << 8;
		} else if (tag == EF_TIMEOUT_MS && value_len == 4) {
			timeout_ms = get_u32(value);
		} else if (tag == EF_STDIN && value_len == 1) {
			want_stdin = value[0] == 1;
		} else if (tag == EF_WORKLOAD && value_len == 0) {
			is_workload = 1;
		} else {
			problem = "an unknown or malformed field";
		}
	}
	if (ret < 0)
		problem = "a field runs past the body";
	if (!nargs || !exec_argv[0][0])
		problem = problem ? problem : "no program (ARG) given";
	if (problem) {
		send_error(id, EC_BAD_REQUEST, "EXEC", problem);
		session_free(s);
		return;
	}
	if (is_workload && (!opt.start_host || workload)) {
		send_error(id, EC_WORKLOAD, "EXEC with WORKLOAD",
			   opt.start_host ? "the workload was started already" : "this guest starts its own workload (not start=host)");
		session_free(s);
		return;
	}
	exec_argv[nargs] = 0;
	exec_spec.argv = exec_argv;
	if (user) {
		const char *why = resolve_user(user, &exec_user);
		if (why) {
			struct line what = { .len = 0 };
			put_str(&what, "user ");
			put_str(&what, user);
			put_str(&what, ": ");
			put_str(&what, why);
			what.text[what.len] = 0;
			send_failed(id, 2 /* ENOENT */, STEP_USER, what.text);
			session_free(s);
			return;
		}
		exec_spec.has_user = 1;
		exec_spec.uid = exec_user.uid;
		exec_spec.gid = exec_user.gid;
		exec_spec.ngroups = exec_user.ngroups;
		memcpy(exec_spec.groups, exec_user.groups, sizeof(u32) * (size_t)exec_user.ngroups);
	}
	merge_env(overrides, nenv, user && exec_user.home[0] ? exec_user.home : 0);
	exec_spec.envp = exec_env;
	if ((ret = exec_stdio(s, want_stdin, rows, cols)) < 0) {
		close_child_ends();
		send_failed(id, -ret, STEP_STDIO, s->tty ? "a pseudo-terminal" : "pipes");
		session_free(s);
		return;
	}
	/* Without an oom_kill counter (the workload's check found none) the kernel log tells OOM kills apart. */
	s->oom_before = oom_before >= 0 ? oom_kills() : -1;
	/* Known before the child reads it: the child writes nothing the supervisor keeps. */
	ignored_signals();
	/* The parent goes on once the child exec'd or failed; a failure is in job.failure. */
	s->pid = (pid_t)k_clone_vfork(spawn_child, spawn_stack + sizeof(spawn_stack), &job);
	close_child_ends();
	if (s->pid < 0) {
		send_failed(id, -s->pid, STEP_FORK, "clone");
		session_free(s);
		return;
	}
	if (job.failure.err) {
		struct start_failure failure = job.failure;
		send_failed(id, failure.err, failure.step, failure.step == STEP_EXEC ? exec_argv[0] : failure.step == STEP_CWD ? exec_spec.cwd : step_names[failure.step]);
		/* The child is collected by reap(); its slot is freed then. */
		s->abandoned = 1;
		close_fd(&s->in_fd);
		close_fd(&s->out_fd);
		close_fd(&s->err_fd);
		return;
	}
	if (timeout_ms)
		s->deadline = k_now_ms() + (long)timeout_ms;
	send_u32(FT_STARTED, id, (u32)s->pid);
	if (is_workload) {
		/* Not reaped yet even if it already ended: reap() sees it as the workload. */
		workload = s->pid;
		say(INFO, "session %l: the host started the workload %s (pid %d)", (long)id, exec_argv[0], workload);
	} else {
		say(DEBUG, "session %l: started %s (pid %d)", (long)id, exec_argv[0], s->pid);
	}
}

/* A child ended: its session's (or not ours). */
static int session_reaped(pid_t pid, int wait_status)
{
	for (int i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &sessions[i];
		if (s->kind != S_EXEC || s->pid != pid || s->reaped)
			continue;
		s->reaped = 1;
		s->wait_status = wait_status;
		if (s->abandoned)
			session_free(s);
		return 1;
	}
	return 0;
}

/* A process whose end its session has still to report to the host. */
static int session_holds(pid_t pid)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (pid > 0 && sessions[i].kind == S_EXEC && !sessions[i].abandoned && sessions[i].pid == pid)
			return 1;
	return 0;
}

static int session_oom_killed(struct session *s)
{
	if ((s->wait_status & 0x7f) != SIGKILL)
		return 0;
	return s->oom_before >= 0 ? oom_kills() > s->oom_before : kmsg_oom_killed(s->pid);
}

/* EXITED once the process is reaped and its output has ended; the slot is freed. */
static void session_try_end(struct session *s)
{
	unsigned char body[10];
	int sig;
	if (s->kind != S_EXEC || s->abandoned || !s->reaped || !s->out_eof || !s->err_eof)
		return;
	sig = s->wait_status & 0x7f;
	set_u32(body, (u32)status_code(s->wait_status));
	set_u32(body + 4, (u32)sig);
	body[8] = (unsigned char)session_oom_killed(s);
	body[9] = s->timed_out;
	if (send_frame(FT_EXITED, s->id, 0, body, sizeof(body)) < 0)
		return; /* tried again on the next round */
	say(DEBUG, "session %l: pid %d ended with status %d", (long)s->id, s->pid, status_code(s->wait_status));
	session_free(s);
}

static void send_input_credit(struct session *s, u32 bytes)
{
	if (!bytes)
		return;
	s->in_unacked -= bytes;
	send_u32(FT_INPUT_CREDIT, s->id, bytes);
}

/* Input into the pipe (or the pty) as far as it takes it now: the bytes taken, dropped ones included (its reader gone: EPIPE). */
static u32 stdin_write(struct session *s, const unsigned char *bytes, u32 len)
{
	int fd = s->tty ? s->out_fd : s->in_fd;
	u32 taken = 0;
	while (taken < len && fd >= 0) {
		long n = k_write(fd, bytes + taken, len - taken);
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN)
			break;
		if (n <= 0) {
			/* What is left can never be taken. */
			n = len - taken;
			if (!s->tty)
				close_fd(&s->in_fd);
			fd = -1;
		}
		taken += (u32)n;
	}
	send_input_credit(s, taken);
	return taken;
}

/* Move buffered stdin into the pipe (or the pty); close it at EOF once empty. */
static void stdin_drain(struct session *s)
{
	if (s->in_len) {
		u32 n = stdin_write(s, stdin_buffers[session_slot(s)] + s->in_off, s->in_len);
		s->in_off += n;
		s->in_len -= n;
		if (s->in_len)
			return;
	}
	s->in_off = 0;
	if (s->in_eof && !s->tty)
		close_fd(&s->in_fd);
	else if (s->in_eof && s->tty && !s->in_len) {
		/* A terminal has no EOF of its own: ^D at the start of a line is what a shell reads as one. */
		static const char eot = 4;
		k_write(s->out_fd, &eot, 1);
		s->in_eof = 0;
	}
}

static void session_stdin(struct session *s, int flags, const unsigned char *body, u32 len)
{
	int slot = session_slot(s);
	if ((u64)s->in_unacked + len > INPUT_WINDOW_BYTES) {
		send_error(s->id, EC_CREDIT_EXCEEDED, "STDIN beyond the input window", "the session is ended");
		k_kill(-s->pid, SIGKILL);
		s->abandoned = 1;
		return;
	}
	s->in_unacked += len;
	if (s->in_fd < 0 && !s->tty) {
		/* No pipe (not asked for, or its reader is gone): taken and dropped. */
		send_input_credit(s, len);
		return;
	}
	if (flags & FLAG_EOF)
		s->in_eof = 1;
	/* Nothing waiting before it: from the frame straight into the pipe, and only what it cannot take now is kept. */
	if (!s->in_len) {
		u32 taken = stdin_write(s, body, len);
		body += taken;
		len -= taken;
	}
	if (len) {
		if (s->in_off) {
			move_down(stdin_buffers[slot], stdin_buffers[slot] + s->in_off, s->in_len);
			s->in_off = 0;
		}
		move_down(stdin_buffers[slot] + s->in_len, body, len);
		s->in_len += len;
	}
	stdin_drain(s);
}

/* Stdout or stderr readable: as much as credit and the queue allow. */
static void session_output(struct session *s, int *fd, unsigned char *eof, int type)
{
	long n;
	/* What the pipe holds, frame after frame, while credit and the queue allow. */
	for (;;) {
		size_t max = s->credit > DATA_CHUNK_BYTES ? DATA_CHUNK_BYTES : (size_t)s->credit;
		if (!max)
			return;
		/* A pipe's bulk goes into the port by splice; a terminal's output, and a little, through tx. */
		n = s->tty ? 0 : send_data_spliced(*fd, type, s->id, max);
		if (!n)
			n = send_data_from(*fd, type, s->id, max);
		if (n <= 0)
			break;
		s->credit -= (u64)n;
	}
	/* 0: every writer closed it; EIO: a pty whose other side is gone. */
	if (n == 0 || (n != -EAGAIN && n != -EINTR)) {
		*eof = 1;
		if (s->tty && fd == &s->out_fd) {
			/* The master stays open for stdin until the end: only stop reading it. */
			return;
		}
		close_fd(fd);
	}
}

/* The host gave a session up: an exec's group is killed (the slot waits for the reap), an upload discarded. */
static void session_give_up(struct session *s)
{
	if (s->kind != S_EXEC)
		return file_abort(s);
	if (!s->reaped)
		k_kill(-s->pid, SIGKILL);
	s->abandoned = 1;
	if (s->reaped)
		session_free(s);
}

static void session_frame(int type, int flags, u32 id, const unsigned char *body, u32 len)
{
	struct session *s;
	if (type == FT_EXEC)
		return exec_request(id, body, len);
	if (type == FT_PUT)
		return put_request(id, body, len);
	if (type == FT_GET)
		return get_request(id, body, len);
	if (!(s = session_find(id))) {
		/* Data for a session that just ended (the host had not seen its end yet) is no error worth a frame each. */
		if (type != FT_STDIN && type != FT_PUT_DATA && type != FT_CREDIT && type != FT_CLOSE)
			send_error(id, EC_NO_SESSION, "no such session", 0);
		return;
	}
	switch (type) {
	case FT_CREDIT:
		if (len != 4)
			return send_error(id, EC_BAD_REQUEST, "CREDIT: expected a u32", 0);
		s->credit += get_u32(body);
		if (s->credit > (1ULL << 40))
			s->credit = 1ULL << 40;
		return;
	case FT_CLOSE:
		return session_give_up(s);
	case FT_PUT_DATA:
		if (s->kind != S_PUT)
			return send_error(id, EC_NOT_NOW, "PUT_DATA: the session is not an upload", 0);
		return put_data(s, flags, body, len);
	}
	if (s->kind != S_EXEC)
		return send_error(id, EC_NOT_NOW, "the session is a file transfer, not a process", 0);
	switch (type) {
	case FT_STDIN:
		return session_stdin(s, flags, body, len);
	case FT_SIGNAL: {
		u32 sig = len == 4 ? get_u32(body) : 0;
		if (sig < 1 || sig > 64)
			return send_error(id, EC_BAD_REQUEST, "SIGNAL: expected a u32 signal from 1 to 64", 0);
		if (!s->reaped)
			k_kill(-s->pid, (int)sig);
		send_frame(FT_OK, id, 0, 0, 0);
		return;
	}
	case FT_RESIZE: {
		unsigned short size[4] = { 0, 0, 0, 0 };
		if (len != 4 || !s->tty)
			return send_error(id, EC_BAD_REQUEST, "RESIZE: expected rows and cols of a session with a tty", 0);
		size[0] = (unsigned short)(body[0] | body[1] << 8);
		size[1] = (unsigned short)(body[2] | body[3] << 8);
		k_ioctl(s->out_fd, TIOCSWINSZ, (long)size);
		send_frame(FT_OK, id, 0, 0, 0);
		return;
	}
	}
}

/* A new host, a restored clone: every session of before ends here, its processes killed. */
static void end_all_sessions(void)
{
	int ended = 0;
	for (int i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &sessions[i];
		if (s->kind == S_FREE || s->abandoned)
			continue;
		ended++;
		session_give_up(s);
	}
	if (ended)
		say(INFO, "control: a new host connection; %d sessions of the one before ended", ended);
}

/* ---- the loop's view ------------------------------------------------------------------- */

/* Poll entries for the sessions' pipes; `owners` says which session and stream each is. */
static unsigned long sessions_poll(struct pollfd_k *fds, int *owners, unsigned long max)
{
	unsigned long n = 0;
	int can_send = data_room() > 0 && !host_gone;
	for (int i = 0; i < MAX_SESSIONS && n + 3 <= max; i++) {
		struct session *s = &sessions[i];
		if (s->kind != S_EXEC || s->abandoned)
			continue;
		if (can_send && s->credit > 0 && !s->out_eof && s->out_fd >= 0) {
			fds[n] = (struct pollfd_k){ s->out_fd, POLLIN, 0 };
			owners[n++] = i * 4 + 1;
		}
		if (can_send && s->credit > 0 && !s->err_eof && s->err_fd >= 0) {
			fds[n] = (struct pollfd_k){ s->err_fd, POLLIN, 0 };
			owners[n++] = i * 4 + 2;
		}
		if (s->in_len) {
			fds[n] = (struct pollfd_k){ s->tty ? s->out_fd : s->in_fd, POLLOUT, 0 };
			owners[n++] = i * 4 + 3;
		}
	}
	return n;
}

static void sessions_event(int owner, short revents)
{
	struct session *s = &sessions[owner / 4];
	if (s->kind != S_EXEC || s->abandoned || !revents)
		return;
	if (owner % 4 == 1)
		session_output(s, &s->out_fd, &s->out_eof, FT_STDOUT);
	else if (owner % 4 == 2)
		session_output(s, &s->err_fd, &s->err_eof, FT_STDERR);
	else
		stdin_drain(s);
}

/* Timeouts due, ends to report, downloads to pump; the next deadline (ms) or -1; `busy` when a GET can go on at once. */
static long sessions_tick(int *busy)
{
	long now = k_now_ms(), next = -1;
	*busy = 0;
	for (int i = 0; i < MAX_SESSIONS; i++) {
		struct session *s = &sessions[i];
		if (s->kind == S_FREE || s->abandoned)
			continue;
		if (s->kind == S_GET) {
			*busy |= get_pump(s);
			continue;
		}
		if (s->kind != S_EXEC)
			continue;
		if (s->deadline >= 0 && now >= s->deadline) {
			say(INFO, "session %l: timed out; SIGKILL to process group %d", (long)s->id, s->pid);
			s->timed_out = 1;
			s->deadline = -1;
			k_kill(-s->pid, SIGKILL);
		}
		if (s->deadline >= 0 && (next < 0 || s->deadline < next))
			next = s->deadline;
		session_try_end(s);
	}
	send_workload_exit();
	return next;
}
