// The root filesystem: which types to try, mount options, and the one-line failure.
import { mkdirSync, readFileSync } from "node:fs";
import type { Config } from "../../config/config";
import * as sys from "../../sys";

/** /proc/filesystems types backed by a device (no "nodev"), ext4 first. */
export function blockFilesystems(procFilesystems: string): string[] {
  const types = procFilesystems
    .split("\n")
    .map((line) => line.split("\t"))
    .filter(([flag, name]) => flag !== "nodev" && name && name.trim())
    .map(([, name]) => name!.trim())
    // fuseblk is FUSE's (a daemon serves it): never a type a bare root device mounts as.
    .filter((name) => name !== "fuseblk");
  return types.includes("ext4") ? ["ext4", ...types.filter((type) => type !== "ext4")] : types;
}

export function rootFsTypes(config: Config, procFilesystems: () => string = () => readFileSync("/proc/filesystems", "utf8")): string[] {
  if (config.rootfstype) return config.rootfstype.split(",").map((type) => type.trim()).filter(Boolean);
  let text = "";
  try {
    text = procFilesystems();
  } catch {
    // No /proc/filesystems: ext4 below.
  }
  const types = blockFilesystems(text);
  return types.length > 0 ? types : ["ext4"];
}

/** The kernel's type for what a device's superblock says it holds (ext2/3/4 all mount as ext4). */
const IDENTIFIED_TYPE: Readonly<Record<string, string>> = { ext: "ext4", erofs: "erofs", squashfs: "squashfs" };

/** Put the type the superblock names first: no failed mount attempts (and kernel lines) before it. */
export function typesIdentifiedFirst(types: string[], identified: string | null): string[] {
  const type = identified === null ? undefined : IDENTIFIED_TYPE[identified];
  return type !== undefined && types.includes(type) ? [type, ...types.filter((other) => other !== type)] : types;
}

export function rootMountFlags(config: Config): number {
  return sys.MountFlags.NOATIME | (config.readOnly ? sys.MountFlags.RDONLY : 0);
}

/** Try each type; the first that mounts wins. Throws one line: device, types tried, errno each. */
export function mountRoot(device: string, target: string, config: Config, types = rootFsTypes(config), failedModules = new Map<string, string>()): string {
  mkdirSync(target, { recursive: true, mode: 0o755 });
  const tried: TriedMount[] = [];
  for (const type of types) {
    try {
      sys.mount(device, target, type, rootMountFlags(config), config.rootflags);
      return type;
    } catch (error) {
      const code = error instanceof sys.SysError ? error.code : String(error);
      tried.push({ type, code, module: failedModules.get(type) ?? null });
    }
  }
  throw new Error(rootMountFailure(device, target, config, tried));
}

export interface TriedMount { type: string; code: string; module: string | null }

/** What an errno from mount(2) most likely means for a root device, so the one line says it. */
const MOUNT_ERRNO_MEANING: Readonly<Record<string, string>> = {
  EIO: "the disk failed the reads",
  EINVAL: "no valid superblock of that type",
  EUCLEAN: "the filesystem is corrupted",
  EROFS: "the device is read-only",
  ENOMEM: "out of memory",
};

/**
 * The root mount's one-line failure: device, target, mode, each type tried with its errno. Every
 * type failing alike (a dead disk fails them all with EIO) is said once, with what it means.
 */
export function rootMountFailure(device: string, target: string, config: Pick<Config, "readOnly" | "rootflags">, tried: readonly TriedMount[]): string {
  const head = `cannot mount root ${device} on ${target} ${config.readOnly ? "ro" : "rw"}${config.rootflags ? ` (${config.rootflags})` : ""}`;
  const codes = new Set(tried.map((attempt) => attempt.code));
  const meaning = (code: string) => (MOUNT_ERRNO_MEANING[code] ? ` (${MOUNT_ERRNO_MEANING[code]})` : "");
  if (tried.length > 0 && codes.size === 1 && tried.every((attempt) => attempt.module === null)) {
    const code = tried[0]!.code;
    return `${head}: tried ${tried.map((attempt) => attempt.type).join(", ")}: ${code}${meaning(code)}`;
  }
  return `${head}: tried ${tried.map((attempt) => `${attempt.type}: ${attempt.code}${meaning(attempt.code)}${attempt.module === null ? "" : `, module ${attempt.type}: ${attempt.module}`}`).join("; ")}`;
}
