// The archive's files, directories and symlinks as a real tree for mke2fs -d. Every entry is
// created exclusively (O_EXCL, mkdir, symlink all fail on an existing name) and only ever inside a
// directory created here, so nothing is followed out of the staging root: a symlink in the image
// is stored as a symlink and never written through.
import { chmodSync, closeSync, constants, fchmodSync, futimesSync, lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, symlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { cpioName, type CpioEntry } from "./cpio";
import { ImageError } from "./error";
import { describePath } from "./limits";

export interface Staged {
  /** Files, directories and symlinks created (device nodes are left out). */
  entries: number;
  /** Bytes of file data. */
  payload: number;
}

/**
 * Creates `entries` (parents before children, as CpioArchive.list gives them) under `root`, an
 * empty directory only this process writes to, with their modes and every timestamp `time`.
 */
export function stageEntries(entries: readonly CpioEntry[], root: string, time: number): Staged {
  if (!lstatSync(root).isDirectory() || readdirSync(root).length > 0) throw new ImageError(`staging root ${root} is not an empty directory`);
  const directories = new Map<string, number>([["", 0o755]]);
  let payload = 0;
  let count = 0;
  for (const entry of entries) {
    if (entry.type === "char" || entry.type === "block") continue;
    const name = cpioName(entry.path);
    const slash = name.lastIndexOf("/");
    const parent = slash < 0 ? "" : name.slice(0, slash);
    if (!directories.has(parent)) throw new ImageError(`cannot stage ${describePath("/" + name)}: /${parent} is not a directory of the image, and nothing is written through a symlink or a file`);
    const path = join(root, name);
    if (entry.type === "dir") {
      // Owner-writable until every child exists; the real mode is set at the end.
      mkdirSync(path, { mode: 0o700 });
      directories.set(name, entry.mode ?? 0o755);
    } else if (entry.type === "symlink") {
      symlinkSync(entry.target, path);
      lutimesSync(path, time, time);
    } else if (entry.type === "file") {
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        for (let offset = 0; offset < entry.data.byteLength; ) offset += writeSync(fd, entry.data, offset);
        fchmodSync(fd, entry.mode ?? 0o644);
        futimesSync(fd, time, time);
      } finally {
        closeSync(fd);
      }
      payload += entry.data.byteLength;
    }
    count++;
  }
  // Deepest first: a directory without search permission would hide its children from chmod.
  for (const [name, mode] of [...directories].reverse()) {
    const path = join(root, name);
    chmodSync(path, mode);
    lutimesSync(path, time, time);
  }
  return { entries: count, payload };
}
