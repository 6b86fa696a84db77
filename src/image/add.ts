// --add SRC:DEST: host files, symlinks and directory trees copied into the image. What the image
// itself needs is never replaced, a directory is never replaced by anything but a directory, and
// nothing is put under a symlink: the ext4 writer would otherwise create it through that symlink
// on the host (`--add LINK:/lib` with LINK -> /usr/lib would rewrite the host's libc), and the
// kernel's unpacker through it in the guest.
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from "node:fs";
import { join } from "node:path";
import { describeError } from "../errors";
import { cpioName, cpioNameProblem, type CpioArchive, type CpioEntry } from "./cpio";
import { ImageError } from "./error";
import { newcSizeProblem, shortPath } from "./limits";

export interface AddRules {
  format: "cpio" | "ext4";
  /** Archive names (cpioName) of what the builder put in the image itself: /init, the runtime, modules, … */
  imageOwn: ReadonlySet<string>;
}

/** Adds `source` (a file, a symlink, stored as one, or a directory, recursively) at `destination`. */
export function addTree(archive: CpioArchive, source: string, destination: string, rules: AddRules): void {
  if (!existsSync(source) && !isSymlink(source)) throw new ImageError(`--add source not found: ${source}`);
  addEntry(archive, source, destination, rules);
}

function addEntry(archive: CpioArchive, source: string, destination: string, rules: AddRules): void {
  const refuse = (reason: string) => new ImageError(`cannot add ${shortPath(source)} as ${shortPath(destination)}: ${reason}`);
  const info = lstatSync(source);
  const type = entryType(info);
  if (!type) throw new ImageError(`--add source ${source} is not a file, directory or symlink`);

  const badName = cpioNameProblem(destination);
  if (badName) throw refuse(badName);
  const name = cpioName(destination);
  const problem = placementProblem(archive, name, type, rules.imageOwn);
  if (problem) throw refuse(problem);
  if (type === "file" && rules.format === "cpio") {
    const tooBig = newcSizeProblem(info.size);
    if (tooBig) throw refuse(tooBig);
  }

  let entry: CpioEntry;
  if (type === "symlink") entry = { type, path: destination, target: readlinkSync(source) };
  else if (type === "dir") entry = { type, path: destination, mode: info.mode & 0o7777 };
  else entry = { type, path: destination, data: new Uint8Array(readFileSync(source)), mode: info.mode & 0o7777 };
  try {
    archive.add(entry);
  } catch (error) {
    throw refuse(describeError(error));
  }
  if (type === "dir") {
    for (const child of readdirSync(source).sort()) addEntry(archive, join(source, child), join(destination, child), rules);
  }
}

function entryType(info: Stats): "file" | "dir" | "symlink" | null {
  if (info.isSymbolicLink()) return "symlink";
  if (info.isDirectory()) return "dir";
  if (info.isFile()) return "file";
  return null;
}

/** Why a `type` entry cannot go at archive name `name`, or null. */
function placementProblem(archive: CpioArchive, name: string, type: CpioEntry["type"], imageOwn: ReadonlySet<string>): string | null {
  const parts = name.split("/");
  for (let depth = 1; depth < parts.length; depth++) {
    const parent = parts.slice(0, depth).join("/");
    const existing = archive.get(parent);
    if (existing && existing.type !== "dir") return `/${parent} in the image is a ${existing.type}, not a directory; nothing is written through it`;
  }
  const existing = archive.get(name);
  if (!existing) return null;
  if (existing.type === "dir") return type === "dir" ? null : `it would replace the directory /${name} with a ${type}`;
  if (imageOwn.has(name)) return `/${name} is the image's own ${existing.type}; it is not replaced`;
  return null;
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false; // nothing there: the caller reports the source as not found
  }
}
