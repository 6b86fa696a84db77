// The files a snapshot depends on, and how a restore knows they are still the ones saved.
//
// Inputs (kernel, initrd, disks) are the user's: their identity (size, mtime, the first and last
// MiB) is compared, which is cheap. The saved files (the device state and the RAM file) are the
// snapshot's own and are sealed: their sha256 is recorded at the save, and checked in full only
// when the file is not the one last verified (device, inode, size, mtime, ctime: a write or a
// copy changes them, and ctime cannot be set back), so a restore in place pays nothing.
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync, renameSync, rmSync, statSync, writeFileSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const HEAD_BYTES = 1 << 20;
const HASH_CHUNK_BYTES = 8 << 20;

/** What makes an input file the same file at restore time, cheaply (a full hash of a 110 MB initramfs costs ~0.3 s). */
export interface FileIdentity {
  path: string;
  size: number;
  mtimeMs: number;
  /** sha256 of the first and the last MiB. */
  head: string;
  tail: string;
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** sha256 of a whole file, read in chunks (node:crypto: ~0.85 ms per MiB here, 6× Bun.CryptoHasher). */
export function sha256File(path: string): string {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const buffer = Buffer.allocUnsafe(HASH_CHUNK_BYTES);
    for (;;) {
      const count = readSync(fd, buffer, 0, buffer.length, null);
      if (count <= 0) break;
      hash.update(buffer.subarray(0, count));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

function readRange(fd: number, offset: number, length: number): Uint8Array {
  const buffer = new Uint8Array(length);
  const count = readSync(fd, buffer, 0, length, offset);
  return buffer.subarray(0, count);
}

export function fileIdentity(path: string): FileIdentity {
  const absolute = resolve(path);
  const info = statSync(absolute);
  const fd = openSync(absolute, "r");
  try {
    const head = readRange(fd, 0, Math.min(HEAD_BYTES, info.size));
    const tail = readRange(fd, Math.max(0, info.size - HEAD_BYTES), Math.min(HEAD_BYTES, info.size));
    return { path: absolute, size: info.size, mtimeMs: info.mtimeMs, head: sha256(head), tail: sha256(tail) };
  } finally {
    closeSync(fd);
  }
}

/** The first difference between a saved identity and the file now, or null. */
export function identityChange(saved: FileIdentity): string | null {
  let now: FileIdentity;
  try {
    now = fileIdentity(saved.path);
  } catch (error) {
    return `${saved.path} is gone (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`;
  }
  if (now.size !== saved.size) return `${saved.path} changed size (${saved.size} → ${now.size} bytes)`;
  if (now.mtimeMs !== saved.mtimeMs) return `${saved.path} was modified after the save`;
  if (now.head !== saved.head || now.tail !== saved.tail) return `${saved.path} has different contents`;
  return null;
}

/** A file the save wrote into the snapshot directory, by name (the directory may move). */
export interface SealedFile {
  name: string;
  size: number;
  sha256: string;
  /** statIdentity() of the file the hash was taken of. */
  identity: string;
}

/** Device, inode, size, mtime and ctime in nanoseconds: any write, copy or replacement changes it. */
export function statIdentity(path: string): string {
  return statSealed(path).identity;
}

/** The file's identity and its size, from one stat. */
function statSealed(path: string): { identity: string; size: number } {
  const info = statSync(path, { bigint: true });
  return { identity: [info.dev, info.ino, info.size, info.mtimeNs, info.ctimeNs].join(":"), size: Number(info.size) };
}

/** Seal a file the save has finished writing. */
export function sealFile(dir: string, name: string): SealedFile {
  const path = join(dir, name);
  const { identity, size } = statSealed(path);
  return { name, size, sha256: sha256File(path), identity };
}

/** Identities whose full hash matched the manifest since the save (a moved or copied snapshot). */
export const VERIFIED = "verified.json";

function readVerified(dir: string): Record<string, string> {
  try {
    const value: unknown = JSON.parse(readFileSync(join(dir, VERIFIED), "utf8"));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, string>) : {};
  } catch {
    return {}; // none yet, or unreadable: every changed identity is hashed again
  }
}

/** Best effort: a read-only snapshot directory just pays the full check each time. */
function recordVerified(dir: string, name: string, identity: string): void {
  const verified = { ...readVerified(dir), [name]: identity };
  const temporary = join(dir, `${VERIFIED}.${process.pid}.${Math.random().toString(36).slice(2)}.partial`);
  try {
    writeFileSync(temporary, JSON.stringify(verified) + "\n");
    renameSync(temporary, join(dir, VERIFIED));
  } catch {
    rmSync(temporary, { force: true });
  }
}

export interface SealCheck {
  /** Why the file cannot be trusted, or null. */
  problem: string | null;
  /** Whether the full hash was taken (the file was not the one last verified). */
  hashed: boolean;
}

/** Is the sealed file as the save wrote it? */
export function checkSealed(dir: string, sealed: SealedFile): SealCheck {
  const path = join(dir, sealed.name);
  let identity: string;
  let size: number;
  try {
    ({ identity, size } = statSealed(path));
  } catch (error) {
    return { problem: `${path} is missing (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`, hashed: false };
  }
  if (size !== sealed.size) return { problem: `${path} is ${size} bytes, the save wrote ${sealed.size} (truncated or replaced)`, hashed: false };
  if (identity === sealed.identity || readVerified(dir)[sealed.name] === identity) return { problem: null, hashed: false };
  let digest: string;
  try {
    digest = sha256File(path);
  } catch (error) {
    return { problem: `${path} is unreadable (${(error as NodeJS.ErrnoException).code ?? "error"})`, hashed: true };
  }
  if (digest !== sealed.sha256) return { problem: `${path} does not hold what the save wrote (its sha256 differs)`, hashed: true };
  recordVerified(dir, sealed.name, identity);
  return { problem: null, hashed: true };
}
