// The early-mounts library (image/early-mounts.c), compiled on the host and named in
// /etc/ld.so.preload: a glibc Bun binary needs /proc and /dev before its main() runs.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import earlyMountsSource from "../../image/early-mounts.c" with { type: "text" };
import { ARCH_INFO, hostArch, type Arch } from "../arch";
import type { CpioArchive } from "./cpio";
import { ImageError } from "./error";
import { runTool } from "./tool";

const EARLY_MOUNTS_PATH = "/lib/burrow/early-mounts.so";

export function addEarlyMounts(archive: CpioArchive, scratch: string, arch: Arch = hostArch()): void {
  archive.add({ type: "file", path: EARLY_MOUNTS_PATH, data: compileEarlyMounts(scratch, arch), mode: 0o755 });
  archive.add({ type: "file", path: "/etc/ld.so.preload", data: Buffer.from(`${EARLY_MOUNTS_PATH}\n`), mode: 0o644 });
}

/** The C compiler for `arch`: the native cc on a host of that architecture, else the cross compiler. */
function compilerFor(arch: Arch): string {
  const candidates = [...(arch === hostArch() ? ["cc", "gcc"] : []), ...ARCH_INFO[arch].compilers];
  for (const name of candidates) {
    const found = Bun.which(name);
    if (found) return found;
  }
  const hint = arch === hostArch() ? "install gcc: `just deps`" : `install gcc-${ARCH_INFO[arch].multiarch}: \`ARCH=${arch} just deps\``;
  throw new ImageError(`no C compiler for ${arch} (${candidates.join(", ")}) found to build the early-mounts library (${hint})`);
}

function compileEarlyMounts(scratch: string, arch: Arch): Uint8Array {
  const source = join(scratch, "early-mounts.c");
  const output = join(scratch, "early-mounts.so");
  writeFileSync(source, earlyMountsSource);
  const compiler = compilerFor(arch);
  // The scratch path and a build id would make every build's bytes different.
  runTool([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", `-ffile-prefix-map=${scratch}=.`, "-Wl,--build-id=none", "-o", output, source], { what: "building the early-mounts library" });
  return new Uint8Array(readFileSync(output));
}
