// `burrow exec [-i] [-t] [-e K=V]… [-w DIR] [-u USER] [--timeout SECONDS] NAME -- CMD [ARG…]`: a
// command in a named VM over its control channel, its output at the pace this terminal takes it,
// its exit status as ours.
import { defineCommand } from "citty";
import { execProblem } from "../control/frames";
import { ChannelClosedError, type GuestProcess, SpawnError } from "../control/client";
import { describeError, ExitStatusError } from "../errors";
import { STOP_SIGNALS } from "../host/stop-signals";
import { parseCommandLine } from "./command-line";
import { BROKEN_PIPE_STATUS, isBrokenPipe } from "./output";
import { relayProcess } from "./relay";
import { connectVm } from "./vm-connection";

export const EXEC_USAGE = "burrow exec [-i] [-t] [-e K=V]... [-w DIR] [-u USER] [--timeout SECONDS] NAME -- CMD [ARG...]";
/** The shell's statuses: a command that timed out, one that could not be run, one not found. */
export const TIMED_OUT_STATUS = 124;
export const CANNOT_RUN_STATUS = 126;
export const NOT_FOUND_STATUS = 127;
const DEFAULT_TTY = { rows: 24, cols: 80 };

export interface ExecInvocation {
  name: string;
  argv: string[];
  interactive: boolean;
  tty: boolean;
  env: [string, string][];
  cwd?: string;
  user?: string;
  timeoutMs?: number;
}

/** The guest's bound: a u32 of milliseconds. */
const MAX_TIMEOUT_SECONDS = Math.floor(0xffffffff / 1000);

export function parseExecTimeout(text: string): number {
  const seconds = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(seconds > 0 && seconds <= MAX_TIMEOUT_SECONDS)) throw new Error(`bad --timeout ${JSON.stringify(text)} (seconds, above 0 and at most ${MAX_TIMEOUT_SECONDS})`);
  return Math.max(1, Math.round(seconds * 1000));
}

export function parseExecArgs(args: readonly string[]): ExecInvocation {
  const line = parseCommandLine(args, {
    command: "exec",
    usage: EXEC_USAGE,
    options: [
      { name: "interactive", short: "i", kind: "flag" },
      { name: "tty", short: "t", kind: "flag" },
      { name: "env", short: "e", kind: "list" },
      { name: "workdir", short: "w", kind: "value" },
      { name: "user", short: "u", kind: "value" },
      { name: "timeout", kind: "value" },
    ],
    positionals: { min: 1, max: 1 },
    rest: true,
  });
  const env = (line.lists.get("env") ?? []).map((pair): [string, string] => {
    const equals = pair.indexOf("=");
    if (equals <= 0) throw new Error(`-e needs NAME=VALUE, got ${JSON.stringify(pair)}`);
    return [pair.slice(0, equals), pair.slice(equals + 1)];
  });
  const timeout = line.values.get("timeout");
  const invocation: ExecInvocation = {
    name: line.positionals[0]!,
    argv: line.rest,
    interactive: line.flags.has("interactive"),
    tty: line.flags.has("tty"),
    env,
    ...(line.values.has("workdir") ? { cwd: line.values.get("workdir")! } : {}),
    ...(line.values.has("user") ? { user: line.values.get("user")! } : {}),
    ...(timeout === undefined ? {} : { timeoutMs: parseExecTimeout(timeout) }),
  };
  // The wire's own bounds, said here before any connection.
  const problem = execProblem({ argv: invocation.argv, env, cwd: invocation.cwd, user: invocation.user, timeoutMs: invocation.timeoutMs });
  if (problem) throw new Error(`${problem}`);
  return invocation;
}

/** How a process's end becomes `burrow exec`'s status; a line to print with it, if any. */
export function execOutcome(program: string, exited: { exitCode: number; timedOut: boolean; oomKilled: boolean }, timeoutMs?: number): { status: number; line: string | null } {
  if (exited.timedOut) return { status: TIMED_OUT_STATUS, line: `${program} timed out after ${(timeoutMs ?? 0) / 1000} s; the guest killed its process group` };
  if (exited.oomKilled) return { status: exited.exitCode, line: `${program} was killed by the guest's OOM killer` };
  return { status: exited.exitCode, line: null };
}

/** A spawn the guest refused: 127 for a program not found, 126 for any other reason. */
export function spawnFailure(error: SpawnError): ExitStatusError {
  return new ExitStatusError(error.message, error.errnoName === "ENOENT" ? NOT_FOUND_STATUS : CANNOT_RUN_STATUS);
}

function terminalSize(): { rows: number; cols: number } {
  const { rows, columns } = process.stdout;
  return process.stdout.isTTY && rows > 0 && columns > 0 ? { rows, cols: columns } : DEFAULT_TTY;
}

export async function runExec(invocation: ExecInvocation): Promise<number> {
  const { client } = await connectVm(invocation.name);
  let child: GuestProcess;
  try {
    child = client.spawn(invocation.argv, {
      env: invocation.env,
      cwd: invocation.cwd,
      user: invocation.user,
      timeoutMs: invocation.timeoutMs,
      stdin: invocation.interactive,
      ...(invocation.tty ? { tty: terminalSize() } : {}),
    });
  } catch (error) {
    client.close();
    throw error;
  }
  const proc = child;
  const program = invocation.argv[0]!;
  // Signals go to the command's process group; the command's end is then ours.
  const forward = (signal: NodeJS.Signals) => void proc.kill(signal).catch(() => {});
  const listeners = STOP_SIGNALS.map((signal) => [signal, () => forward(signal)] as const);
  for (const [signal, listener] of listeners) process.on(signal, listener);
  const onResize = () => void proc.resize(terminalSize().rows, terminalSize().cols).catch(() => {});
  if (invocation.tty) process.on("SIGWINCH", onResize);
  const raw = invocation.tty && invocation.interactive && process.stdin.isTTY === true;
  if (raw) process.stdin.setRawMode(true);
  try {
    const { exited, outputError } = await relayProcess(proc, { feedStdin: invocation.interactive });
    if (outputError !== null) {
      if (isBrokenPipe(outputError)) return BROKEN_PIPE_STATUS;
      throw new Error(`cannot write ${program}'s output: ${describeError(outputError)}`);
    }
    if (exited instanceof SpawnError) throw spawnFailure(exited);
    if (exited instanceof ChannelClosedError) throw new Error(`VM ${invocation.name}: ${exited.message} before ${program} ended`);
    if (exited instanceof Error) throw new Error(`${describeError(exited)}`);
    const outcome = execOutcome(program, exited, invocation.timeoutMs);
    if (outcome.line) throw new ExitStatusError(`${outcome.line}`, outcome.status);
    return outcome.status;
  } finally {
    if (raw) process.stdin.setRawMode(false);
    for (const [signal, listener] of listeners) process.off(signal, listener);
    if (invocation.tty) process.off("SIGWINCH", onResize);
    client.close();
  }
}

export const exec = defineCommand({
  meta: { name: "exec", description: "Run a command in a named VM (burrow run --name): burrow exec [OPTIONS] NAME -- CMD [ARG...]; its output here, its exit status as this one's" },
  args: {
    interactive: { type: "boolean", alias: "i", description: "feed this stdin to the command (EOF closes its stdin)" },
    tty: { type: "boolean", alias: "t", description: "a pseudo-terminal sized like this one (default 24x80), resized with it; raw mode with -i on a terminal" },
    env: { type: "string", alias: "e", description: "NAME=VALUE over the workload's environment (repeatable)" },
    workdir: { type: "string", alias: "w", description: "working directory in the guest (absolute)" },
    user: { type: "string", alias: "u", description: "NAME or UID[:GID] from the guest's /etc/passwd (default root)" },
    timeout: { type: "string", description: "seconds, then the guest kills the command's process group: status 124" },
    name: { type: "positional", required: false, description: "the VM's name" },
  },
  async run({ rawArgs }) {
    process.exitCode = await runExec(parseExecArgs(rawArgs));
  },
});
