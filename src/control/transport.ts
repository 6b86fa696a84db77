// Control-channel frames over a byte stream: a unix socket (QEMU's chardev, or a ControlMux's
// listening socket) or an in-process pair. Inbound bytes become frames through the one FrameReader;
// outbound frames go out as fast as the peer takes them.
import { unlinkSync } from "node:fs";
import type { Socket } from "bun";
import { describeError } from "../errors";
import { connectUnix } from "./unix-socket";
import { encodeError, encodeFrame, type Frame, FrameError, FrameReader, frameTypeName } from "./frames";
import { ErrorCode, FRAME_MAGIC, FrameType, HEADER_BYTES, MAX_BODY_BYTES, MAX_SESSIONS, OUTPUT_WINDOW_BYTES } from "./wire";

export interface FrameTransport {
  /** Queues one encoded frame (encodeFrame). A closed transport drops it: its onClose already said why. */
  send(frame: Uint8Array): void;
  /** The one consumer of inbound frames; a later call replaces the earlier. */
  onFrame(handler: (frame: Frame) => void): void;
  /** Called once, with why the transport closed. */
  onClose(handler: (reason: string) => void): void;
  close(reason?: string): void;
  readonly closed: boolean;
}

/**
 * The most an outbound queue holds before the transport gives up on its peer. Every data byte on
 * the channel travels within end-to-end credit (the output window toward the host, the input window
 * toward the guest, per session, at most MAX_SESSIONS sessions), so an honest peer that reads keeps
 * the queue far below this; one that stops reading is dropped, not buffered for.
 */
export const QUEUE_LIMIT_BYTES = MAX_SESSIONS * (OUTPUT_WINDOW_BYTES + HEADER_BYTES + MAX_BODY_BYTES);

export interface TransportOptions {
  queueLimitBytes?: number;
}

export interface UnixTransportOptions extends TransportOptions {
  /** How long QEMU may take to make its socket. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface ByteSink {
  write(bytes: Uint8Array): number;
  end(): void;
}

/**
 * Frames over a byte stream. With `awaitHelloAck`, bytes before the first HELLO_ACK header (or a
 * version ERROR) on session 0 are skipped: a freshly connected port may first deliver what it held
 * from before (an earlier connection's frames, a snapshot's), cut anywhere.
 */
class StreamTransport implements FrameTransport {
  private readonly reader = new FrameReader();
  private sync: Uint8Array | null;
  private sink: ByteSink | null = null;
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private frameHandler: ((frame: Frame) => void) | null = null;
  private closeHandler: ((reason: string) => void) | null = null;
  private closeReason: string | null = null;

  constructor(awaitHelloAck: boolean, private readonly queueLimitBytes: number) {
    this.sync = awaitHelloAck ? new Uint8Array(0) : null;
  }

  get closed(): boolean {
    return this.closeReason !== null;
  }

  attach(sink: ByteSink): void {
    this.sink = sink;
    if (this.closed) sink.end();
  }

  onFrame(handler: (frame: Frame) => void): void {
    this.frameHandler = handler;
  }

  onClose(handler: (reason: string) => void): void {
    this.closeHandler = handler;
    if (this.closeReason !== null) handler(this.closeReason);
  }

  send(frame: Uint8Array): void {
    if (this.closed || !this.sink) return;
    if (this.queue.length === 0) {
      const written = Math.max(0, this.sink.write(frame));
      if (written === frame.byteLength) return;
      frame = frame.subarray(written);
    }
    this.queue.push(frame);
    this.queuedBytes += frame.byteLength;
    if (this.queuedBytes > this.queueLimitBytes) this.close(`the peer stopped reading: ${this.queuedBytes} bytes queued for it`);
  }

  /** The socket took what it had: send what waited. */
  drain(): void {
    while (this.sink && this.queue.length > 0) {
      const head = this.queue[0]!;
      const written = Math.max(0, this.sink.write(head));
      this.queuedBytes -= written;
      if (written < head.byteLength) {
        this.queue[0] = head.subarray(written);
        return;
      }
      this.queue.shift();
    }
  }

  receive(chunk: Uint8Array): void {
    if (this.closed) return;
    let bytes = chunk;
    if (this.sync) {
      const joined = concat(this.sync, chunk);
      const { offset, found } = syncPoint(joined);
      if (!found) {
        // Only a possible header's start is kept: skipping never buffers more than one header.
        this.sync = joined.slice(offset);
        return;
      }
      this.sync = null;
      bytes = joined.subarray(offset);
    }
    let frames: Frame[];
    try {
      frames = this.reader.push(bytes);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      // The wire answers a bad frame with ERROR; the stream cannot be trusted after it, so it ends.
      const reason = `a malformed frame from the peer: ${error.message}`;
      this.send(encodeFrame(FrameType.ERROR, 0, encodeError(ErrorCode.BAD_FRAME, reason)));
      this.close(reason);
      return;
    }
    for (const frame of frames) {
      if (this.closed) return;
      if (!this.frameHandler) {
        this.close(`a ${frameTypeName(frame.type)} frame arrived before anyone listened for frames`);
        return;
      }
      this.frameHandler(frame);
    }
  }

  /** The connection went: the peer closed it, or it failed. */
  ended(reason: string): void {
    this.finish(this.reader.buffered > 0 ? `${reason} (in the middle of a frame)` : reason);
  }

  close(reason = "closed by this side"): void {
    if (this.closed) return;
    this.drain();
    this.sink?.end();
    this.finish(reason);
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closeReason = reason;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.closeHandler?.(reason);
  }
}

/** Where skipping ends: the offset of a sync header (found), or of the bytes that may still become one. */
function syncPoint(bytes: Uint8Array): { offset: number; found: boolean } {
  const magicLow = FRAME_MAGIC & 0xff;
  const magicHigh = FRAME_MAGIC >> 8;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < bytes.byteLength; at++) {
    if (bytes[at] !== magicLow) continue;
    if (at + 1 < bytes.byteLength && bytes[at + 1] !== magicHigh) continue;
    if (at + HEADER_BYTES + 4 > bytes.byteLength) return { offset: at, found: false };
    const type = bytes[at + 2];
    const session = view.getUint32(at + 4, true);
    const length = view.getUint32(at + 8, true);
    if (session !== 0 || length > MAX_BODY_BYTES) continue;
    if (type === FrameType.HELLO_ACK && length >= 20) return { offset: at, found: true };
    if (type === FrameType.ERROR && length >= 4 && view.getUint32(at + HEADER_BYTES, true) === ErrorCode.VERSION) return { offset: at, found: true };
  }
  return { offset: bytes.byteLength, found: false };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return b;
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

/**
 * A transport to a unix socket that answers HELLO (QEMU's control chardev, a ControlMux). Connecting
 * retries until `timeoutMs` (QEMU makes its socket a few ms after it starts); what the socket holds
 * before the first HELLO_ACK is skipped.
 */
export async function unixTransport(path: string, options: UnixTransportOptions = {}): Promise<FrameTransport> {
  const transport = new StreamTransport(true, options.queueLimitBytes ?? QUEUE_LIMIT_BYTES);
  const socket = await connectUnix(path, {
    data: (_socket, data) => transport.receive(data),
    drain: () => transport.drain(),
    end: () => transport.ended(`the control socket ${path} was closed by its peer`),
    close: () => transport.ended(`the control socket ${path} was closed by its peer`),
    error: (_socket, error) => transport.ended(`the control socket ${path} failed: ${describeError(error)}`),
  }, options.timeoutMs ?? 10_000, "control", options.signal);
  transport.attach(socketSink(socket));
  return transport;
}

function socketSink(socket: Socket<unknown>): ByteSink {
  return { write: (bytes) => socket.write(bytes), end: () => socket.end() };
}

export interface UnixListener {
  stop(): void;
}

/** Accepts connections on a unix socket (a path, or "\0name" for an abstract one), each a transport of its own. */
export function listenUnix(path: string, onConnection: (transport: FrameTransport) => void, options: TransportOptions = {}): UnixListener {
  const limit = options.queueLimitBytes ?? QUEUE_LIMIT_BYTES;
  let listener;
  try {
    listener = Bun.listen<StreamTransport>({
      unix: path,
      socket: {
        open: (socket) => {
          socket.data = new StreamTransport(false, limit);
          socket.data.attach(socketSink(socket));
          onConnection(socket.data);
        },
        data: (socket, data) => socket.data.receive(data),
        drain: (socket) => socket.data.drain(),
        end: (socket) => socket.data.ended("the client closed its connection"),
        close: (socket) => socket.data.ended("the client closed its connection"),
        error: (socket, error) => socket.data.ended(`the client's connection failed: ${describeError(error)}`),
      },
    });
  } catch (error) {
    throw new Error(`cannot listen on the control socket ${path}: ${describeError(error)}`);
  }
  return {
    stop: () => {
      listener.stop(true);
      // Bun leaves a path socket's file behind; an abstract one has none.
      if (!path.startsWith("\0")) {
        try {
          unlinkSync(path);
        } catch {
          // Already gone: nothing to clean.
        }
      }
    },
  };
}

/**
 * Two connected in-process transports. Frames are delivered in a later microtask (never inside the
 * sender's call) and decoded by the same reader a socket uses, so both ends behave like a socket's.
 */
export function transportPair(): [FrameTransport, FrameTransport] {
  const first = new StreamTransport(false, QUEUE_LIMIT_BYTES);
  const second = new StreamTransport(false, QUEUE_LIMIT_BYTES);
  const link = (from: StreamTransport, to: StreamTransport): ByteSink => ({
    write: (bytes) => {
      queueMicrotask(() => to.receive(bytes));
      return bytes.byteLength;
    },
    end: () => queueMicrotask(() => to.ended("the other end closed")),
  });
  first.attach(link(first, second));
  second.attach(link(second, first));
  return [first, second];
}
