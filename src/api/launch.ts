// Bringing a VM up for the API. The run (runVm, restoreSnapshot) lasts until QEMU ends; the VM is
// handed out once its supervisor answered on the control channel and, for a restore, applied the
// resume message. Anything else first — the run ending or failing, the channel failing, an abort —
// rejects with one BootError, and only after QEMU is gone.
import { ControlClient } from "../control/client";
import type { ControlMux } from "../control/mux";
import { describeError } from "../errors";
import type { RunResult } from "../host/qemu";
import { QEMU_END_GRACE_MS } from "../host/qemu-driver";
import { BootError } from "./errors";
import { Vm } from "./vm";

/** What the run reports as the VM comes up; aborting `signal` kills QEMU. */
export interface LaunchHooks {
  signal: AbortSignal;
  spawned(pid: number): void;
  /** The VM's control connection (null: the guest serves none). */
  control(control: Promise<ControlMux> | null): void;
  /** A restore's guest applied the resume message. */
  resumed(): void;
}

export interface LaunchPlan {
  /** Names the attempt in errors: "boot", "restore". */
  what: string;
  /** How long an orderly stop may take before QEMU is killed. */
  stopWaitMs: number;
  /** A restore is handed out only after RESUMED: before it, the clone is still the saved VM. */
  awaitResume: boolean;
  /** The caller's: aborting kills QEMU, while starting or later. */
  signal?: AbortSignal;
  /** Starts the run; its promise settles once QEMU ended. */
  start(hooks: LaunchHooks): Promise<RunResult>;
}

export function launch(plan: LaunchPlan): Promise<Vm> {
  if (plan.signal?.aborted) return Promise.reject(new BootError(`${plan.what}: aborted before QEMU started`));
  return new Promise((resolve, reject) => {
    const killer = new AbortController();
    const signal = plan.signal ? AbortSignal.any([plan.signal, killer.signal]) : killer.signal;
    let pid: number | null = null;
    let mux: ControlMux | null = null;
    let resumed = !plan.awaitResume;
    let connecting = false;
    let settled = false;
    // Made before the run starts: runVm may report its spawn (and a failure with it) before it returns.
    let endRun!: (end: { result: RunResult | null; error: unknown }) => void;
    const ended = new Promise<{ result: RunResult | null; error: unknown }>((settle) => (endRun = settle));

    let run: Promise<RunResult>;
    try {
      run = plan.start({
        signal,
        spawned: (qemuPid) => (pid = qemuPid),
        control: (control) => {
          if (control === null) return fail("the guest serves no control channel (burrow.supervise=0)");
          control.then((connected) => {
            mux = connected;
            ready();
          }, channelFailed);
        },
        resumed: () => {
          resumed = true;
          ready();
        },
      });
    } catch (error) {
      run = Promise.reject(error);
    }
    run.then((result) => endRun({ result, error: null }), (error: unknown) => endRun({ result: null, error }));

    // The run ending first: its own reason (QEMU's last words, the guest's verdict, a driver's failure).
    void ended.then(({ result, error }) => {
      if (settled) return;
      settled = true;
      const why = result ? `the VM ended before its supervisor answered: ${result.reason}` : describeError(error);
      reject(new BootError(`${plan.what}: ${why}`, result));
    });

    /** Gives up on this VM: QEMU killed, the rejection once it is gone. */
    function fail(cause: string): void {
      if (settled) return;
      settled = true;
      killer.abort();
      void ended.then(({ result }) => reject(new BootError(`${plan.what}: ${cause}`, result)));
    }

    function channelFailed(error: unknown): void {
      // QEMU ending closes the channel too; then the run's reason is the one to give.
      const byItself = Promise.race([ended.then(() => true), Bun.sleep(QEMU_END_GRACE_MS).then(() => false)]);
      void byItself.then((gone) => {
        if (!gone) fail(`the guest's supervisor did not answer on the control channel: ${describeError(error)}`);
      });
    }

    function ready(): void {
      if (settled || connecting || mux === null || !resumed) return;
      if (pid === null) return fail("the run reported its control channel before QEMU's pid");
      connecting = true;
      const qemuPid = pid;
      ControlClient.over(mux.local()).then((client) => {
        if (settled) return client.close();
        settled = true;
        resolve(new Vm({ pid: qemuPid, client, run, kill: () => killer.abort(), stopWaitMs: plan.stopWaitMs }));
      }, channelFailed);
    }
  });
}
