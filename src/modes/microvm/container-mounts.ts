// A container's mounts (burrow.bundle=TAG): the host's plan (src/oci/guest-plan.ts, mounts.json on
// the read-only bundle share) carried out before switch_root, in the plan's order. Every mount
// point is made and opened inside the new root with openat2(RESOLVE_IN_ROOT), so a symlink in the
// image ("/etc -> /", "data -> ../../..") can never send a mount outside it; the mount then goes
// onto /proc/self/fd/N of what was opened, as runc does. Destinations under the mounts the VM
// moves into the new root (/dev, /proc, /sys, /run, /tmp) are made on the VM's own tree instead,
// so they travel with the move rather than being covered by it.
import { closeSync, fstatSync, mkdirSync, readFileSync, rmdirSync, writeFileSync, chownSync } from "node:fs";
import { describeError } from "../../errors";
import { log } from "../../log";
import { GUEST_PLAN_FILE, parseGuestPlan, type GuestMount, type GuestPlan } from "../../oci/guest-plan";
import { describeMountFlags, parseMountOptions, type MountOptions } from "../../oci/mount-options";
import * as sys from "../../sys";
import { ninePMountData, ninePTags, shareFailure } from "./shares";

/** Where the bundle share and the copies of its files are mounted while the plan runs: /dev stays the VM's, never covered by a plan mount. */
export const BUNDLE_STAGING = "/dev/.burrow-bundle";
export const FILES_STAGING = "/dev/.burrow-files";

/**
 * The VM's own API filesystems, which switch_root moves onto these paths: a plan mount there of
 * the same type is satisfied by the VM's (its per-mount flags applied, e.g. a read-only /sys);
 * another type is not mounted (a tmpfs /dev would need every device node made by hand).
 */
export const VM_OWN_MOUNTS: Readonly<Record<string, string>> = { "/dev": "devtmpfs", "/proc": "proc", "/sys": "sysfs" };

const { RDONLY, BIND, REC, REMOUNT, NOSUID, NODEV, NOEXEC } = sys.MountFlags;

/** The flags a mount point carries (bind, rec and remount say how to mount, not what). */
export function perMountFlags(flags: number): number {
  return flags & ~(BIND | REC | REMOUNT);
}

/** Where a destination is made: inside the new root, on the VM's tree that moves in, or the VM's own mount itself. */
export type Place = { in: "root"; path: string } | { in: "vm"; path: string } | { in: "vm-own"; path: string; type: string };

export function placeOf(destination: string, moved: readonly string[]): Place {
  const path = `/${destination.split("/").filter((part) => part !== "" && part !== ".").join("/")}`;
  const own = VM_OWN_MOUNTS[path];
  if (own !== undefined && moved.includes(path)) return { in: "vm-own", path, type: own };
  if (moved.some((prefix) => path === prefix || path.startsWith(`${prefix}/`))) return { in: "vm", path };
  return { in: "root", path };
}

export interface CheckedMount {
  mount: GuestMount;
  options: MountOptions;
  /** "9p share vol0", "file files/hosts", "tmpfs": the mount's type in its lines. */
  label: string;
}

export function mountLabel(mount: GuestMount): string {
  if (mount.kind === "share") return `9p share ${mount.tag}`;
  if (mount.kind === "file") return `file ${mount.file}`;
  return mount.type;
}

/** Every mount's options parsed and checked before anything is mounted; throws the first bad one as one line. */
export function checkPlanMounts(plan: GuestPlan): CheckedMount[] {
  return plan.mounts.map((mount) => {
    const options = parseMountOptions(mount.options);
    const label = mountLabel(mount);
    const problems = [...options.problems];
    if (mount.kind === "fs" && options.bind) problems.push("a bind mount must be a share or a file in the plan");
    if (options.flags & REMOUNT) problems.push("remount is not a mount the plan can make");
    if (problems.length) throw new Error(`container mount ${mount.destination} (${label}): ${problems.join("; ")} (EINVAL)`);
    return { mount, options, label };
  });
}

/** Filesystem types the kernel has, from /proc/filesystems ("nodev\tproc", "\text4"). */
export function kernelFilesystems(text: string): Set<string> {
  return new Set(text.split("\n").map((line) => line.split("\t").at(-1)?.trim() ?? "").filter(Boolean));
}

const O_PATH_DIR = () => sys.OpenFlags.PATH | sys.OpenFlags.DIRECTORY | sys.OpenFlags.CLOEXEC;

/** A base directory and how paths under it may be walked. */
interface Tree { fd: number; resolve: number }

/** The directory `parts` under the tree, made (0755) where missing; returns an O_PATH fd. */
function openDirectory(tree: Tree, parts: readonly string[]): number {
  const path = parts.length ? parts.join("/") : ".";
  try {
    return sys.openat2(tree.fd, path, O_PATH_DIR(), tree.resolve);
  } catch (error) {
    if (!sys.isErrno(error, "ENOENT") || parts.length === 0) throw error;
  }
  const parent = openDirectory(tree, parts.slice(0, -1));
  try {
    // One name in a directory resolved inside the tree: mkdirat never follows it.
    sys.mkdirat(parent, parts.at(-1)!, 0o755);
  } catch (error) {
    // EEXIST: made meanwhile, or a dangling symlink, which the open below then refuses or resolves inside the tree.
    if (!sys.isErrno(error, "EEXIST")) throw error;
  } finally {
    sys.close(parent);
  }
  return sys.openat2(tree.fd, path, O_PATH_DIR(), tree.resolve);
}

/** The file `parts` under the tree, created empty (0644) where missing (through a symlink, inside the tree); returns an fd. */
function openFile(tree: Tree, parts: readonly string[]): number {
  const path = parts.join("/");
  let fd: number;
  try {
    fd = sys.openat2(tree.fd, path, sys.OpenFlags.PATH | sys.OpenFlags.CLOEXEC, tree.resolve);
  } catch (error) {
    if (!sys.isErrno(error, "ENOENT")) throw error;
    sys.close(openDirectory(tree, parts.slice(0, -1)));
    fd = sys.openat2(tree.fd, path, sys.OpenFlags.RDONLY | sys.OpenFlags.CREAT | sys.OpenFlags.NOCTTY | sys.OpenFlags.NONBLOCK | sys.OpenFlags.CLOEXEC, tree.resolve, 0o644);
  }
  const info = fstatSync(fd);
  if (!info.isFile()) {
    sys.close(fd);
    throw new Error(`/${path} exists and is not a regular file (${info.isDirectory() ? "EISDIR" : "EINVAL"})`);
  }
  return fd;
}

function openTarget(tree: Tree, path: string, file: boolean): number {
  const parts = path.split("/").filter(Boolean);
  return file ? openFile(tree, parts) : openDirectory(tree, parts);
}

const fdPath = (fd: number) => `/proc/self/fd/${fd}`;

/** What the staging left behind: undone in reverse, whatever happened. */
interface Cleanup { mounts: string[]; dirs: string[]; fds: number[] }

/**
 * Copies of the plan's files on a tmpfs of their own: a bind of the read-only share would make
 * the container's /etc/hosts unwritable, and an entrypoint that appends to it would fail. The
 * copies are the guest's: a write never reaches the host's file (as with a bind it would).
 */
function stageFiles(checked: readonly CheckedMount[], bundleFd: number, cleanup: Cleanup): Map<number, string> {
  const wanted = checked.flatMap((entry, index) => (entry.mount.kind === "file" ? [{ index, file: entry.mount.file, destination: entry.mount.destination }] : []));
  const staged = new Map<number, string>();
  if (wanted.length === 0) return staged;
  const contents = wanted.map(({ index, file, destination }) => {
    let fd = -1;
    try {
      fd = sys.openat2(bundleFd, file, sys.OpenFlags.RDONLY | sys.OpenFlags.NOCTTY | sys.OpenFlags.NONBLOCK | sys.OpenFlags.CLOEXEC, sys.ResolveFlags.IN_ROOT | sys.ResolveFlags.NO_MAGICLINKS);
      const info = fstatSync(fd);
      if (!info.isFile()) throw new Error(`${file} in the bundle is not a regular file`);
      return { index, data: readFileSync(fd), mode: info.mode & 0o7777, uid: info.uid, gid: info.gid };
    } catch (error) {
      throw new Error(`container mount ${destination} (file ${file}): cannot read it from the bundle: ${describeError(error)}`);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  });
  // Room for the copies and for the container to grow them (a line appended to /etc/hosts).
  const bytes = contents.reduce((sum, entry) => sum + entry.data.byteLength, 0);
  const size = Math.max(1 << 20, Math.ceil((bytes * 2) / 4096) * 4096);
  mkdirSync(FILES_STAGING, { mode: 0o700 });
  cleanup.dirs.push(FILES_STAGING);
  // No flags of its own: a bind takes its source's, and a file mount gets exactly the plan's (an entrypoint script stays executable).
  sys.mount("burrow-files", FILES_STAGING, "tmpfs", 0, `mode=0755,size=${size}`);
  cleanup.mounts.push(FILES_STAGING);
  for (const entry of contents) {
    const path = `${FILES_STAGING}/${entry.index}`;
    writeFileSync(path, entry.data, { mode: entry.mode, flag: "wx" });
    chownSync(path, entry.uid, entry.gid);
    staged.set(entry.index, path);
  }
  return staged;
}

function undo(cleanup: Cleanup): void {
  for (const fd of cleanup.fds) sys.close(fd);
  for (const path of cleanup.mounts.reverse()) {
    try {
      sys.umount2(path, sys.UmountFlags.DETACH);
    } catch (error) {
      log.warn(`container mounts: cannot detach the staging mount ${path}: ${describeError(error)}`);
    }
  }
  for (const path of cleanup.dirs.reverse()) {
    try {
      rmdirSync(path);
    } catch (error) {
      log.warn(`container mounts: cannot remove ${path}: ${describeError(error)}`);
    }
  }
}

export interface ContainerMountsResult {
  made: string[];
  skipped: string[];
  readOnlyRoot: boolean;
}

function readPlan(bundleFd: number, tag: string): GuestPlan {
  let text: string;
  let fd = -1;
  try {
    fd = sys.openat2(bundleFd, GUEST_PLAN_FILE, sys.OpenFlags.RDONLY | sys.OpenFlags.CLOEXEC, sys.ResolveFlags.IN_ROOT | sys.ResolveFlags.NO_MAGICLINKS);
    text = readFileSync(fd, "utf8");
  } catch (error) {
    throw new Error(`burrow.bundle=${tag}: cannot read ${GUEST_PLAN_FILE}: ${describeError(error)}`);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  const parsed = parseGuestPlan(text);
  if (!parsed.ok) throw new Error(`burrow.bundle=${tag}: ${parsed.error}`);
  return parsed.plan;
}

/** One plan mount, its mount point made and opened first. Throws one line naming the destination, the type and the errno. */
/** made, or not made and why (warn: a plan mount this kernel cannot make; else the VM's own mount serves it). */
type Outcome = { made: true } | { made: false; why: string; warn: boolean };
const MADE: Outcome = { made: true };

function applyMount(entry: CheckedMount, index: number, trees: { root: Tree; vm: Tree }, place: Place, files: ReadonlyMap<number, string>, filesystems: Set<string>): Outcome {
  const { mount, options, label } = entry;
  const flags = perMountFlags(options.flags);
  if (place.in === "vm-own") {
    if (mount.kind === "fs" && mount.type === place.type) {
      // The VM's instance (hardening keeps its hidepid): only the per-mount flags are the plan's.
      sys.mount("none", place.path, null, REMOUNT | BIND | flags);
      return MADE;
    }
    return { made: false, why: `the VM's own ${place.type} stays there`, warn: mount.kind !== "fs" };
  }
  if (mount.kind === "fs" && !filesystems.has(mount.type)) return { made: false, why: `the kernel has no ${mount.type} filesystem`, warn: true };
  const tree = place.in === "root" ? trees.root : trees.vm;
  const relative = place.path.slice(1);
  const target = openTarget(tree, relative, mount.kind === "file");
  try {
    if (mount.kind === "share") {
      try {
        sys.mount(mount.tag, fdPath(target), "9p", flags, ninePMountData("volume"));
      } catch (error) {
        if (!(error instanceof sys.SysError)) throw error;
        throw new Error(`mount: ${shareFailure("9p", mount.tag, error.code, ninePTags())}`);
      }
    } else if (mount.kind === "file") {
      sys.mount(files.get(index)!, fdPath(target), null, BIND);
    } else {
      sys.mount(mount.source || mount.type, fdPath(target), mount.type, flags, options.data || null);
    }
  } finally {
    sys.close(target);
  }
  const needsRemount = mount.kind === "file" && flags !== 0;
  if (!needsRemount && options.propagation === null) return MADE;
  // The fd above is the mount point below the new mount: reopen to reach the new mount's root.
  const top = openTarget(tree, relative, mount.kind === "file");
  try {
    // A bind takes its flags from its source: a second call sets the plan's (ro, nosuid, …).
    if (needsRemount) sys.mount("none", fdPath(top), null, REMOUNT | BIND | flags);
    if (options.propagation !== null) sys.mount("none", fdPath(top), null, options.propagation);
  } finally {
    sys.close(top);
  }
  return MADE;
}

function failure(destination: string, label: string, error: unknown): Error {
  const why = error instanceof sys.SysError ? `${error.call}: ${error.reason}` : describeError(error);
  return new Error(`container mount ${destination} (${label}): ${why}`);
}

/**
 * Mount the bundle share, read and check its plan, make every mount in order, then the root
 * read-only when asked (the plan's readonlyRoot or the command line's `ro`). The staging mounts
 * are gone when this returns, failed or not: the file binds keep their tmpfs alive.
 */
export function applyContainerMounts(tag: string, newRoot: string, moved: readonly string[], rootFlags: number, readOnly: boolean): ContainerMountsResult {
  const result: ContainerMountsResult = { made: [], skipped: [], readOnlyRoot: false };
  const cleanup: Cleanup = { mounts: [], dirs: [], fds: [] };
  try {
    mkdirSync(BUNDLE_STAGING, { mode: 0o700 });
    cleanup.dirs.push(BUNDLE_STAGING);
    try {
      sys.mount(tag, BUNDLE_STAGING, "9p", RDONLY | NOSUID | NODEV | NOEXEC, ninePMountData("bundle"));
    } catch (error) {
      if (!(error instanceof sys.SysError)) throw error;
      throw new Error(`burrow.bundle=${tag}: cannot mount the bundle share: ${shareFailure("9p", tag, error.code, ninePTags())}`);
    }
    cleanup.mounts.push(BUNDLE_STAGING);
    const bundleFd = sys.open(BUNDLE_STAGING, O_PATH_DIR());
    cleanup.fds.push(bundleFd);
    const plan = readPlan(bundleFd, tag);
    const checked = checkPlanMounts(plan);
    for (const entry of checked) if (entry.options.ignored.length) log.info(`container mount ${entry.mount.destination} (${entry.label}): ${entry.options.ignored.join(", ")} not applied`);
    const files = stageFiles(checked, bundleFd, cleanup);
    const root: Tree = { fd: sys.open(newRoot, O_PATH_DIR()), resolve: sys.ResolveFlags.IN_ROOT | sys.ResolveFlags.NO_MAGICLINKS };
    cleanup.fds.push(root.fd);
    // The VM's own tree (devtmpfs, its tmpfses): burrow made it, and a symlink in it is refused, never followed.
    const vm: Tree = { fd: sys.open("/", O_PATH_DIR()), resolve: sys.ResolveFlags.NO_SYMLINKS | sys.ResolveFlags.NO_MAGICLINKS };
    cleanup.fds.push(vm.fd);
    const filesystems = kernelFilesystems(readFileSync("/proc/filesystems", "utf8"));
    checked.forEach((entry, index) => {
      const place = placeOf(entry.mount.destination, moved);
      let outcome: Outcome;
      try {
        outcome = applyMount(entry, index, { root, vm }, place, files, filesystems);
      } catch (error) {
        throw failure(place.path, entry.label, error);
      }
      if (outcome.made) {
        result.made.push(place.path);
        log.debug(`container mount ${place.path}: ${entry.label} ${describeMountFlags(perMountFlags(entry.options.flags))}${entry.options.data ? `,${entry.options.data}` : ""}`);
        return;
      }
      const line = `container mount ${place.path} (${entry.label}): ${outcome.why}; skipped`;
      result.skipped.push(`${place.path} (${entry.label})`);
      // A kernel without the type (cgroup on the micro kernel) is expected: said once, never fatal.
      if (outcome.warn) log.warn(line);
      else log.info(line);
    });
    // switch_root moves the VM's mounts onto these: made now, while the root may still be written.
    for (const path of moved) {
      try {
        sys.close(openTarget(root, path.slice(1), false));
      } catch (error) {
        throw failure(path, "mount point", error);
      }
    }
    if (plan.readonlyRoot || readOnly) {
      try {
        sys.mount("none", newRoot, null, REMOUNT | BIND | RDONLY | perMountFlags(rootFlags));
      } catch (error) {
        throw failure("/", "root, read-only", error);
      }
      result.readOnlyRoot = true;
    }
    return result;
  } finally {
    undo(cleanup);
  }
}
