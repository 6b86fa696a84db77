// A guest process's streams on this process's own: its stdout and stderr written to ours at the
// pace they take them, our stdin fed to it (EOF closes its stdin). `burrow exec`, the OCI holder
// and `burrow-oci exec` all relay this way.
import type { GuestProcess } from "../control/client";
import type { Exited } from "../control/frames";
import { guardOutput, writeOut } from "./output";

export interface RelayEnd {
  /** How the process ended, or why its session failed. */
  exited: Exited | Error;
  /** Our own output failed (its reader went): the process was closed because of it. */
  outputError: Error | null;
}

/** Relays until the process ended and its output was written; our stdin is read only with `feedStdin`. */
export async function relayProcess(proc: GuestProcess, options: { feedStdin: boolean }): Promise<RelayEnd> {
  let outputError: Error | null = null;
  const unguard = guardOutput((error) => {
    outputError ??= error;
    proc.close();
  });
  const pump = async (stream: ReadableStream<Uint8Array>, out: NodeJS.WriteStream) => {
    const reader = stream.getReader();
    for (;;) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch {
        return; // the session's own failure: `exited` reports it
      }
      if (next.done) return;
      try {
        await writeOut(out, next.value);
      } catch (error) {
        // Our output went away: the process goes too (as a pipe's writer gets SIGPIPE).
        outputError ??= error as Error;
        proc.close();
        return;
      }
    }
  };
  let stdinDone = false;
  const feed = async () => {
    try {
      for await (const chunk of process.stdin) {
        if (stdinDone) break;
        await proc.write(chunk as Uint8Array);
      }
      if (!stdinDone) await proc.closeStdin();
    } catch {
      // The process ended (or closed its stdin) first: what was left unread does not matter.
    }
  };
  const feeding = options.feedStdin ? feed() : null;
  try {
    const [, , exited] = await Promise.all([pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr), proc.exited.catch((error: Error) => error)]);
    return { exited, outputError };
  } finally {
    stdinDone = true;
    unguard();
    // Stops the read of our stdin (it would keep this process alive).
    if (feeding) process.stdin.destroy();
  }
}
