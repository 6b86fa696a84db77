/*
 * Warm snapshots (READY=1 from the workload) and the snapshot point (point=1): READY to the
 * host, then its resume message checked whole and applied. Apart because a clone must get this right before anything of it runs.
 */

/* ---- warm snapshots -------------------------------------------------------------------- */

/* While the workload's notify socket is full, try again this often. */
#define NOTIFY_RETRY_MS 20
/* 2020-01-01 in ns: a clock before it is not the host's. */
#define PLAUSIBLE_REALTIME_NS 1577836800000000000ULL

/* CLOCK_BOOTTIME ms when READY went out (the gap to the resume spans the saved time). */
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
			sleep_ms(NOTIFY_RETRY_MS);
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

/* READY on session 0: the host may save the VM now. */
static void send_ready(void)
{
	unsigned char uptime[8];
	set_u64(uptime, (u64)(boot_ready_ms = boottime_ms()));
	send_frame(FT_READY, 0, 0, uptime, sizeof(uptime));
}

static void send_resumed(const char *instance)
{
	send_frame(FT_RESUMED, 0, 0, instance, str_len(instance));
}

/* A host said HELLO: a snapshot still waiting for its resume is announced to it (again). */
static void snapshot_host_connected(void)
{
	if (point_waiting || warm == WARM_AWAITING)
		send_ready();
}

/* The workload asked: READY to the host, which saves the VM while we wait for its RESUME. */
static void warm_ready(void)
{
	if (control_fd < 0) {
		say(ERR, "warm snapshot: the control port %s is not open; no snapshot taken", opt.control_port ? opt.control_port : "(none)");
		warm = WARM_DONE;
		return;
	}
	/* Said first: the host pauses the VM as soon as it reads READY. */
	say(INFO, "warm snapshot: the workload is ready; waiting for the host on burrow.control");
	warm = WARM_AWAITING;
	/* Without a host yet it goes out after the HELLO that starts the next connection. */
	if (host_said_hello)
		send_ready();
}

/* The host's fields every resume line starts with, checked; the entropy decoded into entropy_pool. */
static unsigned char entropy_pool[8 + MAX_ENTROPY_BYTES];

static const char *check_host_fields(const char *instance, const char *realtime_text, const char *entropy_hex, u64 *realtime, size_t *bytes)
{
	size_t hex_len = str_len(entropy_hex);
	if (str_len(instance) < 1 || str_len(instance) > INSTANCE_MAX_CHARS)
		return "instance: expected 1 to 64 characters";
	for (const char *c = instance; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return "instance: expected letters, digits, '.', '_' or '-'";
	if (parse_u64(realtime_text, 10, realtime) || *realtime < PLAUSIBLE_REALTIME_NS || *realtime >= (1ULL << 63))
		return "realtimeNs: not a plausible wall clock";
	*bytes = hex_len / 2;
	if (hex_len % 2 || *bytes < MIN_ENTROPY_BYTES || *bytes > MAX_ENTROPY_BYTES)
		return "entropy: expected " STR(MIN_ENTROPY_BYTES) " to " STR(MAX_ENTROPY_BYTES) " bytes in hex";
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
	send_resumed(fields[2]);
	say(INFO, "warm snapshot: resumed as instance %s (%l bytes of host entropy credited, CRNG reseeded, clock set)", fields[2], (long)bytes);
	warm = WARM_DONE;
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

/* ---- the snapshot point ---------------------------------------------------------------- */

/* The saved environment's entries kept for the agent; the instance's own bounds are wire.h's. */
#define POINT_MAX_INHERITED 1024
#define POINT_RETRY_MIN_MS 5
#define POINT_RETRY_MAX_MS 100

static char *point_argv[RESUME_MAX_ARGS + 2];
static char *point_env[RESUME_MAX_ENV];
static char *point_envp[POINT_MAX_INHERITED + RESUME_MAX_ENV + 2];
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

/* Why NAME=VALUE may not be an instance's variable (src/snapshot/protocol.ts), or 0. */
static const char *env_problem(const char *entry)
{
	static const char *const reserved[] = RESERVED_ENV_NAMES;
	/* They steer the runtime or the loader. */
	static const char *const runtime[] = RUNTIME_ENV_PREFIXES;
	const char *c = entry;
	if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || *c == '_'))
		return "env: expected NAME=VALUE with a variable name";
	for (; *c && *c != '='; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
			return "env: expected NAME=VALUE with a variable name";
	if (*c != '=' || c - entry > 128)
		return "env: expected NAME=VALUE with a variable name";
	for (unsigned i = 0; reserved[i]; i++)
		if (same_name(entry, reserved[i]))
			return "env: a variable burrow sets itself cannot be replaced";
	for (unsigned i = 0; runtime[i]; i++)
		if (starts_with(entry, runtime[i]))
			return "env: a variable that steers the runtime or the loader cannot be set";
	return 0;
}

/* The saved environment minus what the instance replaces, then BURROW_INSTANCE and the instance's own. */
static void with_instance_env(const char *instance, int nenv)
{
	size_t n = 0;
	for (char **e = opt.spec.envp; *e && n < POINT_MAX_INHERITED; e++) {
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
	opt.spec.envp = point_envp;
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

/* Why a container template's resume word is not one of the workload spec's (src/workload/resolve.ts supervisorWords), or 0. */
static const char *template_word_problem(const char *word)
{
	static const char *const keys[] = { "uid=", "gid=", "groups=", "cwd=", "hostname=", "rlimit=", "nnp=", "capkeep=", "oom=", 0 };
	for (int i = 0; keys[i]; i++)
		if (starts_with(word, keys[i]))
			return 0;
	return "args: a container template takes only the workload spec's words (hostname=, rlimit=, nnp=, capkeep=, oom=, …)";
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
		nargs = split_hex_list(fields[5], point_argv + 1, RESUME_MAX_ARGS);
		if (nargs < 0)
			point_refuse("args: expected - or COUNT:HEX,... of at most " STR(RESUME_MAX_ARGS) " arguments without NUL");
	}
	nenv = split_hex_list(fields[6], point_env, RESUME_MAX_ENV);
	if (nenv < 0)
		point_refuse("env: expected COUNT:HEX,... of at most " STR(RESUME_MAX_ENV) " NAME=VALUE without NUL");
	for (int i = 0; i < nenv; i++)
		if ((problem = env_problem(point_env[i])))
			point_refuse(problem);
	/* A container template's args are this container's spec words (hostname=, rlimit=, …): no agent is started here. */
	for (int i = 0; opt.template_bundle && i < nargs; i++)
		if ((problem = template_word_problem(point_argv[i + 1])))
			point_refuse(problem);
	problem = apply_host_fields(realtime, bytes, "snapshot");
	if (problem)
		point_refuse(problem);
	if (opt.template_bundle) {
		for (int i = 0; i < nargs; i++)
			if (parse_option(point_argv[i + 1]))
				point_refuse("args: a spec word the supervisor refuses");
		/* The container's environment is its EXEC's over burrow's, as at a cold boot: no BURROW_INSTANCE. */
		container_attach(opt.template_bundle);
	} else {
		if (nargs >= 0) {
			point_argv[0] = opt.spec.argv[0];
			point_argv[nargs + 1] = 0;
			opt.spec.argv = point_argv;
		}
		with_instance_env(fields[2], nenv);
	}
	record_resume(fields[2], resume_ms, bytes, nargs, nenv);
	say(INFO, "resumed as instance %s: %l bytes of host entropy, CRNG reseeded, clock set", fields[2], (long)bytes);
	return fields[2];
}

/*
 * A RESUME frame: at the snapshot point, or for a warm snapshot (two lines, the second the
 * workload's). Anything else has no snapshot waiting for it.
 */
static void snapshot_resume(u32 session, const char *body, u32 len)
{
	static char message[RESUME_MAX_BYTES + 1];
	if (!point_waiting && warm != WARM_AWAITING)
		return send_error(session, EC_NOT_NOW, "RESUME: no snapshot is waiting for one", 0);
	if (len > RESUME_MAX_BYTES) {
		if (point_waiting)
			point_refuse("longer than " STR(RESUME_MAX_BYTES) " bytes");
		return warm_refuse("longer than " STR(RESUME_MAX_BYTES) " bytes");
	}
	memcpy(message, body, len);
	message[len] = 0;
	if (point_waiting) {
		if (len == 0 || message[len - 1] != '\n')
			point_refuse("not one line");
		message[len - 1] = 0;
		send_resumed(point_apply(message, boottime_ms()));
		point_waiting = 0;
		return;
	}
	char *first = 0;
	for (u32 i = 0; i < len && !first; i++)
		if (message[i] == '\n')
			first = message + i;
	if (!first || message[len - 1] != '\n' || first == message + len - 1)
		return warm_refuse("expected two lines");
	*first = 0;
	message[len - 1] = 0;
	warm_resume(message, first + 1, (size_t)(message + len - 1 - (first + 1)));
}

/* The host went in the middle of a frame: a resume cut short is refused, never waited on. */
static void snapshot_host_hung_up(size_t received)
{
	static struct line why;
	why.len = 0;
	put_str(&why, "the host closed the port in the middle of it (");
	put_num(&why, (long)received);
	put_str(&why, " bytes received)");
	why.text[why.len] = 0;
	if (point_waiting)
		point_refuse(why.text);
	if (warm == WARM_AWAITING)
		warm_refuse(why.text);
}

#define POINT_RETRY_MIN_MS 5
#define POINT_RETRY_MAX_MS 100

/* READY on the control port, then nothing but the channel until a RESUME is applied. */
static void snapshot_point(void)
{
	long pause = POINT_RETRY_MIN_MS;
	u64 sigio = 1ULL << (SIGIO - 1);
	/* No handler here, and no signalfd yet: SIGIO stays pending instead of ending a non-PID-1 run. */
	k_sigprocmask(SIG_BLOCK, &sigio, 0);
	int ret = channel_open(opt.control_port);
	if (ret < 0) {
		say(ERR, "snapshot: cannot open the control port %s: %e", opt.control_port, ret);
		point_fail();
	}
	/* Said first: the host may stop the VM the moment it reads READY. */
	say(INFO, "snapshot point: ready on burrow.control; waiting for the host's resume message");
	point_waiting = 1;
	while (point_waiting) {
		short events = (short)channel_poll_events();
		struct pollfd_k port = { control_fd, events, 0 };
		channel_flush();
		if (!events) {
			/* No host yet, or it went: look again, backing off (nothing else runs here). */
			sleep_ms(pause);
			pause = pause * 2 > POINT_RETRY_MAX_MS ? POINT_RETRY_MAX_MS : pause * 2;
			channel_wake();
			continue;
		}
		if (k_ppoll(&port, 1, 0) <= 0)
			continue;
		if (port.revents & (POLLIN | POLLHUP | POLLERR))
			channel_read(port.revents);
		if (!host_gone)
			pause = POINT_RETRY_MIN_MS;
	}
	channel_flush();
}
