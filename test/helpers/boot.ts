// Boot a guest in QEMU (TCG) for a test and parse what it reported.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runVm, type RunOptions, type RunResult } from "../../src/host/qemu";
import { INITRAMFS, KERNEL_MICRO, requireArtifacts } from "./artifacts";

export interface BootResult extends RunResult {
  /** "agent: key rest" lines: key → values in order. */
  agent: Map<string, string[]>;
  /** Lines printed by burrow (console or kmsg echo), without timestamps. */
  burrow: string[];
}

export async function boot(options: Partial<RunOptions> = {}): Promise<BootResult> {
  const result = await runVm(vmOptions(options), process.env.BURROW_TEST_CONSOLE ? (text) => process.stderr.write(text) : undefined);
  return parseBoot(result);
}

function vmOptions(options: Partial<RunOptions>): RunOptions {
  const kernel = options.kernel ?? KERNEL_MICRO;
  const initrd = options.initrd === undefined ? INITRAMFS : options.initrd;
  requireArtifacts(kernel, ...(initrd ? [initrd] : []), ...(options.disks ?? []));
  return {
    kernel,
    initrd,
    disks: [],
    ports: [],
    mem: "512M",
    smp: 1,
    machine: "microvm",
    accel: "tcg",
    append: "",
    timeoutSeconds: 90,
    ...options,
  };
}

/** The console's lines without printk timestamps or carriage returns. */
export function consoleLines(output: string): string[] {
  return output.split(/\r?\n/).map((raw) => raw.replace(/\r$/, "").replace(/^\[\s*[\d.]+\]\s*/, ""));
}

/**
 * Report lines "<tag>key rest" (agent: …, [U] hcl: …; the tag starts the line) as key → values in order. The key ends at
 * the first space, or also at "=" when `splitAtEquals` ("pid=1 ppid=0" is key pid).
 */
export function keyedLines(output: string, tag: string, splitAtEquals = false): Map<string, string[]> {
  const escaped = tag.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(`^${escaped}(\\S+?)(?:${splitAtEquals ? "[ =]" : " "}(.*))?$`);
  const reports = new Map<string, string[]>();
  for (const line of consoleLines(output)) {
    const match = pattern.exec(line);
    if (!match) continue;
    const list = reports.get(match[1]!) ?? [];
    list.push(match[2] ?? "");
    reports.set(match[1]!, list);
  }
  return reports;
}

/** What a microvm boot printed: the demo agent's reports and burrow's own lines. */
export function parseConsole(output: string): { agent: Map<string, string[]>; burrow: string[] } {
  return { agent: keyedLines(output, "agent: ", true), burrow: consoleLines(output).filter((line) => /^burrow(\/\w+)?: /.test(line)) };
}

function parseBoot(result: RunResult): BootResult {
  return { ...result, ...parseConsole(result.output) };
}

/** Explain a failed expectation with the guest's console tail. */
export function tail(result: RunResult, lines = 60): string {
  return result.output.split("\n").slice(-lines).join("\n");
}

/** The guest's serial console over QEMU's unix socket: type commands, read their answers. */
export interface GuestConsole {
  /** Everything the console printed so far. */
  readonly transcript: string;
  /** Resolves with the console text up to the first match of `pattern` after what earlier waits consumed; rejects if the console closes first. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  write(text: string): void;
  /**
   * Run a shell command and return what it printed and its status. The answer is framed by
   * lines the shell computes ($((N*1))), so the tty's echo of the command line never matches.
   */
  run(command: string): Promise<{ output: string; status: number }>;
}

/**
 * Boot with the serial console on a unix socket and hand it to `drive`; resolves with the run's
 * result once QEMU has exited (the console text is then in `console.transcript`, not in output).
 */
export async function bootWithConsole(options: Partial<RunOptions>, drive: (guest: GuestConsole) => Promise<void>): Promise<{ result: BootResult; transcript: string }> {
  const dir = mkdtempSync(join(tmpdir(), "burrow-console-"));
  const path = join(dir, "console.sock");
  let ended = false;
  // A failed expectation while the guest still runs stops QEMU rather than waiting for the timeout.
  const stop = new AbortController();
  const run = runVm(vmOptions({ ...options, consoleSocket: path, signal: stop.signal })).finally(() => {
    ended = true;
  });
  try {
    // QEMU creates the socket, then waits for this client before it starts the guest.
    while (!existsSync(path) && !ended) await Bun.sleep(20);
    const guest = await connectConsole(path);
    let driveError: unknown = null;
    await drive(guest).catch((error) => {
      driveError = error;
      stop.abort();
    });
    const result = parseBoot(await run);
    if (driveError) throw new Error(`${(driveError as Error).message}\n(run: ${result.outcome}, ${result.reason})\nconsole:\n${guest.transcript.split("\n").slice(-60).join("\n")}`);
    return { result, transcript: guest.transcript };
  } finally {
    await run.catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

async function connectConsole(path: string): Promise<GuestConsole> {
  let transcript = "";
  let consumed = 0;
  let closed = false;
  let wake = () => {};
  const decoder = new TextDecoder();
  const socket = await Bun.connect({
    unix: path,
    socket: {
      data(_socket, data) {
        const text = decoder.decode(data, { stream: true });
        transcript += text;
        if (process.env.BURROW_TEST_CONSOLE) process.stderr.write(text);
        wake();
      },
      close() {
        closed = true;
        wake();
      },
      error() {
        closed = true;
        wake();
      },
    },
  });
  let serial = 0;
  const guest: GuestConsole = {
    get transcript() {
      return transcript;
    },
    async waitFor(pattern) {
      const sticky = new RegExp(pattern.source, pattern.flags.replace("g", ""));
      for (;;) {
        const match = sticky.exec(transcript.slice(consumed));
        if (match) {
          consumed += match.index + match[0].length;
          return match;
        }
        if (closed) throw new Error(`console closed before ${pattern} appeared`);
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    write(text) {
      socket.write(text);
    },
    async run(command) {
      const n = ++serial;
      // Both frames end in "@@": the tty may echo the next typed line right after the last one's output.
      socket.write(`echo "@@begin $((${n}*1))@@"; ${command}; echo "@@end $? $((${n}*1))@@"\n`);
      await guest.waitFor(new RegExp(`@@begin ${n}@@`));
      const start = consumed;
      const end = await guest.waitFor(new RegExp(`@@end (\\d+) ${n}@@`));
      const output = transcript.slice(start, consumed - end[0].length).replace(/\r/g, "").replace(/^\n/, "");
      return { output, status: Number(end[1]) };
    },
  };
  return guest;
}
