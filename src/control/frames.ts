// The control channel's frames as bytes (the layout is src/control/wire.ts's): the encoder both
// the host and the tests use, and a bounded reader that holds at most one frame's bytes.
import { DATA_CHUNK_BYTES, ExecField, FLAG_EOF, FRAME_MAGIC, FrameType, HEADER_BYTES, MAX_BODY_BYTES, MAX_EXEC_ARGS, MAX_EXEC_ENV, MAX_PATH_BYTES } from "./wire";

export interface Frame {
  type: number;
  flags: number;
  session: number;
  body: Uint8Array;
}

const TYPE_NAMES = new Map<number, string>(Object.entries(FrameType).map(([name, value]) => [value, name]));
const KNOWN_TYPES = new Set<number>(TYPE_NAMES.keys());

export function frameTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `0x${type.toString(16)}`;
}

export function encodeFrame(type: number, session: number, body: Uint8Array = new Uint8Array(0), flags = 0): Uint8Array {
  if (body.byteLength > MAX_BODY_BYTES) throw new RangeError(`a ${frameTypeName(type)} body of ${body.byteLength} bytes is more than a frame holds (${MAX_BODY_BYTES})`);
  if (!Number.isInteger(session) || session < 0 || session > 0xffffffff) throw new RangeError(`session ${session} is not a u32`);
  const frame = new Uint8Array(HEADER_BYTES + body.byteLength);
  const view = new DataView(frame.buffer);
  view.setUint16(0, FRAME_MAGIC, true);
  view.setUint8(2, type);
  view.setUint8(3, flags);
  view.setUint32(4, session, true);
  view.setUint32(8, body.byteLength, true);
  frame.set(body, HEADER_BYTES);
  return frame;
}

/** The header of a frame at the start of `bytes`, without its body (a relay routes on it). */
export function readHeader(bytes: Uint8Array): { type: number; flags: number; session: number; length: number } | null {
  if (bytes.byteLength < HEADER_BYTES) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  if (view.getUint16(0, true) !== FRAME_MAGIC) throw new FrameError(`bad magic 0x${view.getUint16(0, true).toString(16)}`);
  const length = view.getUint32(8, true);
  if (length > MAX_BODY_BYTES) throw new FrameError(`a body of ${length} bytes, more than ${MAX_BODY_BYTES}`);
  return { type: view.getUint8(2), flags: view.getUint8(3), session: view.getUint32(4, true), length };
}

export class FrameError extends Error {}

/**
 * Frames out of a byte stream. Never holds more than one frame (HEADER_BYTES + MAX_BODY_BYTES) of
 * what it was handed; a bad header throws FrameError and the stream is then unusable (the caller
 * resets the connection). Unknown types are returned: the caller answers them.
 *
 * Each byte is copied once: a body that lies within one chunk is sliced out of it, one cut across
 * chunks is gathered into its own buffer as they come (the chunk itself may be reused by its
 * owner, so no frame keeps a view of it). Nothing is re-joined or moved as chunks arrive.
 */
export class FrameReader {
  /** A header cut across chunks. */
  private readonly head = new Uint8Array(HEADER_BYTES);
  private headBytes = 0;
  /** The frame whose body is being gathered, and how much of it came. */
  private header: { type: number; flags: number; session: number; length: number } | null = null;
  private body: Uint8Array = new Uint8Array(0);
  private bodyBytes = 0;

  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let at = 0;
    for (;;) {
      if (!this.header) {
        if (this.headBytes === 0 && chunk.byteLength - at >= HEADER_BYTES) {
          this.header = readHeader(chunk.subarray(at, at + HEADER_BYTES));
          at += HEADER_BYTES;
        } else {
          const take = Math.min(HEADER_BYTES - this.headBytes, chunk.byteLength - at);
          this.head.set(chunk.subarray(at, at + take), this.headBytes);
          this.headBytes += take;
          at += take;
          if (this.headBytes < HEADER_BYTES) break;
          this.headBytes = 0;
          this.header = readHeader(this.head);
        }
        const header = this.header!;
        if (chunk.byteLength - at >= header.length) {
          frames.push({ type: header.type, flags: header.flags, session: header.session, body: chunk.slice(at, at + header.length) });
          at += header.length;
          this.header = null;
          continue;
        }
        this.body = new Uint8Array(header.length);
        this.bodyBytes = 0;
      }
      const header = this.header!;
      const take = Math.min(header.length - this.bodyBytes, chunk.byteLength - at);
      this.body.set(chunk.subarray(at, at + take), this.bodyBytes);
      this.bodyBytes += take;
      at += take;
      if (this.bodyBytes < header.length) break;
      frames.push({ type: header.type, flags: header.flags, session: header.session, body: this.body });
      this.header = null;
      this.body = new Uint8Array(0);
    }
    return frames;
  }

  /** Bytes of an unfinished frame (a connection that ends with some is truncated). */
  get buffered(): number {
    return this.headBytes + (this.header ? HEADER_BYTES + this.bodyBytes : 0);
  }
}

export function isKnownType(type: number): boolean {
  return KNOWN_TYPES.has(type);
}


// ---- bodies ------------------------------------------------------------------------------------

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export function u32Body(...values: number[]): Uint8Array {
  const body = new Uint8Array(values.length * 4);
  const view = new DataView(body.buffer);
  values.forEach((value, index) => view.setUint32(index * 4, value >>> 0, true));
  return body;
}

function need(body: Uint8Array, bytes: number, what: string): DataView {
  if (body.byteLength < bytes) throw new FrameError(`${what}: body of ${body.byteLength} bytes, expected at least ${bytes}`);
  return new DataView(body.buffer, body.byteOffset, body.byteLength);
}

export function readU32(body: Uint8Array, what: string, offset = 0): number {
  return need(body, offset + 4, what).getUint32(offset, true);
}

export function readU64(body: Uint8Array, what: string, offset = 0): bigint {
  return need(body, offset + 8, what).getBigUint64(offset, true);
}

export function text(body: Uint8Array, offset = 0): string {
  return fromUtf8.decode(body.subarray(offset));
}

export interface ExecRequest {
  argv: string[];
  env?: Record<string, string> | [string, string][];
  cwd?: string;
  /** NAME or UID[:GID], resolved in the guest. */
  user?: string;
  rlimits?: { resource: number; soft: bigint | number; hard: bigint | number }[];
  tty?: { rows: number; cols: number };
  timeoutMs?: number;
  /** A pipe fed by STDIN frames; otherwise /dev/null. */
  stdin?: boolean;
  /**
   * This process is the workload of a guest whose supervisor waits for the host's (start=host): its
   * exit ends the VM. The guest refuses it (ErrorCode.WORKLOAD) anywhere else, and a second time.
   */
  workload?: boolean;
}

export const RLIM_INFINITY = 0xffffffffffffffffn;

/** Why an exec request cannot be sent, or null (the guest checks the same again). */
export function execProblem(request: ExecRequest): string | null {
  if (request.argv.length === 0) return "no program to run (argv is empty)";
  if (request.argv[0] === "") return "the program's name is empty";
  if (request.argv.length > MAX_EXEC_ARGS) return `${request.argv.length} arguments, at most ${MAX_EXEC_ARGS}`;
  if (request.argv.some((arg) => arg.includes("\0"))) return "an argument holds a NUL byte";
  const env = Array.isArray(request.env) ? request.env : Object.entries(request.env ?? {});
  if (env.length > MAX_EXEC_ENV) return `${env.length} variables, at most ${MAX_EXEC_ENV}`;
  for (const [name, value] of env) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return `env: ${JSON.stringify(name)} is not a variable name`;
    if (value.includes("\0")) return `env: ${name} holds a NUL byte`;
  }
  if (request.cwd !== undefined && (!request.cwd.startsWith("/") || request.cwd.includes("\0"))) return `cwd ${JSON.stringify(request.cwd)}: expected an absolute path`;
  if (request.user !== undefined && !/^([a-z_][a-z0-9_.-]{0,31}\$?|\d{1,10}(:\d{1,10})?)$/i.test(request.user)) return `user ${JSON.stringify(request.user)}: expected NAME or UID[:GID]`;
  if (request.tty && !(isU16(request.tty.rows) && isU16(request.tty.cols))) return "tty: rows and cols must be 0 to 65535";
  if (request.timeoutMs !== undefined && !(Number.isInteger(request.timeoutMs) && request.timeoutMs > 0 && request.timeoutMs <= 0xffffffff)) return `timeout ${request.timeoutMs} ms: expected 1 ms to ~49 days`;
  for (const limit of request.rlimits ?? []) {
    if (!Number.isInteger(limit.resource) || limit.resource < 0 || limit.resource > 15) return `rlimit resource ${limit.resource}: expected 0 to 15`;
    if (BigInt(limit.soft) > BigInt(limit.hard)) return `rlimit ${limit.resource}: soft above hard`;
  }
  return null;
}

const isU16 = (value: number) => Number.isInteger(value) && value >= 0 && value <= 0xffff;

/** EXEC's body: ExecField records (u16 tag, u32 length, value). Throws on what execProblem refuses. */
export function encodeExec(request: ExecRequest): Uint8Array {
  const problem = execProblem(request);
  if (problem) throw new RangeError(problem);
  const records: Uint8Array[] = [];
  const record = (tag: number, value: Uint8Array) => {
    const head = new Uint8Array(6);
    const view = new DataView(head.buffer);
    view.setUint16(0, tag, true);
    view.setUint32(2, value.byteLength, true);
    records.push(head, value);
  };
  for (const arg of request.argv) record(ExecField.ARG, utf8.encode(arg));
  const env = Array.isArray(request.env) ? request.env : Object.entries(request.env ?? {});
  for (const [name, value] of env) record(ExecField.ENV, utf8.encode(`${name}=${value}`));
  if (request.cwd !== undefined) record(ExecField.CWD, utf8.encode(request.cwd));
  if (request.user !== undefined) record(ExecField.USER, utf8.encode(request.user));
  for (const limit of request.rlimits ?? []) {
    const value = new Uint8Array(20);
    const view = new DataView(value.buffer);
    view.setUint32(0, limit.resource, true);
    view.setBigUint64(4, BigInt(limit.soft), true);
    view.setBigUint64(12, BigInt(limit.hard), true);
    record(ExecField.RLIMIT, value);
  }
  if (request.tty) {
    const value = new Uint8Array(4);
    new DataView(value.buffer).setUint16(0, request.tty.rows, true);
    new DataView(value.buffer).setUint16(2, request.tty.cols, true);
    record(ExecField.TTY, value);
  }
  if (request.timeoutMs !== undefined) record(ExecField.TIMEOUT_MS, u32Body(request.timeoutMs));
  if (request.stdin) record(ExecField.STDIN, new Uint8Array([1]));
  if (request.workload) record(ExecField.WORKLOAD, new Uint8Array(0));
  const body = concatAll(records);
  if (body.byteLength > MAX_BODY_BYTES) throw new RangeError(`the exec request is ${body.byteLength} bytes, more than a frame holds (${MAX_BODY_BYTES})`);
  return body;
}

/** EXEC's body back into a request (the inverse of encodeExec); a truncated record throws FrameError. */
export function decodeExec(body: Uint8Array): ExecRequest {
  const request: ExecRequest = { argv: [] };
  const env: [string, string][] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let offset = 0; offset < body.byteLength;) {
    if (offset + 6 > body.byteLength) throw new FrameError(`EXEC: a record header cut at byte ${offset}`);
    const tag = view.getUint16(offset, true);
    const length = view.getUint32(offset + 2, true);
    const value = body.subarray(offset + 6, offset + 6 + length);
    if (value.byteLength !== length) throw new FrameError(`EXEC: record ${tag} of ${length} bytes cut at byte ${body.byteLength}`);
    const values = new DataView(value.buffer, value.byteOffset, value.byteLength);
    offset += 6 + length;
    switch (tag) {
      case ExecField.ARG: request.argv.push(text(value)); break;
      case ExecField.ENV: { const entry = text(value); const equals = entry.indexOf("="); env.push([entry.slice(0, equals), entry.slice(equals + 1)]); break; }
      case ExecField.CWD: request.cwd = text(value); break;
      case ExecField.USER: request.user = text(value); break;
      case ExecField.RLIMIT: (request.rlimits ??= []).push({ resource: readU32(value, "RLIMIT"), soft: readU64(value, "RLIMIT", 4), hard: readU64(value, "RLIMIT", 12) }); break;
      case ExecField.TTY: need(value, 4, "TTY"); request.tty = { rows: values.getUint16(0, true), cols: values.getUint16(2, true) }; break;
      case ExecField.TIMEOUT_MS: request.timeoutMs = readU32(value, "TIMEOUT_MS"); break;
      case ExecField.STDIN: request.stdin = value[0] === 1; break;
      case ExecField.WORKLOAD:
        if (length !== 0) throw new FrameError(`EXEC: WORKLOAD carries no value, got ${length} bytes`);
        request.workload = true;
        break;
      default: throw new FrameError(`EXEC: unknown field ${tag}`);
    }
  }
  if (env.length > 0) request.env = env;
  return request;
}

export function encodeResize(rows: number, cols: number): Uint8Array {
  if (!isU16(rows) || !isU16(cols)) throw new RangeError("rows and cols must be 0 to 65535");
  const body = new Uint8Array(4);
  new DataView(body.buffer).setUint16(0, rows, true);
  new DataView(body.buffer).setUint16(2, cols, true);
  return body;
}

/** PUT's body: u64 size, u32 mode, the path. */
export function encodePut(path: string, size: number | bigint, mode: number): Uint8Array {
  const name = pathBytes(path);
  const body = new Uint8Array(12 + name.byteLength);
  const view = new DataView(body.buffer);
  view.setBigUint64(0, BigInt(size), true);
  view.setUint32(8, mode & 0o7777, true);
  body.set(name, 12);
  return body;
}

export function pathBytes(path: string): Uint8Array {
  if (!path.startsWith("/")) throw new RangeError(`guest path ${JSON.stringify(path)}: expected an absolute path`);
  if (path.includes("\0")) throw new RangeError("a guest path cannot hold a NUL byte");
  const bytes = utf8.encode(path);
  if (bytes.byteLength > MAX_PATH_BYTES) throw new RangeError(`guest path of ${bytes.byteLength} bytes, at most ${MAX_PATH_BYTES}`);
  return bytes;
}

export interface Exited {
  exitCode: number;
  /** The signal that ended it, or 0. */
  signal: number;
  oomKilled: boolean;
  timedOut: boolean;
}

export function decodeExited(body: Uint8Array): Exited {
  const view = need(body, 10, "EXITED");
  return { exitCode: view.getUint32(0, true), signal: view.getUint32(4, true), oomKilled: view.getUint8(8) === 1, timedOut: view.getUint8(9) === 1 };
}

export function encodeExited(exited: Exited): Uint8Array {
  const body = new Uint8Array(10);
  const view = new DataView(body.buffer);
  view.setUint32(0, exited.exitCode, true);
  view.setUint32(4, exited.signal, true);
  view.setUint8(8, exited.oomKilled ? 1 : 0);
  view.setUint8(9, exited.timedOut ? 1 : 0);
  return body;
}

export interface Failed { errno: number; step: number; message: string }

export function decodeFailed(body: Uint8Array): Failed {
  return { errno: readU32(body, "FAILED"), step: readU32(body, "FAILED", 4), message: text(body, 8) };
}

export interface GuestError { code: number; message: string }

export function decodeError(body: Uint8Array): GuestError {
  return { code: readU32(body, "ERROR"), message: text(body, 4) };
}

/** ERROR's body: u32 ErrorCode, then the text. */
export function encodeError(code: number, message: string): Uint8Array {
  return concatAll([u32Body(code), utf8.encode(message)]);
}

export interface HelloAck {
  version: number;
  maxSessions: number;
  outputWindow: number;
  inputWindow: number;
  dataChunk: number;
  /** PUT_DATA's window; a guest that does not announce one takes uploads within inputWindow. */
  putWindow: number;
}

export function decodeHelloAck(body: Uint8Array): HelloAck {
  return {
    version: readU32(body, "HELLO_ACK"),
    maxSessions: readU32(body, "HELLO_ACK", 4),
    outputWindow: readU32(body, "HELLO_ACK", 8),
    inputWindow: readU32(body, "HELLO_ACK", 12),
    dataChunk: readU32(body, "HELLO_ACK", 16),
    putWindow: body.byteLength >= 24 ? readU32(body, "HELLO_ACK", 20) : readU32(body, "HELLO_ACK", 12),
  };
}

export function decodeFileInfo(body: Uint8Array): { size: bigint; mode: number } {
  return { size: readU64(body, "FILE_INFO"), mode: readU32(body, "FILE_INFO", 8) };
}

/** Data split into frame-sized chunks, the last flagged EOF when asked (an empty input gives one empty EOF frame). */
export function* dataFrames(type: number, session: number, data: Uint8Array, eof: boolean): Generator<Uint8Array> {
  if (data.byteLength === 0) {
    if (eof) yield encodeFrame(type, session, new Uint8Array(0), FLAG_EOF);
    return;
  }
  for (let offset = 0; offset < data.byteLength; offset += DATA_CHUNK_BYTES) {
    const end = Math.min(offset + DATA_CHUNK_BYTES, data.byteLength);
    yield encodeFrame(type, session, data.subarray(offset, end), eof && end === data.byteLength ? FLAG_EOF : 0);
  }
}

export function concatAll(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}
