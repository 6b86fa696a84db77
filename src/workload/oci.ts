// An OCI runtime-spec config.json → the part of a workload spec burrow applies, plus argv/env.
// Fields burrow does not read are ignored (real files carry mounts, namespaces, hooks…); a few
// that confine and that the supervisor cannot apply are named in `ignored` so the boot can say
// so. A field burrow reads with the wrong type or an impossible value is an error naming its
// JSON path. Never throws.
import {
  capabilityNumber,
  checkAbsolutePath,
  checkHostname,
  isRlimitName,
  MAX_ID,
  MAX_PIDS,
  MIN_MEMORY_MAX,
  rlimitOrdered,
  type RlimitValue,
  type Rlimits,
  type WorkloadRequest,
} from "../config/workload";

/** The fields of a workload request a spec file can give (null/empty: the file does not say). */
export type OciRequest = Pick<WorkloadRequest, "user" | "cwd" | "hostname" | "rlimits" | "noNewPrivs" | "capsKeep" | "oomScoreAdj" | "memoryMax" | "pidsMax">;

export interface OciSpec {
  /** user is "UID:GID" from process.user. */
  request: OciRequest;
  /** process.user.additionalGids: they belong with the file's user, and go when the command line names another. */
  additionalGids: number[] | null;
  argv: string[] | null;
  env: string[] | null;
  /** Confining fields present but not applied, by JSON path. */
  ignored: string[];
}

export type OciResult = { ok: true; spec: OciSpec } | { ok: false; error: string };

type JsonObject = Record<string, unknown>;

interface Context {
  errors: string[];
  ignored: string[];
}

/** Errors shown in the one-line reason; the rest are counted. */
const SHOWN_ERRORS = 4;
/** A uint64 of 2^64-1 (RLIM_INFINITY) parses as the double 2^64. */
const UINT64_LIMIT = 2 ** 64;

/** Records an error; null, for `return fail(…)` where a value was expected. */
function fail(context: Context, message: string): null {
  context.errors.push(message);
  return null;
}

const isObject = (value: unknown): value is JsonObject => typeof value === "object" && value !== null && !Array.isArray(value);

/** An own field only: a key named like an Object.prototype member is just a key. */
function get(object: JsonObject | null, key: string): unknown {
  return object !== null && Object.hasOwn(object, key) ? object[key] : undefined;
}

/** JSON null reads as absent, as Go's decoder (runc's) reads it. */
const absent = (value: unknown): value is undefined | null => value === undefined || value === null;

function objectAt(context: Context, value: unknown, path: string): JsonObject | null {
  if (absent(value)) return null;
  return isObject(value) ? value : fail(context, `${path}: expected an object`);
}

function arrayAt(context: Context, value: unknown, path: string): unknown[] | null {
  if (absent(value)) return null;
  return Array.isArray(value) ? value : fail(context, `${path}: expected an array`);
}

/** Strings that can travel as C strings (execve, the supervisor's argv). */
function stringsAt(context: Context, value: unknown, path: string, check?: (item: string) => string | null): string[] | null {
  const array = arrayAt(context, value, path);
  if (array === null) return null;
  const before = context.errors.length;
  array.forEach((item, index) => {
    const problem = typeof item !== "string" || item.includes("\0") ? "expected a string" : check?.(item);
    if (problem) fail(context, `${path}[${index}]: ${problem}`);
  });
  return context.errors.length === before ? (array as string[]) : null;
}

function integerAt(context: Context, value: unknown, path: string, min: number, max: number): number | null {
  return absent(value) ? null : requiredInteger(context, value, path, min, max);
}

function requiredInteger(context: Context, value: unknown, path: string, min: number, max: number): number | null {
  if (typeof value !== "number") return fail(context, `${path}: expected a number`);
  if (!Number.isInteger(value) || value < min || value > max) return fail(context, `${path}: expected a whole number from ${min} to ${max}`);
  return value;
}

function booleanAt(context: Context, value: unknown, path: string): boolean | null {
  if (absent(value)) return null;
  return typeof value === "boolean" ? value : fail(context, `${path}: expected true or false`);
}

function stringAt(context: Context, value: unknown, path: string, check: (item: string) => string | null): string | null {
  if (absent(value)) return null;
  if (typeof value !== "string") return fail(context, `${path}: expected a string`);
  const problem = check(value);
  return problem ? fail(context, `${path}: ${problem}`) : value;
}

function noteIfSet(context: Context, value: unknown, path: string): void {
  const set = Array.isArray(value) ? value.length > 0 : !absent(value) && value !== "";
  if (set) context.ignored.push(path);
}

/** A uint64 limit: RLIM_INFINITY (2^64-1, read as 2^64) is "inf"; other values must be exact. */
function rlimitValueAt(context: Context, value: unknown, path: string): RlimitValue | null {
  if (typeof value !== "number") return fail(context, `${path}: expected a number`);
  if (value >= UINT64_LIMIT) return "inf";
  if (Number.isSafeInteger(value) && value >= 0) return value;
  return fail(context, `${path}: expected a whole number from 0 to ${Number.MAX_SAFE_INTEGER}, or 18446744073709551615 for unlimited`);
}

function readRlimits(context: Context, value: unknown): Rlimits {
  const rlimits: Rlimits = {};
  (arrayAt(context, value, "process.rlimits") ?? []).forEach((item, index) => {
    const path = `process.rlimits[${index}]`;
    if (!isObject(item)) return fail(context, `${path}: expected an object`);
    const type = get(item, "type");
    if (typeof type !== "string") return fail(context, `${path}.type: expected a string`);
    const name = type.startsWith("RLIMIT_") ? type.slice(7).toLowerCase() : "";
    if (!isRlimitName(name)) return fail(context, `${path}.type: unknown rlimit ${type.slice(0, 40)}`);
    // The spec: a runtime MUST refuse two entries of one type.
    if (rlimits[name]) return fail(context, `${path}.type: ${type} given twice`);
    const soft = rlimitValueAt(context, get(item, "soft"), `${path}.soft`);
    const hard = rlimitValueAt(context, get(item, "hard"), `${path}.hard`);
    if (soft === null || hard === null) return;
    if (!rlimitOrdered({ soft, hard })) return fail(context, `${path}: soft is above hard`);
    rlimits[name] = { soft, hard };
  });
  return rlimits;
}

/** The bounding set as numbers. A name burrow does not know cannot be kept: it is dropped, which confines more. */
function readBounding(context: Context, capabilities: JsonObject | null): number[] | null {
  for (const set of ["effective", "permitted", "inheritable", "ambient"]) noteIfSet(context, get(capabilities, set), `process.capabilities.${set}`);
  const names = stringsAt(context, get(capabilities, "bounding"), "process.capabilities.bounding");
  if (names === null) return null;
  const numbers = names.map(capabilityNumber);
  const unknown = names.filter((_, index) => numbers[index] === undefined);
  if (unknown.length) context.ignored.push(`process.capabilities.bounding ${unknown.map((name) => name.slice(0, 40)).join(",")} (unknown, dropped)`);
  return [...new Set(numbers.filter((number) => number !== undefined))].sort((a, b) => a - b);
}

interface OciUser {
  user: string;
  additionalGids: number[] | null;
}

function readUser(context: Context, value: unknown): OciUser | null {
  const user = objectAt(context, value, "process.user");
  if (user === null) return null;
  noteIfSet(context, get(user, "umask"), "process.user.umask");
  // uid and gid are REQUIRED for a POSIX process; a missing one is not "root".
  const uid = requiredInteger(context, get(user, "uid"), "process.user.uid", 0, MAX_ID);
  const gid = requiredInteger(context, get(user, "gid"), "process.user.gid", 0, MAX_ID);
  const extra = arrayAt(context, get(user, "additionalGids"), "process.user.additionalGids");
  const additionalGids = extra?.map((item, index) => requiredInteger(context, item, `process.user.additionalGids[${index}]`, 0, MAX_ID)) ?? null;
  if (uid === null || gid === null || additionalGids?.includes(null)) return null;
  return { user: `${uid}:${gid}`, additionalGids: additionalGids as number[] | null };
}

/** memory.limit: -1 is no limit, 0 is not set (runc's reading); bytes otherwise. */
function readMemoryLimit(context: Context, memory: JsonObject | null): number | "max" | null {
  noteIfSet(context, get(memory, "swap"), "linux.resources.memory.swap");
  const limit = integerAt(context, get(memory, "limit"), "linux.resources.memory.limit", -1, Number.MAX_SAFE_INTEGER);
  if (limit === null || limit === 0) return null;
  if (limit === -1) return "max";
  return limit < MIN_MEMORY_MAX ? fail(context, "linux.resources.memory.limit: below 1 MiB, the workload could not start") : limit;
}

/** pids.limit: 0 or below is no limit (runc and youki read it so; the spec does not say). */
function readPidsLimit(context: Context, pids: JsonObject | null): number | "max" | null {
  const limit = integerAt(context, get(pids, "limit"), "linux.resources.pids.limit", Number.MIN_SAFE_INTEGER, MAX_PIDS);
  if (limit === null) return null;
  return limit <= 0 ? "max" : limit;
}

const isEnvWord = (item: string) => (/^[^=]+=/.test(item) ? null : 'expected "NAME=value"');
/** process.args: the first word is the program, so an empty list is no command at all. */
function nonEmpty(context: Context, items: string[] | null, path: string): string[] | null {
  return items !== null && items.length === 0 ? fail(context, `${path}: expected at least one string`) : items;
}

function readSpec(context: Context, root: JsonObject): OciSpec {
  const proc = objectAt(context, get(root, "process"), "process");
  const linux = objectAt(context, get(root, "linux"), "linux");
  const resources = objectAt(context, get(linux, "resources"), "linux.resources");
  const user = readUser(context, get(proc, "user"));
  noteIfSet(context, get(linux, "seccomp"), "linux.seccomp");
  noteIfSet(context, get(proc, "apparmorProfile"), "process.apparmorProfile");
  noteIfSet(context, get(proc, "selinuxLabel"), "process.selinuxLabel");
  // An empty hostname is runc's "leave it".
  const hostname = stringAt(context, get(root, "hostname"), "hostname", (name) => (name === "" ? null : checkHostname(name)));
  const request: OciRequest = {
    user: user?.user ?? null,
    cwd: stringAt(context, get(proc, "cwd"), "process.cwd", checkAbsolutePath),
    hostname: hostname === "" ? null : hostname,
    rlimits: readRlimits(context, get(proc, "rlimits")),
    noNewPrivs: booleanAt(context, get(proc, "noNewPrivileges"), "process.noNewPrivileges") ?? false,
    capsKeep: readBounding(context, objectAt(context, get(proc, "capabilities"), "process.capabilities")),
    oomScoreAdj: integerAt(context, get(proc, "oomScoreAdj"), "process.oomScoreAdj", -1000, 1000),
    memoryMax: readMemoryLimit(context, objectAt(context, get(resources, "memory"), "linux.resources.memory")),
    pidsMax: readPidsLimit(context, objectAt(context, get(resources, "pids"), "linux.resources.pids")),
  };
  const argv = nonEmpty(context, stringsAt(context, get(proc, "args"), "process.args"), "process.args");
  const env = stringsAt(context, get(proc, "env"), "process.env", isEnvWord);
  return { request, additionalGids: user?.additionalGids ?? null, argv, env, ignored: context.ignored };
}

export function parseOciSpec(text: string): OciResult {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `not JSON (${error instanceof Error ? error.message : String(error)})` };
  }
  if (!isObject(root)) return { ok: false, error: "expected a JSON object" };
  const context: Context = { errors: [], ignored: [] };
  try {
    const spec = readSpec(context, root);
    if (context.errors.length === 0) return { ok: true, spec };
  } catch (error) {
    // Not expected (every access is checked); a file must never take PID 1 down.
    context.errors.push(`cannot read (${error instanceof Error ? error.message : String(error)})`);
  }
  const more = context.errors.length - SHOWN_ERRORS;
  return { ok: false, error: context.errors.slice(0, SHOWN_ERRORS).join("; ") + (more > 0 ? `; and ${more} more` : "") };
}
