/*
 * The command line: KEY=VALUE words into `opt`, the one description of what to run and how to end.
 * Apart because every duty reads `opt` and only this file writes it (bar the snapshot point's instance).
 */

enum action { ACT_POWEROFF, ACT_REBOOT, ACT_HALT, ACT_EXIT, ACT_IGNORE, ACT_SHELL };
static const char *const action_names[] = { "poweroff", "reboot", "halt", "exit", "ignore", "shell" };
enum severity { ERR = 3, WARN = 4, INFO = 5, DEBUG = 6 };

#define MAX_GROUPS 256
#define MAX_RLIMITS 16
#define MAX_FREEZE 4

/* What a started process gets: the workload's spec, and an exec session's (sessions.c) built from it. */
struct spec {
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
	/* The child's stdin, stdout and stderr (-1: the supervisor's own), or a pty's number (-1: none). */
	int stdio[3];
	int pty;
};

struct options {
	pid_t adopt;
	int exec_only;
	enum action onexit, ctrl_alt_del, onfail;
	long stop_timeout_ms;
	const char *runid;
	int console_level; /* lines of this severity or less urgent go to fd 2 too; 0: never */
	int facility;
	int log_level;
	/* The control port (control=PATH): the host's channel (channel.c). */
	const char *control_port;
	/* warm=1: the workload may ask for a warm snapshot; point=1: wait at the snapshot point first. */
	int warm, point;
	/* start=host: no -- PROGRAM; the host's EXEC with EF_WORKLOAD starts the workload (sessions.c). */
	int start_host;
	/* template=TAG (with point=1 and start=host): after the resume, attach the container's root from this bundle share (container.c). */
	const char *template_bundle;
	int freeze_fds[MAX_FREEZE];
	int nfreeze;
	/* The workload spec, applied in the child before exec. */
	struct spec spec;
};

static struct options opt = {
	.onexit = ACT_POWEROFF, .ctrl_alt_del = ACT_REBOOT, .onfail = ACT_POWEROFF, .stop_timeout_ms = 5000,
	.console_level = 0, .facility = 1, .log_level = INFO, .spec = { .stdio = { -1, -1, -1 }, .pty = -1 },
};

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
	if (opt.spec.nrlimits >= MAX_RLIMITS || parse_u64(parts[0], 10, &res) || res > 15)
		return -1;
	if (parse_limit(parts[1], &opt.spec.rlimits[opt.spec.nrlimits].cur) || parse_limit(parts[2], &opt.spec.rlimits[opt.spec.nrlimits].max))
		return -1;
	if (opt.spec.rlimits[opt.spec.nrlimits].cur > opt.spec.rlimits[opt.spec.nrlimits].max)
		return -1;
	opt.spec.rlimit_res[opt.spec.nrlimits++] = (int)res;
	return 0;
}

static int parse_groups(const char *value)
{
	opt.spec.ngroups = 0;
	while (*value) {
		char number[16];
		int n = 0;
		u64 gid;
		while (*value && *value != ',' && n < 15)
			number[n++] = *value++;
		number[n] = 0;
		if (*value == ',')
			value++;
		if (opt.spec.ngroups >= MAX_GROUPS || parse_u64(number, 10, &gid) || gid > 0xfffffffeULL)
			return -1;
		opt.spec.groups[opt.spec.ngroups++] = (u32)gid;
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
	if (str_eq(word, "control"))
		return value[0] == '/' || value[0] == '@' ? (opt.control_port = value, 0) : -1;
	if (str_eq(word, "warm"))
		return (opt.warm = str_eq(value, "1")) ? 0 : -1;
	if (str_eq(word, "point"))
		return (opt.point = str_eq(value, "1")) ? 0 : -1;
	if (str_eq(word, "template"))
		return value[0] ? (opt.template_bundle = value, 0) : -1;
	if (str_eq(word, "start"))
		return str_eq(value, "host") ? (opt.start_host = 1, 0) : str_eq(value, "boot") ? (opt.start_host = 0, 0) : -1;
	if (str_eq(word, "freeze-fd"))
		return parse_u64(value, 10, &number) || number > 1023 || opt.nfreeze >= MAX_FREEZE ? -1 : (opt.freeze_fds[opt.nfreeze++] = (int)number, 0);
	if (str_eq(word, "uid"))
		return parse_u64(value, 10, &number) || number > 0xfffffffeULL ? -1 : (opt.spec.uid = (u32)number, opt.spec.has_user = 1, 0);
	if (str_eq(word, "gid"))
		return parse_u64(value, 10, &number) || number > 0xfffffffeULL ? -1 : (opt.spec.gid = (u32)number, 0);
	if (str_eq(word, "groups"))
		return parse_groups(value);
	if (str_eq(word, "cwd"))
		return value[0] == '/' ? (opt.spec.cwd = value, 0) : -1;
	if (str_eq(word, "hostname"))
		return str_len(value) >= 1 && str_len(value) <= 64 ? (opt.spec.hostname = value, 0) : -1;
	if (str_eq(word, "cgroup"))
		return value[0] == '/' ? (opt.spec.cgroup = value, 0) : -1;
	if (str_eq(word, "rlimit"))
		return parse_rlimit(value);
	if (str_eq(word, "nnp"))
		return (opt.spec.nnp = str_eq(value, "1")) ? 0 : -1;
	if (str_eq(word, "capkeep"))
		return parse_u64(value, 16, &opt.spec.capkeep) ? -1 : (opt.spec.has_capkeep = 1, 0);
	if (str_eq(word, "oom")) {
		const char *digits = value[0] == '-' ? value + 1 : value;
		return parse_u64(digits, 10, &number) || number > 1000 ? -1 : (opt.spec.oom = value, 0);
	}
	return -1;
}
