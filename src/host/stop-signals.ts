// SIGINT, SIGTERM and SIGHUP to burrow run while its guest runs: an orderly stop of the guest, not
// a dead burrow run with QEMU killed under it.
import { ControlClient } from "../control/client";
import type { ControlMux } from "../control/mux";
import { describeError } from "../errors";

/** The signals `burrow run` turns into a stop of the guest: a terminal's Ctrl-C, a service manager's stop, a hangup. */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** After SIGTERM, how long QEMU has before SIGKILL (QEMU quits at once on SIGTERM; this bounds a wedged one). */
const QEMU_TERM_GRACE_MS = 1000;

export interface StopPlan {
  /** The guest's control channel (its supervisor answers STOP with the orderly stop). */
  control: Promise<ControlMux>;
  /** How long the guest has to power off after the request, before QEMU is killed. */
  waitMs: number;
}

interface SignalWatch {
  /** The first signal that came, or null. */
  readonly stoppedBy: NodeJS.Signals | null;
  /** Remove the handlers, cancel pending kills, drop the stop port connection. */
  dispose(): void;
}

/**
 * While QEMU runs, SIGINT, SIGTERM and SIGHUP stop the guest instead of killing burrow run: in
 * order through the control channel when the guest has one (QEMU killed if it is not gone in
 * time), otherwise by stopping QEMU at once. A second signal kills QEMU at once.
 */
export function watchStopSignals(child: { kill(signal?: NodeJS.Signals): void }, port: StopPlan | null): SignalWatch {
  let stoppedBy: NodeJS.Signals | null = null;
  let disposed = false;
  const timers: ReturnType<typeof setTimeout>[] = [];
  let client: ControlClient | null = null;
  const requestStop = async (plan: StopPlan) => {
    // The handshake waits while the guest boots: QEMU holds what we write until the supervisor opens the port.
    client = await ControlClient.over((await plan.control).local());
    if (!disposed) await client.stop();
  };
  const killSoon = () => {
    child.kill("SIGTERM");
    timers.push(setTimeout(() => child.kill("SIGKILL"), QEMU_TERM_GRACE_MS));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stoppedBy !== null) return child.kill("SIGKILL");
    stoppedBy = signal;
    if (port === null) return killSoon();
    process.stderr.write(`burrow run: ${signal}: asking the guest to stop (up to ${Math.ceil(port.waitMs / 1000)} s)\n`);
    timers.push(setTimeout(() => child.kill("SIGKILL"), port.waitMs));
    requestStop(port).catch((error: unknown) => {
      if (disposed) return; // the run ended meanwhile: QEMU is gone
      process.stderr.write(`burrow run: ${describeError(error)}; stopping QEMU\n`);
      killSoon();
    });
  };
  const listeners = STOP_SIGNALS.map((signal) => [signal, () => onSignal(signal)] as const);
  for (const [signal, listener] of listeners) process.on(signal, listener);
  return {
    get stoppedBy() {
      return stoppedBy;
    },
    dispose() {
      disposed = true;
      for (const [signal, listener] of listeners) process.off(signal, listener);
      for (const timer of timers) clearTimeout(timer);
      (client as ControlClient | null)?.close();
    },
  };
}
