// Writing a verb's output at the pace its reader takes it, and a reader that went away (EPIPE:
// `burrow logs NAME | head`) as an ordinary end rather than an uncaught stream error.

/** A shell's status for a writer whose pipe's reader went (killed by SIGPIPE). */
export const BROKEN_PIPE_STATUS = 128 + 13;

/**
 * Resolves once the stream took the chunk, so what comes next is read only as fast as this goes
 * out. A failed write (EPIPE) may come as the stream's error event rather than to the callback.
 */
export function writeOut(stream: NodeJS.WritableStream, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    stream.once("error", onError);
    stream.write(chunk, (error) => {
      stream.off("error", onError);
      if (error) reject(error);
      else resolve();
    });
  });
}

/** Until the returned function is called, an error event on stdout or stderr goes to `onError` (once), not to the runtime's crash handler. */
export function guardOutput(onError: (error: Error) => void): () => void {
  let reported = false;
  const listener = (error: Error) => {
    if (reported) return;
    reported = true;
    onError(error);
  };
  process.stdout.on("error", listener);
  process.stderr.on("error", listener);
  return () => {
    process.stdout.off("error", listener);
    process.stderr.off("error", listener);
  };
}

export function isBrokenPipe(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === "EPIPE";
}
