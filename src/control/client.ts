// The host's client of the control channel: requests to the guest's resident supervisor (ping,
// info, stop, exec with streamed stdio, file transfer, snapshot resume), each its own session over
// one FrameTransport, every data byte within the wire's credit (src/control/wire.ts).
import { constants } from "node:os";
import { errnoName } from "../sys/errno";
import {
  concatAll,
  decodeError, decodeExited, decodeFailed, decodeFileInfo, decodeHelloAck, encodeExec, encodeFrame, encodePut, encodeResize,
  type ExecRequest, type Exited, type Frame, FrameError, frameTypeName, type HelloAck, pathBytes, readU32, readU64, text, u32Body,
} from "./frames";
import { type FrameTransport, unixTransport, type UnixTransportOptions } from "./transport";
import { DATA_CHUNK_BYTES, ErrorCode, FLAG_EOF, FrameType, INPUT_WINDOW_BYTES, OUTPUT_WINDOW_BYTES, PROTOCOL_VERSION, PUT_WINDOW_BYTES, StartStep } from "./wire";

const HELLO_RETRY_MS = 500;
const HELLO_RETRY_MAX_MS = 8000;
const HELLO_TIMEOUT_MS = 10_000;
/** Consumed output is granted back in batches, not a CREDIT frame per chunk. */
const GRANT_BATCH_BYTES = OUTPUT_WINDOW_BYTES / 4;
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

// ---- errors ------------------------------------------------------------------------------------

const ERROR_NAMES = new Map<number, string>(Object.entries(ErrorCode).map(([name, code]) => [code, name]));
const STEP_NAMES = new Map<number, string>(Object.entries(StartStep).map(([name, step]) => [step, name]));

/** The guest's ERROR answer to a request. */
export class GuestError extends Error {
  readonly codeName: string;

  constructor(readonly code: number, readonly guestText: string) {
    const codeName = ERROR_NAMES.get(code) ?? `error ${code}`;
    super(`the guest refused: ${codeName}: ${guestText}`);
    this.name = "GuestError";
    this.codeName = codeName;
  }
}

/** FAILED: the process never ran. */
export class SpawnError extends Error {
  readonly errnoName: string;
  readonly stepName: string;

  constructor(readonly program: string, readonly errno: number, readonly step: number, readonly guestText: string) {
    const name = errnoName(errno);
    const stepName = STEP_NAMES.get(step) ?? `step ${step}`;
    super(`${program} did not start: ${stepName} failed with ${name}: ${guestText}`);
    this.name = "SpawnError";
    this.errnoName = name;
    this.stepName = stepName;
  }
}

/** The channel closed while the request was pending. */
export class ChannelClosedError extends Error {
  constructor(readonly reason: string) {
    super(`the control channel closed: ${reason}`);
    this.name = "ChannelClosedError";
  }
}

function guestError(body: Uint8Array): GuestError {
  const { code, message } = decodeError(body);
  return new GuestError(code, message);
}

// ---- the handshake -----------------------------------------------------------------------------

export interface Greeting {
  ack: HelloAck;
  /** HELLO_ACK's body as the guest sent it (a relay hands it on). */
  body: Uint8Array;
}

/**
 * HELLO until HELLO_ACK: re-sent every HELLO_RETRY_MS (the guest may not have opened its port yet),
 * given up after `timeoutMs`. Frames before the ack are from before this connection and dropped.
 * On the ack, `onFrame` takes over the transport at once, so no frame after it is lost.
 */
export function greet(transport: FrameTransport, onFrame: (frame: Frame) => void, timeoutMs = HELLO_TIMEOUT_MS): Promise<Greeting> {
  return new Promise((resolve, reject) => {
    const hello = encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION));
    // Backing off: while a guest boots its port holds every HELLO, and each one is answered once it opens.
    let retryMs = HELLO_RETRY_MS;
    let retry: ReturnType<typeof setTimeout>;
    const again = () => {
      transport.send(hello);
      retryMs = Math.min(retryMs * 2, HELLO_RETRY_MAX_MS);
      retry = setTimeout(again, retryMs);
    };
    retry = setTimeout(again, retryMs);
    const deadline = setTimeout(() => fail(new Error(`no HELLO_ACK on the control channel within ${timeoutMs} ms (is the guest's supervisor serving it?)`)), timeoutMs);
    const stop = () => {
      clearTimeout(retry);
      clearTimeout(deadline);
    };
    const fail = (error: Error) => {
      stop();
      reject(error);
      transport.close(error.message);
    };
    transport.onClose((reason) => {
      stop();
      reject(new ChannelClosedError(reason));
    });
    transport.onFrame((frame) => {
      if (frame.session !== 0) return;
      try {
        if (frame.type === FrameType.ERROR) {
          const error = guestError(frame.body);
          if (error.code === ErrorCode.VERSION) fail(error);
          return;
        }
        if (frame.type !== FrameType.HELLO_ACK) return;
        const ack = decodeHelloAck(frame.body);
        if (ack.version !== PROTOCOL_VERSION) {
          fail(new Error(`the guest speaks control protocol ${ack.version}, this host ${PROTOCOL_VERSION}`));
          return;
        }
        stop();
        transport.onFrame(onFrame);
        resolve({ ack, body: frame.body });
      } catch (error) {
        if (!(error instanceof FrameError)) throw error;
        fail(new Error(`a malformed ${frameTypeName(frame.type)} in the handshake: ${error.message}`));
      }
    });
    transport.send(hello);
  });
}

// ---- plumbing ----------------------------------------------------------------------------------

/** A promise with its settlers. Marked handled: a caller need not await what it does not want. */
class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: Error) => void;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.promise.catch(() => {});
  }
}

/** What a session's handler gets from the client. */
interface SessionLink {
  /** Sends on the session while it is open; a frame for an ended session is dropped. */
  send(type: number, body?: Uint8Array, flags?: number): void;
  /** The session is over on this side: later frames to it are ignored. */
  end(): void;
}

/** A session's handler. `frame` throws FrameError for what breaks the wire (the client then CLOSEs). */
interface Session {
  frame(frame: Frame): void;
  fail(error: Error): void;
}

/** Output credit the guest holds for one session (its streams together), granted back as consumed. */
class OutputCredit {
  private remaining = OUTPUT_WINDOW_BYTES;
  private ungranted = 0;

  constructor(private readonly grant: (bytes: number) => void) {}

  received(bytes: number): void {
    if (bytes > this.remaining) throw new FrameError(`${bytes} bytes of output with ${this.remaining} bytes of credit left`);
    this.remaining -= bytes;
  }

  consumed(bytes: number): void {
    this.ungranted += bytes;
    if (this.ungranted < GRANT_BATCH_BYTES) return;
    this.remaining += this.ungranted;
    this.grant(this.ungranted);
    this.ungranted = 0;
  }
}

/**
 * A guest output stream whose reader's pace is the guest's: a chunk counts as consumed (and its
 * credit goes back) only when the reader takes it, so what waits here is at most the credit given.
 */
class CreditedStream {
  readonly stream: ReadableStream<Uint8Array>;
  private readonly chunks: Uint8Array[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private error: Error | null = null;
  private cancelled = false;

  constructor(private readonly credit: OutputCredit, private readonly onCancel: () => void = () => {}) {
    this.stream = new ReadableStream<Uint8Array>({
      pull: (controller) => this.pull(controller),
      cancel: () => {
        this.cancelled = true;
        for (const chunk of this.chunks.splice(0)) this.credit.consumed(chunk.byteLength);
        this.onCancel();
      },
    }, { highWaterMark: 0 });
  }

  push(chunk: Uint8Array): void {
    // A reader that gave up still must not stall the session's other stream.
    if (this.cancelled) return this.credit.consumed(chunk.byteLength);
    this.chunks.push(chunk);
    this.wakeReader();
  }

  end(): void {
    this.ended = true;
    this.wakeReader();
  }

  fail(error: Error): void {
    this.error ??= error;
    this.wakeReader();
  }

  private wakeReader(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private async pull(controller: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    for (;;) {
      const chunk = this.chunks.shift();
      if (chunk) {
        controller.enqueue(chunk);
        this.credit.consumed(chunk.byteLength);
        return;
      }
      if (this.error) return controller.error(this.error);
      if (this.ended) return controller.close();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

/** Input the guest has not acknowledged yet (`size` at most: its window), for one session's writer at a time. */
class InputWindow {
  private available: number;
  private wake: (() => void) | null = null;
  private error: Error | null = null;

  constructor(private readonly link: SessionLink, private readonly type: number, private readonly size = INPUT_WINDOW_BYTES) {
    this.available = size;
  }

  credit(bytes: number): void {
    if (bytes > this.size - this.available) throw new FrameError(`INPUT_CREDIT of ${bytes} bytes, more than was sent`);
    this.available += bytes;
    this.wakeWriter();
  }

  fail(error: Error): void {
    this.error ??= error;
    this.wakeWriter();
  }

  /** Sends `bytes` in chunks as the window allows; EOF flags the last (an empty one if there is none). */
  async send(bytes: Uint8Array, eof: boolean): Promise<void> {
    if (bytes.byteLength === 0) {
      if (this.error) throw this.error;
      if (eof) this.link.send(this.type, EMPTY, FLAG_EOF);
      return;
    }
    for (let offset = 0; offset < bytes.byteLength;) {
      const size = await this.take(Math.min(DATA_CHUNK_BYTES, bytes.byteLength - offset));
      const end = offset + size;
      this.link.send(this.type, bytes.subarray(offset, end), eof && end === bytes.byteLength ? FLAG_EOF : 0);
      offset = end;
    }
  }

  private async take(most: number): Promise<number> {
    for (;;) {
      if (this.error) throw this.error;
      if (this.available > 0) {
        const size = Math.min(most, this.available);
        this.available -= size;
        return size;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private wakeWriter(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}

/** The upload window the guest announced, never beyond this host's (its queues are sized by it). */
export function putWindow(hello: HelloAck): number {
  return Math.max(1, Math.min(hello.putWindow, PUT_WINDOW_BYTES));
}

function signalNumber(signal: number | NodeJS.Signals): number {
  const number = typeof signal === "number" ? signal : constants.signals[signal];
  if (number === undefined || !Number.isInteger(number) || number < 1 || number > 64) throw new RangeError(`${signal} is not a signal`);
  return number;
}

const toBytes = (data: Uint8Array | string) => (typeof data === "string" ? utf8.encode(data) : data);

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return concatAll(chunks);
}

// ---- a process -----------------------------------------------------------------------------------

export type SpawnOptions = Omit<ExecRequest, "argv">;

/** One EXEC session: a process in the guest, its streams, its end. */
export class GuestProcess implements Session {
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  private readonly started = new Deferred<number>();
  private readonly ended = new Deferred<Exited>();
  private readonly out: CreditedStream;
  private readonly err: CreditedStream;
  private readonly credit: OutputCredit;
  private readonly input: InputWindow;
  private readonly pendingOks: Deferred<void>[] = [];
  private writing: Promise<void> = Promise.resolve();
  private stdinClosed = false;
  private over: Error | null = null;

  /** @internal ControlClient.spawn makes it. */
  constructor(private readonly link: SessionLink, private readonly program: string, private readonly stdinPipe: boolean) {
    this.credit = new OutputCredit((bytes) => link.send(FrameType.CREDIT, u32Body(bytes)));
    this.out = new CreditedStream(this.credit);
    this.err = new CreditedStream(this.credit);
    this.stdout = this.out.stream;
    this.stderr = this.err.stream;
    this.input = new InputWindow(link, FrameType.STDIN);
  }

  get pid(): Promise<number> {
    return this.started.promise;
  }

  /** After both streams ended: how the process ended. */
  get exited(): Promise<Exited> {
    return this.ended.promise;
  }

  frame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.STARTED:
        return this.started.resolve(readU32(frame.body, "STARTED"));
      case FrameType.FAILED: {
        const failed = decodeFailed(frame.body);
        return this.finish(new SpawnError(this.program, failed.errno, failed.step, failed.message));
      }
      case FrameType.STDOUT:
      case FrameType.STDERR:
        this.credit.received(frame.body.byteLength);
        return (frame.type === FrameType.STDOUT ? this.out : this.err).push(frame.body);
      case FrameType.INPUT_CREDIT:
        return this.input.credit(readU32(frame.body, "INPUT_CREDIT"));
      case FrameType.OK: {
        const waiter = this.pendingOks.shift();
        if (!waiter) throw new FrameError("an OK nothing asked for");
        return waiter.resolve();
      }
      case FrameType.EXITED: {
        const exited = decodeExited(frame.body);
        this.out.end();
        this.err.end();
        this.started.reject(new Error(`${this.program}: EXITED came before STARTED`));
        this.settle(new Error(`${this.program} has exited`));
        return this.ended.resolve(exited);
      }
      case FrameType.ERROR:
        return this.finish(guestError(frame.body));
      default:
        throw new FrameError(`${frameTypeName(frame.type)} on an exec session`);
    }
  }

  fail(error: Error): void {
    this.finish(error);
  }

  /** Bytes for the process's stdin, sent as the input window allows; resolves once all are sent. */
  write(data: Uint8Array | string): Promise<void> {
    if (!this.stdinPipe) return Promise.reject(new Error(`${this.program}: no stdin to write to (spawn with stdin: true or a tty)`));
    if (this.stdinClosed) return Promise.reject(new Error(`${this.program}: stdin was closed`));
    const bytes = toBytes(data);
    this.writing = this.writing.then(() => this.input.send(bytes, false));
    return this.writing;
  }

  /** EOF on stdin, after what was written. */
  closeStdin(): Promise<void> {
    if (!this.stdinPipe) return Promise.reject(new Error(`${this.program}: no stdin to write to (spawn with stdin: true or a tty)`));
    if (this.stdinClosed) return this.writing;
    this.stdinClosed = true;
    this.writing = this.writing.then(() => this.input.send(EMPTY, true));
    return this.writing;
  }

  resize(rows: number, cols: number): Promise<void> {
    return this.request(FrameType.RESIZE, encodeResize(rows, cols));
  }

  /** A signal to the process's whole group. */
  kill(signal: number | NodeJS.Signals = "SIGTERM"): Promise<void> {
    return this.request(FrameType.SIGNAL, u32Body(signalNumber(signal)));
  }

  /** Gives the session up: the guest kills the process group; pending promises reject. */
  close(): void {
    if (this.over) return;
    this.link.send(FrameType.CLOSE);
    this.finish(new Error(`${this.program}: the session was closed by this host`));
  }

  private request(type: number, body: Uint8Array): Promise<void> {
    if (this.over) return Promise.reject(this.over);
    const answer = new Deferred<void>();
    this.pendingOks.push(answer);
    this.link.send(type, body);
    return answer.promise;
  }

  private finish(error: Error): void {
    this.started.reject(error);
    this.ended.reject(error);
    this.out.fail(error);
    this.err.fail(error);
    this.settle(error);
  }

  /** Nothing more can be asked of the session. */
  private settle(error: Error): void {
    this.over ??= error;
    this.input.fail(error);
    for (const waiter of this.pendingOks.splice(0)) waiter.reject(error);
    this.link.end();
  }
}

// ---- file transfers ----------------------------------------------------------------------------

/** PUT: data goes within the input window; FILE_DONE says the file is in place. */
class Upload implements Session {
  readonly input: InputWindow;
  readonly done = new Deferred<bigint>();

  constructor(private readonly link: SessionLink, window: number) {
    this.input = new InputWindow(link, FrameType.PUT_DATA, window);
  }

  frame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.INPUT_CREDIT:
        return this.input.credit(readU32(frame.body, "INPUT_CREDIT"));
      case FrameType.FILE_DONE:
        this.link.end();
        this.input.fail(new Error("the upload is already done"));
        return this.done.resolve(readU64(frame.body, "FILE_DONE"));
      case FrameType.ERROR:
        return this.fail(guestError(frame.body));
      default:
        throw new FrameError(`${frameTypeName(frame.type)} on an upload`);
    }
  }

  fail(error: Error): void {
    this.link.end();
    this.input.fail(error);
    this.done.reject(error);
  }

  /** This side gives up (the source failed or lied about its size): the guest discards the upload. */
  abandon(error: Error): void {
    this.link.send(FrameType.CLOSE);
    this.fail(error);
  }
}

/** GET: FILE_INFO, FILE_DATA within output credit, FILE_DONE. */
class Download implements Session {
  readonly info = new Deferred<{ size: bigint; mode: number }>();
  readonly data: CreditedStream;
  private readonly credit: OutputCredit;
  private size: bigint | null = null;
  private received = 0n;

  constructor(private readonly link: SessionLink, path: string) {
    this.credit = new OutputCredit((bytes) => link.send(FrameType.CREDIT, u32Body(bytes)));
    this.data = new CreditedStream(this.credit, () => {
      // The reader does not want the rest: the guest stops sending it.
      link.send(FrameType.CLOSE);
      this.fail(new Error(`${path}: the download was cancelled`));
    });
  }

  frame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.FILE_INFO: {
        const info = decodeFileInfo(frame.body);
        this.size = info.size;
        return this.info.resolve(info);
      }
      case FrameType.FILE_DATA:
        if (this.size === null) throw new FrameError("FILE_DATA before FILE_INFO");
        this.credit.received(frame.body.byteLength);
        this.received += BigInt(frame.body.byteLength);
        if (this.received > this.size) throw new FrameError(`${this.received} bytes of a ${this.size}-byte file`);
        return this.data.push(frame.body);
      case FrameType.FILE_DONE: {
        const sent = readU64(frame.body, "FILE_DONE");
        if (sent !== this.received || this.size === null || sent !== this.size) throw new FrameError(`FILE_DONE says ${sent} bytes; ${this.received} came of ${this.size ?? "an unannounced"} size`);
        this.link.end();
        return this.data.end();
      }
      case FrameType.ERROR:
        return this.fail(guestError(frame.body));
      default:
        throw new FrameError(`${frameTypeName(frame.type)} on a download`);
    }
  }

  fail(error: Error): void {
    this.link.end();
    this.info.reject(error);
    this.data.fail(error);
  }
}

// ---- the client ----------------------------------------------------------------------------------

/** INFO_REPLY's JSON (describeInfo in the guest); fields a newer guest adds pass through. */
export interface GuestInfo {
  /**
   * state: "starting", "waiting" (start=host: no workload until the host's EXEC with `workload`;
   * pid 0), "running", "stopping" or "exited".
   */
  workload: { pid: number; state: string; exitCode: number | null };
  uptimeMs: number;
  sessions: number;
  memory: { totalKiB: number; availableKiB: number };
  supervisorRssKiB: number;
  [field: string]: unknown;
}

export interface ExecResult extends Exited {
  stdout: Uint8Array;
  stderr: Uint8Array;
}

export type ExecOptions = Omit<SpawnOptions, "stdin"> & { stdin?: Uint8Array | string };

export interface ClientOptions {
  /** How long the guest may take to answer HELLO (default 10 s). */
  helloTimeoutMs?: number;
}

export interface ConnectOptions extends UnixTransportOptions, ClientOptions {}

export class ControlClient {
  /** The guest's HELLO_ACK: its version and limits. */
  hello!: HelloAck;
  /** The workload's exit code once WORKLOAD_EXITED came, else null. */
  workloadExit: number | null = null;
  private readonly sessions = new Map<number, Session>();
  private lastSession = 0;
  private closedBy: ChannelClosedError | null = null;
  private lastChannelError: string | null = null;
  private readonly readyWaiters: Deferred<number>[] = [];
  private unclaimedReady: number | null = null;
  private readonly resumeWaiters: Deferred<string>[] = [];
  private readonly workloadExitHandlers: ((exitCode: number) => void)[] = [];
  private readonly errorHandlers: ((error: Error) => void)[] = [];
  private readonly closeHandlers: ((error: ChannelClosedError) => void)[] = [];

  private constructor(private readonly transport: FrameTransport) {}

  /** A client of a unix socket: QEMU's control chardev, or a ControlMux's. */
  static async connect(path: string, options: ConnectOptions = {}): Promise<ControlClient> {
    return ControlClient.over(await unixTransport(path, options), options);
  }

  /** A client over a transport (ControlMux.local(), a test's); resolves after the handshake. */
  static async over(transport: FrameTransport, options: ClientOptions = {}): Promise<ControlClient> {
    const client = new ControlClient(transport);
    client.hello = (await greet(transport, (frame) => client.receive(frame), options.helloTimeoutMs)).ack;
    transport.onClose((reason) => client.shutdown(reason));
    return client;
  }

  get closed(): boolean {
    return this.closedBy !== null;
  }

  onWorkloadExit(handler: (exitCode: number) => void): void {
    this.workloadExitHandlers.push(handler);
  }

  /** ERROR on session 0 (no request of this client's), or a malformed session-0 frame. */
  onError(handler: (error: Error) => void): void {
    this.errorHandlers.push(handler);
  }

  onClose(handler: (error: ChannelClosedError) => void): void {
    this.closeHandlers.push(handler);
    if (this.closedBy) handler(this.closedBy);
  }

  close(): void {
    this.transport.close("this client closed it");
  }

  /** Round trip in ms. */
  async ping(): Promise<number> {
    const start = performance.now();
    await this.request(FrameType.PING, EMPTY, FrameType.PONG);
    return performance.now() - start;
  }

  async info(): Promise<GuestInfo> {
    const reply = await this.request(FrameType.INFO, EMPTY, FrameType.INFO_REPLY);
    try {
      return JSON.parse(text(reply.body)) as GuestInfo;
    } catch (error) {
      throw new Error(`INFO_REPLY is not JSON: ${(error as Error).message}`);
    }
  }

  /** The orderly stop of the guest. */
  async stop(): Promise<void> {
    await this.request(FrameType.STOP, EMPTY, FrameType.OK);
  }

  async signalWorkload(signal: number | NodeJS.Signals): Promise<void> {
    await this.request(FrameType.SIGNAL_WORKLOAD, u32Body(signalNumber(signal)), FrameType.OK);
  }

  /**
   * Starts a process; throws at once on a request the wire cannot carry, or a closed channel.
   * `workload: true` makes it the workload of a guest that waits for the host's (burrow.start=host).
   */
  spawn(argv: string[], options: SpawnOptions = {}): GuestProcess {
    const body = encodeExec({ ...options, argv });
    let child: GuestProcess | null = null;
    const id = this.open({ frame: (frame) => child!.frame(frame), fail: (error) => child!.fail(error) });
    // A terminal takes input whether or not a pipe was asked for: the guest writes it to the pty.
    child = new GuestProcess(this.sessionLink(id), argv[0]!, options.stdin === true || options.tty !== undefined);
    this.transport.send(encodeFrame(FrameType.EXEC, id, body));
    return child;
  }

  /** Runs a process to its end: stdin fed, both outputs collected. */
  async exec(argv: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const { stdin, ...rest } = options;
    const child = this.spawn(argv, { ...rest, stdin: stdin !== undefined });
    // A process may end without reading all its input; its exit, not the feeding, is the answer.
    if (stdin !== undefined) child.write(stdin).then(() => child.closeStdin()).catch(() => {});
    const [stdout, stderr, exited] = await Promise.all([collect(child.stdout), collect(child.stderr), child.exited]);
    return { ...exited, stdout, stderr };
  }

  async writeFile(path: string, data: Uint8Array | string, options: { mode?: number } = {}): Promise<void> {
    const bytes = toBytes(data);
    await this.putFile(path, [bytes], bytes.byteLength, options.mode);
  }

  /** Uploads what `source` yields, which must be exactly `size` bytes; the file appears whole or not at all. */
  async putFile(path: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number | bigint, mode = 0o644): Promise<void> {
    const declared = BigInt(size);
    if (declared < 0n) throw new RangeError(`${path}: a size of ${declared} bytes`);
    const body = encodePut(path, declared, mode);
    let upload: Upload | null = null;
    const id = this.open({ frame: (frame) => upload!.frame(frame), fail: (error) => upload!.fail(error) });
    upload = new Upload(this.sessionLink(id), putWindow(this.hello));
    this.transport.send(encodeFrame(FrameType.PUT, id, body));
    let total = 0n;
    try {
      for await (const chunk of source) {
        total += BigInt(chunk.byteLength);
        if (total > declared) throw new Error(`${path}: the source gave more than the declared ${declared} bytes`);
        await upload.input.send(chunk, false);
      }
      if (total !== declared) throw new Error(`${path}: the source gave ${total} bytes, ${declared} were declared`);
      await upload.input.send(EMPTY, true);
    } catch (error) {
      upload.abandon(error as Error);
      throw error;
    }
    const written = await upload.done.promise;
    if (written !== declared) throw new Error(`${path}: the guest wrote ${written} bytes of ${declared}`);
  }

  /** Streams a guest file; cancelling the stream gives the download up. */
  getFile(path: string): { info: Promise<{ size: bigint; mode: number }>; stream: ReadableStream<Uint8Array> } {
    const body = pathBytes(path);
    let download: Download | null = null;
    const id = this.open({ frame: (frame) => download!.frame(frame), fail: (error) => download!.fail(error) });
    download = new Download(this.sessionLink(id), path);
    this.transport.send(encodeFrame(FrameType.GET, id, body));
    return { info: download.info.promise, stream: download.data.stream };
  }

  async readFile(path: string): Promise<Uint8Array> {
    const { info, stream } = this.getFile(path);
    const reader = stream.getReader();
    let size: bigint;
    try {
      size = (await info).size;
    } catch (error) {
      reader.cancel().catch(() => {});
      throw error;
    }
    // The file is held whole: its declared size bounds the buffer, not what arrives.
    if (size > BigInt(2 ** 32)) {
      await reader.cancel();
      throw new Error(`${path}: ${size} bytes is too large to read into memory (stream it with getFile)`);
    }
    const out = new Uint8Array(Number(size));
    let offset = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      out.set(value, offset);
      offset += value.byteLength;
    }
    return out;
  }

  /** The next READY (the guest may be saved now): its uptime in ms. */
  nextReady(): Promise<number> {
    if (this.closedBy) return Promise.reject(this.closedBy);
    if (this.unclaimedReady !== null) {
      const uptime = this.unclaimedReady;
      this.unclaimedReady = null;
      return Promise.resolve(uptime);
    }
    const waiter = new Deferred<number>();
    this.readyWaiters.push(waiter);
    return waiter.promise;
  }

  /** RESUME with the resume text; resolves with RESUMED's instance. */
  resume(resumeText: string): Promise<string> {
    if (this.closedBy) return Promise.reject(this.closedBy);
    const frame = encodeFrame(FrameType.RESUME, 0, utf8.encode(resumeText));
    const waiter = new Deferred<string>();
    this.resumeWaiters.push(waiter);
    this.transport.send(frame);
    return waiter.promise;
  }

  private request(type: number, body: Uint8Array, answer: number): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const id = this.open({
        frame: (frame) => {
          this.sessions.delete(id);
          if (frame.type === answer) resolve(frame);
          else if (frame.type === FrameType.ERROR) reject(guestError(frame.body));
          else reject(new Error(`the guest answered ${frameTypeName(type)} with ${frameTypeName(frame.type)}`));
        },
        fail: reject,
      });
      this.transport.send(encodeFrame(type, id, body));
    });
  }

  private open(session: Session): number {
    if (this.closedBy) throw this.closedBy;
    do this.lastSession = this.lastSession >= 0xffffffff ? 1 : this.lastSession + 1;
    while (this.sessions.has(this.lastSession));
    this.sessions.set(this.lastSession, session);
    return this.lastSession;
  }

  private sessionLink(id: number): SessionLink {
    const session = this.sessions.get(id);
    const current = () => session !== undefined && this.sessions.get(id) === session;
    return {
      send: (type, body = EMPTY, flags = 0) => {
        if (current()) this.transport.send(encodeFrame(type, id, body, flags));
      },
      end: () => {
        if (current()) this.sessions.delete(id);
      },
    };
  }

  private receive(frame: Frame): void {
    if (frame.session === 0) return this.channelFrame(frame);
    const session = this.sessions.get(frame.session);
    // A session this side already ended: what the guest still had in flight for it.
    if (!session) return;
    try {
      session.frame(frame);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      if (this.sessions.get(frame.session) === session) {
        this.transport.send(encodeFrame(FrameType.CLOSE, frame.session));
        this.sessions.delete(frame.session);
      }
      session.fail(new Error(`the guest broke the wire on session ${frame.session}: ${error.message}`));
    }
  }

  private channelFrame(frame: Frame): void {
    try {
      switch (frame.type) {
        case FrameType.READY: {
          const uptime = Number(readU64(frame.body, "READY"));
          const waiter = this.readyWaiters.shift();
          if (waiter) waiter.resolve(uptime);
          else this.unclaimedReady = uptime;
          return;
        }
        case FrameType.RESUMED:
          this.resumeWaiters.shift()?.resolve(text(frame.body));
          return;
        case FrameType.WORKLOAD_EXITED: {
          const exitCode = readU32(frame.body, "WORKLOAD_EXITED");
          this.workloadExit = exitCode;
          for (const handler of this.workloadExitHandlers) handler(exitCode);
          return;
        }
        case FrameType.ERROR: {
          const error = guestError(frame.body);
          this.lastChannelError = error.message;
          // The one session-0 request with an answer: a refused RESUME is answered on 0.
          if (error.code === ErrorCode.NOT_NOW || error.code === ErrorCode.BAD_REQUEST) this.resumeWaiters.shift()?.reject(error);
          for (const handler of this.errorHandlers) handler(error);
          return;
        }
        default:
          // HELLO_ACKs to re-sent HELLOs; through a mux, answers on 0 to another client's requests.
          return;
      }
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      const failure = new Error(`a malformed ${frameTypeName(frame.type)} from the guest: ${error.message}`);
      for (const handler of this.errorHandlers) handler(failure);
    }
  }

  private shutdown(reason: string): void {
    if (this.closedBy) return;
    const error = new ChannelClosedError(this.lastChannelError ? `${reason} (the peer's last error: ${this.lastChannelError})` : reason);
    this.closedBy = error;
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    for (const session of sessions) session.fail(error);
    for (const waiter of this.readyWaiters.splice(0)) waiter.reject(error);
    for (const waiter of this.resumeWaiters.splice(0)) waiter.reject(error);
    for (const handler of this.closeHandlers) handler(error);
  }
}
