// The workload's cgroup (v2): the root's controllers enabled for its children, one child
// directory with the limits written, its path returned for the supervisor's cgroup= word.
// Fails closed: any step that does not take is an Error naming the file and the errno, and the
// boot must not start the workload outside the limits it asked for.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync, constants } from "node:fs";
import { join } from "node:path";
import * as sys from "../sys";

export interface CgroupLimits {
  /** memory.max: bytes, or "max". */
  memoryMax: number | "max" | null;
  pidsMax: number | "max" | null;
}

export interface CgroupOptions {
  /** Where cgroup2 is (or gets) mounted; a test passes a temp dir of fake files. */
  root?: string;
  /** The child's name under root. */
  name?: string;
  /** Mount cgroup2 on root when it is not there; by default only for the real root. */
  mount?: boolean;
}

export const CGROUP_ROOT = "/sys/fs/cgroup";
export const WORKLOAD_CGROUP = "burrow-workload";

const { NOSUID, NODEV, NOEXEC } = sys.MountFlags;

/** The errno name: node:fs errors and sys.SysError both carry it as .code. */
export function cgroupErrno(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : error instanceof Error ? error.message : String(error);
}

/** One write of the whole value, as cgroupfs wants it; no O_CREAT, so a missing knob is an error. */
export function writeCgroupKnob(path: string, value: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(path, constants.O_WRONLY);
    writeSync(fd, value);
  } catch (error) {
    throw new Error(`cgroup: cannot write ${JSON.stringify(value)} to ${path}: ${cgroupErrno(error)}`);
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

export function readCgroupKnob(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new Error(`cgroup: cannot read ${path}: ${cgroupErrno(error)}`);
  }
}

/** cgroup2 on root unless it is there already (cgroup.controllers exists only at a v2 root). */
function ensureMounted(root: string): void {
  if (existsSync(join(root, "cgroup.controllers"))) return;
  try {
    mkdirSync(root, { recursive: true });
    sys.mount("cgroup2", root, "cgroup2", NOSUID | NODEV | NOEXEC, "nsdelegate");
  } catch (error) {
    throw new Error(`cgroup: cannot mount cgroup2 on ${root}: ${cgroupErrno(error)}`);
  }
}

const limitText = (value: number | "max") => (value === "max" ? "max" : String(value));

/**
 * Create the workload's cgroup with `limits` and return its directory. memory.oom.group=1 so an
 * OOM kill takes the whole workload rather than one of its processes; memory.swap.max=0 under a
 * byte limit because zram's compressed pages are not charged to the cgroup, so swap would let
 * the workload hold more RAM than memory.max (skipped where the kernel has no swap accounting).
 */
export function prepareWorkloadCgroup(limits: CgroupLimits, options: CgroupOptions = {}): string {
  const root = options.root ?? CGROUP_ROOT;
  if (options.mount ?? root === CGROUP_ROOT) ensureMounted(root);
  const controllers = [limits.memoryMax !== null ? "memory" : "", limits.pidsMax !== null ? "pids" : ""].filter(Boolean);
  const available = readCgroupKnob(join(root, "cgroup.controllers")).split(/\s+/);
  const missing = controllers.filter((controller) => !available.includes(controller));
  if (missing.length) throw new Error(`cgroup: controller ${missing.join(", ")} not in ${join(root, "cgroup.controllers")} (the kernel lacks it)`);
  if (controllers.length) writeCgroupKnob(join(root, "cgroup.subtree_control"), controllers.map((controller) => `+${controller}`).join(" "));
  const directory = join(root, options.name ?? WORKLOAD_CGROUP);
  try {
    mkdirSync(directory);
  } catch (error) {
    if (cgroupErrno(error) !== "EEXIST") throw new Error(`cgroup: cannot create ${directory}: ${cgroupErrno(error)}`);
  }
  if (limits.memoryMax !== null) {
    writeCgroupKnob(join(directory, "memory.max"), limitText(limits.memoryMax));
    const swap = join(directory, "memory.swap.max");
    if (limits.memoryMax !== "max" && existsSync(swap)) writeCgroupKnob(swap, "0");
    writeCgroupKnob(join(directory, "memory.oom.group"), "1");
  }
  if (limits.pidsMax !== null) writeCgroupKnob(join(directory, "pids.max"), limitText(limits.pidsMax));
  return directory;
}
