// config.json's linux.cgroupsPath and the linux.resources a VM-backed container applies on the host
// (memory.limit, cpu.quota/period, cpu.cpus/mems: written to its cgroup, and they size the VM), the
// file writes they become in a v1 or a v2 hierarchy (runc 1.1's files and spellings) and which
// hierarchy takes each, and a note for every other resource present, which is not applied. The pids
// limit is not here: the host's tasks are QEMU's threads, so it applies in the guest (bundle.ts).
// Pure; every bad field is named by its JSON path.
import { type CgroupDir, type CgroupDriver, type ContainerCgroup, isProblem, readCgroupsPath } from "./cgroup-paths";

export interface CpuRequest {
  /** cpu.quota in µs per period; "max": -1, no quota; null: not set (0 or absent, runc's reading). */
  quota: number | "max" | null;
  /** cpu.period in µs; null: not set (the kernel's 100 ms stays). */
  period: number | null;
  /** cpu.cpus, a cpuset list ("0-1,3"); null: not set. */
  cpus: string | null;
  mems: string | null;
}

export interface HostResources {
  /** The container's cgroup; null: no cgroupsPath, so no cgroup work at all. */
  cgroup: ContainerCgroup | null;
  /** linux.resources.memory.limit: bytes, "max" (-1), or null (not set). */
  memoryLimit: number | "max" | null;
  cpu: CpuRequest;
}

export const NO_RESOURCES: HostResources = { cgroup: null, memoryLimit: null, cpu: { quota: null, period: null, cpus: null, mems: null } };

/** The kernel's bounds on a CFS period and quota (1 ms to 1 s; a quota of at least 1 ms). */
const MIN_CFS_US = 1000;
const MAX_CFS_PERIOD_US = 1_000_000;
/** The period the kernel uses when only a quota is set (cpu.cfs_period_us's default). */
export const DEFAULT_CFS_PERIOD_US = 100_000;
/** The largest CPU number a cpuset list may name (the kernel's NR_CPUS at most). */
const MAX_CPU = 8191;

type JsonObject = Record<string, unknown>;
const isObject = (value: unknown): value is JsonObject => typeof value === "object" && value !== null && !Array.isArray(value);
const get = (object: unknown, key: string): unknown => (isObject(object) && Object.hasOwn(object, key) ? object[key] : undefined);
const absent = (value: unknown) => value === undefined || value === null;

/** "0-3,5" → [0,1,2,3,5]; null when it is not a cpuset list. */
export function parseCpuList(text: string): number[] | null {
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(text)) return null;
  const numbers = new Set<number>();
  for (const range of text.split(",")) {
    const [first, last = first] = range.split("-").map(Number) as [number, number?];
    if (last! < first || last! > MAX_CPU) return null;
    for (let cpu = first; cpu <= last!; cpu++) numbers.add(cpu);
  }
  return [...numbers].sort((a, b) => a - b);
}

/** Fields of linux.resources not applied to a VM-backed container, and why, by where they are. */
const NOT_APPLIED: ReadonlyArray<{ path: string[]; why: string }> = [
  { path: ["devices"], why: "host device rules do not reach into a VM, which has its own devices" },
  { path: ["memory", "reservation"], why: "only the memory limit is applied" },
  { path: ["memory", "kernel"], why: "only the memory limit is applied" },
  { path: ["memory", "kernelTCP"], why: "only the memory limit is applied" },
  { path: ["memory", "swappiness"], why: "only the memory limit is applied" },
  { path: ["memory", "disableOOMKiller"], why: "the guest's own OOM killer ends the workload" },
  { path: ["cpu", "shares"], why: "only the quota, period and cpuset are applied" },
  { path: ["cpu", "realtimeRuntime"], why: "only the quota, period and cpuset are applied" },
  { path: ["cpu", "realtimePeriod"], why: "only the quota, period and cpuset are applied" },
  { path: ["cpu", "idle"], why: "only the quota, period and cpuset are applied" },
  { path: ["blockIO"], why: "the VM's disk and share I/O is QEMU's" },
  { path: ["hugepageLimits"], why: "the guest has no huge pages of the host's" },
  { path: ["network"], why: "the guest's NIC is a VM device" },
  { path: ["rdma"], why: "the VM has no RDMA devices" },
  { path: ["unified"], why: "raw cgroup v2 files are not written" },
];

function isSet(value: unknown): boolean {
  if (absent(value)) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (isObject(value)) return Object.keys(value).length > 0;
  return value !== 0 && value !== "" && value !== false;
}

function integerAt(errors: string[], value: unknown, path: string, min: number, max: number): number | null {
  if (absent(value)) return null;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    errors.push(`${path}: expected a whole number from ${min} to ${max}`);
    return null;
  }
  return value;
}

function cpuListAt(errors: string[], value: unknown, path: string): string | null {
  if (absent(value) || value === "") return null;
  if (typeof value !== "string" || parseCpuList(value) === null) {
    errors.push(`${path}: expected a cpuset list like "0-3,5" (numbers up to ${MAX_CPU})`);
    return null;
  }
  return value;
}

function readCpu(errors: string[], cpu: unknown): CpuRequest {
  if (!absent(cpu) && !isObject(cpu)) errors.push("linux.resources.cpu: expected an object");
  const quota = integerAt(errors, get(cpu, "quota"), "linux.resources.cpu.quota", -1, Number.MAX_SAFE_INTEGER);
  if (quota !== null && quota > 0 && quota < MIN_CFS_US) errors.push(`linux.resources.cpu.quota: ${quota} µs is below the kernel's ${MIN_CFS_US} µs`);
  const period = integerAt(errors, get(cpu, "period"), "linux.resources.cpu.period", 0, MAX_CFS_PERIOD_US);
  if (period !== null && period > 0 && period < MIN_CFS_US) errors.push(`linux.resources.cpu.period: ${period} µs is below the kernel's ${MIN_CFS_US} µs`);
  return {
    quota: quota === null || quota === 0 ? null : quota === -1 ? "max" : quota,
    period: period === null || period === 0 ? null : period,
    cpus: cpuListAt(errors, get(cpu, "cpus"), "linux.resources.cpu.cpus"),
    mems: cpuListAt(errors, get(cpu, "mems"), "linux.resources.cpu.mems"),
  };
}

/**
 * linux (config.json's object) under the engine's driver → what the host applies, the notes for
 * --debug, and the problems by JSON path. memoryLimit is the workload spec's reading of
 * linux.resources.memory.limit (src/workload/oci.ts), shared with the guest's own limit.
 */
export function readHostResources(linux: unknown, driver: CgroupDriver, memoryLimit: number | "max" | null): { resources: HostResources; notes: string[]; errors: string[] } {
  const errors: string[] = [];
  const notes: string[] = [];
  const resources = get(linux, "resources");
  if (!absent(resources) && !isObject(resources)) errors.push("linux.resources: expected an object");
  const cpu = readCpu(errors, get(resources, "cpu"));
  for (const { path, why } of NOT_APPLIED) {
    const value = path.reduce<unknown>((object, key) => get(object, key), resources);
    if (isSet(value)) notes.push(`linux.resources.${path.join(".")} is not applied (${why})`);
  }
  const pathValue = get(linux, "cgroupsPath");
  let cgroup: ContainerCgroup | null = null;
  if (!absent(pathValue) && typeof pathValue !== "string") errors.push("linux.cgroupsPath: expected a string");
  else if (typeof pathValue === "string" && pathValue !== "") {
    const read = readCgroupsPath(pathValue, driver);
    if (isProblem(read)) errors.push(`linux.cgroupsPath: ${read.problem}`);
    else cgroup = read;
  }
  if (cgroup === null && errors.length === 0) notes.push("linux.cgroupsPath is not set: no cgroup is made, the VM's host processes stay in the engine's cgroup and no host limit is written");
  return { resources: { cgroup, memoryLimit, cpu }, notes, errors };
}

/** One write of a limit: the file in the cgroup's directory, the value, the controller it belongs to. */
export interface LimitWrite {
  controller: "memory" | "cpu" | "cpuset";
  file: string;
  value: string;
}

/**
 * The writes that set these resources, in order, for a v1 hierarchy (memory.limit_in_bytes,
 * cpu.cfs_period_us before cpu.cfs_quota_us, cpuset.cpus/mems) or the v2 one (memory.max, cpu.max
 * "QUOTA PERIOD", cpuset.cpus/mems).
 */
export function limitWrites(resources: HostResources, version: 1 | 2): LimitWrite[] {
  const writes: LimitWrite[] = [];
  const { memoryLimit, cpu } = resources;
  if (memoryLimit !== null) {
    const value = memoryLimit === "max" ? (version === 1 ? "-1" : "max") : String(memoryLimit);
    writes.push({ controller: "memory", file: version === 1 ? "memory.limit_in_bytes" : "memory.max", value });
  }
  if (version === 1) {
    if (cpu.period !== null) writes.push({ controller: "cpu", file: "cpu.cfs_period_us", value: String(cpu.period) });
    if (cpu.quota !== null) writes.push({ controller: "cpu", file: "cpu.cfs_quota_us", value: cpu.quota === "max" ? "-1" : String(cpu.quota) });
  } else if (cpu.quota !== null || cpu.period !== null) {
    writes.push({ controller: "cpu", file: "cpu.max", value: `${cpu.quota === null || cpu.quota === "max" ? "max" : cpu.quota} ${cpu.period ?? DEFAULT_CFS_PERIOD_US}` });
  }
  if (cpu.cpus !== null) writes.push({ controller: "cpuset", file: "cpuset.cpus", value: cpu.cpus });
  if (cpu.mems !== null) writes.push({ controller: "cpuset", file: "cpuset.mems", value: cpu.mems });
  return writes;
}

/** Where one hierarchy's part of the limits goes: its writes, and (cgroup2) the controllers its ancestors must enable for them. */
export interface PlacedLimits {
  dir: CgroupDir;
  writes: LimitWrite[];
  /** cgroup2: the controllers these writes need enabled in every ancestor's cgroup.subtree_control. */
  needs: string[];
}

/**
 * Each limit in the hierarchy that has its controller: a v1 one bound to it, else cgroup2 when
 * it offers it (v2Controllers: its root's cgroup.controllers); or which controller no hierarchy has.
 */
export function placeLimits(dirs: readonly CgroupDir[], resources: HostResources, v2Controllers: readonly string[]): PlacedLimits[] | { problem: string } {
  const v1Bound = new Set(dirs.filter((dir) => dir.hierarchy.version === 1).flatMap((dir) => dir.hierarchy.controllers));
  const hasV2 = dirs.some((dir) => dir.hierarchy.version === 2);
  const homeless = [...new Set(limitWrites(resources, 2).map((write) => write.controller))].filter((controller) => !v1Bound.has(controller) && !(hasV2 && v2Controllers.includes(controller)));
  if (homeless.length > 0) return { problem: `no cgroup hierarchy has the ${homeless.join(", ")} controller${homeless.length > 1 ? "s" : ""} (${hasV2 ? `cgroup2 offers: ${v2Controllers.join(" ") || "none"}` : "no v1 hierarchy binds it"}), which the container's limits need` };
  return dirs.map((dir) => {
    if (dir.hierarchy.version === 1) return { dir, writes: limitWrites(resources, 1).filter((write) => dir.hierarchy.controllers.includes(write.controller)), needs: [] };
    const writes = limitWrites(resources, 2).filter((write) => !v1Bound.has(write.controller));
    return { dir, writes, needs: [...new Set(writes.map((write) => write.controller))] };
  });
}
