// A client connection to a unix socket QEMU serves (QMP, the snapshot control port, the stop
// port). QEMU makes the socket some milliseconds after it starts, so connecting retries until a
// deadline, or until `signal` gives up on it (the run ended first).
import type { Socket, SocketHandler } from "bun";
import { describeError } from "../errors";

export async function connectUnix(path: string, handlers: SocketHandler<undefined>, timeoutMs: number, what: string, signal?: AbortSignal): Promise<Socket<undefined>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) throw new Error(`gave up connecting to the ${what} socket ${path}`);
    try {
      return await Bun.connect({ unix: path, socket: handlers });
    } catch (error) {
      if (performance.now() > deadline) throw new Error(`cannot connect to the ${what} socket ${path}: ${describeError(error)}`);
      await Bun.sleep(5);
    }
  }
}
