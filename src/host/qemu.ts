// `burrow run`: boot a kernel + initramfs in QEMU, stream the guest console, and turn how the
// guest ended into an exit status the host can act on. runVm ties the parts together: QEMU's
// command line (qemu-argv.ts), the process and its console (qemu-process.ts), stop signals
// (stop-signals.ts) and the verdict (verdict.ts).
import { closeSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { ControlMux } from "../control/mux";
import { hostArch, type Arch } from "../arch";
import { qemuArgs } from "./qemu-argv";
import { connectControl, openIncoming, spawnQemu, streamRun, type Streamed } from "./qemu-process";
import { checkRunInputs, guestStopWaitMs } from "./run-checks";
import { newRunId } from "./run-id";
import { makeSocketDir } from "./socket-dirs";
import { watchStopSignals } from "./stop-signals";
import type { RunOptions, RunResult } from "./run-options";
import { classify } from "./verdict";

export type { Accel, Machine, PortSpec, RunOptions, RunResult, SerialDisk, SpawnedVm } from "./run-options";

/** Boot, stream the console to `onOutput`, and classify the end. */
export async function runVm(options: RunOptions, onOutput: (text: string) => void = () => {}): Promise<RunResult> {
  const runId = options.runId ?? newRunId();
  checkRunInputs({ ...options, runId });
  const stopWaitMs = guestStopWaitMs(options.append);
  // A supervised guest serves the control channel: its port is always there (the save and its restores agree on it).
  const socketDir = options.controlSocket === undefined && stopWaitMs !== null ? makeSocketDir("control") : null;
  const controlSocket = options.controlSocket ?? (socketDir === null ? undefined : join(socketDir, "control"));
  let mux: ControlMux | null = null;
  try {
    const args = qemuArgs({ ...options, runId, controlSocket });
    const started = performance.now();
    const incoming = options.incomingFile ? openIncoming(options.incomingFile) : null;
    let child;
    try {
      child = spawnQemu(args, options.arch ?? hostArch(), incoming, options.netns ?? null);
    } finally {
      // QEMU has its own copy now (or never started).
      if (incoming !== null) closeSync(incoming);
    }
    const control = controlSocket === undefined || options.rawControl ? null : connectControl(controlSocket, child, options.timeoutSeconds);
    void control?.then((connected) => (mux = connected), () => {});
    const signals = options.ownSignals ? { stoppedBy: null, dispose() {} } : watchStopSignals(child, control === null || stopWaitMs === null ? null : { control, waitMs: stopWaitMs });
    let streamed: Streamed;
    try {
      streamed = await streamRun(child, options, onOutput, control);
    } finally {
      signals.dispose();
    }
    const { output, timedOut, lastStderrLine } = streamed;
    const qemuSignal = (child.signalCode as NodeJS.Signals | null) ?? null;
    const verdict = classify(output, { qemuStatus: child.exitCode, qemuSignal, qemuLastWords: lastStderrLine, timedOut, timeoutSeconds: options.timeoutSeconds, runId, stoppedBy: signals.stoppedBy });
    return { ...verdict, output, wallMs: performance.now() - started, runId };
  } finally {
    (mux as ControlMux | null)?.close("the VM ended");
    if (socketDir !== null) rmSync(socketDir, { recursive: true, force: true });
  }
}
