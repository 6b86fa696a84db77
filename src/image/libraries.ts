// The runtime a dynamically linked burrow needs in the image: its ELF interpreter and the
// DT_NEEDED closure, found on this host.
import { existsSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import type { CpioArchive } from "./cpio";
import { readElfDeps } from "./elf";
import { ImageError } from "./error";

const LIBRARY_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"];

function findLibrary(name: string, binaryPath: string): string {
  for (const dir of LIBRARY_DIRS) {
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new ImageError(`library ${name} needed by ${binaryPath} not found in ${LIBRARY_DIRS.join(", ")}`);
}

/**
 * Adds the interpreter and the NEEDED closure as regular files (host symlinks resolved) under the
 * multiarch directory, and the interpreter's own path as a symlink to it. Returns the image paths
 * added; none for a static binary.
 */
export function addRuntimeLibraries(archive: CpioArchive, binary: Uint8Array, binaryPath: string): string[] {
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
  if (!existsSync(interpreter)) throw new ImageError(`ELF interpreter ${interpreter} of ${binaryPath} not found on this host`);
  const interpreterName = interpreter.slice(interpreter.lastIndexOf("/") + 1);
  const libDir = process.arch === "arm64" ? "/lib/aarch64-linux-gnu" : "/lib/x86_64-linux-gnu";
  addFile(`${libDir}/${interpreterName}`, interpreter);
  if (interpreter !== `${libDir}/${interpreterName}`) archive.add({ type: "symlink", path: interpreter, target: `${libDir}/${interpreterName}` });

  const queue = [...needed];
  while (queue.length) {
    const name = queue.shift()!;
    const hostPath = findLibrary(name, binaryPath);
    const data = addFile(`${libDir}/${name}`, hostPath);
    if (data) queue.push(...readElfDeps(data, hostPath).needed);
  }
  return added;
}
