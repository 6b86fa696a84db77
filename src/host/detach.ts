// `burrow run --name NAME --detach`: the same run again in the background (its own session, its
// stdio to the VM's console.log, nothing tying it to this process), and this process waits until
// vm.json says "running" — or until the background run ends, whose last line is then the reason.
import { randomBytes } from "node:crypto";
import { closeSync, fstatSync, mkdirSync, openSync, readSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describeError } from "../errors";
import { DETACHED_CONSOLE_ENV } from "./named-vm";
import { STOP_SIGNALS } from "./stop-signals";
import { readVmRecord, stateRoot, vmPaths } from "./vm-registry";

const POLL_MS = 100;
/** Bytes read from the end of the log for its last line. */
const TAIL_BYTES = 4096;

export interface DetachResult {
  exitCode: number;
  /** What to print: the name on stdout once it runs, else the reason line for stderr. */
  stdout: string | null;
  stderr: string | null;
}

/** This executable as a command: the compiled binary alone, else the runtime and its script. */
export function selfCommand(): string[] {
  return Bun.isStandaloneExecutable ? [process.execPath] : [process.execPath, process.argv[1]!];
}

/** `run`'s arguments without --detach (the agent's, after "--", are never ours to touch). */
export function withoutDetach(runArgs: string[]): string[] {
  const dashes = runArgs.indexOf("--");
  const ours = dashes < 0 ? runArgs : runArgs.slice(0, dashes);
  const rest = dashes < 0 ? [] : runArgs.slice(dashes);
  return [...ours.filter((arg) => arg !== "--detach"), ...rest];
}

/** The last non-empty line of an open file (at most TAIL_BYTES back). */
function lastLine(fd: number): string | null {
  const size = fstatSync(fd).size;
  const length = Math.min(size, TAIL_BYTES);
  const buffer = Buffer.alloc(length);
  const read = readSync(fd, buffer, 0, length, size - length);
  const lines = buffer.subarray(0, read).toString("utf8").split("\n").map((line) => line.trimEnd()).filter((line) => line !== "");
  return lines.at(-1) ?? null;
}

/**
 * Starts `burrow run ARGS` (without --detach) in the background and waits, at most `timeoutSeconds`,
 * for VM `name` to run. On a stop signal or the deadline the background run is sent SIGTERM (it stops
 * its guest in order) and waited for, so nothing is left behind.
 */
export async function detachRun(name: string, runArgs: string[], timeoutSeconds: number): Promise<DetachResult> {
  const root = stateRoot();
  const paths = vmPaths(name, root);
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  } catch (error) {
    return { exitCode: 1, stdout: null, stderr: `cannot make the VM state directory ${root}: ${describeError(error)}` };
  }
  // Beside ROOT/NAME (a dot name, never a VM's): the background run renames it to its console.log once registered.
  const logPath = join(root, `.console-${name}-${randomBytes(6).toString("hex")}.log`);
  const fd = openSync(logPath, "wx+", 0o600);
  let child: ReturnType<typeof Bun.spawn> | null = null;
  let signalled: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    signalled ??= signal;
    child?.kill("SIGTERM");
  };
  const listeners = STOP_SIGNALS.map((signal) => [signal, () => onSignal(signal)] as const);
  for (const [signal, listener] of listeners) process.on(signal, listener);
  try {
    try {
      child = Bun.spawn([...selfCommand(), "run", ...withoutDetach(runArgs)], {
        stdio: ["ignore", fd, fd],
        // Its own session: no terminal's hangup or Ctrl-C reaches it, and it outlives this process.
        detached: true,
        env: { ...process.env, [DETACHED_CONSOLE_ENV]: logPath },
      });
    } catch (error) {
      return { exitCode: 1, stdout: null, stderr: `cannot start the background burrow run: ${describeError(error)}` };
    }
    const started = child;
    let exitCode: number | null = null;
    void started.exited.then((code) => (exitCode = code));
    const deadline = Date.now() + timeoutSeconds * 1000;
    let gaveUp = false;
    for (;;) {
      if (exitCode !== null) {
        const reason = lastLine(fd) ?? `the background burrow run exited with status ${exitCode} and said nothing`;
        if (gaveUp) return { exitCode: 124, stdout: null, stderr: `VM ${name} was not running within ${timeoutSeconds} s; stopped it (its last line: ${reason})` };
        return { exitCode, stdout: null, stderr: reason };
      }
      const record = readVmRecord(paths.record);
      if (signalled === null && !gaveUp && record?.ownerPid === started.pid && record.state === "running") {
        // It runs on its own now: this process must not wait for it.
        started.unref();
        return { exitCode: 0, stdout: name, stderr: null };
      }
      if (!gaveUp && Date.now() > deadline) {
        gaveUp = true;
        started.kill("SIGTERM");
      }
      await Bun.sleep(POLL_MS);
    }
  } finally {
    for (const [signal, listener] of listeners) process.off(signal, listener);
    closeSync(fd);
    // Still there only when the background run ended before it took the log over.
    if (child === null || child.exitCode !== null || child.signalCode !== null) rmSync(logPath, { force: true });
  }
}
