// What an image can hold, checked when an entry is added so nothing is written for an image
// that could not be stored or that the guest could not open.

/** Linux PATH_MAX counts the terminating NUL: an absolute path has at most 4095 bytes. */
const PATH_MAX = 4096;
/** Linux (and ext4) NAME_MAX: bytes per path component. */
const NAME_MAX = 255;
/** newc headers hold every number as 8 hex digits. */
export const NEWC_FIELD_MAX = 0xffffffff;

/** A path for an error line: quoted, and a long one shortened, with its length in bytes. */
export function describePath(path: string): string {
  const bytes = Buffer.byteLength(path);
  return bytes > 160 ? `${JSON.stringify(path.slice(0, 120))}… (${bytes} bytes)` : JSON.stringify(path);
}

/** Like describePath, unquoted when short: for messages that name ordinary paths as they are. */
export function shortPath(path: string): string {
  return Buffer.byteLength(path) > 160 ? describePath(path) : path;
}

/** Why `name` (relative, normalized, "a/b") cannot be a path in the image, or null. */
export function pathProblem(name: string): string | null {
  if (name.includes("\0")) return "it contains a NUL byte";
  // The guest sees it as "/" + name, plus the NUL.
  if (Buffer.byteLength(name) + 2 > PATH_MAX) return `it is ${Buffer.byteLength(name) + 1} bytes, longer than PATH_MAX (${PATH_MAX} bytes with the NUL)`;
  const long = name.split("/").find((part) => Buffer.byteLength(part) > NAME_MAX);
  if (long !== undefined) return `its component ${describePath(long)} is ${Buffer.byteLength(long)} bytes, over NAME_MAX (${NAME_MAX})`;
  return null;
}

/** Why `target` cannot be a symlink's target, or null. */
export function symlinkTargetProblem(target: string): string | null {
  if (target === "") return "symlink target is empty";
  if (target.includes("\0")) return `symlink target ${describePath(target)} contains a NUL byte`;
  if (Buffer.byteLength(target) + 1 > PATH_MAX) return `symlink target ${describePath(target)} is longer than PATH_MAX (${PATH_MAX} bytes with the NUL)`;
  return null;
}

/** Why a file of `size` bytes cannot go into a newc archive, or null (its size field is 32 bits). */
export function newcSizeProblem(size: number): string | null {
  return size > NEWC_FIELD_MAX ? `${size} bytes is 4 GiB or more, more than a cpio newc size field holds (use --format ext4)` : null;
}
