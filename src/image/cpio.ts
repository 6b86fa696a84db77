// A cpio "newc" (SVR4, no CRC) writer: what the kernel's initramfs unpacker reads.
// Entries are sorted and carry fixed owners, inode numbers and mtimes, so the same inputs
// always give the same bytes.
import { FileMode } from "../sys/constants";

export type CpioEntry =
  | { type: "dir"; path: string; mode?: number }
  | { type: "file"; path: string; data: Uint8Array; mode?: number }
  | { type: "symlink"; path: string; target: string }
  | { type: "char" | "block"; path: string; major: number; minor: number; mode?: number };

export interface CpioOptions {
  /** Seconds since the epoch for every entry (SOURCE_DATE_EPOCH). */
  mtime?: number;
}

const MAGIC = "070701";
const TRAILER = "TRAILER!!!";

function hex8(value: number): string {
  if (value < 0 || value > 0xffffffff || !Number.isInteger(value)) throw new RangeError(`cpio field out of range: ${value}`);
  return value.toString(16).padStart(8, "0");
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
export function cpioName(path: string): string {
  const name = path.replace(/^\/+/, "").replace(/\/+$/, "").replace(/\/{2,}/g, "/");
  if (name === "" || name.split("/").some((part) => part === ".." || part === ".")) throw new Error(`bad archive path: ${JSON.stringify(path)}`);
  return name;
}

/**
 * Collects entries; parents are added as directories (0755) when not given. Later additions of
 * the same path replace earlier ones.
 */
export class CpioArchive {
  private readonly entries = new Map<string, CpioEntry>();

  add(entry: CpioEntry): this {
    const name = cpioName(entry.path);
    const parts = name.split("/");
    for (let depth = 1; depth < parts.length; depth++) {
      const parent = parts.slice(0, depth).join("/");
      const existing = this.entries.get(parent);
      if (!existing) this.entries.set(parent, { type: "dir", path: parent, mode: 0o755 });
      else if (existing.type !== "dir") throw new Error(`archive path ${parent} is a ${existing.type}, not a directory (adding ${name})`);
    }
    this.entries.set(name, { ...entry, path: name });
    return this;
  }

  has(path: string): boolean {
    return this.entries.has(cpioName(path));
  }

  list(): CpioEntry[] {
    // Byte order of names puts every directory before its contents.
    return [...this.entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** The archive as chunks (avoids one more 100+ MB copy); concatenate or stream them. */
  chunks(options: CpioOptions = {}): Uint8Array[] {
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
          mode = FileMode.S_IFDIR | (entry.mode ?? 0o755);
          break;
        case "file":
          mode = FileMode.S_IFREG | (entry.mode ?? 0o644);
          data = entry.data;
          break;
        case "symlink":
          mode = FileMode.S_IFLNK | 0o777;
          data = encoder.encode(entry.target);
          break;
        case "char":
        case "block":
          mode = (entry.type === "char" ? FileMode.S_IFCHR : FileMode.S_IFBLK) | (entry.mode ?? 0o600);
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
