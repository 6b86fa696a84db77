// The container's cgroup on the host. create makes it in every hierarchy (only the directories not
// there yet, each recorded: a cgroup the engine made is joined, never removed), with the cpuset v1
// needs copied down and the cgroup2 controllers enabled, and writes the limits; the holder joins it
// first thing, so QEMU, its child, starts inside; delete removes what create made once its
// processes are gone. Every failing step is one line with the file, the value and the errno name.
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import { parseCgroupMounts, parseOwnCgroups } from "./cgroup-mounts";
import { cgroupDirs, isProblem } from "./cgroup-paths";
import { type HostResources, placeLimits } from "./cgroup-resources";
import { cgroupErrno, readCgroupKnob, writeCgroupKnob } from "../workload/cgroup";

/** A directory create made: the container's own (a leaf) or an ancestor that was missing. */
export interface MadeDir {
  dir: string;
  leaf: boolean;
}

export interface CgroupSetup {
  /** The container's directory in every hierarchy: what the holder joins. */
  join: string[];
  /** What create made, deepest first: what delete removes. */
  made: MadeDir[];
  /** For --debug: where the cgroup is, what was made, what was left as it was. */
  notes: string[];
}

/** The record of it in the container's directory, for delete. */
const RECORD = "cgroup.json";
/** How long delete waits for the kernel to let go of a cgroup whose last process just exited. */
export const REMOVE_WAIT_MS = 5000;
/** Controllers `podman stats` and the kubelet read, enabled for a cgroup2 child when its parent offers them. */
const STATS_CONTROLLERS = ["memory", "cpu", "io", "pids"];

/** The host's cgroup files are written and read as the guest's are (src/workload/cgroup.ts): one value per write, errors named. */
const errnoOf = cgroupErrno;
export const writeCgroupFile = writeCgroupKnob;
const readCgroupFile = (path: string): string => readCgroupKnob(path).trim();

/** The directories from the hierarchy's mount point down to `dir`, top first (the mount point itself not included). */
function levels(mountPoint: string, dir: string): string[] {
  const below = posix.relative(mountPoint, dir).split("/");
  return below.map((_, index) => posix.join(mountPoint, ...below.slice(0, index + 1)));
}

/** cpuset v1 takes no process until cpuset.cpus and cpuset.mems are set: an empty one gets its parent's, as runc does. */
function inheritCpuset(dir: string): void {
  for (const file of ["cpuset.cpus", "cpuset.mems"]) {
    if (readCgroupFile(join(dir, file)) === "") writeCgroupFile(join(dir, file), readCgroupFile(join(posix.dirname(dir), file)));
  }
}

/** cgroup2: each controller a child needs enabled in its parent's subtree_control; `required` ones must take. */
function enableControllers(parent: string, required: readonly string[], notes: string[]): void {
  const offered = readCgroupFile(join(parent, "cgroup.controllers")).split(/\s+/).filter(Boolean);
  const enabled = readCgroupFile(join(parent, "cgroup.subtree_control")).split(/\s+/);
  for (const controller of [...new Set([...required, ...STATS_CONTROLLERS])]) {
    if (enabled.includes(controller) || (!offered.includes(controller) && !required.includes(controller))) continue;
    try {
      writeCgroupFile(join(parent, "cgroup.subtree_control"), `+${controller}`);
    } catch (error) {
      if (required.includes(controller)) throw error;
      notes.push(`${(error as Error).message}; its statistics are not kept`);
    }
  }
}

/** rmdir each, deepest first; what could not go is left (best effort: a failed create's undo). */
function removeQuietly(made: readonly MadeDir[]): void {
  for (const { dir } of made) {
    try {
      rmdirSync(dir);
    } catch {
      // Left: the failure that brought us here is the one reported.
    }
  }
}

export interface SetUpOptions {
  /** Called with everything made so far after each directory is made: create records it at once, so a create killed half-way leaves a record for delete. */
  onMade?: (made: readonly MadeDir[]) => void;
  /** The files the host's hierarchies and burrow-oci's own cgroup are read from. */
  mountinfo?: string;
  ownCgroup?: string;
}

/**
 * Makes the container's cgroup for `resources` (no cgroup: nothing to do) and writes its limits;
 * on a failure undoes what it made and throws the failure's line.
 */
export function setUpCgroup(resources: HostResources, options: SetUpOptions = {}): CgroupSetup {
  const host = { mountinfo: options.mountinfo ?? "/proc/self/mountinfo", ownCgroup: options.ownCgroup ?? "/proc/self/cgroup" };
  const cgroup = resources.cgroup;
  if (cgroup === null) return { join: [], made: [], notes: [] };
  const mounts = parseCgroupMounts(readCgroupFile(host.mountinfo));
  if (mounts === null) throw new Error(`cgroup: no cgroup hierarchy is mounted (no cgroup or cgroup2 mount in ${host.mountinfo}), so linux.cgroupsPath ${cgroup.path} cannot be made`);
  const own = cgroup.relative ? parseOwnCgroups(readCgroupFile(host.ownCgroup)) : null;
  const dirs = cgroupDirs(mounts, cgroup, own);
  if (isProblem(dirs)) throw new Error(`cgroup: ${dirs.problem}`);
  const unified = dirs.find((dir) => dir.hierarchy.version === 2);
  const v2Controllers = unified ? readCgroupFile(join(unified.hierarchy.mountPoint, "cgroup.controllers")).split(/\s+/).filter(Boolean) : [];
  const placed = placeLimits(dirs, resources, v2Controllers);
  if (isProblem(placed)) throw new Error(`cgroup: ${placed.problem}`);
  const made: MadeDir[] = [];
  const kept: string[] = [];
  const notes: string[] = [];
  try {
    for (const { dir, writes, needs } of placed) {
      const { mountPoint, version, controllers } = dir.hierarchy;
      for (const level of levels(mountPoint, dir.dir)) {
        if (version === 2) enableControllers(posix.dirname(level), needs, notes);
        try {
          mkdirSync(level, { mode: 0o755 });
          made.push({ dir: level, leaf: level === dir.dir });
          options.onMade?.([...made].reverse());
        } catch (error) {
          if (errnoOf(error) !== "EEXIST") throw new Error(`cgroup: cannot make ${level}: ${errnoOf(error)}`);
          if (level === dir.dir) kept.push(level);
        }
        if (version === 1 && controllers.includes("cpuset")) inheritCpuset(level);
      }
      for (const write of writes) writeCgroupFile(join(dir.dir, write.file), write.value);
    }
  } catch (error) {
    removeQuietly(made.reverse());
    throw error;
  }
  notes.unshift(
    `cgroup ${cgroup.path} (${mounts.layout} layout): the holder and QEMU join ${dirs.map((dir) => dir.dir).join(", ")}`,
    ...(made.length > 0 ? [`cgroup: made ${made.map((entry) => entry.dir).join(", ")} (removed at delete)`] : []),
    ...(kept.length > 0 ? [`cgroup: ${kept.join(", ")} existed already (the engine's): joined and limited, left at delete`] : []),
  );
  return { join: dirs.map((dir) => dir.dir), made: made.reverse(), notes };
}

/** The holder's first step: `pid` (the holder itself; QEMU, its child, inherits) into every directory. */
export function joinCgroup(dirs: readonly string[], pid: number): void {
  for (const dir of dirs) writeCgroupFile(join(dir, "cgroup.procs"), String(pid));
}

export function writeCgroupRecord(containerDir: string, made: readonly MadeDir[]): void {
  writeFileSync(join(containerDir, RECORD), JSON.stringify({ made }), { mode: 0o600 });
}

/** What create made for the container in `containerDir` (none: no record). */
export function readCgroupRecord(containerDir: string): MadeDir[] {
  let text: string;
  try {
    text = readFileSync(join(containerDir, RECORD), "utf8");
  } catch {
    return [];
  }
  const made = (JSON.parse(text) as { made?: unknown }).made;
  return Array.isArray(made) ? made.filter((entry): entry is MadeDir => typeof entry?.dir === "string" && typeof entry?.leaf === "boolean") : [];
}

function processesIn(dir: string): string {
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8").trim().split("\n").filter(Boolean).join(", ");
  } catch {
    return "";
  }
}

/**
 * Removes what create made, deepest first, once the container's processes are gone: its own
 * directories are waited for (the kernel lets go of a cgroup a moment after its last process), an
 * ancestor still holding another container's is left. Returns what could not be removed, one line each.
 */
export async function removeCgroup(made: readonly MadeDir[], waitMs = REMOVE_WAIT_MS): Promise<string[]> {
  const problems: string[] = [];
  const deadline = performance.now() + waitMs;
  for (const { dir, leaf } of made) {
    for (;;) {
      try {
        rmdirSync(dir);
        break;
      } catch (error) {
        const errno = errnoOf(error);
        if (errno === "ENOENT") break;
        // An ancestor another container still uses (its cgroup below): theirs to remove.
        if (!leaf && (errno === "EBUSY" || errno === "ENOTEMPTY")) break;
        if (errno === "EBUSY" && performance.now() < deadline) {
          await Bun.sleep(20);
          continue;
        }
        const inside = processesIn(dir);
        problems.push(`cgroup: cannot remove ${dir}: ${errno}${inside ? ` (processes still in it: ${inside})` : ""}`);
        break;
      }
    }
  }
  return problems;
}
