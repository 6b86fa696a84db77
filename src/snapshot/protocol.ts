// The snapshot control protocol between burrow (guest) and `burrow run` (host), carried on the
// virtio-serial port named CONTROL_PORT. JSON lines, one object per line, every object tagged
// {"burrow":"snapshot","version":1,"type":…}:
//
//   guest → host  {"type":"ready","uptimeMs":N}            all init work done; the VM may be saved
//   host  → guest {"type":"resume","instance":ID,          on every restore
//                  "entropy":BASE64 (≥ 64 bytes),
//                  "realtimeNs":"DECIMAL",
//                  "args":[…]?, "env":{…}?}
//   guest → host  {"type":"resumed","instance":ID}         the message was accepted; the agent follows
//
// A guest never starts the agent from a snapshot without a valid resume message: every clone
// would share the kernel's RNG state and a stale clock.
//
// A warm snapshot (burrow.snapshot=warm) is taken when the running workload asks, and read by the
// resident supervisor (image/supervisor.c), which has no JSON parser: the host sends it two lines,
//   burrow-warm-resume 1 INSTANCE REALTIME_NS ENTROPY_HEX     the supervisor's: entropy, clock
//   {"burrow":"snapshot","version":1,"type":"resume",        the workload's, passed on verbatim
//    "instance":ID,"realtimeNs":"DECIMAL","args":[…]?,"env":{…}?}
// and the supervisor answers with the same ready and resumed lines as burrow.
import { isRuntimeVariable } from "../config/environment";

export const CONTROL_PORT = "burrow.control";
export const PROTOCOL = "snapshot";
export const VERSION = 1;
/** Host entropy per resume: enough to reseed the CRNG on its own (it takes 32 bytes). */
export const MIN_ENTROPY_BYTES = 64;
export const MAX_ENTROPY_BYTES = 4096;
/** A line longer than this is refused unread: the guest never buffers more. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
export const MAX_ARGS = 256;
export const MAX_ENV = 64;

export const INSTANCE_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Variables burrow sets for the agent itself; an instance cannot replace them. */
const RESERVED_ENV = new Set(["PATH", "HOME", "TERM", "KERNEL_BOOT_TIME", "BURROW_INSTANCE"]);

export interface ReadyMessage { type: "ready"; uptimeMs: number }
export interface ResumeMessage {
  type: "resume";
  instance: string;
  entropy: Uint8Array;
  realtimeNs: bigint;
  args: string[] | null;
  env: [string, string][];
}
export interface ResumedMessage { type: "resumed"; instance: string }

function frame(body: Record<string, unknown>): string {
  return `${JSON.stringify({ burrow: PROTOCOL, version: VERSION, ...body })}\n`;
}

export function encodeReady(uptimeMs: number): string {
  return frame({ type: "ready", uptimeMs: Math.round(uptimeMs) });
}

export function encodeResumed(instance: string): string {
  return frame({ type: "resumed", instance });
}

export function encodeResume(message: Omit<ResumeMessage, "type">): string {
  const body: Record<string, unknown> = {
    type: "resume",
    instance: message.instance,
    entropy: Buffer.from(message.entropy).toString("base64"),
    realtimeNs: String(message.realtimeNs),
  };
  if (message.args) body.args = message.args;
  if (message.env.length > 0) body.env = Object.fromEntries(message.env);
  return frame(body);
}

/** What the supervisor buffers of a warm resume (RESUME_MAX in image/supervisor.c). */
export const MAX_WARM_RESUME_BYTES = 70_000;

/** The two lines a warm snapshot's supervisor reads on every restore. */
export function encodeWarmResume(message: Omit<ResumeMessage, "type">): string {
  const header = `burrow-warm-resume ${VERSION} ${message.instance} ${message.realtimeNs} ${Buffer.from(message.entropy).toString("hex")}\n`;
  const body: Record<string, unknown> = { type: "resume", instance: message.instance, realtimeNs: String(message.realtimeNs) };
  if (message.args) body.args = message.args;
  if (message.env.length > 0) body.env = Object.fromEntries(message.env);
  const text = header + frame(body);
  if (Buffer.byteLength(text) > MAX_WARM_RESUME_BYTES) throw new Error(`the resume message is ${Buffer.byteLength(text)} bytes, more than a warm snapshot's supervisor reads (${MAX_WARM_RESUME_BYTES})`);
  return text;
}

type Parsed<T> = { ok: true; message: T } | { ok: false; problem: string };

const own = (object: object, key: string): unknown => (Object.hasOwn(object, key) ? (object as Record<string, unknown>)[key] : undefined);

/** One line → its object and type, checking the frame. Never throws. */
function parseFrame(line: string): Parsed<{ type: string; body: object }> {
  if (line.length > MAX_MESSAGE_BYTES) return { ok: false, problem: `message longer than ${MAX_MESSAGE_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    // The parser's own message adds nothing a host author needs; the line is simply not JSON.
    return { ok: false, problem: "not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { ok: false, problem: "not a JSON object" };
  if (own(value, "burrow") !== PROTOCOL) return { ok: false, problem: `not a burrow snapshot message (burrow: ${JSON.stringify(own(value, "burrow"))})` };
  if (own(value, "version") !== VERSION) return { ok: false, problem: `protocol version ${JSON.stringify(own(value, "version"))}, this burrow speaks ${VERSION}` };
  const type = own(value, "type");
  if (typeof type !== "string") return { ok: false, problem: "no type" };
  return { ok: true, message: { type, body: value } };
}

export function parseReady(line: string): Parsed<ReadyMessage> {
  const frame = parseFrame(line);
  if (!frame.ok) return frame;
  if (frame.message.type !== "ready") return { ok: false, problem: `expected ready, got ${frame.message.type}` };
  const uptimeMs = own(frame.message.body, "uptimeMs");
  return { ok: true, message: { type: "ready", uptimeMs: typeof uptimeMs === "number" && Number.isFinite(uptimeMs) ? uptimeMs : 0 } };
}

export function parseResumed(line: string): Parsed<ResumedMessage> {
  const frame = parseFrame(line);
  if (!frame.ok) return frame;
  const instance = own(frame.message.body, "instance");
  if (frame.message.type !== "resumed" || typeof instance !== "string") return { ok: false, problem: `expected resumed, got ${frame.message.type}` };
  return { ok: true, message: { type: "resumed", instance } };
}

/** The host's resume message, validated completely; the first problem is one line. */
export function parseResume(line: string): Parsed<ResumeMessage> {
  const frame = parseFrame(line);
  if (!frame.ok) return frame;
  const { type, body } = frame.message;
  if (type !== "resume") return { ok: false, problem: `expected resume, got ${JSON.stringify(type)}` };
  for (const key of Object.keys(body)) {
    if (!["burrow", "version", "type", "instance", "entropy", "realtimeNs", "args", "env"].includes(key)) return { ok: false, problem: `unknown field ${JSON.stringify(key)}` };
  }
  const instance = own(body, "instance");
  if (typeof instance !== "string" || !INSTANCE_PATTERN.test(instance)) return { ok: false, problem: "instance: expected 1 to 64 letters, digits, '.', '_' or '-'" };

  const entropyText = own(body, "entropy");
  if (typeof entropyText !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(entropyText) || entropyText.length % 4 !== 0) return { ok: false, problem: "entropy: expected base64" };
  const entropy = new Uint8Array(Buffer.from(entropyText, "base64"));
  if (entropy.length < MIN_ENTROPY_BYTES || entropy.length > MAX_ENTROPY_BYTES) return { ok: false, problem: `entropy: ${entropy.length} bytes, expected ${MIN_ENTROPY_BYTES} to ${MAX_ENTROPY_BYTES}` };

  const realtimeText = own(body, "realtimeNs");
  if (typeof realtimeText !== "string" || !/^\d{1,20}$/.test(realtimeText)) return { ok: false, problem: "realtimeNs: expected a decimal string of nanoseconds since the epoch" };
  const realtimeNs = BigInt(realtimeText);
  // time_t seconds fit an i64 by far; a clock before 2000 is a host bug, not a time to set.
  if (realtimeNs < 946_684_800n * 1_000_000_000n || realtimeNs >= 2n ** 63n) return { ok: false, problem: `realtimeNs: ${realtimeText} is not a plausible wall clock` };

  const argsValue = own(body, "args");
  let args: string[] | null = null;
  if (argsValue !== undefined) {
    if (!Array.isArray(argsValue) || argsValue.length > MAX_ARGS || !argsValue.every((arg) => typeof arg === "string" && !arg.includes("\0"))) {
      return { ok: false, problem: `args: expected at most ${MAX_ARGS} strings without NUL` };
    }
    args = argsValue as string[];
  }

  const envValue = own(body, "env");
  const env: [string, string][] = [];
  if (envValue !== undefined) {
    if (typeof envValue !== "object" || envValue === null || Array.isArray(envValue)) return { ok: false, problem: "env: expected an object of strings" };
    const entries = Object.entries(envValue);
    if (entries.length > MAX_ENV) return { ok: false, problem: `env: more than ${MAX_ENV} variables` };
    for (const [name, value] of entries) {
      if (!ENV_NAME.test(name)) return { ok: false, problem: `env: ${JSON.stringify(name)} is not a variable name` };
      if (RESERVED_ENV.has(name) || isRuntimeVariable(name)) return { ok: false, problem: `env: ${name} is burrow's or the runtime's and cannot be set` };
      if (typeof value !== "string" || value.includes("\0")) return { ok: false, problem: `env: ${name} must be a string without NUL` };
      env.push([name, value]);
    }
  }
  return { ok: true, message: { type: "resume", instance, entropy, realtimeNs, args, env } };
}
