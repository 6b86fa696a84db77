// What a kernel module file is called and what module it holds: one pattern for the host (image
// building) and the guest (both modes' loaders).
import { normalizeModuleName } from "../config/cmdline";

/** A module file name: `.ko`, or `.ko.xz`/`.ko.gz`/`.ko.zst` (group 1 is the compression). */
export const MODULE_FILE_PATTERN = /\.ko(?:\.(xz|gz|zst))?$/;

/** `kernel/crypto/crc32c-intel.ko.zst` → `crc32c_intel` (the name the kernel and kmod use). */
export function moduleNameFromPath(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  return normalizeModuleName(base.replace(MODULE_FILE_PATTERN, ""));
}

export type ModuleCompression = "xz" | "gz" | "zst";

/** The compression of a module file, or null for a plain `.ko` or another file. */
export function moduleCompression(path: string): ModuleCompression | null {
  return (MODULE_FILE_PATTERN.exec(path)?.[1] as ModuleCompression | undefined) ?? null;
}
