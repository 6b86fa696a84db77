// A line-oriented client of a unix socket QEMU serves (the snapshot control port): write text,
// await the next whole line.
import type { Socket } from "bun";
import { LineSplitter } from "./line-splitter";
import { connectUnix } from "./unix-socket";

export class LineSocket {
  private readonly splitter = new LineSplitter();
  private waiters: ((line: string | null) => void)[] = [];
  private lines: string[] = [];
  private closed = false;
  private socket: Socket<undefined> | null = null;

  static async connect(path: string, timeoutMs: number, signal?: AbortSignal): Promise<LineSocket> {
    const client = new LineSocket();
    client.socket = await connectUnix(path, {
      data: (_socket, data) => client.receive(data),
      close: () => client.end(),
      error: () => client.end(),
    }, timeoutMs, "control", signal);
    return client;
  }

  private receive(chunk: Uint8Array): void {
    for (const line of this.splitter.push(chunk)) {
      const waiter = this.waiters.shift();
      if (waiter) waiter(line);
      else this.lines.push(line);
    }
  }

  private end(): void {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter(null);
  }

  /** The next line, or null once the socket closed. */
  nextLine(): Promise<string | null> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  write(text: string): void {
    this.socket?.write(text);
  }

  close(): void {
    this.socket?.end();
  }
}
