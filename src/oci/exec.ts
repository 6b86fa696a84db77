// `exec [--process F] [--detach] [--pid-file P] [--tty --console-socket S] ID [CMD…]`: a process in
// the container's VM over its control channel. Its process on the host holds its stdio, forwards
// every signal it gets to the guest process's group and exits with its status: this process
// itself, or with --detach an exec holder it starts, whose pid goes to --pid-file once the guest
// process runs.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { ControlClient, type GuestProcess, SpawnError } from "../control/client";
import { relayProcess } from "../commands/relay";
import { describeError } from "../errors";
import * as sys from "../sys";
import { parseOciSpec } from "../workload/oci";
import { type GlobalOptions, UsageError } from "./command-line";
import { type ContainerPaths, effectiveStatus, loadRecord } from "./container-dir";
import { joinCgroup } from "./cgroups";
import { isSandboxPlan } from "./sandbox";
import { FORWARDED_SIGNALS, terminalSize } from "./forwarding";
import { answerParent, killQuietly, spawnSelf, writePidFile } from "./spawn-self";

const CONNECT_TIMEOUT_MS = 5000;
/** The shell's statuses for a command that could not be run, or was not found. */
const CANNOT_RUN = 126;
const NOT_FOUND = 127;

export interface ExecProcess {
  args: string[];
  env: [string, string][];
  cwd: string;
  user: string;
  terminal: boolean;
}

export interface ExecRequestLine {
  id: string;
  processFile: string | null;
  args: string[];
  detach: boolean;
  pidFile: string | null;
  tty: boolean;
  consoleSocket: string | null;
  cwd: string | null;
  env: string[];
  user: string | null;
}

/** A process.json (the spec's `process` object) or the command line's words → what the guest runs. */
export function execProcess(request: ExecRequestLine): ExecProcess {
  if (request.processFile !== null) {
    let text: string;
    try {
      text = readFileSync(request.processFile, "utf8");
    } catch (error) {
      throw new Error(`cannot read --process ${request.processFile}: ${(error as NodeJS.ErrnoException).code ?? describeError(error)}`);
    }
    let object: unknown;
    try {
      object = JSON.parse(text);
    } catch (error) {
      throw new Error(`--process ${request.processFile}: not JSON (${describeError(error)})`);
    }
    const parsed = parseOciSpec(JSON.stringify({ process: object }));
    if (!parsed.ok) throw new Error(`--process ${request.processFile}: ${parsed.error}`);
    if (parsed.spec.argv === null) throw new Error(`--process ${request.processFile}: process.args: required`);
    const terminal = (object as { terminal?: unknown }).terminal === true;
    return {
      args: parsed.spec.argv,
      env: (parsed.spec.env ?? []).map((entry): [string, string] => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]),
      cwd: parsed.spec.request.cwd ?? "/",
      user: parsed.spec.request.user ?? "0:0",
      terminal: terminal || request.tty,
    };
  }
  if (request.args.length === 0) throw new UsageError("exec: a command (or --process) is required");
  return {
    args: request.args,
    env: request.env.map((pair): [string, string] => {
      const equals = pair.indexOf("=");
      if (equals <= 0) throw new UsageError(`exec --env: expected NAME=VALUE, got ${JSON.stringify(pair.slice(0, 40))}`);
      return [pair.slice(0, equals), pair.slice(equals + 1)];
    }),
    cwd: request.cwd ?? "/",
    user: request.user ?? "0:0",
    terminal: request.tty,
  };
}

function readPlanQuietly(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return null; // no plan: the holder's own error says why
  }
}

/** A container an exec can run in: its paths, and its cgroup in every host hierarchy, which the exec's host process joins. */
function runningContainer(root: string, id: string): { paths: ContainerPaths; cgroups: string[] } {
  const { paths, record } = loadRecord(root, id);
  const status = effectiveStatus(record);
  if (status !== "running" && status !== "created") throw new Error(`cannot exec in container ${id}: it is ${status}`);
  const plan = readPlanQuietly(paths.plan) as { cgroups?: unknown } | null;
  if (isSandboxPlan(plan)) throw new Error(`cannot exec in container ${id}: it is a pod's sandbox, which runs no VM (exec in the pod's other containers)`);
  const cgroups = Array.isArray(plan?.cgroups) ? plan.cgroups.filter((dir): dir is string => typeof dir === "string") : [];
  return { paths, cgroups };
}

/** Runs `proc` in the container with our stdio; `started` hears the guest pid (or why not) first. Returns the exit status. */
async function runInContainer(paths: ContainerPaths, id: string, proc: ExecProcess, started: (outcome: { pid: number } | { error: string }) => void): Promise<number> {
  let client: ControlClient;
  try {
    client = await ControlClient.connect(paths.controlSocket, { timeoutMs: CONNECT_TIMEOUT_MS, helloTimeoutMs: CONNECT_TIMEOUT_MS });
  } catch (error) {
    const reason = `container ${id}: cannot reach its VM's control channel: ${describeError(error)}`;
    started({ error: reason });
    throw new Error(reason);
  }
  let guest: GuestProcess | null = null;
  const forwarders = FORWARDED_SIGNALS.map((signal) => [signal, () => void guest?.kill(constants.signals[signal]!).catch(() => {})] as const);
  const onResize = () => {
    const { rows, cols } = terminalSize();
    void guest?.resize(rows, cols).catch(() => {});
  };
  try {
    for (const [signal, listener] of forwarders) process.on(signal, listener);
    if (proc.terminal) process.on("SIGWINCH", onResize);
    guest = client.spawn(proc.args, { env: proc.env, cwd: proc.cwd, user: proc.user, stdin: true, ...(proc.terminal ? { tty: terminalSize() } : {}) });
    try {
      started({ pid: await guest.pid });
    } catch (error) {
      started({ error: describeError(error) });
      if (error instanceof SpawnError) return error.errnoName === "ENOENT" ? NOT_FOUND : CANNOT_RUN;
      throw error;
    }
    const { exited } = await relayProcess(guest, { feedStdin: true });
    if (exited instanceof Error) throw new Error(`container ${id}: ${describeError(exited)}`);
    return exited.exitCode;
  } finally {
    for (const [signal, listener] of forwarders) process.off(signal, listener);
    if (proc.terminal) process.off("SIGWINCH", onResize);
    client.close();
  }
}

export async function execInContainer(globals: GlobalOptions, request: ExecRequestLine): Promise<number> {
  const { paths, cgroups } = runningContainer(globals.root, request.id);
  const proc = execProcess(request);
  if (proc.terminal && request.consoleSocket === null && request.detach) throw new UsageError("exec --tty --detach needs --console-socket");
  if (!request.detach) {
    // As runc's exec'd processes do: the engine's limits and stats cover the exec's host process.
    joinCgroup(cgroups, process.pid);
    if (request.pidFile !== null) writePidFile(request.pidFile, process.pid);
    return runInContainer(paths, request.id, proc, () => {});
  }
  // The exec holder reads its process from a file of the container's, gone once it started.
  const file = join(paths.dir, `exec-${process.pid}-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify(proc), { mode: 0o600 });
  try {
    const { child, answer } = await spawnSelf(globals, ["exec-holder", "--process", file, request.id], proc.terminal ? request.consoleSocket : null);
    if (!answer.startsWith("started")) {
      killQuietly(child.pid);
      throw new Error(answer.startsWith("error: ") ? answer.slice(7) : `the exec holder (pid ${child.pid}) ended before the process started`);
    }
    if (request.pidFile !== null) writePidFile(request.pidFile, child.pid);
    child.unref();
    return 0;
  } finally {
    rmSync(file, { force: true });
  }
}

/** `exec-holder --process FILE ID`: the detached exec's host process. */
export async function runExecHolder(globals: GlobalOptions, id: string, processFile: string, tty: boolean): Promise<number> {
  const proc = JSON.parse(readFileSync(processFile, "utf8")) as ExecProcess;
  if (proc.terminal || tty) {
    try {
      sys.setControllingTerminal(0);
    } catch {
      // Resizes will not reach the guest: it keeps its first size.
    }
  }
  const tell = answerParent;
  try {
    const { paths, cgroups } = runningContainer(globals.root, id);
    joinCgroup(cgroups, process.pid);
    return await runInContainer(paths, id, proc, (outcome) => tell("pid" in outcome ? `started ${outcome.pid}` : `error: ${outcome.error}`));
  } catch (error) {
    tell(`error: ${describeError(error)}`);
    return CANNOT_RUN;
  }
}
