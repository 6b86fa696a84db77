// The early-mounts library (image/early-mounts.c), compiled on the host and named in
// /etc/ld.so.preload: a glibc Bun binary needs /proc and /dev before its main() runs.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import earlyMountsSource from "../../image/early-mounts.c" with { type: "text" };
import { hostArch, type Arch } from "../arch";
import { runtimeEnvHeader } from "../control/c-header";
import { compilerFor } from "./c-compiler";
import type { CpioArchive } from "./cpio";
import { runTool } from "./tool";

export const EARLY_MOUNTS_PATH = "/lib/burrow/early-mounts.so";
export const LD_SO_PRELOAD_PATH = "/etc/ld.so.preload";

export function addEarlyMounts(archive: CpioArchive, scratch: string, arch: Arch = hostArch()): void {
  archive.add({ type: "file", path: EARLY_MOUNTS_PATH, data: compileEarlyMounts(scratch, arch), mode: 0o755 });
  archive.add({ type: "file", path: LD_SO_PRELOAD_PATH, data: Buffer.from(`${EARLY_MOUNTS_PATH}\n`), mode: 0o644 });
}

export function compileEarlyMounts(scratch: string, arch: Arch = hostArch()): Uint8Array {
  const source = join(scratch, "early-mounts.c");
  const output = join(scratch, "early-mounts.so");
  writeFileSync(source, earlyMountsSource);
  writeFileSync(join(scratch, "runtime-env.h"), runtimeEnvHeader());
  const compiler = compilerFor(arch, "the early-mounts library");
  // The scratch path and a build id would make every build's bytes different.
  runTool([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", `-ffile-prefix-map=${scratch}=.`, "-Wl,--build-id=none", "-o", output, source], { what: "building the early-mounts library" });
  return new Uint8Array(readFileSync(output));
}
