// How a run ended, from the guest console and QEMU's own status: the outcome, the exit status
// `burrow run` returns and its one-line reason.
import { constants } from "node:os";
import { exitStatusPattern, EXIT_STATUS_MARKER, RUN_ID_PATTERN } from "../exit-marker";

export type Outcome = "poweroff" | "exit-status" | "halted" | "init-exited" | "panic" | "timeout" | "qemu-failed" | "stopped";

export interface Verdict {
  outcome: Outcome;
  /** What `burrow run` exits with. */
  exitCode: number;
  reason: string;
}

/** How the run ended, besides the console text. */
export interface RunEnd {
  qemuStatus: number | null;
  timedOut: boolean;
  timeoutSeconds: number;
  /** Only marker lines carrying this id count; null: none do. */
  runId: string | null;
  /** The signal to `burrow run` that stopped the guest (the first, if several came), or null. */
  stoppedBy: NodeJS.Signals | null;
  /** The signal that ended QEMU (its status is then null), or null. */
  qemuSignal?: NodeJS.Signals | null;
  /** QEMU's last line on stderr: why it gave up, when it did. */
  qemuLastWords?: string | null;
}

/** `burrow run`'s exit code for a halted guest that reported no status. */
export const HALTED_EXIT_CODE = 3;
/** `burrow run`'s exit code when QEMU itself failed: it would not start, crashed or was killed. */
export const QEMU_FAILED_EXIT_CODE = 126;

/** QEMU's end in one line: its status or the signal that killed it, and its own last words. */
export function qemuFailure(end: Pick<RunEnd, "qemuStatus" | "qemuSignal" | "qemuLastWords">): string {
  const how = end.qemuStatus === null ? `qemu was killed by ${end.qemuSignal ?? "a signal"}` : `qemu exited with status ${end.qemuStatus}`;
  return end.qemuLastWords ? `${how}: ${end.qemuLastWords}` : how;
}

const INIT_EXIT = /Attempted to kill init! exitcode=0x([0-9a-f]+)/;
const PANIC = /Kernel panic - not syncing: ([^\r\n]*)/;
/** The OOM killer's panics (nothing left to kill; panic_on_oom): their words do not say "out of memory" plainly. */
const OOM_PANIC = /^(System is deadlocked on memory|Out of memory)/;

/** A panic's reason, saying so when the guest ran out of memory. */
export function panicReason(message: string): string {
  return `kernel panic: ${message}${OOM_PANIC.test(message) ? " (the guest ran out of memory)" : ""}`;
}
/** The kernel's own line for reboot(HALT), alone on its line (after an optional printk time). */
export const HALTED = /^(?:\[\s*\d+\.\d+\] )?reboot: System halted\r?$/m;

/** The status from the LAST marker line carrying this run's id (an earlier one may be replayed text). */
function trustedExitStatus(output: string, runId: string | null): number | null {
  if (!runId || !RUN_ID_PATTERN.test(runId)) return null;
  let status: number | null = null;
  for (const match of output.matchAll(exitStatusPattern(runId))) status = Number(match[1]);
  // Only 0-255 can come from burrow; clamp rather than let 256 wrap to a success.
  return status === null ? null : Math.min(status, 255);
}

/** Classify a finished run from the console text and QEMU's own status. */
export function classify(output: string, end: RunEnd): Verdict {
  const status = trustedExitStatus(output, end.runId);
  // Before the timeout: a timeout can only fire after the signal, while the guest was stopping.
  if (end.stoppedBy !== null) return stoppedVerdict(output, status, end.stoppedBy);
  const initExit = INIT_EXIT.exec(output);
  const panic = PANIC.exec(output);
  if (end.timedOut) {
    return { outcome: "timeout", exitCode: 124, reason: `guest did not finish within ${end.timeoutSeconds} s${panic ? ` (kernel panic: ${panic[1]})` : ""}` };
  }
  if (HALTED.test(output)) {
    return status === null
      ? { outcome: "halted", exitCode: HALTED_EXIT_CODE, reason: `guest halted without reporting an exit status` }
      : { outcome: "halted", exitCode: status, reason: `guest halted with exit status ${status}` };
  }
  if (initExit) {
    // An init that exits hands its status to the kernel (wait status, exit code in bits 8-15).
    const waitStatus = parseInt(initExit[1]!, 16);
    const code = waitStatus & 0x7f ? 128 + (waitStatus & 0x7f) : (waitStatus >> 8) & 0xff;
    return { outcome: "init-exited", exitCode: code, reason: `init exited with status ${code}` };
  }
  if (panic) return { outcome: "panic", exitCode: 125, reason: panicReason(panic[1]!.trim()) };
  if (end.qemuStatus !== 0) return { outcome: "qemu-failed", exitCode: QEMU_FAILED_EXIT_CODE, reason: qemuFailure(end) };
  if (status !== null) {
    return { outcome: "exit-status", exitCode: status, reason: status === 0 ? "guest powered off" : `guest reported exit status ${status}` };
  }
  // Say so when a marker without this run's id was ignored: a guest burrow too old to echo the id, or forged text.
  const ignored = output.includes(EXIT_STATUS_MARKER) ? ` (ignored "${EXIT_STATUS_MARKER}" lines without this run's id)` : "";
  return { outcome: "poweroff", exitCode: 0, reason: `guest powered off${ignored}` };
}

/**
 * A run a signal ended. The guest's own status when its supervisor reported one on the way down
 * (its orderly stop ran); otherwise the shell's convention for a program killed by the signal.
 */
function stoppedVerdict(output: string, status: number | null, signal: NodeJS.Signals): Verdict {
  const by = `stopped by ${signal}`;
  if (status !== null) return { outcome: HALTED.test(output) ? "halted" : "exit-status", exitCode: status, reason: `guest reported exit status ${status} (${by})` };
  const panic = PANIC.exec(output);
  return { outcome: "stopped", exitCode: 128 + signalNumber(signal), reason: `${by}${panic ? ` (kernel panic: ${panic[1]!.trim()})` : ""}` };
}

function signalNumber(signal: NodeJS.Signals): number {
  const number = constants.signals[signal];
  if (number === undefined) throw new Error(`unknown signal ${signal}`);
  return number;
}

const QEMU_PREFIX = /^qemu-system-[\w-]+: /;

/**
 * QEMU's last message from its stderr, on one line: the last line with its program-name prefix
 * (which the verdict replaces with "qemu") and the lines that continue it ("Is another process
 * using the image?" follows a lock error); without a prefixed line, the last line.
 */
export function qemuLastWords(stderr: string): string | null {
  const lines = stderr.split("\n").map((line) => line.trim()).filter((line) => line !== "");
  let start = lines.length - 1;
  while (start > 0 && !QEMU_PREFIX.test(lines[start]!)) start--;
  if (!QEMU_PREFIX.test(lines[start] ?? "")) start = lines.length - 1;
  const words = lines.slice(start).map((line) => line.replace(QEMU_PREFIX, "")).join(" ");
  return words === "" ? null : words;
}
