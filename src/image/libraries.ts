// The runtime a dynamically linked burrow needs in the image: its ELF interpreter and the
// DT_NEEDED closure, found on this host for the image's architecture (Debian multiarch: an arm64
// image takes /lib/aarch64-linux-gnu from libc6:arm64, whatever the host is).
import { closeSync, existsSync, openSync, readFileSync, readSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { ARCH_INFO, archOfElf, type Arch } from "../arch";
import type { CpioArchive } from "./cpio";
import { readElfDeps } from "./elf";
import { ImageError } from "./error";

/** Where `arch`'s libraries live; the unqualified directories only for x86_64, whose they are on Debian. */
export function libraryDirs(arch: Arch): string[] {
  const { multiarch } = ARCH_INFO[arch];
  const own = [`/lib/${multiarch}`, `/usr/lib/${multiarch}`];
  return arch === "x86_64" ? [...own, "/lib64", "/usr/lib64", "/lib", "/usr/lib"] : own;
}

function installHint(arch: Arch): string {
  return arch === "x86_64" ? "" : ` (install libc6:${ARCH_INFO[arch].debian}: \`ARCH=${arch} just deps\`)`;
}

/** A library of the image's architecture: a same-named one for another architecture is skipped. */
function findLibrary(name: string, binaryPath: string, arch: Arch): string {
  const dirs = libraryDirs(arch);
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (existsSync(candidate) && archOfElf(elfHeaderOf(candidate)) === arch) return candidate;
  }
  throw new ImageError(`${arch} library ${name} needed by ${binaryPath} not found in ${dirs.join(", ")}${installHint(arch)}`);
}

/** The first 64 bytes of a file (an ELF header's size): a candidate is not read whole to be skipped. */
function elfHeaderOf(path: string): Uint8Array {
  const header = new Uint8Array(64);
  const fd = openSync(path, "r");
  try {
    return header.subarray(0, readSync(fd, header, 0, header.length, 0));
  } finally {
    closeSync(fd);
  }
}

/** Refuse a binary built for another architecture than the image's, naming both. */
export function checkBinaryArch(binary: Uint8Array, binaryPath: string, arch: Arch): void {
  const found = archOfElf(binary);
  if (found !== null && found !== arch) {
    throw new ImageError(`${binaryPath} is an ${found} binary but the image is for ${arch} (--arch ${arch}; build it with \`ARCH=${arch} just build\`)`);
  }
}

/**
 * Adds the interpreter and the NEEDED closure as regular files (host symlinks resolved) under the
 * multiarch directory, and the interpreter's own path as a symlink to it. Returns the image paths
 * added; none for a static binary.
 */
export function addRuntimeLibraries(archive: CpioArchive, binary: Uint8Array, binaryPath: string, arch: Arch): string[] {
  const { interpreter, needed } = readElfDeps(binary, binaryPath);
  if (!interpreter) return [];
  const added: string[] = [];
  /** The library's bytes when it was added now, null when it already was. */
  const addFile = (imagePath: string, hostPath: string): Uint8Array | null => {
    if (archive.has(imagePath)) return null;
    const data = new Uint8Array(readFileSync(realpathSync(hostPath)));
    archive.add({ type: "file", path: imagePath, data, mode: 0o755 });
    added.push(imagePath);
    return data;
  };
  if (!existsSync(interpreter)) throw new ImageError(`ELF interpreter ${interpreter} of ${binaryPath} not found on this host${installHint(arch)}`);
  const interpreterName = interpreter.slice(interpreter.lastIndexOf("/") + 1);
  const libDir = `/lib/${ARCH_INFO[arch].multiarch}`;
  addFile(`${libDir}/${interpreterName}`, interpreter);
  if (interpreter !== `${libDir}/${interpreterName}`) archive.add({ type: "symlink", path: interpreter, target: `${libDir}/${interpreterName}` });

  const queue = [...needed];
  while (queue.length) {
    const name = queue.shift()!;
    const hostPath = findLibrary(name, binaryPath, arch);
    const data = addFile(`${libDir}/${name}`, hostPath);
    if (data) queue.push(...readElfDeps(data, hostPath).needed);
  }
  return added;
}
