// burrow-oci starting burrow-oci: the holder and the exec holder run as processes of their own,
// detached, with the container's stdio (or a pty's slave), and say on fd 3 when they are ready
// ("ready", "started PID") or why not ("error: …"). And the pid file runc's way.
import { createReadStream, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Subprocess } from "bun";
import * as sys from "../sys";
import type { GlobalOptions } from "./command-line";
import { sendConsole } from "./console";

/** The fd a child says its first word on. */
export const ANSWER_FD = 3;

/** The command line that runs burrow-oci again (compiled: the executable; from source: bun and the entry). */
function selfCommand(): string[] {
  return Bun.isStandaloneExecutable ? [process.execPath, "oci"] : [process.execPath, process.argv[1]!, "oci"];
}

/** The global options a child needs to find the container and log where this one does. */
function globalArgs(globals: GlobalOptions): string[] {
  return ["--root", globals.root, ...(globals.log ? ["--log", globals.log] : []), "--log-format", globals.logFormat, ...(globals.debug ? ["--debug"] : [])];
}

/**
 * Starts `burrow-oci VERB ARGS…` detached (a session of its own: a pty's holder makes the pty its
 * controlling terminal; the engine reaps it once we exit) with our stdio, or with the slave of a
 * pty whose master went to `consoleSocket`; returns it and its first word.
 */
export async function spawnSelf(globals: GlobalOptions, args: string[], consoleSocket: string | null): Promise<{ child: Subprocess; answer: string }> {
  const console = consoleSocket === null ? null : sendConsole(consoleSocket);
  let child: Subprocess;
  try {
    const stdio = console === null ? (["inherit", "inherit", "inherit"] as const) : [console.slave, console.slave, console.slave];
    child = Bun.spawn([...selfCommand(), ...globalArgs(globals), ...args], { stdio: [stdio[0], stdio[1], stdio[2], "pipe"], detached: true });
  } finally {
    // The child has its own copies of the slave.
    if (console !== null) sys.closeQuietly(console.slave);
  }
  const fd = child.stdio[ANSWER_FD] as number;
  // Bun makes its end non-blocking; the read below waits in the thread pool, so it must block.
  sys.fcntl(fd, sys.Fcntl.F_SETFL, sys.fcntl(fd, sys.Fcntl.F_GETFL) & ~sys.OpenFlags.NONBLOCK);
  let answer = "";
  for await (const chunk of createReadStream("", { fd })) answer += String(chunk);
  return { child, answer: answer.trim() };
}

/** A child's side: its first word, once. */
export function answerParent(line: string): void {
  try {
    sys.writeAll(ANSWER_FD, `${line}\n`);
    sys.close(ANSWER_FD);
  } catch {
    // The parent went away (killed): the record says the same.
  }
}

/** runc writes the pid file whole: a reader never sees an empty one. */
export function writePidFile(path: string, pid: number): void {
  const temporary = join(dirname(path), `.${process.pid}.pid.tmp`);
  writeFileSync(temporary, String(pid));
  renameSync(temporary, path);
}

export function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}
