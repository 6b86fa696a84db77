// The holder's socket: one JSON line in, one JSON line out, per connection. `start`, `kill`,
// `pause` and `resume` reach the container's holder through it; both sides' shapes live here.
import type { Socket } from "bun";
import { connectUnix } from "../control/unix-socket";

export type HolderRequest = { op: "start" } | { op: "kill"; signal: number } | { op: "pause" } | { op: "resume" };
export type HolderReply = { ok: true } | { ok: false; error: string };

/** A request line is small; anything longer is not ours. */
export const MAX_REQUEST_BYTES = 4096;
const REPLY_TIMEOUT_MS = 30_000;

export function parseHolderRequest(line: string): HolderRequest | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return "not JSON";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "expected an object";
  const { op, signal } = value as { op?: unknown; signal?: unknown };
  if (op === "start" || op === "pause" || op === "resume") return { op };
  if (op === "kill") return typeof signal === "number" && Number.isInteger(signal) && signal >= 1 && signal <= 64 ? { op, signal } : "kill: expected a signal from 1 to 64";
  return `unknown op ${JSON.stringify(String(op).slice(0, 20))}`;
}

/**
 * The holder's side: each connection's first line parsed and handed to `handle`; its success or
 * its error is the one reply line, then the connection ends. A line longer than the bound is refused.
 */
export function serveHolderRequests(socketPath: string, handle: (request: HolderRequest) => Promise<void>, describe: (error: unknown) => string) {
  const answer = (socket: Socket<{ buffer: string }>, reply: HolderReply) => {
    socket.write(`${JSON.stringify(reply)}\n`);
    socket.end();
  };
  return Bun.listen<{ buffer: string }>({
    unix: socketPath,
    socket: {
      open: (socket) => void (socket.data = { buffer: "" }),
      data: (socket, data) => {
        socket.data.buffer += Buffer.from(data).toString("utf8");
        const end = socket.data.buffer.indexOf("\n");
        if (end < 0) {
          if (socket.data.buffer.length > MAX_REQUEST_BYTES) answer(socket, { ok: false, error: `a request longer than ${MAX_REQUEST_BYTES} bytes` });
          return;
        }
        const request = parseHolderRequest(socket.data.buffer.slice(0, end));
        socket.data.buffer = "";
        if (typeof request === "string") return answer(socket, { ok: false, error: request });
        handle(request).then(
          () => answer(socket, { ok: true }),
          (error: unknown) => answer(socket, { ok: false, error: describe(error) }),
        );
      },
    },
  });
}

/** Sends one request and waits for its reply; a holder that is gone is said as such. */
export async function askHolder(socketPath: string, request: HolderRequest, timeoutMs = REPLY_TIMEOUT_MS): Promise<HolderReply> {
  let buffer = "";
  let settle!: (reply: HolderReply) => void;
  const replied = new Promise<HolderReply>((resolve) => (settle = resolve));
  let socket: Socket<undefined>;
  try {
    socket = await connectUnix(socketPath, {
      data: (_socket, data) => {
        buffer += Buffer.from(data).toString("utf8");
        const end = buffer.indexOf("\n");
        if (end < 0) return;
        try {
          settle(JSON.parse(buffer.slice(0, end)) as HolderReply);
        } catch {
          settle({ ok: false, error: "the holder answered something that is not JSON" });
        }
      },
      close: () => settle({ ok: false, error: "the holder closed the connection without an answer" }),
      error: (_socket, error) => settle({ ok: false, error: `holder socket: ${error.message}` }),
    }, 2000, "container holder");
  } catch (error) {
    return { ok: false, error: `cannot reach the container's holder: ${(error as Error).message}` };
  }
  socket.write(`${JSON.stringify(request)}\n`);
  const timer = setTimeout(() => settle({ ok: false, error: `the holder did not answer ${request.op} within ${timeoutMs / 1000} s` }), timeoutMs);
  try {
    return await replied;
  } finally {
    clearTimeout(timer);
    socket.end();
  }
}
