// The workload spec, resolved: the command line's request over the OCI file's (field by field),
// the user looked up in the new root's passwd and group, encoded as the supervisor's words
// (image/supervisor/). Fails closed: a bad key, an unknown user or a bad file is a refusal
// naming it, never a workload with less confinement than was asked for. Pure: files come
// through readFile.
import { CAPABILITIES, defaultWorkload, RLIMITS, RLIMIT_NAMES, type RlimitName, type RlimitValue, type Rlimits, type WorkloadRequest } from "../config/workload";
import type { CgroupLimits } from "./cgroup";
import { parseOciSpec, type OciRequest } from "./oci";
import { resolveUser, type ResolvedUser } from "./users";

/** A file of the new root by absolute path: its text, or null when it cannot be read. */
export type ReadFile = (path: string) => string | null;

export type WorkloadPlan =
  | {
      ok: true;
      /** The supervisor's spec words, in a stable order (cgroup= is the boot's to add). */
      words: string[];
      /** From the spec file; null: the command line's agent and arguments stand. */
      argv: string[] | null;
      env: string[];
      /** What prepareWorkloadCgroup needs; null when no cgroup limit was asked for. */
      cgroup: CgroupLimits | null;
      home: string | null;
      /** Confining fields of the spec file that are not applied (JSON paths), for the log. */
      ignored: string[];
      summary: string;
    }
  | { ok: false; reason: string };

/** Everything the words encode, resolved: the request's fields, the user looked up. */
export type ResolvedSpec = Pick<WorkloadRequest, "cwd" | "hostname" | "rlimits" | "noNewPrivs" | "capsKeep" | "oomScoreAdj"> & {
  user: ResolvedUser | null;
};

const PASSWD = "/etc/passwd";
const GROUP = "/etc/group";

/** The command line wins field by field; rlimits per resource; no_new_privs if either asks. */
export function mergeRequests(command: OciRequest, file: OciRequest = defaultWorkload()): OciRequest {
  return {
    user: command.user ?? file.user,
    cwd: command.cwd ?? file.cwd,
    hostname: command.hostname ?? file.hostname,
    rlimits: { ...file.rlimits, ...command.rlimits },
    noNewPrivs: command.noNewPrivs || file.noNewPrivs,
    capsKeep: command.capsKeep ?? file.capsKeep,
    oomScoreAdj: command.oomScoreAdj ?? file.oomScoreAdj,
    memoryMax: command.memoryMax ?? file.memoryMax,
    pidsMax: command.pidsMax ?? file.pidsMax,
  };
}

const rlimitText = (value: RlimitValue) => (value === "inf" ? "inf" : String(value));

/** Rlimits by resource number, so the words and the summary do not depend on key order. */
function sortedRlimits(rlimits: Rlimits): [RlimitName, NonNullable<Rlimits[RlimitName]>][] {
  return RLIMIT_NAMES.flatMap((name) => (rlimits[name] ? [[name, rlimits[name]!] as [RlimitName, NonNullable<Rlimits[RlimitName]>]] : []));
}

/** The capabilities to keep as image/supervisor/options.c reads them: a hex bit mask of capability numbers. */
export function capabilityMask(numbers: readonly number[]): string {
  return numbers.reduce((mask, number) => mask | (1n << BigInt(number)), 0n).toString(16);
}

/** The spec as supervisor words: uid gid groups cwd hostname rlimit… nnp capkeep oom, each when set. */
export function supervisorWords(spec: ResolvedSpec): string[] {
  const words: string[] = [];
  if (spec.user) words.push(`uid=${spec.user.uid}`, `gid=${spec.user.gid}`, `groups=${spec.user.groups.join(",")}`);
  if (spec.cwd !== null) words.push(`cwd=${spec.cwd}`);
  if (spec.hostname !== null) words.push(`hostname=${spec.hostname}`);
  for (const [name, { soft, hard }] of sortedRlimits(spec.rlimits)) words.push(`rlimit=${RLIMITS[name]}:${rlimitText(soft)}:${rlimitText(hard)}`);
  if (spec.noNewPrivs) words.push("nnp=1");
  if (spec.capsKeep !== null) words.push(`capkeep=${capabilityMask(spec.capsKeep)}`);
  if (spec.oomScoreAdj !== null) words.push(`oom=${spec.oomScoreAdj}`);
  return words;
}

/** 67108864 → "64M": the unit a person would have written. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [["G", 2 ** 30], ["M", 2 ** 20], ["K", 2 ** 10]] as const) if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  return String(bytes);
}

function capsText(numbers: readonly number[]): string {
  if (numbers.length === 0) return "none";
  if (numbers.length === CAPABILITIES.length) return "all";
  return numbers.map((number) => CAPABILITIES[number]!.slice(4).toLowerCase()).join(",");
}

/** One human line: "user 1000:1000 groups 1000,27, cwd /srv, rlimit nofile 1024:4096, …". */
export function summarize(spec: ResolvedSpec, cgroup: CgroupLimits | null): string {
  const parts: string[] = [];
  const { user } = spec;
  if (user) parts.push(`user ${user.uid}:${user.gid}${user.name === null ? "" : ` (${user.name})`} groups ${user.groups.join(",") || "none"}`);
  if (spec.cwd !== null) parts.push(`cwd ${spec.cwd}`);
  if (spec.hostname !== null) parts.push(`hostname ${spec.hostname}`);
  const rlimits = sortedRlimits(spec.rlimits).map(([name, { soft, hard }]) => `${name} ${rlimitText(soft)}:${rlimitText(hard)}`);
  if (rlimits.length) parts.push(`rlimit ${rlimits.join(" ")}`);
  if (spec.noNewPrivs) parts.push("no_new_privs");
  if (spec.capsKeep !== null) parts.push(`caps ${capsText(spec.capsKeep)}`);
  if (spec.oomScoreAdj !== null) parts.push(`oom_score_adj ${spec.oomScoreAdj}`);
  if (cgroup) {
    const limits = [cgroup.memoryMax === null ? "" : `memory.max ${cgroup.memoryMax === "max" ? "max" : formatBytes(cgroup.memoryMax)}`, cgroup.pidsMax === null ? "" : `pids.max ${cgroup.pidsMax}`];
    parts.push(`cgroup ${limits.filter(Boolean).join(" ")}`);
  }
  return parts.length ? parts.join(", ") : "no workload settings";
}

/** The user, with the file's additionalGids when the user is the file's. */
function lookUpUser(request: string, additionalGids: number[] | null, readFile: ReadFile): ResolvedUser | string {
  const result = resolveUser(request, readFile(PASSWD), readFile(GROUP), PASSWD);
  if (!result.ok) return result.error;
  if (additionalGids === null) return result.user;
  return { ...result.user, groups: [...new Set([result.user.gid, ...additionalGids])] };
}

function resolveChecked(request: WorkloadRequest, readFile: ReadFile): WorkloadPlan {
  if (request.invalid.length) return { ok: false, reason: `workload spec refused: ${request.invalid.join("; ")}` };
  let file: ReturnType<typeof parseOciSpec> | null = null;
  if (request.specFile !== null) {
    const text = readFile(request.specFile);
    if (text === null) return { ok: false, reason: `burrow.spec ${request.specFile}: cannot read it` };
    file = parseOciSpec(text);
    if (!file.ok) return { ok: false, reason: `burrow.spec ${request.specFile}: ${file.error}` };
  }
  const spec = file?.spec ?? null;
  const merged = mergeRequests(request, spec?.request);
  // The file's extra groups belong to the file's user only.
  const additionalGids = request.user === null ? (spec?.additionalGids ?? null) : null;
  const user = merged.user === null ? null : lookUpUser(merged.user, additionalGids, readFile);
  if (typeof user === "string") return { ok: false, reason: user };
  const resolved: ResolvedSpec = { ...merged, user };
  const cgroup = merged.memoryMax === null && merged.pidsMax === null ? null : { memoryMax: merged.memoryMax, pidsMax: merged.pidsMax };
  return {
    ok: true,
    words: supervisorWords(resolved),
    argv: spec?.argv ?? null,
    env: spec?.env ?? [],
    cgroup,
    home: user?.home ?? null,
    ignored: spec?.ignored ?? [],
    summary: summarize(resolved, cgroup),
  };
}

/** Never throws: a readFile that does is one more reason to refuse. */
export function resolveWorkload(request: WorkloadRequest, readFile: ReadFile): WorkloadPlan {
  try {
    return resolveChecked(request, readFile);
  } catch (error) {
    return { ok: false, reason: `workload spec: cannot resolve (${error instanceof Error ? error.message : String(error)})` };
  }
}
