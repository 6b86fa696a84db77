// The host's graceful stop: a STOP frame on the control channel (src/control/wire.ts), which the
// guest's resident supervisor answers with its orderly stop (SIGTERM to the workload, the grace
// period, SIGKILL, unmount, sync) before it powers off. How long the host waits for it is here.

/**
 * How long the host waits after a stop request before it kills QEMU: the guest's grace period
 * for the workload, plus the supervisor's teardown budget (unmount, swapoff, sync) and a margin
 * for a busy emulated guest.
 */
export function hostStopWaitMs(guestStopTimeoutMs: number): number {
  return guestStopTimeoutMs + TEARDOWN_BUDGET_MS + 2000;
}

/** The supervisor's bound on unmount + swapoff + sync after the workload is gone (image/supervisor/teardown.c). */
export const TEARDOWN_BUDGET_MS = 5000;
