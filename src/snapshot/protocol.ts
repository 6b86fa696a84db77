// What a snapshot's resume message says, carried in one RESUME frame of the control channel
// (src/control/wire.ts) to the guest's resident supervisor (image/supervisor/snapshot.c), which has
// no JSON parser; burrow (Bun) has exec'd it and is gone before the VM is saved. The guest says
// READY when it may be saved, and RESUMED with the instance once a resume is applied.
//
// At the snapshot point (burrow.snapshot=1), before the agent starts:
//   burrow-resume 1 INSTANCE REALTIME_NS ENTROPY_HEX ARGS ENV
// ARGS is "-" (the saved command line's) or COUNT:HEX,HEX,… (each argument's UTF-8 in lowercase
// hex; "0:" none, "1:" one empty argument); ENV is COUNT:HEX,… of NAME=VALUE.
//
// A warm snapshot (burrow.snapshot=warm) is taken when the running workload asks; two lines,
//   burrow-warm-resume 1 INSTANCE REALTIME_NS ENTROPY_HEX     the supervisor's: entropy, clock
//   {"burrow":"snapshot","version":1,"type":"resume",        the workload's, passed on verbatim
//    "instance":ID,"realtimeNs":"DECIMAL","args":[…]?,"env":{…}?}
//
// A guest never starts the agent from a snapshot without a valid resume message: every clone
// would share the kernel's RNG state and a stale clock.
import { isRuntimeVariable } from "../config/environment";

export const PROTOCOL = "snapshot";
export const VERSION = 1;
/** Host entropy per resume: enough to reseed the CRNG on its own (it takes 32 bytes). */
export const MIN_ENTROPY_BYTES = 64;
export const MAX_ENTROPY_BYTES = 4096;
export const MAX_ARGS = 256;
export const MAX_ENV = 64;

export const INSTANCE_MAX_CHARS = 64;
export const INSTANCE_PATTERN = new RegExp(`^[A-Za-z0-9._-]{1,${INSTANCE_MAX_CHARS}}$`);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Variables burrow sets for the agent itself; an instance cannot replace them. */
export const RESERVED_ENV: ReadonlySet<string> = new Set(["PATH", "HOME", "TERM", "KERNEL_BOOT_TIME", "BURROW_INSTANCE"]);

export interface ResumeMessage {
  type: "resume";
  instance: string;
  entropy: Uint8Array;
  realtimeNs: bigint;
  args: string[] | null;
  env: [string, string][];
}
function frame(body: Record<string, unknown>): string {
  return `${JSON.stringify({ burrow: PROTOCOL, version: VERSION, ...body })}\n`;
}

/** What the supervisor buffers of a resume message (RESUME_MAX in image/supervisor/snapshot.c). */
export const MAX_SUPERVISOR_RESUME_BYTES = 70_000;

/** Why an instance cannot be sent (the rules the supervisor applies again), or null. */
export function instanceProblem(message: Pick<ResumeMessage, "instance" | "args" | "env">): string | null {
  if (!INSTANCE_PATTERN.test(message.instance)) return `instance ${JSON.stringify(message.instance)}: expected 1 to 64 letters, digits, '.', '_' or '-'`;
  if (message.args && message.args.length > MAX_ARGS) return `${message.args.length} arguments, at most ${MAX_ARGS}`;
  if (message.args?.some((arg) => arg.includes("\0"))) return "an argument holds a NUL byte";
  if (message.env.length > MAX_ENV) return `${message.env.length} variables, at most ${MAX_ENV}`;
  for (const [name, value] of message.env) {
    if (!ENV_NAME.test(name)) return `env: ${JSON.stringify(name)} is not a variable name`;
    if (RESERVED_ENV.has(name) || isRuntimeVariable(name)) return `env: ${name} is burrow's or the runtime's and cannot be set`;
    if (value.includes("\0")) return `env: ${name} holds a NUL byte`;
  }
  if (new Set(message.env.map(([name]) => name)).size !== message.env.length) return "env: a variable is named twice";
  return null;
}

function checkedForSupervisor(message: Pick<ResumeMessage, "instance" | "args" | "env">, text: string): string {
  const problem = instanceProblem(message);
  if (problem) throw new Error(`the resume message cannot carry this: ${problem}`);
  if (Buffer.byteLength(text) > MAX_SUPERVISOR_RESUME_BYTES) throw new Error(`the resume message is ${Buffer.byteLength(text)} bytes, more than the guest's supervisor reads (${MAX_SUPERVISOR_RESUME_BYTES})`);
  return text;
}

const hexList = (items: readonly string[]) => `${items.length}:${items.map((item) => Buffer.from(item, "utf8").toString("hex")).join(",")}`;

/** The line the supervisor reads at the snapshot point on every restore. */
export function encodePointResume(message: Omit<ResumeMessage, "type">): string {
  const args = message.args ? hexList(message.args) : "-";
  const env = hexList(message.env.map(([name, value]) => `${name}=${value}`));
  return checkedForSupervisor(message, `burrow-resume ${VERSION} ${message.instance} ${message.realtimeNs} ${Buffer.from(message.entropy).toString("hex")} ${args} ${env}\n`);
}

/** The two lines a warm snapshot's supervisor reads on every restore. */
export function encodeWarmResume(message: Omit<ResumeMessage, "type">): string {
  const header = `burrow-warm-resume ${VERSION} ${message.instance} ${message.realtimeNs} ${Buffer.from(message.entropy).toString("hex")}\n`;
  const body: Record<string, unknown> = { type: "resume", instance: message.instance, realtimeNs: String(message.realtimeNs) };
  if (message.args) body.args = message.args;
  if (message.env.length > 0) body.env = Object.fromEntries(message.env);
  return checkedForSupervisor(message, header + frame(body));
}
