// A scripted guest supervisor on a unix socket, answering per src/control/wire.ts, that records what
// the host did (credit given, input outstanding, sessions closed) so tests can hold the host to the wire.
// Programs (argv[0]): emit OUT ERR [CODE] (bytes of output), print WORDS… (them on stdout), cat
// (stdin back on stdout, input credit returned as echoed), sleep (until SIGNAL or CLOSE), fail
// (FAILED ENOENT at EXEC), refuse (ERROR BAD_REQUEST), hangup (the connection drops).
import { concatAll, decodeExec, encodeError, encodeExited, encodeFrame, type Frame, readU32, readU64, text, u32Body } from "../../src/control/frames";
import { type FrameTransport, listenUnix, type UnixListener } from "../../src/control/transport";
import { DATA_CHUNK_BYTES, ErrorCode, FLAG_EOF, FrameType, INPUT_WINDOW_BYTES, MAX_SESSIONS, OUTPUT_WINDOW_BYTES, PROTOCOL_VERSION, StartStep } from "../../src/control/wire";

export interface FakeGuestOptions {
  /** Written as soon as a host connects: what a port holds from before. */
  staleBytes?: Uint8Array;
  /** HELLOs left unanswered first (the guest had not opened its port). */
  ignoreHellos?: number;
}

export interface SessionRecord {
  argv: string[];
  /** Output credit the host gave, in all. */
  granted: number;
  /** The most credit the guest held at once (never above the window from an honest host). */
  peakCredit: number;
  outputSent: number;
  /** The most STDIN/PUT_DATA bytes the host had outstanding. */
  peakInput: number;
  stdin: number;
  closed: boolean;
}

interface Pending {
  type: number;
  bytes: Uint8Array;
}

interface Session {
  record: SessionRecord;
  credit: number;
  inputOutstanding: number;
  output: Pending[];
  /** Sent once the output is out. */
  finalFrame: { type: number; body: Uint8Array } | null;
  /** cat: the input credit owed back as its echo leaves. */
  echo: boolean;
  upload: { path: string; size: bigint; mode: number; chunks: Uint8Array[] } | null;
}

export class FakeGuest {
  readonly sessions = new Map<number, SessionRecord>();
  readonly files = new Map<string, { data: Uint8Array; mode: number }>();
  hellos = 0;
  private readonly listener: UnixListener;
  private readonly live = new Map<number, Session>();
  private connection: FrameTransport | null = null;
  private helloAnswersLeft: number;

  constructor(readonly path: string, private readonly options: FakeGuestOptions = {}) {
    this.helloAnswersLeft = -(options.ignoreHellos ?? 0);
    this.listener = listenUnix(path, (transport) => this.accept(transport));
  }

  stop(): void {
    this.connection?.close("the fake guest stopped");
    this.listener.stop();
  }

  /** Sends a session-0 frame (READY, WORKLOAD_EXITED…). */
  announce(type: number, body: Uint8Array): void {
    this.connection?.send(encodeFrame(type, 0, body));
  }

  private accept(transport: FrameTransport): void {
    this.connection = transport;
    this.live.clear();
    transport.onFrame((frame) => this.receive(transport, frame));
    transport.onClose(() => {
      if (this.connection === transport) this.connection = null;
    });
    if (this.options.staleBytes) transport.send(this.options.staleBytes);
  }

  private send(type: number, session: number, body: Uint8Array = new Uint8Array(0), flags = 0): void {
    this.connection?.send(encodeFrame(type, session, body, flags));
  }

  private receive(transport: FrameTransport, frame: Frame): void {
    const { type, session: id, body } = frame;
    if (type === FrameType.HELLO) {
      this.hellos++;
      if (this.helloAnswersLeft++ < 0) return;
      if (readU32(body, "HELLO") !== PROTOCOL_VERSION) return this.send(FrameType.ERROR, 0, encodeError(ErrorCode.VERSION, "another version"));
      this.live.clear();
      return this.send(FrameType.HELLO_ACK, 0, u32Body(PROTOCOL_VERSION, MAX_SESSIONS, OUTPUT_WINDOW_BYTES, INPUT_WINDOW_BYTES, DATA_CHUNK_BYTES));
    }
    switch (type) {
      case FrameType.PING:
        return this.send(FrameType.PONG, id);
      case FrameType.INFO:
        return this.send(FrameType.INFO_REPLY, id, new TextEncoder().encode(JSON.stringify({
          workload: { pid: 42, state: "running", exitCode: null }, uptimeMs: 1234, sessions: this.live.size,
          memory: { totalKiB: 65536, availableKiB: 32768 }, supervisorRssKiB: 900,
        })));
      case FrameType.STOP:
      case FrameType.SIGNAL_WORKLOAD:
        return this.send(FrameType.OK, id);
      case FrameType.RESUME:
        return this.send(FrameType.RESUMED, 0, new TextEncoder().encode(`instance of ${text(body)}`));
      case FrameType.EXEC:
        return this.exec(transport, id, decodeExec(body).argv);
      case FrameType.PUT: {
        const session = this.open(id, ["PUT"]);
        session.upload = { path: text(body, 12), size: readU64(body, "PUT"), mode: readU32(body, "PUT", 8), chunks: [] };
        return;
      }
      case FrameType.GET: {
        const path = text(body);
        const file = this.files.get(path);
        if (!file) return this.send(FrameType.ERROR, id, encodeError(ErrorCode.FILE, `open ${path}: ENOENT`));
        const session = this.open(id, ["GET", path]);
        const info = new Uint8Array(12);
        new DataView(info.buffer).setBigUint64(0, BigInt(file.data.byteLength), true);
        new DataView(info.buffer).setUint32(8, file.mode, true);
        this.send(FrameType.FILE_INFO, id, info);
        session.output.push({ type: FrameType.FILE_DATA, bytes: file.data });
        session.finalFrame = { type: FrameType.FILE_DONE, body: u64(file.data.byteLength) };
        return this.pump(id, session);
      }
    }
    const session = this.live.get(id);
    if (type === FrameType.CLOSE) {
      const record = this.sessions.get(id);
      if (record) record.closed = true;
      this.live.delete(id);
      return;
    }
    if (!session) return this.send(FrameType.ERROR, id, encodeError(ErrorCode.NO_SESSION, `session ${id} is not open`));
    switch (type) {
      case FrameType.CREDIT: {
        const bytes = readU32(body, "CREDIT");
        session.credit += bytes;
        session.record.granted += bytes;
        session.record.peakCredit = Math.max(session.record.peakCredit, session.credit);
        return this.pump(id, session);
      }
      case FrameType.STDIN:
      case FrameType.PUT_DATA: {
        session.inputOutstanding += body.byteLength;
        session.record.peakInput = Math.max(session.record.peakInput, session.inputOutstanding);
        session.record.stdin += body.byteLength;
        if (session.inputOutstanding > INPUT_WINDOW_BYTES) {
          this.live.delete(id);
          return this.send(FrameType.ERROR, id, encodeError(ErrorCode.CREDIT_EXCEEDED, "input beyond the window"));
        }
        if (session.upload) return this.uploadData(id, session, body, (frame.flags & FLAG_EOF) !== 0);
        if (session.echo) {
          if (body.byteLength > 0) session.output.push({ type: FrameType.STDOUT, bytes: body });
          if (frame.flags & FLAG_EOF) session.finalFrame = { type: FrameType.EXITED, body: encodeExited({ exitCode: 0, signal: 0, oomKilled: false, timedOut: false }) };
          return this.pump(id, session);
        }
        // Taken off the buffer and dropped, like a process that does not read.
        session.inputOutstanding -= body.byteLength;
        return this.send(FrameType.INPUT_CREDIT, id, u32Body(body.byteLength));
      }
      case FrameType.SIGNAL: {
        const signal = readU32(body, "SIGNAL");
        this.send(FrameType.OK, id);
        this.live.delete(id);
        return this.send(FrameType.EXITED, id, encodeExited({ exitCode: 128 + signal, signal, oomKilled: false, timedOut: false }));
      }
      case FrameType.RESIZE:
        return this.send(FrameType.OK, id);
      default:
        return this.send(FrameType.ERROR, id, encodeError(ErrorCode.UNKNOWN_TYPE, `type ${type}`));
    }
  }

  private open(id: number, argv: string[]): Session {
    const record: SessionRecord = { argv, granted: 0, peakCredit: OUTPUT_WINDOW_BYTES, outputSent: 0, peakInput: 0, stdin: 0, closed: false };
    const session: Session = { record, credit: OUTPUT_WINDOW_BYTES, inputOutstanding: 0, output: [], finalFrame: null, echo: false, upload: null };
    this.sessions.set(id, record);
    this.live.set(id, session);
    return session;
  }

  private exec(transport: FrameTransport, id: number, argv: string[]): void {
    const [program = "", ...args] = argv;
    if (program === "fail") return this.send(FrameType.FAILED, id, concatAll([u32Body(2, StartStep.EXEC), new TextEncoder().encode("execve fail: No such file or directory")]));
    if (program === "refuse") return this.send(FrameType.ERROR, id, encodeError(ErrorCode.BAD_REQUEST, "refused on purpose"));
    if (program === "hangup") return transport.close("hangup on purpose");
    const session = this.open(id, argv);
    this.send(FrameType.STARTED, id, u32Body(1000 + id));
    const exited = (exitCode: number) => ({ type: FrameType.EXITED, body: encodeExited({ exitCode, signal: 0, oomKilled: false, timedOut: false }) });
    if (program === "emit") {
      session.output.push({ type: FrameType.STDOUT, bytes: pattern(Number(args[0] ?? 0), 1) });
      session.output.push({ type: FrameType.STDERR, bytes: pattern(Number(args[1] ?? 0), 2) });
      session.finalFrame = exited(Number(args[2] ?? 0));
    } else if (program === "print") {
      session.output.push({ type: FrameType.STDOUT, bytes: new TextEncoder().encode(args.join(" ")) });
      session.finalFrame = exited(0);
    } else if (program === "cat") {
      session.echo = true;
    } else if (program !== "sleep") {
      session.finalFrame = exited(127);
    }
    this.pump(id, session);
  }

  private uploadData(id: number, session: Session, body: Uint8Array, eof: boolean): void {
    session.upload!.chunks.push(body.slice());
    session.inputOutstanding -= body.byteLength;
    this.send(FrameType.INPUT_CREDIT, id, u32Body(body.byteLength));
    if (!eof) return;
    const upload = session.upload!;
    const data = concatAll([...upload.chunks]);
    this.live.delete(id);
    if (BigInt(data.byteLength) !== upload.size) return this.send(FrameType.ERROR, id, encodeError(ErrorCode.FILE, `${data.byteLength} bytes of ${upload.size}`));
    this.files.set(upload.path, { data, mode: upload.mode });
    this.send(FrameType.FILE_DONE, id, u64(data.byteLength));
  }

  /** Sends output within credit only; the final frame once all is out. */
  private pump(id: number, session: Session): void {
    while (session.output.length > 0 && session.credit > 0) {
      const head = session.output[0]!;
      const size = Math.min(head.bytes.byteLength, session.credit, DATA_CHUNK_BYTES);
      this.send(head.type, id, head.bytes.subarray(0, size));
      session.credit -= size;
      session.record.outputSent += size;
      if (session.echo) {
        session.inputOutstanding -= size;
        this.send(FrameType.INPUT_CREDIT, id, u32Body(size));
      }
      head.bytes = head.bytes.subarray(size);
      if (head.bytes.byteLength === 0) session.output.shift();
    }
    if (session.output.length === 0 && session.finalFrame) {
      this.send(session.finalFrame.type, id, session.finalFrame.body);
      this.live.delete(id);
    }
  }
}

/** Deterministic bytes, distinct per stream. */
export function pattern(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let index = 0; index < size; index++) bytes[index] = (index * 7 + seed) % 251;
  return bytes;
}

function u64(value: number): Uint8Array {
  const body = new Uint8Array(8);
  new DataView(body.buffer).setBigUint64(0, BigInt(value), true);
  return body;
}

