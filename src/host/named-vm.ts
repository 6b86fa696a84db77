// `burrow run --name NAME`: the VM under its name for as long as this process runs it. The name is
// registered before QEMU starts; the control channel is served on ROOT/NAME/control.sock; the
// console goes to ROOT/NAME/console.log as well; vm.json says "running" once the workload runs;
// and the directory goes when the VM does, on every path this process lives to see.
import { closeSync, fstatSync, openSync, renameSync, statSync, writeSync } from "node:fs";
import { constants } from "node:os";
import { ControlClient, GuestError } from "../control/client";
import type { ControlMux } from "../control/mux";
import { ErrorCode } from "../control/wire";
import { describeError, ExitStatusError } from "../errors";
import { log } from "../log";
import { STOP_SIGNALS } from "./stop-signals";
import { registerVm, type VmRegistration } from "./vm-registry";

/** Set by `burrow run --detach` for its background run: the log file that is its stdout, to become console.log. */
export const DETACHED_CONSOLE_ENV = "BURROW_DETACHED_CONSOLE";

/** How often the workload's state is asked for until it runs. */
const RUNNING_POLL_MS = 100;

/** What the run gets from hostNamedVm: pass them to runVm (onSpawn) or restoreSnapshot (onQemu, onControl). */
export interface NamedVmHooks {
  onOutput(text: string): void;
  onQemu(pid: number): void;
  onControl(control: Promise<ControlMux>): void;
  /** Aborted by a stop signal that came before QEMU ran (runVm's own handlers take the later ones). */
  signal: AbortSignal;
}

/**
 * The detached run's log, taken over as console.log: only when this process's stdout is that very
 * file (the variable alone proves nothing). Read once and removed, so no child inherits it.
 */
function takeDetachedConsole(): string | null {
  const path = process.env[DETACHED_CONSOLE_ENV];
  delete process.env[DETACHED_CONSOLE_ENV];
  if (!path) return null;
  try {
    const stdout = fstatSync(1);
    const file = statSync(path);
    return stdout.dev === file.dev && stdout.ino === file.ino ? path : null;
  } catch {
    return null;
  }
}

/** Where the console goes besides the caller's output: console.log, unless stdout already is it. */
function openConsoleLog(registration: VmRegistration): { write(text: string): void; close(): void } {
  const detached = takeDetachedConsole();
  if (detached !== null) {
    renameSync(detached, registration.paths.consoleLog);
    return { write: () => {}, close: () => {} };
  }
  const fd = openSync(registration.paths.consoleLog, "a", 0o600);
  let failed = false;
  return {
    write(text) {
      if (failed) return;
      try {
        writeSync(fd, text);
      } catch (error) {
        // The console still streams to stdout; the log is said to be incomplete once.
        failed = true;
        log.warn(`console.log is incomplete from here: ${describeError(error)}`);
      }
    },
    close: () => closeSync(fd),
  };
}

/** Serves the channel on the VM's socket, then marks vm.json "running" once the guest says its workload runs. */
async function serveAndWatch(mux: ControlMux, registration: VmRegistration): Promise<void> {
  mux.listen(registration.paths.controlSocket);
  const client = await ControlClient.over(mux.local());
  try {
    for (;;) {
      let workload;
      try {
        ({ workload } = await client.info());
      } catch (error) {
        // A restored guest at its snapshot point answers INFO only after the restore's RESUME.
        if (!(error instanceof GuestError && error.code === ErrorCode.NOT_NOW)) throw error;
        await Bun.sleep(RUNNING_POLL_MS);
        continue;
      }
      if (workload.state === "running") return registration.update({ state: "running" });
      // Exited or stopping: the VM is on its way down and never runs.
      if (workload.state !== "starting") return;
      await Bun.sleep(RUNNING_POLL_MS);
    }
  } finally {
    client.close();
  }
}

/** Runs `start` with NAME registered for it; the name is released however it ends. */
export async function hostNamedVm<T>(name: string, snapshot: string | null, onOutput: (text: string) => void, start: (hooks: NamedVmHooks) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let stoppedBy: NodeJS.Signals | null = null;
  let qemuStarted = false;
  // Until QEMU runs, a stop signal must still end the run through the finally below, not kill it there.
  const onSignal = (signal: NodeJS.Signals) => {
    if (qemuStarted) return;
    stoppedBy ??= signal;
    abort.abort();
  };
  const listeners = STOP_SIGNALS.map((signal) => [signal, () => onSignal(signal)] as const);
  for (const [signal, listener] of listeners) process.on(signal, listener);
  let registration: VmRegistration | null = null;
  let consoleLog: { write(text: string): void; close(): void } | null = null;
  try {
    registration = registerVm(name, { snapshot, log: (line) => log.warn(line) });
    consoleLog = openConsoleLog(registration);
    const held = registration;
    const sink = consoleLog;
    if (abort.signal.aborted) throw stoppedBefore(stoppedBy!);
    const result = await start({
      onOutput: (text) => {
        onOutput(text);
        sink.write(text);
      },
      onQemu: (pid) => {
        qemuStarted = true;
        held.update({ qemuPid: pid });
      },
      onControl: (control) => {
        control.then(
          (mux) => serveAndWatch(mux, held).catch((error: unknown) => {
            // A channel that closed means the VM is ending: the run's verdict says why.
            if (!mux.closed) log.warn(`VM ${name}: ${describeError(error)}`);
          }),
          () => {}, // QEMU ended before the guest answered: the run's verdict says why
        );
      },
      signal: abort.signal,
    });
    if (stoppedBy !== null && !qemuStarted) throw stoppedBefore(stoppedBy);
    return result;
  } finally {
    for (const [signal, listener] of listeners) process.off(signal, listener);
    consoleLog?.close();
    registration?.unregister();
  }
}

function stoppedBefore(signal: NodeJS.Signals): ExitStatusError {
  return new ExitStatusError(`stopped by ${signal} before the VM started`, 128 + (constants.signals[signal] ?? 0));
}
