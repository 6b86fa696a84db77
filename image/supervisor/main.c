/*
 * burrow's resident supervisor: what PID 1 does for the workload's whole life once burrow (Bun)
 * has set the machine up. burrow execs this program as PID 1 (a child survives its parent's exec),
 * so the ~110 MB runtime is gone and what stays costs a few pages and no wake-ups.
 *
 *   supervisor [KEY=VALUE…] -- PROGRAM ARGS…   start the workload (microvm supervise mode)
 *   supervisor start=host control=PORT [KEY=VALUE…]  start nothing: the host's EXEC with EF_WORKLOAD
 *                                                    starts the workload (a container's create, then start)
 *   supervisor adopt=PID [KEY=VALUE…]           supervise a child burrow already started (paravisor)
 *   supervisor exec=1 [KEY=VALUE…] -- PROGRAM…   apply the workload spec and exec it as PID 1
 *   … control=PORT point=1 …                     first wait at the snapshot point (either role)
 *
 * With control=PORT it serves the host's control channel on that virtio-serial port (channel.c,
 * docs/control.md): exec sessions, files, info, the orderly stop, signals to the workload; the
 * wire's numbers are wire.h's, generated from src/control/wire.ts.
 *
 * With warm=1 the workload gets a socket (BURROW_NOTIFY_FD) and may ask for a warm snapshot once
 * it is ready by writing READY=1 to it: the supervisor says READY on the channel, the host saves
 * the VM, and on every restore the host's RESUME makes the supervisor credit its entropy, reseed
 * the CRNG, set the clock and hand the workload its line on the same socket
 * (src/snapshot/protocol.ts encodeWarmResume).
 *
 * With point=1 (the snapshot point, burrow.snapshot=1) it opens the port before anything else and
 * answers only HELLO, PING and RESUME; the host saves the VM there, with burrow (Bun) already gone.
 * Every restore's RESUME (encodePointResume) brings entropy and clock as for a warm snapshot, and
 * the instance's arguments and variables in place of the saved ones; then the supervisor goes on
 * with its role (exec=1: the agent becomes PID 1).
 *
 * Duties: reap every child on SIGCHLD; treat signals to PID 1 as VM control (busybox and systemd
 * spellings); on any stop — a control signal, the workload's exit, the host's STOP — SIGTERM, a
 * grace period, SIGKILL, the exit-status line for the host, then the teardown (swapoff, unmount in
 * reverse order or remount read-only, sync, freeze hidden layers) inside a deadline, then
 * reboot(2). The keys are written by src/boot/supervisor.ts; the exit-status line matches
 * src/exit-marker.ts.
 *
 * One duty per file of image/supervisor/, each #included below into this one translation unit
 * (src/image/supervisor.ts compiles main.c), in dependency order: a definition before its use.
 */
#include <stdarg.h>
#include "sys.h"
#include "wire.h"

#include "text.c"
#include "options.c"
#include "log.c"
#include "procfs.c"
#include "oom.c"

/* State the start (spawn.c), the teardown, the loop (stop.c) and the snapshots all use: defined before them. */
static int signal_fd = -1;
/* Warm snapshots: our end of the workload's notify socket. The control port (channel.c). */
static int notify_fd = -1, notify_child_fd = -1, control_fd = -1;
enum warm_state { WARM_OFF, WARM_IDLE, WARM_AWAITING, WARM_DONE };
static enum warm_state warm = WARM_OFF;
static int warm_failed;
/* At the snapshot point: nothing runs until a RESUME is applied (snapshot.c). */
static int point_waiting;

/* Used before their definitions: the loop, the channel, the sessions and the snapshots call each other. */
struct session;
static int send_u32(int type, u32 session, u32 value);
static int session_reaped(pid_t pid, int wait_status);
static int session_holds(pid_t pid);
static void channel_wake(void);
static void channel_flush(void);
static int channel_pending(void);
static void channel_parse(void);
static int channel_poll_events(void);
static void channel_read(short revents);
static int channel_open(const char *path);
static long sessions_tick(int *busy);
static unsigned long sessions_poll(struct pollfd_k *fds, int *owners, unsigned long max);
static void sessions_event(int owner, short revents);
static int sessions_open(void);
static void end_all_sessions(void);
static void session_frame(int type, int flags, u32 id, const unsigned char *body, u32 len);
static void put_request(u32 id, const unsigned char *body, u32 len);
static void get_request(u32 id, const unsigned char *body, u32 len);
static void put_data(struct session *s, int flags, const unsigned char *body, u32 len);
static void file_abort(struct session *s);
static int get_pump(struct session *s);
static long boottime_ms(void);
static void snapshot_host_connected(void);
static void snapshot_resume(u32 session, const char *body, u32 len);
static void snapshot_host_hung_up(size_t received);
static void container_attach(const char *bundle_tag);

#include "spawn.c"
#include "users.c"
#include "teardown.c"
#include "stop.c"
#include "channel.c"
#include "sessions.c"
#include "files.c"
#include "snapshot.c"
#include "nic.c"
#include "container.c"

/*
 * SCHED_BATCH: a waking supervisor never preempts the running process; it runs when the CPU is
 * free, or at the next tick. A process writing output in small pieces then fills its pipe before
 * the supervisor frames it — one frame of tens of KiB instead of one per write (measured under
 * TCG: `head -c` went from half the bare port's throughput to about all of it). The cost: while a
 * process keeps the CPU busy, a host frame waits up to a tick (10 ms at HZ=100). What the
 * supervisor starts goes back to SCHED_OTHER (apply_spec_and_exec); an exec=1 agent never had it.
 */
static void batch_scheduling(void)
{
	static const int no_priority = 0;
	int ret = k_sched_setscheduler(0, SCHED_BATCH, &no_priority);
	if (ret < 0)
		say(WARN, "sched_setscheduler(0, SCHED_BATCH): %e; output is framed per write", ret);
}

int start_c(long *stack)
{
	int argc = (int)stack[0];
	char **argv = (char **)(stack + 1);
	int i;
	opt.spec.envp = argv + argc + 1;
	for (i = 1; i < argc && !str_eq(argv[i], "--"); i++) {
		if (parse_option(argv[i]) == 0)
			continue;
		open_channels();
		say(ERR, "supervisor: bad option %s", argv[i]);
		fail_start();
	}
	if (i < argc)
		opt.spec.argv = argv + i + 1;
	/* The host names the workload: nothing here may start one of its own, or wait for a snapshot before it. */
	if (opt.start_host && (i < argc || opt.adopt || opt.exec_only || (opt.point && !opt.template_bundle) || opt.warm)) {
		open_channels();
		say(ERR, "supervisor: start=host takes no -- PROGRAM, adopt=, exec=1, point=1 (but with template=) or warm=1");
		fail_start();
	}
	if (opt.template_bundle && !(opt.start_host && opt.point)) {
		open_channels();
		say(ERR, "supervisor: template= needs start=host and point=1");
		fail_start();
	}
	if (opt.point) {
		open_log();
		if (!opt.control_port) {
			say(ERR, "supervisor: point=1 needs control=PATH");
			point_fail();
		}
		if (!opt.template_bundle && (!opt.spec.argv || !opt.spec.argv[0])) {
			say(ERR, "supervisor: point= needs -- PROGRAM");
			point_fail();
		}
		snapshot_point();
	}
	if (opt.exec_only) {
		struct start_failure failure;
		if (!opt.spec.argv || !opt.spec.argv[0]) {
			open_channels();
			say(ERR, "supervisor: exec=1 needs -- PROGRAM");
			fail_start();
		}
		failure = apply_spec_and_exec(&opt.spec, 0);
		open_channels();
		describe_start_failure(&failure);
		fail_start();
	}
	/* Not for exec=1: an agent that becomes PID 1 keeps the kernel's Ctrl-Alt-Del, as after burrow's own exec. */
	if (k_getpid() == 1)
		k_reboot(LINUX_REBOOT_CMD_CAD_OFF); /* Ctrl-Alt-Del becomes SIGINT to PID 1 */
	open_channels();
	batch_scheduling();
	oom_before = oom_kills();
	if (oom_before < 0)
		mark_kmsg();
	if (opt.adopt) {
		workload = opt.adopt;
	} else if (opt.start_host) {
		/* workload stays 0 until the host's EXEC with EF_WORKLOAD (sessions.c): without the port, never. */
		if (control_fd < 0) {
			say(ERR, "supervisor: start=host needs the control port open (control=PATH); nothing could start the workload");
			fail_start();
		}
	} else {
		if (!opt.spec.argv || !opt.spec.argv[0]) {
			say(ERR, "supervisor: nothing to run (-- PROGRAM missing)");
			fail_start();
		}
		workload = start_workload();
		if (workload < 0)
			fail_start();
	}
	if (opt.start_host)
		say(INFO, "waiting for the host to start the workload (an EXEC with WORKLOAD on the control port; burrow.onexit=%s, stop timeout %l ms)",
		    action_names[opt.onexit], opt.stop_timeout_ms);
	else
		say(INFO, "supervising pid %d (burrow.onexit=%s, stop timeout %l ms)%s%s", workload, action_names[opt.onexit], opt.stop_timeout_ms,
		    control_fd >= 0 ? ", control port open" : "", warm == WARM_IDLE ? ", warm snapshot on READY=1" : "");
	if (opt.adopt && k_kill(workload, 0) == -3) {
		/* Collected before the hand-off (not a zombie any more): its status is lost. */
		say(ERR, "pid %d is gone; its exit status is unknown", workload);
		workload_status = 255 << 8;
	}
	supervise();
	if (workload_status < 0 && !workload) {
		/* A container stopped before its start: an orderly end, nothing failed. */
		say(INFO, "the VM stops before the host started a workload; reporting status 0");
		workload_status = 0;
	} else if (workload_status < 0) {
		say(WARN, "the workload (pid %d) did not end; reporting status 137", workload);
		workload_status = SIGKILL;
	}
	if (reaped)
		say(DEBUG, "reaped %l orphans", reaped);
	end_vm(warm_failed ? 1 : status_code(workload_status));
}
