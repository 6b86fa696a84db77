// The resident supervisor (image/supervisor.c): a static program without libc, compiled on the
// host for the image's architecture. burrow execs it as PID 1 once the workload runs, so what
// stays resident is a few pages, not the runtime.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import supervisorSource from "../../image/supervisor.c" with { type: "text" };
import supervisorSys from "../../image/supervisor-sys.h" with { type: "text" };
import { SUPERVISOR_PATH } from "../boot/paths";
import { hostArch, type Arch } from "../arch";
import { compilerFor } from "./c-compiler";
import type { CpioArchive } from "./cpio";
import { runTool } from "./tool";

/** No libc, no start files, nothing position-independent: the whole program is its own few pages. */
export const SUPERVISOR_CFLAGS = [
  "-static", "-nostdlib", "-ffreestanding", "-fno-pie", "-no-pie", "-Os", "-s", "-Wall", "-Wextra", "-Werror",
  "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-ffunction-sections",
  "-fdata-sections", "-Wl,--gc-sections", "-Wl,--build-id=none",
] as const;

export function addSupervisor(archive: CpioArchive, scratch: string, arch: Arch = hostArch()): void {
  archive.add({ type: "file", path: SUPERVISOR_PATH, data: compileSupervisor(scratch, arch), mode: 0o755 });
}

export function compileSupervisor(scratch: string, arch: Arch = hostArch()): Uint8Array {
  const source = join(scratch, "supervisor.c");
  const output = join(scratch, "supervisor");
  writeFileSync(source, supervisorSource);
  writeFileSync(join(scratch, "supervisor-sys.h"), supervisorSys);
  const compiler = compilerFor(arch, "the supervisor");
  runTool([compiler, ...SUPERVISOR_CFLAGS, `-ffile-prefix-map=${scratch}=.`, "-o", output, source], { what: "building the supervisor" });
  return new Uint8Array(readFileSync(output));
}
