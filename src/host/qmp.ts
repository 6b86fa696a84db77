// A small QMP client (QEMU's JSON machine protocol) over a unix socket: typed commands, one at a
// time, replies matched by id; asynchronous events (no id) are not used and pass unread.
import type { Socket } from "bun";
import { LineSplitter } from "./line-splitter";
import { connectUnix } from "../control/unix-socket";

export interface QmpGreeting { version: { qemu: { major: number; minor: number; micro: number }; package: string } }

interface Pending { id: string; resolve: (value: unknown) => void; reject: (error: Error) => void; command: string }

export class QmpClient {
  private readonly lines = new LineSplitter();
  private pending: Pending[] = [];
  private nextId = 1;
  private closed = false;
  greeting: QmpGreeting | null = null;
  private greeted: Promise<void>;
  private onGreeting!: () => void;
  private noGreeting!: (error: Error) => void;

  private constructor(private socket: Socket<undefined> | null = null) {
    this.greeted = new Promise((resolve, reject) => ((this.onGreeting = resolve), (this.noGreeting = reject)));
    // Awaited by connect alone; a QEMU that dies before greeting must not leave it unhandled.
    this.greeted.catch(() => {});
  }

  /** Connect (retrying while QEMU has not made the socket yet), read the greeting, leave negotiation mode. */
  static async connect(path: string, timeoutMs = 10_000, signal?: AbortSignal): Promise<QmpClient> {
    const client = new QmpClient();
    client.socket = await connectUnix(path, {
      data: (_socket, data) => client.receive(data),
      close: () => client.fail(new Error("QMP connection closed by QEMU")),
      error: (_socket, error) => client.fail(new Error(`QMP: ${error.message}`)),
    }, timeoutMs, "QMP", signal);
    await client.greeted;
    await client.execute("qmp_capabilities");
    return client;
  }

  private receive(chunk: Uint8Array): void {
    for (const raw of this.lines.push(chunk)) {
      const line = raw.trim();
      if (!line) continue;
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line);
      } catch {
        continue; // QMP speaks only JSON: a broken line carries nothing to act on
      }
      if ("QMP" in message) {
        this.greeting = message.QMP as QmpGreeting;
        this.onGreeting();
      } else if ("id" in message) {
        const index = this.pending.findIndex((entry) => entry.id === message.id);
        if (index < 0) continue;
        const [entry] = this.pending.splice(index, 1);
        if ("error" in message) {
          const error = message.error as { class?: string; desc?: string };
          entry!.reject(new Error(`QMP ${entry!.command} failed: ${error.class ?? "Error"}: ${error.desc ?? "no description"}`));
        } else {
          entry!.resolve(message.return);
        }
      }
    }
  }

  private fail(error: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.noGreeting(error);
    for (const entry of this.pending.splice(0)) entry.reject(error);
  }

  /** Run one command and return its "return" value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed || !this.socket) return Promise.reject(new Error(`QMP ${command}: connection closed`));
    const id = `burrow-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ id, command, resolve: resolve as (value: unknown) => void, reject });
      this.socket!.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  /** Poll a query until `done` says so (QEMU 7.2 has no blocking wait for these states). */
  async waitFor<T>(command: string, done: (value: T) => boolean, timeoutMs: number, pauseMs = 5): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const value = await this.execute<T>(command);
      if (done(value)) return value;
      if (performance.now() > deadline) throw new Error(`QMP ${command}: still ${JSON.stringify(value)} after ${timeoutMs} ms`);
      await Bun.sleep(pauseMs);
    }
  }

  close(): void {
    this.closed = true;
    this.socket?.end();
  }
}
