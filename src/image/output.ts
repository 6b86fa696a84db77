// The image file appears complete or not at all: written to a temporary file next to it, then
// renamed over it.
import { closeSync, constants, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * Creates a fresh temporary file beside `out` (exclusively: an existing file or symlink of that
 * name is never written through), lets `write` fill it, then renames it to `out`. Returns what
 * `write` returns.
 */
export function writeAtomically(out: string, write: (temporary: string) => number): number {
  mkdirSync(dirname(out), { recursive: true });
  const temporary = `${out}.tmp-${process.pid}-${crypto.randomUUID().slice(0, 8)}`;
  closeSync(openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644));
  try {
    const result = write(temporary);
    renameSync(temporary, out);
    return result;
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

/** Writes `data` into a file this process just created (see writeAtomically), without following a symlink. */
export function writeInto(path: string, data: Uint8Array): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_TRUNC | constants.O_NOFOLLOW);
  try {
    for (let offset = 0; offset < data.byteLength; ) offset += writeSync(fd, data, offset);
  } finally {
    closeSync(fd);
  }
}
