// switch_root: move the API mounts into the new root and make it "/". From an initramfs: empty it
// first (it cannot be unmounted, only emptied, to give its RAM back), then MS_MOVE the new root
// onto "/", chroot ".", chdir "/", as busybox switch_root does. From a boot disk the kernel
// mounted: pivot_root and detach the old root, so no process can reach the disk again and its
// page cache (the runtime burrow ran from) is freed once the agent's exec drops burrow's mapping.
// Refused unless PID 1 and the new root is a different mount. Everything that can fail on the new
// root is checked before anything is deleted: after that, the fallback shell is gone with the initramfs.
import { lstatSync, mkdirSync, readdirSync, readlinkSync, rmdirSync, statfsSync, statSync, unlinkSync } from "node:fs";
import { describeError } from "../../errors";
import { readMounts, type MountEntry } from "../../boot/mounts";
import * as sys from "../../sys";

export const RAMFS_MAGIC = 0x858458f6;
export const TMPFS_MAGIC = 0x01021994;

/** Is "/" the initramfs? statfs magic when available, else the mountinfo entry for "/". */
export function rootIsInitramfs(mounts: MountEntry[], statfsType: number | null): boolean {
  if (statfsType !== null) return statfsType === RAMFS_MAGIC || statfsType === TMPFS_MAGIC;
  const root = mounts.filter((entry) => entry.mountPoint === "/").at(0);
  return root !== undefined && ["rootfs", "ramfs", "tmpfs"].includes(root.fstype);
}

function statfsType(path: string): number | null {
  try {
    return Number(statfsSync(path).type) >>> 0;
  } catch {
    return null; // the caller falls back to mountinfo
  }
}

export interface SwitchCheck { ok: boolean; initramfs: boolean; reason?: string }

export function checkSwitch(newRoot: string, pid = process.pid): SwitchCheck {
  const initramfs = rootIsInitramfs(readMounts(), statfsType("/"));
  if (pid !== 1) return { ok: false, initramfs, reason: `not PID 1 (pid ${pid})` };
  let sameMount = true;
  try {
    sameMount = lstatSync(newRoot).dev === lstatSync("/").dev;
  } catch (error) {
    return { ok: false, initramfs, reason: `${newRoot}: ${describeError(error)}` };
  }
  if (sameMount) return { ok: false, initramfs, reason: `${newRoot} is not a mount point (same device as /)` };
  return { ok: true, initramfs };
}

/** Linux's limit on symlinks followed while resolving one path (MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

/**
 * `path` resolved as it will be once `root` is "/": absolute symlink targets and ".." stay inside
 * `root`. Returns the host-side path, or a reason (too many links, a component that is not a
 * directory). Missing final components are returned unresolved; the caller stats them.
 */
export function resolveInRoot(root: string, path: string): { path: string } | { problem: string } {
  const pending = path.split("/").filter(Boolean).reverse();
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.pop()!;
    if (part === ".") continue;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const hostPath = `${root}/${[...resolved, part].join("/")}`;
    let info;
    try {
      info = lstatSync(hostPath);
    } catch {
      // Missing from here on: returned unresolved, for the caller to stat.
      resolved.push(part, ...pending.reverse());
      return { path: `${root}/${resolved.join("/")}` };
    }
    if (!info.isSymbolicLink()) {
      if (pending.length > 0 && !info.isDirectory()) return { problem: `/${[...resolved, part].join("/")} is not a directory` };
      resolved.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) return { problem: `too many levels of symbolic links (ELOOP) at /${[...resolved, part].join("/")}` };
    const target = readlinkSync(hostPath);
    if (target.startsWith("/")) resolved.length = 0;
    pending.push(...target.split("/").filter(Boolean).reverse());
  }
  return { path: `${root}/${resolved.join("/")}` };
}

/**
 * What must hold on the new root before the initramfs is emptied: the agent is an executable
 * file there, and every mount point the API filesystems move to exists or can be made now.
 * Returns the first problem as one line, or null.
 */
export function checkNewRoot(newRoot: string, agent: string | null, moved: readonly string[]): string | null {
  return (agent === null ? null : checkAgent(newRoot, agent)) ?? makeMountPoints(newRoot, moved);
}

/** The agent must be an executable file on the new root (null: none is started at boot). */
function checkAgent(newRoot: string, agent: string): string | null {
  const agentPath = resolveInRoot(newRoot, agent);
  if ("problem" in agentPath) return `agent ${agent}: ${agentPath.problem}`;
  let info;
  try {
    info = statSync(agentPath.path);
  } catch {
    return `agent ${agent} does not exist on the new root (ENOENT)`;
  }
  if (!info.isFile()) return `agent ${agent} is not a regular file`;
  if ((info.mode & 0o111) === 0) return `agent ${agent} is not executable (mode ${(info.mode & 0o7777).toString(8)})`;
  return null;
}

function makeMountPoints(newRoot: string, moved: readonly string[]): string | null {
  for (const path of moved) {
    try {
      mkdirSync(`${newRoot}${path}`, { recursive: true, mode: 0o755 });
    } catch (error) {
      return `cannot create mount point ${path} on the new root: ${describeError(error)}`;
    }
  }
  return null;
}

/**
 * Delete everything under `dir` that lives on `dev`, never crossing into another filesystem
 * (mount points such as /proc or the new root stay, and are not entered). Returns files removed.
 */
export function deleteTree(dir: string, dev: number, skip: ReadonlySet<string>): { files: number; errors: string[] } {
  const result = { files: 0, errors: [] as string[] };
  const walk = (path: string) => {
    let entries: string[];
    try {
      entries = readdirSync(path);
    } catch (error) {
      result.errors.push(`${path}: ${(error as NodeJS.ErrnoException).code}`);
      return;
    }
    for (const entry of entries) {
      const child = path === "/" ? `/${entry}` : `${path}/${entry}`;
      if (skip.has(child)) continue;
      try {
        const info = lstatSync(child);
        if (info.dev !== dev) continue; // a mount point: leave it and what is under it
        if (info.isDirectory()) {
          walk(child);
          rmdirSync(child);
        } else {
          unlinkSync(child);
          result.files++;
        }
      } catch (error) {
        result.errors.push(`${child}: ${(error as NodeJS.ErrnoException).code ?? describeError(error)}`);
      }
    }
  };
  walk(dir);
  return result;
}

export interface SwitchOutcome {
  deleted: number;
  deleteErrors: string[];
  moved: string[];
  /** emptied: the initramfs; detached: a mounted old root, gone at exec; kept: still mounted beneath "/" (keptReason says why). */
  oldRoot: "emptied" | "detached" | "kept";
  keptReason?: string;
}

export function switchRoot(newRoot: string, moved: readonly string[], deleteInitramfs: boolean): SwitchOutcome {
  const outcome: SwitchOutcome = { deleted: 0, deleteErrors: [], moved: [], oldRoot: deleteInitramfs ? "emptied" : "kept" };
  if (deleteInitramfs) {
    const skip = new Set([newRoot, ...moved]);
    const { files, errors } = deleteTree("/", lstatSync("/").dev, skip);
    outcome.deleted = files;
    outcome.deleteErrors = errors;
  }
  const mounts = readMounts();
  for (const path of moved) {
    if (!mounts.some((entry) => entry.mountPoint === path)) continue;
    const target = `${newRoot}${path}`;
    mkdirSync(target, { recursive: true, mode: 0o755 });
    sys.mount(path, target, null, sys.MountFlags.MOVE);
    outcome.moved.push(path);
  }
  sys.chdir(newRoot);
  if (!deleteInitramfs) {
    try {
      // pivot_root(".", ".") stacks the old root on top of the new one; detaching the top mount
      // leaves the new root as "/" for every process (man 2 pivot_root).
      sys.pivotRoot(".", ".");
    } catch (error) {
      // EINVAL when a mount involved has shared propagation: the MS_MOVE below still works.
      outcome.keptReason = error instanceof sys.SysError ? `pivot_root: ${error.code}` : describeError(error);
    }
    if (outcome.keptReason === undefined) {
      // After a successful pivot the old root is on top: it must go, or "/" would still be the boot disk.
      sys.umount2(".", sys.UmountFlags.DETACH);
      sys.chdir("/");
      outcome.oldRoot = "detached";
      return outcome;
    }
  }
  sys.mount(".", "/", null, sys.MountFlags.MOVE);
  sys.chroot(".");
  sys.chdir("/");
  return outcome;
}
