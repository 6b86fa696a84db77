// A cpio "newc" (SVR4, no CRC) writer: what the kernel's initramfs unpacker reads.
// Entries are sorted and carry fixed owners, inode numbers and mtimes, so the same inputs
// always give the same bytes.
import { describePath, NEWC_FIELD_MAX, newcSizeProblem, pathProblem, symlinkTargetProblem } from "./limits";

export type CpioEntry =
  | { type: "dir"; path: string; mode?: number }
  | { type: "file"; path: string; data: Uint8Array; mode?: number }
  | { type: "symlink"; path: string; target: string }
  | { type: "char" | "block"; path: string; major: number; minor: number; mode?: number };

export interface CpioOptions {
  /** Seconds since the epoch for every entry (SOURCE_DATE_EPOCH). */
  mtime?: number;
}

/**
 * c_mode's file-type bits: the unpacker reads them as a Linux st_mode (<linux/stat.h>, the same on
 * every architecture). Kept here, not taken from src/sys/constants.ts, whose load picks the guest's
 * per-architecture tables and refuses a host it has none for.
 */
export const NewcFileType = { S_IFCHR: 0o020000, S_IFBLK: 0o060000, S_IFDIR: 0o040000, S_IFREG: 0o100000, S_IFLNK: 0o120000 } as const;

const MAGIC = "070701";
const TRAILER = "TRAILER!!!";

function hex8(value: number): string {
  if (value < 0 || value > NEWC_FIELD_MAX || !Number.isInteger(value)) throw new RangeError(`cpio field out of range: ${value}`);
  return value.toString(16).padStart(8, "0");
}

function isField(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= NEWC_FIELD_MAX;
}

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

function header(fields: { ino: number; mode: number; nlink: number; mtime: number; size: number; rdevMajor: number; rdevMinor: number; nameSize: number }): string {
  return (
    MAGIC +
    hex8(fields.ino) + hex8(fields.mode) + hex8(0) /* uid */ + hex8(0) /* gid */ + hex8(fields.nlink) +
    hex8(fields.mtime) + hex8(fields.size) + hex8(0) /* devmajor */ + hex8(0) /* devminor */ +
    hex8(fields.rdevMajor) + hex8(fields.rdevMinor) + hex8(fields.nameSize) + hex8(0) /* check */
  );
}

/** Normalize "/a/b/" → "a/b" (cpio names are relative, without a leading slash). */
function normalize(path: string): string {
  return path.replace(/^\/+/, "").replace(/\/+$/, "").replace(/\/{2,}/g, "/");
}

/** Why no image can hold `path` ("." or "..", a NUL, over PATH_MAX or NAME_MAX), or null. */
export function cpioNameProblem(path: string): string | null {
  const name = normalize(path);
  if (name === "") return "it names the root";
  if (name.split("/").some((part) => part === ".." || part === ".")) return 'it has a "." or ".." component';
  return pathProblem(name);
}

export function cpioName(path: string): string {
  const problem = cpioNameProblem(path);
  if (problem) throw new Error(`bad archive path ${describePath(path)}: ${problem}`);
  return normalize(path);
}

/**
 * Collects entries; parents are added as directories (0755) when not given. Later additions of
 * the same path replace earlier ones, except that a directory is only ever replaced by a
 * directory: its contents would otherwise end up under a file or a symlink, and whoever unpacks
 * the archive would write them through that symlink.
 */
export class CpioArchive {
  private readonly entries = new Map<string, CpioEntry>();

  add(entry: CpioEntry): this {
    const name = cpioName(entry.path);
    if (entry.type === "symlink") {
      const problem = symlinkTargetProblem(entry.target);
      if (problem) throw new Error(`bad symlink ${describePath(name)}: ${problem}`);
    }
    const parts = name.split("/");
    for (let depth = 1; depth < parts.length; depth++) {
      const parent = parts.slice(0, depth).join("/");
      const existing = this.entries.get(parent);
      if (existing && existing.type !== "dir") throw new Error(`archive path ${describePath(parent)} is a ${existing.type}, not a directory (adding ${describePath(name)})`);
    }
    const existing = this.entries.get(name);
    if (existing?.type === "dir" && entry.type !== "dir") throw new Error(`archive path ${describePath(name)} is a directory; a ${entry.type} does not replace it`);
    for (let depth = 1; depth < parts.length; depth++) {
      const parent = parts.slice(0, depth).join("/");
      if (!this.entries.has(parent)) this.entries.set(parent, { type: "dir", path: parent, mode: 0o755 });
    }
    this.entries.set(name, { ...entry, path: name });
    return this;
  }

  has(path: string): boolean {
    return this.entries.has(cpioName(path));
  }

  get(path: string): CpioEntry | undefined {
    return this.entries.get(cpioName(path));
  }

  /** Every number a newc header would carry fits its 8 hex digits; throws naming the first entry that does not. */
  checkNewcFields(options: CpioOptions = {}): void {
    const mtime = options.mtime ?? 0;
    if (!Number.isInteger(mtime) || mtime < 0 || mtime > NEWC_FIELD_MAX) throw new Error(`mtime ${mtime} (SOURCE_DATE_EPOCH) does not fit a cpio newc header (0 to ${NEWC_FIELD_MAX})`);
    for (const entry of this.entries.values()) {
      const problem =
        entry.type === "file" ? newcSizeProblem(entry.data.byteLength)
        : (entry.type === "char" || entry.type === "block") && !(isField(entry.major) && isField(entry.minor)) ? `device number ${entry.major}:${entry.minor} does not fit a cpio newc header`
        : null;
      if (problem) throw new Error(`cannot store ${describePath("/" + entry.path)} in the initramfs: ${problem}`);
    }
  }

  list(): CpioEntry[] {
    // Byte order of names puts every directory before its contents.
    return [...this.entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** The archive as chunks (avoids one more 100+ MB copy); concatenate or stream them. */
  chunks(options: CpioOptions = {}): Uint8Array[] {
    this.checkNewcFields(options);
    const mtime = options.mtime ?? 0;
    const out: Uint8Array[] = [];
    let ino = 1;
    const encoder = new TextEncoder();
    const push = (entryHeader: string, name: string, data: Uint8Array | null) => {
      const nameBytes = encoder.encode(name + "\0");
      const head = encoder.encode(entryHeader);
      const headPad = pad4(head.length + nameBytes.length);
      const block = new Uint8Array(head.length + nameBytes.length + headPad);
      block.set(head, 0);
      block.set(nameBytes, head.length);
      out.push(block);
      if (data && data.length > 0) {
        out.push(data);
        const dataPad = pad4(data.length);
        if (dataPad) out.push(new Uint8Array(dataPad));
      }
    };
    for (const entry of this.list()) {
      let mode: number;
      let data: Uint8Array | null = null;
      let rdevMajor = 0;
      let rdevMinor = 0;
      switch (entry.type) {
        case "dir":
          mode = NewcFileType.S_IFDIR | (entry.mode ?? 0o755);
          break;
        case "file":
          mode = NewcFileType.S_IFREG | (entry.mode ?? 0o644);
          data = entry.data;
          break;
        case "symlink":
          mode = NewcFileType.S_IFLNK | 0o777;
          data = encoder.encode(entry.target);
          break;
        case "char":
        case "block":
          mode = (entry.type === "char" ? NewcFileType.S_IFCHR : NewcFileType.S_IFBLK) | (entry.mode ?? 0o600);
          rdevMajor = entry.major;
          rdevMinor = entry.minor;
          break;
      }
      const name = entry.path;
      push(
        header({ ino: ino++, mode, nlink: entry.type === "dir" ? 2 : 1, mtime, size: data?.length ?? 0, rdevMajor, rdevMinor, nameSize: Buffer.byteLength(name) + 1 }),
        name,
        data,
      );
    }
    push(header({ ino: 0, mode: 0, nlink: 1, mtime: 0, size: 0, rdevMajor: 0, rdevMinor: 0, nameSize: TRAILER.length + 1 }), TRAILER, null);
    return out;
  }

  bytes(options: CpioOptions = {}): Uint8Array {
    return Buffer.concat(this.chunks(options));
  }
}
