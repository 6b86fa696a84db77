// The ext4 boot disk: the archive staged as a tree and turned into a read-only filesystem by
// mke2fs -d. Reproducible: two builds of the same entries give the same bytes. mke2fs takes the
// clock from E2FSPROGS_FAKE_TIME, the UUID and directory hash seed from -U and -E hash_seed (here
// derived from the content), and the entry order from scandir with strcoll (LC_ALL=C); but it
// copies each staged file's owner and ctime, which no one can set, so a debugfs pass sets owner 0
// and the timestamps on every inode afterwards.
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { CpioArchive, CpioEntry } from "./cpio";
import { ImageError } from "./error";
import { stageEntries } from "./stage";
import { runTool, systemTool } from "./tool";

const HINT = "install e2fsprogs: `just deps`";
/** ext4's first non-reserved inode (lost+found); the root directory is inode 2. */
const FIRST_INODE = 11;
const ROOT_INODE = 2;

/** Writes the archive's files, directories and symlinks (no device nodes: devtmpfs supplies /dev) to `out`. */
export function writeExt4(archive: CpioArchive, out: string, scratch: string, mtime: number): number {
  // mke2fs reads a fake time of 0 as "not set" and takes the clock instead.
  const time = Math.max(mtime, 1);
  const stage = join(scratch, "ext4-root");
  mkdirSync(stage, { mode: 0o700 });
  const entries = archive.list();
  const staged = stageEntries(entries, stage, time);
  const image = resolve(out);
  const env = { ...process.env, E2FSPROGS_FAKE_TIME: String(time), LC_ALL: "C" };
  const { uuid, hashSeed } = contentIds(entries, time);
  // Room for metadata: payload plus 10% and 8 MiB, in whole MiB.
  const sizeMiB = Math.ceil((staged.payload * 1.1) / 2 ** 20) + 8;
  runTool(
    [systemTool("mke2fs"), "-q", "-t", "ext4", "-b", "4096", "-O", "^has_journal", "-L", "burrow-boot", "-U", uuid,
      "-E", `root_owner=0:0,hash_seed=${hashSeed}`, "-d", stage, "-F", image, `${sizeMiB}M`],
    { what: `mke2fs -d ${stage}`, hint: HINT, env },
  );
  normalizeInodes(image, staged.entries, time, scratch, env);
  return statSync(image).size;
}

/** Owner root and every timestamp `time` on the root directory, lost+found and each staged entry's inode. */
function normalizeInodes(image: string, stagedEntries: number, time: number, scratch: string, env: Record<string, string | undefined>): void {
  const inodes = usedInodes(image, env).filter((inode) => inode === ROOT_INODE || inode >= FIRST_INODE);
  // lost+found is not staged.
  if (inodes.length !== stagedEntries + 2) throw new ImageError(`${image}: ${inodes.length} inodes in use after mke2fs, expected ${stagedEntries + 2} (root, lost+found and ${stagedEntries} staged entries)`);
  const commands = inodes.flatMap((inode) => [
    ...["atime", "mtime", "ctime"].map((field) => `sif <${inode}> ${field} @${time}`),
    `sif <${inode}> uid 0`,
    `sif <${inode}> gid 0`,
  ]);
  const script = join(scratch, "debugfs-commands");
  writeFileSync(script, commands.join("\n") + "\n");
  const { stderr } = runTool([systemTool("debugfs"), "-w", "-f", script, image], { what: `debugfs -w ${image}`, hint: HINT, env });
  // debugfs exits 0 even when a command fails; everything but its version banner is an error.
  const errors = stderr.split("\n").map((line) => line.trim()).filter((line) => line && !/^debugfs \d/.test(line));
  if (errors.length > 0) throw new ImageError(`debugfs -w ${image} failed: ${errors.join("; ")}`);
}

/** Inode numbers marked in use in the inode bitmaps, from dumpe2fs's per-group free lists. */
function usedInodes(image: string, env: Record<string, string | undefined>): number[] {
  const { stdout } = runTool([systemTool("dumpe2fs"), image], { what: `dumpe2fs ${image}`, hint: HINT, env });
  const perGroup = Number(/^Inodes per group:\s+(\d+)$/m.exec(stdout)?.[1]);
  if (!perGroup) throw new ImageError(`dumpe2fs ${image}: no "Inodes per group" line`);
  const used: number[] = [];
  let group = -1;
  for (const line of stdout.split("\n")) {
    const groupMatch = /^Group (\d+):/.exec(line);
    if (groupMatch) group = Number(groupMatch[1]);
    const freeMatch = /^\s+Free inodes:\s*(.*)$/.exec(line);
    if (!freeMatch || group < 0) continue;
    const free = new Set<number>();
    for (const range of freeMatch[1]!.split(",").map((part) => part.trim()).filter(Boolean)) {
      const [first, last = first] = range.split("-").map(Number);
      for (let inode = first!; inode <= last!; inode++) free.add(inode);
    }
    for (let inode = group * perGroup + 1; inode <= (group + 1) * perGroup; inode++) if (!free.has(inode)) used.push(inode);
  }
  return used;
}

/** A UUID and a directory hash seed that change with the content and only with it. */
function contentIds(entries: readonly CpioEntry[], time: number): { uuid: string; hashSeed: string } {
  const hasher = new Bun.CryptoHasher("sha256");
  hasher.update(`burrow ext4 ${time}\0`);
  for (const entry of entries) {
    hasher.update(`${entry.type}\0${entry.path}\0`);
    if (entry.type === "file") hasher.update(`${entry.mode ?? 0o644} ${entry.data.byteLength}\0`).update(entry.data);
    else if (entry.type === "dir") hasher.update(`${entry.mode ?? 0o755}\0`);
    else if (entry.type === "symlink") hasher.update(`${entry.target}\0`);
  }
  const digest = new Uint8Array(hasher.digest());
  return { uuid: asUuid(digest.subarray(0, 16)), hashSeed: asUuid(digest.subarray(16, 32)) };
}

/** RFC 9562 version 8 (custom) UUID text from 16 bytes. */
function asUuid(bytes: Uint8Array): string {
  const b = Uint8Array.from(bytes);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Buffer.from(b).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
