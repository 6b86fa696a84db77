/*
 * The supervisor proper: reap, treat signals and the host's stop request as VM control, SIGTERM,
 * grace, SIGKILL, teardown, reboot(2). Apart because it is the loop PID 1 lives in.
 */

enum phase { RUNNING, TERMINATING, KILLING, DRAINING, ENDING };
/* Once nothing runs any more, how long the sessions' last output and ends may take to reach the host. */
#define DRAIN_MS 500
/* After SIGKILL to everything, how long processes get to go (uninterruptible sleep may hold some). */
#define KILL_WAIT_MS 2000

/* Read in wait_for_events(), defined with the warm snapshots (snapshot.c). */
static void read_notify(void);
/* 0 while a start=host supervisor waits for the host's workload (nothing to signal then). */
static pid_t workload;
static int workload_status = -1; /* the wait status once it ended */
/* WORKLOAD_EXITED is owed to the host: sent once the workload's own exec session (if any) said EXITED. */
static int workload_exit_unsent;
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

/* WORKLOAD_EXITED once nothing comes before it: a workload the host started ends its session first. */
static void send_workload_exit(void)
{
	if (workload_exit_unsent && !session_holds(workload) && send_u32(FT_WORKLOAD_EXITED, 0, (u32)status_code(workload_status)) == 0)
		workload_exit_unsent = 0;
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
			/* Started by the host's EXEC: its session hears the status too, and says EXITED first. */
			session_reaped(pid, wait_status);
			workload_exit_unsent = 1;
			send_workload_exit();
		} else if (!session_reaped(pid, wait_status)) {
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
	say(INFO, "stop (%s): SIGTERM to %s, up to %l ms; then %s", why,
	    workload_status >= 0 ? "what is left" : workload > 0 ? "the workload" : "what runs (no workload was started)", opt.stop_timeout_ms,
	    action_names[action]);
	/* Never kill(-0): with no workload yet that is this supervisor's own group. */
	if (workload > 0 && workload_status < 0) {
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
	case SIGIO: channel_wake(); break;
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

/* Every fd the loop watches: signals, the control port, the notify socket, the sessions' pipes. */
#define MAX_POLL (4 + MAX_SESSIONS * 3)

static void wait_for_events(void)
{
	static struct pollfd_k fds[MAX_POLL];
	static int owners[MAX_POLL];
	enum { SIGNALS = -1, PORT = -2, NOTIFY = -3 };
	unsigned long nfds = 0;
	struct timespec_k timeout, *timeout_ptr = 0;
	int busy;
	long wake = deadline, session_wake = sessions_tick(&busy);
	short port_events;
	channel_flush();
	/* The tick may have ended the last session: the drain is over, nothing to wait for. */
	if (phase == DRAINING && !sessions_open() && !channel_pending())
		return;
	fds[nfds] = (struct pollfd_k){ signal_fd, POLLIN, 0 };
	owners[nfds++] = SIGNALS;
	if ((port_events = (short)channel_poll_events())) {
		fds[nfds] = (struct pollfd_k){ control_fd, port_events, 0 };
		owners[nfds++] = PORT;
	}
	if (notify_fd >= 0 && phase == RUNNING && warm == WARM_IDLE) {
		fds[nfds] = (struct pollfd_k){ notify_fd, POLLIN, 0 };
		owners[nfds++] = NOTIFY;
	}
	nfds += sessions_poll(fds + nfds, owners + nfds, MAX_POLL - nfds);
	if (session_wake >= 0 && (wake < 0 || session_wake < wake))
		wake = session_wake;
	if (busy)
		wake = k_now_ms();
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
		if (owners[i] == SIGNALS && (fds[i].revents & POLLIN)) {
			struct signalfd_info info;
			while (k_read(signal_fd, &info, sizeof(info)) == (long)sizeof(info))
				handle_signal((int)info.signo);
		} else if (owners[i] == PORT) {
			if (fds[i].revents & POLLOUT)
				channel_flush();
			if (fds[i].revents & (POLLIN | POLLHUP | POLLERR))
				channel_read(fds[i].revents);
		} else if (owners[i] == NOTIFY) {
			read_notify();
		} else if (owners[i] >= 0) {
			sessions_event(owners[i], fds[i].revents);
		}
	}
	channel_flush();
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
		k_execve("/bin/sh", sh_argv, opt.spec.envp);
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
		if (phase != RUNNING && no_children) {
			/* Everything ended: the host hears how each session ended before the VM goes (bounded). */
			if (phase != DRAINING) {
				phase = DRAINING;
				deadline = k_now_ms() + DRAIN_MS;
			}
			if ((!sessions_open() && !channel_pending()) || k_now_ms() >= deadline)
				return;
		} else if (phase != RUNNING && phase != DRAINING && k_now_ms() >= deadline) {
			if (phase == KILLING) {
				say(WARN, "stop: processes left %d ms after SIGKILL (uninterruptible sleep?); going on", KILL_WAIT_MS);
				return;
			}
			say(WARN, "stop: %s still running %l ms after SIGTERM; SIGKILL to everything left",
			    workload > 0 && workload_status < 0 ? "the workload is" : "processes are", opt.stop_timeout_ms);
			kill_everything(SIGKILL);
			phase = KILLING;
			deadline = k_now_ms() + KILL_WAIT_MS;
		}
		wait_for_events();
	}
}

static void open_channels(void)
{
	u64 mask = 0;
	static const int handled[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGIO, SIGRTMIN_LIBC + 3, SIGRTMIN_LIBC + 4, SIGRTMIN_LIBC + 5 };
	/* A session's reader gone is EPIPE to the write, never a signal that ends a supervisor outside PID 1. */
	struct sigaction_k ignore = { (void *)1 /* SIG_IGN */, 0, 0, 0 };
	k_sigaction(SIGPIPE, &ignore);
	open_log();
	for (unsigned i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		mask |= 1ULL << (handled[i] - 1);
	/* Blocked signals are queued even for PID 1 (which the kernel spares every signal it has no handler for). */
	k_sigprocmask(SIG_BLOCK, &mask, 0);
	signal_fd = k_signalfd(&mask);
	if (signal_fd < 0)
		say(ERR, "signalfd: %e; control signals will not be seen", signal_fd);
	if (opt.control_port && control_fd < 0) {
		int ret = channel_open(opt.control_port);
		if (ret < 0)
			say(WARN, "control port %s: %e; the host cannot reach this guest", opt.control_port, ret);
	}
}
