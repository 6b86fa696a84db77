// A client connection to a unix socket QEMU serves (QMP, the snapshot control port). QEMU makes
// the socket some milliseconds after it starts, so connecting retries until a deadline.
import type { Socket, SocketHandler } from "bun";
import { describeError } from "../errors";

export async function connectUnix(path: string, handlers: SocketHandler<undefined>, timeoutMs: number, what: string): Promise<Socket<undefined>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await Bun.connect({ unix: path, socket: handlers });
    } catch (error) {
      if (performance.now() > deadline) throw new Error(`cannot connect to the ${what} socket ${path}: ${describeError(error)}`);
      await Bun.sleep(5);
    }
  }
}
