// QEMU as a process: started so it never outlives burrow run, its output streamed under the run's
// timeout and the caller's abort, its control channel connected as soon as it runs.
import { openSync } from "node:fs";
import { ARCH_INFO, type Arch } from "../arch";
import { describeError } from "../errors";
import { ControlMux } from "../control/mux";
import type { RunOptions } from "./run-options";
import { HALTED, qemuLastWords } from "./verdict";

/** The saved state, opened for QEMU to inherit (fd 3, incomingUri): refused in one line when unreadable. */
export function openIncoming(path: string): number {
  try {
    return openSync(path, "r");
  } catch (error) {
    throw new Error(`cannot open the saved state ${path}: ${describeError(error)}`);
  }
}

/**
 * The argv that starts QEMU: under setpriv --pdeathsig SIGKILL when the host has setpriv, so the
 * kernel kills QEMU once burrow run is gone, however it died (SIGKILL included). setpriv execs
 * QEMU: the same pid, and the inherited fds (the saved state on fd 3) reach QEMU unchanged. The
 * death signal follows the thread that forked, not the process: Bun forks on the JS main thread
 * (strace: vfork from the thread whose id is the pid), which lasts as long as burrow run.
 */
export function spawnArgv(qemuArgv: readonly string[], setpriv: string | null, netns: { nsenter: string; path: string } | null = null): string[] {
  // nsenter enters the namespace and execs QEMU (no fork without --fork or a pid namespace), so the
  // pid, the fds and setpriv's death signal (kept across exec of an unprivileged binary) stay.
  const inNetns = netns === null ? [...qemuArgv] : [netns.nsenter, `--net=${netns.path}`, "--", ...qemuArgv];
  return setpriv === null ? inNetns : [setpriv, "--pdeathsig", "SIGKILL", "--", ...inNetns];
}

export function spawnQemu(args: string[], arch: Arch, incoming: number | null, netnsPath: string | null = null) {
  const setpriv = Bun.which("setpriv");
  const cannotStart = (why: string) => new Error(`cannot start ${args[0]}: ${why} (install ${ARCH_INFO[arch].qemuPackage}: \`${arch === "x86_64" ? "" : `ARCH=${arch} `}just deps\`)`);
  // Through setpriv or nsenter a missing QEMU would only show as their exit status: look first.
  if ((setpriv !== null || netnsPath !== null) && Bun.which(args[0]!) === null) throw cannotStart("not found or not executable");
  const nsenter = netnsPath === null ? null : Bun.which("nsenter");
  if (netnsPath !== null && nsenter === null) throw new Error(`cannot start ${args[0]} in the network namespace ${netnsPath}: nsenter not found (install util-linux)`);
  const netns = netnsPath === null ? null : { nsenter: nsenter!, path: netnsPath };
  try {
    // detached (a session of its own): a terminal's Ctrl-C or hangup reaches burrow run alone,
    // which stops the guest in order; QEMU would quit on them at once. Only with setpriv, which
    // makes the kernel kill it with us: a detached QEMU outlives a kill of our process group.
    return Bun.spawn(spawnArgv(args, setpriv, netns), { stdio: ["ignore", "pipe", "pipe", ...(incoming === null ? [] : [incoming])], detached: setpriv !== null });
  } catch (error) {
    throw cannotStart(describeError(error));
  }
}

/**
 * The one connection to the guest's control port, made as soon as QEMU runs: QEMU keeps what the
 * host writes until the guest's supervisor opens the port, so the handshake waits as long as the
 * boot does (bounded by the run's timeout), and gives up the moment QEMU ends.
 */
export function connectControl(path: string, child: { exited: Promise<number> }, timeoutSeconds: number): Promise<ControlMux> {
  const gone = new AbortController();
  void child.exited.then(() => gone.abort(), () => gone.abort());
  const connecting = ControlMux.connect(path, { timeoutMs: CONTROL_CONNECT_TIMEOUT_MS, signal: gone.signal, helloTimeoutMs: timeoutSeconds * 1000 });
  // Whoever needs the channel awaits it; a run that never does must not see an unhandled rejection.
  connecting.catch(() => {});
  return connecting;
}

type QemuProcess = ReturnType<typeof spawnQemu>;

export interface Streamed {
  output: string;
  timedOut: boolean;
  /** Without the "[qemu] " prefix and QEMU's own "qemu-system-x86_64: " (the line names QEMU). */
  lastStderrLine: string | null;
}

/** The console kept for the verdict and RunResult.output: its last 8–16 MiB (a boot's log is far less). */
const CONSOLE_KEEP_CHARS = 8 * 2 ** 20;

/** Stream QEMU's output until it exits, enforcing the run's timeout, the caller's abort and a halted guest's end. */
export async function streamRun(child: QemuProcess, options: RunOptions, onOutput: (text: string) => void, control: Promise<ControlMux> | null): Promise<Streamed> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, options.timeoutSeconds * 1000);
  options.onSpawn?.({ pid: child.pid, kill: (signal = "SIGKILL") => child.kill(signal), exited: child.exited, control });
  const abort = () => child.kill("SIGKILL");
  options.signal?.addEventListener("abort", abort, { once: true });
  if (options.signal?.aborted) abort();
  let halting: ReturnType<typeof setTimeout> | null = null;
  let output = "";
  let stderrText = "";
  let scanned = 0;
  const decoder = new TextDecoder();
  const errDecoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>, stderr: boolean) => {
    for await (const chunk of stream) {
      const text = (stderr ? errDecoder : decoder).decode(chunk, { stream: true });
      if (!stderr) output += text;
      else {
        output += text.split("\n").map((line) => (line ? `[qemu] ${line}` : line)).join("\n");
        // Bounded: only the last lines can hold the reason.
        stderrText = (stderrText + text).slice(-8192);
      }
      // Bounded too: a guest may print without end, and the verdict's lines come last.
      if (output.length > 2 * CONSOLE_KEEP_CHARS) {
        const dropped = output.length - CONSOLE_KEEP_CHARS;
        output = output.slice(dropped);
        scanned = Math.max(0, scanned - dropped);
      }
      onOutput(text);
      // A halted guest leaves QEMU running until the timeout: stop it once the kernel says so.
      // Only complete lines are scanned, each once (a line may arrive split across chunks).
      const lastNewline = output.lastIndexOf("\n");
      if (!halting && lastNewline >= scanned) {
        const lines = output.slice(scanned, lastNewline + 1);
        scanned = lastNewline + 1;
        if (HALTED.test(lines)) {
          child.kill("SIGTERM");
          halting = setTimeout(() => child.kill("SIGKILL"), 5000);
        }
      }
    }
  };
  try {
    await Promise.all([pump(child.stdout, false), pump(child.stderr, true), child.exited]);
  } finally {
    clearTimeout(timer);
    if (halting) clearTimeout(halting);
    options.signal?.removeEventListener("abort", abort);
  }
  return { output, timedOut, lastStderrLine: qemuLastWords(stderrText) };
}

/** QEMU makes its sockets before the guest runs; as long as QMP's connect waits for QEMU to make its socket. */
const CONTROL_CONNECT_TIMEOUT_MS = 10_000;
