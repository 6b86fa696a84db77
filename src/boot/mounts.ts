// Mounts for every mode: idempotent mounts that read /proc/self/mountinfo, and the walk over a
// mode's table of API filesystems.
import { mkdirSync, readFileSync } from "node:fs";
import { log } from "../log";
import * as sys from "../sys";

/**
 * One row of a mode's mount table. `whenRootReadOnly`: only when "/" is mounted read-only (a boot
 * disk instead of an initramfs), where the places a running system writes need a tmpfs.
 */
export interface MountSpec { source: string; target: string; fstype: string; flags: number; data?: string; whenRootReadOnly?: boolean }

/** `root`: the filesystem's directory mounted there ("/" for its whole tree); `superOptions`: the filesystem's own options (a cgroup v1 mount's controllers). */
export interface MountEntry { mountPoint: string; root: string; fstype: string; source: string; options: string; superOptions: string[] }

export function readMounts(path = "/proc/self/mountinfo"): MountEntry[] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return []; // no /proc: nothing is known to be mounted, so ensureMount mounts
  }
  return text.split("\n").filter(Boolean).map(parseMountinfoLine);
}

/** mountinfo: "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue". */
export function parseMountinfoLine(line: string): MountEntry {
  const [left, right = ""] = line.split(" - ");
  const fields = left!.split(" ");
  const [fstype = "", source = "", superOptions = ""] = right.split(" ");
  return {
    mountPoint: unescapeMountPath(fields[4] ?? ""),
    root: unescapeMountPath(fields[3] ?? ""),
    fstype,
    source: unescapeMountPath(source),
    options: fields[5] ?? "",
    superOptions: superOptions.split(",").filter(Boolean),
  };
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function mountedAt(target: string, mounts = readMounts()): MountEntry | undefined {
  // The last entry for a mount point is the visible one.
  return mounts.filter((entry) => entry.mountPoint === target).at(-1);
}

export type MountOutcome = "mounted" | "remounted" | "already";

/**
 * Mount unless the same filesystem type is already mounted there (the preload library, the kernel's
 * devtmpfs automount, or an earlier step may have done it). Then a bind-remount sets exactly the
 * requested per-mount flags (nosuid, noexec, …) and leaves the superblock alone. Creates the target
 * directory when missing.
 */
export function ensureMount(source: string, target: string, fstype: string, flags: number, data: string | null = null): MountOutcome {
  const existing = mountedAt(target);
  if (existing && existing.fstype === fstype) {
    if (flags === 0) return "already";
    sys.mount("none", target, null, sys.MountFlags.REMOUNT | sys.MountFlags.BIND | flags);
    return "remounted";
  }
  mkdirSync(target, { recursive: true, mode: 0o755 });
  try {
    sys.mount(source, target, fstype, flags, data);
  } catch (error) {
    if (sys.isErrno(error, "EBUSY")) return "already";
    throw error;
  }
  return "mounted";
}

/** Is "/" mounted read-only (its mountinfo options start with "ro")? */
export function rootReadOnly(mounts = readMounts()): boolean {
  return mountedAt("/", mounts)?.options.split(",").includes("ro") ?? false;
}

/** ensureMount each row in order: a row may mount under an earlier one (/dev/pts under /dev). */
export function mountTable(table: readonly MountSpec[], readOnlyRoot = rootReadOnly()): void {
  for (const spec of table) {
    if (spec.whenRootReadOnly && !readOnlyRoot) continue;
    const outcome = ensureMount(spec.source, spec.target, spec.fstype, spec.flags, spec.data ?? null);
    log.debug(`mount ${spec.target} (${spec.fstype}): ${outcome}, flags 0x${spec.flags.toString(16)}`);
  }
}
