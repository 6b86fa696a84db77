// The workload spec as the command line asks for it, unresolved: the user as written, limits and
// capabilities by name. src/workload/ resolves it (passwd, group, the OCI file) into the words
// the supervisor applies. A bad value is remembered in `invalid`, never defaulted away: the spec
// fails closed, so a typo cannot start the workload with less confinement than was asked for.
import { parseSize } from "./size";

export type RlimitName =
  | "cpu" | "fsize" | "data" | "stack" | "core" | "rss" | "nproc" | "nofile"
  | "memlock" | "as" | "locks" | "sigpending" | "msgqueue" | "nice" | "rtprio" | "rttime";

/** Linux resource numbers (asm-generic/resource.h): the same on x86_64 and arm64. */
export const RLIMITS: Readonly<Record<RlimitName, number>> = Object.freeze({
  cpu: 0, fsize: 1, data: 2, stack: 3, core: 4, rss: 5, nproc: 6, nofile: 7,
  memlock: 8, as: 9, locks: 10, sigpending: 11, msgqueue: 12, nice: 13, rtprio: 14, rttime: 15,
});

export const RLIMIT_NAMES = Object.keys(RLIMITS) as RlimitName[];

/** The limits counted in bytes, which take sizes (64M) as well as plain numbers. */
const BYTE_RLIMITS: ReadonlySet<RlimitName> = new Set(["fsize", "data", "stack", "core", "rss", "memlock", "as", "msgqueue"]);

/**
 * A limit: a safe integer or RLIM_INFINITY. Numbers (not bigint) keep the Config printable as
 * JSON; anything from 2^53 up is refused (as a byte count it is 8 PiB: say unlimited).
 */
export type RlimitValue = number | "inf";
export interface RlimitPair {
  soft: RlimitValue;
  hard: RlimitValue;
}
export type Rlimits = Partial<Record<RlimitName, RlimitPair>>;

/** Capability numbers 0…40 (linux/capability.h), CAP_LAST_CAP of Linux 5.9 and later. */
export const CAPABILITIES: readonly string[] = Object.freeze([
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
  "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]);

export interface WorkloadRequest {
  /** "NAME", "UID" or "UID:GID", resolved against the new root's /etc/passwd and /etc/group. */
  user: string | null;
  cwd: string | null;
  hostname: string | null;
  rlimits: Rlimits;
  /** prctl(PR_SET_NO_NEW_PRIVS): only ever switched on (the stricter of command line and file). */
  noNewPrivs: boolean;
  /** The capability numbers kept in the bounding set; null leaves it unchanged. */
  capsKeep: number[] | null;
  oomScoreAdj: number | null;
  /** cgroup v2 memory.max: bytes, or "max" for none. */
  memoryMax: number | "max" | null;
  pidsMax: number | "max" | null;
  /** An OCI runtime-spec config.json on the new root (absolute). */
  specFile: string | null;
  /** The problems of the workload keys: any at all and the workload must not start. */
  invalid: string[];
}

export function defaultWorkload(): WorkloadRequest {
  return { user: null, cwd: null, hostname: null, rlimits: {}, noNewPrivs: false, capsKeep: null, oomScoreAdj: null, memoryMax: null, pidsMax: null, specFile: null, invalid: [] };
}

/** Returns what is wrong with the value, or nothing once it is applied. */
export type WorkloadSetter = (request: WorkloadRequest, value: string | null) => string | void;

/** The largest id setuid/setgid accept: 2^32-1 is (uid_t)-1, "no change". */
export const MAX_ID = 2 ** 32 - 2;
/** PID_MAX_LIMIT: more tasks than any kernel allows. */
export const MAX_PIDS = 4 * 1024 * 1024;
/** Less than this and memory.max kills the workload before its first instruction. */
export const MIN_MEMORY_MAX = 2 ** 20;
const PATH_MAX = 4095;

export function parseId(text: string): number | null {
  if (!/^\d{1,10}$/.test(text)) return null;
  const id = Number(text);
  return id <= MAX_ID ? id : null;
}

/** A user name as useradd allows it (a trailing $ for Samba machine accounts); not all digits. */
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}\$?$/;

/** "NAME", "UID" or "UID:GID" → the request as kept, or why not. */
export function checkUserRequest(value: string): string | null {
  const [first, second, ...rest] = value.split(":");
  if (rest.length > 0 || first === undefined) return "expected NAME, UID or UID:GID";
  if (second !== undefined) {
    if (parseId(first) === null || parseId(second) === null) return `expected UID:GID, each a whole number from 0 to ${MAX_ID}`;
    return null;
  }
  if (/^\d+$/.test(first)) return parseId(first) === null ? `uid ${first.slice(0, 20)} is above ${MAX_ID}` : null;
  return USER_NAME.test(first) ? null : "not a user name (letters, digits, _ . -)";
}

/** A hostname sethostname() takes and resolvers agree on: RFC 1123 labels joined by dots. */
export function checkHostname(value: string): string | null {
  if (value.length < 1 || value.length > 64) return "expected 1 to 64 characters";
  const labels = value.split(".");
  const good = labels.every((label) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label));
  return good ? null : "expected letters, digits and hyphens in dot-separated labels (none empty, none starting or ending with -)";
}

export function checkAbsolutePath(value: string): string | null {
  if (!value.startsWith("/")) return "expected an absolute path";
  if (value.length > PATH_MAX || value.includes("\0")) return "expected a path of at most 4095 bytes";
  return null;
}

const INFINITY_WORDS = ["inf", "infinity", "unlimited"];

function parseRlimitValue(text: string, bytes: boolean): RlimitValue | null {
  if (INFINITY_WORDS.includes(text.toLowerCase())) return "inf";
  if (bytes) {
    const size = parseSize(text);
    return "bytes" in size ? size.bytes : null;
  }
  return /^\d{1,16}$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : null;
}

/** soft ≤ hard, with "inf" above every number. */
export function rlimitOrdered({ soft, hard }: RlimitPair): boolean {
  return hard === "inf" || (soft !== "inf" && soft <= hard);
}

export function isRlimitName(name: string): name is RlimitName {
  return Object.hasOwn(RLIMITS, name);
}

/** burrow.rlimit.NAME=SOFT[:HARD]; a lone SOFT sets both. */
function rlimitSetter(name: string): WorkloadSetter {
  return (request, value) => {
    if (!isRlimitName(name)) return `unknown rlimit ${name.slice(0, 40)} (rlimits: ${RLIMIT_NAMES.join(", ")})`;
    const bytes = BYTE_RLIMITS.has(name);
    const parts = (value ?? "").split(":");
    const expected = `expected SOFT[:HARD], each a whole number${bytes ? " or size (64M)" : ""} or unlimited`;
    if (value === null || parts.length > 2) return expected;
    const soft = parseRlimitValue(parts[0]!, bytes);
    const hard = parts.length === 2 ? parseRlimitValue(parts[1]!, bytes) : soft;
    if (soft === null || hard === null) return expected;
    if (!rlimitOrdered({ soft, hard })) return "the soft limit is above the hard limit";
    request.rlimits[name] = { soft, hard };
  };
}

/** A capability name with or without CAP_, any case → its number; undefined when unknown. */
export function capabilityNumber(name: string): number | undefined {
  const upper = name.trim().toUpperCase();
  const index = CAPABILITIES.indexOf(upper.startsWith("CAP_") ? upper : `CAP_${upper}`);
  return index < 0 ? undefined : index;
}

function parseCaps(request: WorkloadRequest, value: string | null): string | void {
  const items = (value ?? "").split(",").map((item) => item.trim()).filter(Boolean);
  if (items.length === 0) return "expected a comma list of capability names, all or none";
  if (items.length === 1 && items[0]!.toLowerCase() === "none") return void (request.capsKeep = []);
  if (items.length === 1 && items[0]!.toLowerCase() === "all") return void (request.capsKeep = CAPABILITIES.map((_, index) => index));
  const numbers = items.map(capabilityNumber);
  const unknown = items.filter((_, index) => numbers[index] === undefined);
  if (unknown.length) return `unknown capability ${unknown.map((item) => item.slice(0, 40)).join(", ")}`;
  request.capsKeep = [...new Set(numbers as number[])].sort((a, b) => a - b);
}

function parseFlag(value: string | null): boolean | null {
  if (value === null) return true;
  const lowered = value.toLowerCase();
  if (["1", "on", "true", "yes", "y"].includes(lowered)) return true;
  if (["0", "off", "false", "no", "n"].includes(lowered)) return false;
  return null;
}

/** A text field set only when `check` finds nothing wrong with the value (a missing value is ""). */
function checkedText(field: "cwd" | "hostname" | "specFile", check: (value: string) => string | null): WorkloadSetter {
  return (request, value) => {
    const problem = check(value ?? "");
    if (problem) return problem;
    request[field] = value;
  };
}

const WORKLOAD_KEYS: ReadonlyMap<string, WorkloadSetter> = new Map<string, WorkloadSetter>([
  [
    "burrow.user",
    (request, value) => {
      if (value === null || value === "") return "expected NAME, UID or UID:GID";
      const problem = checkUserRequest(value);
      if (problem) return problem;
      request.user = value;
    },
  ],
  ["burrow.cwd", checkedText("cwd", checkAbsolutePath)],
  ["burrow.hostname", checkedText("hostname", checkHostname)],
  [
    "burrow.no-new-privs",
    (request, value) => {
      const on = parseFlag(value);
      if (on === null) return "expected 1/0, on/off, true/false or yes/no";
      request.noNewPrivs = on;
    },
  ],
  ["burrow.caps", parseCaps],
  [
    "burrow.oom-score-adj",
    (request, value) => {
      const number = value !== null && /^[-+]?\d{1,4}$/.test(value) ? Number(value) : NaN;
      if (!(number >= -1000 && number <= 1000)) return "expected a whole number from -1000 to 1000";
      request.oomScoreAdj = number;
    },
  ],
  [
    "burrow.memory-max",
    (request, value) => {
      if (value === "max") return void (request.memoryMax = "max");
      const size = parseSize(value ?? "");
      if ("problem" in size) return `${size.problem} (expected a size: 64M, 1G, bytes; or max)`;
      const { bytes } = size;
      if (bytes < MIN_MEMORY_MAX) return "below 1M: the workload could not start";
      request.memoryMax = bytes;
    },
  ],
  [
    "burrow.pids-max",
    (request, value) => {
      if (value === "max") return void (request.pidsMax = "max");
      const number = value !== null && /^\d{1,7}$/.test(value) ? Number(value) : NaN;
      if (!(number >= 1 && number <= MAX_PIDS)) return `expected a whole number from 1 to ${MAX_PIDS} or max`;
      request.pidsMax = number;
    },
  ],
  ["burrow.spec", checkedText("specFile", checkAbsolutePath)],
]);

const RLIMIT_PREFIX = "burrow.rlimit.";

/** The setter of a workload key (burrow.rlimit.* is a family), or null when the key is not one. */
export function workloadSetter(key: string): WorkloadSetter | null {
  if (key.startsWith(RLIMIT_PREFIX)) return rlimitSetter(key.slice(RLIMIT_PREFIX.length));
  return WORKLOAD_KEYS.get(key) ?? null;
}
