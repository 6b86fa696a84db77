// Where the host's cgroup hierarchies are: the cgroup and cgroup2 mounts of /proc/self/mountinfo
// read into hierarchies (v1: one per set of controllers bound together, or a named one like
// name=systemd; v2: the unified one), the layout they make, and this process's own cgroup in each
// (/proc/self/cgroup), against which runc reads a relative cgroupsPath. Pure: callers read the files.
import { parseMountinfoLine } from "../boot/mounts";

export interface Hierarchy {
  version: 1 | 2;
  /** v1: its controllers and name= words, sorted ("cpu", "cpu,cpuacct" → ["cpu", "cpuacct"], ["name=systemd"]); v2: none. */
  controllers: string[];
  mountPoint: string;
  /** The cgroup of the hierarchy mounted there: "/" when the whole hierarchy is. */
  root: string;
}

/**
 * unified: cgroup2 alone (systemd's default since 247); hybrid: v1 controllers plus cgroup2 without
 * them (this host: cgroup2 at /sys/fs/cgroup/unified); legacy: v1 alone.
 */
export type CgroupLayout = "unified" | "hybrid" | "legacy";

export interface CgroupMounts {
  layout: CgroupLayout;
  /** The hierarchies a container's cgroup is made in: v1 ones first (controllers, name=systemd), then cgroup2 (unified, hybrid). */
  hierarchies: Hierarchy[];
}

/** The v1 controllers Linux has (cgroup_subsys.h); a super option not among them is a mount option. */
export const V1_CONTROLLERS: readonly string[] = ["cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "net_cls", "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc"];
/** The only named v1 hierarchy a container joins, as runc does: systemd's, which tools read a process's unit from. */
export const SYSTEMD_NAMED = "name=systemd";

const key = (hierarchy: Hierarchy) => `${hierarchy.version}:${hierarchy.controllers.join(",")}`;

/**
 * The cgroup hierarchies in mountinfo's text and their layout, or null when none is mounted. A
 * hierarchy mounted more than once is taken where its whole tree is ("/"), else at its first mount.
 */
export function parseCgroupMounts(mountinfo: string): CgroupMounts | null {
  const found = new Map<string, Hierarchy>();
  for (const line of mountinfo.split("\n")) {
    // A malformed line has no filesystem type of ours.
    const mount = parseMountinfoLine(line);
    if (mount.fstype !== "cgroup" && mount.fstype !== "cgroup2") continue;
    const hierarchy: Hierarchy = mount.fstype === "cgroup2"
      ? { version: 2, controllers: [], mountPoint: mount.mountPoint, root: mount.root }
      : { version: 1, controllers: mount.superOptions.filter((option) => V1_CONTROLLERS.includes(option) || option.startsWith("name=")).sort(), mountPoint: mount.mountPoint, root: mount.root };
    if (hierarchy.version === 1 && hierarchy.controllers.length === 0) continue;
    const seen = found.get(key(hierarchy));
    if (seen === undefined || (seen.root !== "/" && hierarchy.root === "/")) found.set(key(hierarchy), hierarchy);
  }
  const all = [...found.values()];
  const unified = all.find((hierarchy) => hierarchy.version === 2) ?? null;
  const v1 = all.filter((hierarchy) => hierarchy.version === 1);
  const v1Controllers = v1.filter((hierarchy) => hierarchy.controllers.some((controller) => !controller.startsWith("name=")));
  if (unified !== null && v1Controllers.length === 0) return { layout: "unified", hierarchies: [unified] };
  const joined = v1.filter((hierarchy) => hierarchy.controllers.some((controller) => V1_CONTROLLERS.includes(controller) || controller === SYSTEMD_NAMED));
  if (joined.length === 0) return null;
  return unified === null ? { layout: "legacy", hierarchies: joined } : { layout: "hybrid", hierarchies: [...joined, unified] };
}

/**
 * /proc/self/cgroup (ID:CONTROLLERS:PATH) → this process's cgroup path per hierarchy, keyed as
 * hierarchyKey() keys them ("" for cgroup2).
 */
export function parseOwnCgroups(text: string): Map<string, string> {
  const own = new Map<string, string>();
  for (const line of text.split("\n")) {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    own.set(controllers === "" ? "" : controllers.split(",").sort().join(","), line.slice(second + 1));
  }
  return own;
}

/** How parseOwnCgroups keys a hierarchy. */
export function hierarchyKey(hierarchy: Hierarchy): string {
  return hierarchy.controllers.join(",");
}

/** "memory", "cpu,cpuacct", "name=systemd", or "cgroup2": a hierarchy as a line names it. */
export function hierarchyName(hierarchy: Hierarchy): string {
  return hierarchy.version === 2 ? "cgroup2" : hierarchy.controllers.join(",");
}
