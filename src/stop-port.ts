// The host's graceful stop: a virtio-serial port the guest's resident supervisor holds open. The
// host writes one line; the supervisor answers it with its orderly stop (SIGTERM to the
// workload, the grace period, SIGKILL, unmount, sync) and powers off. Both sides spell it here
// (the supervisor, image/supervisor.c, spells the same two strings).
export const STOP_PORT = "burrow.stop";

/** The one line the host sends: power off after an orderly stop. */
export const STOP_REQUEST = "poweroff\n";

/**
 * How long the host waits after a stop request before it kills QEMU: the guest's grace period
 * for the workload, plus the supervisor's teardown budget (unmount, swapoff, sync) and a margin
 * for a busy emulated guest.
 */
export function hostStopWaitMs(guestStopTimeoutMs: number): number {
  return guestStopTimeoutMs + TEARDOWN_BUDGET_MS + 2000;
}

/** The supervisor's bound on unmount + swapoff + sync after the workload is gone (supervisor.c). */
export const TEARDOWN_BUDGET_MS = 5000;
