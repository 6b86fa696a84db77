// The resident supervisor (image/supervisor/, one translation unit: main.c includes the rest): a
// static program without libc, compiled on the host for the image's architecture. burrow execs it
// as PID 1 once the workload runs, so what stays resident is a few pages, not the runtime.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import channelC from "../../image/supervisor/channel.c" with { type: "text" };
import filesC from "../../image/supervisor/files.c" with { type: "text" };
import logC from "../../image/supervisor/log.c" with { type: "text" };
import mainC from "../../image/supervisor/main.c" with { type: "text" };
import oomC from "../../image/supervisor/oom.c" with { type: "text" };
import optionsC from "../../image/supervisor/options.c" with { type: "text" };
import procfsC from "../../image/supervisor/procfs.c" with { type: "text" };
import snapshotC from "../../image/supervisor/snapshot.c" with { type: "text" };
import sessionsC from "../../image/supervisor/sessions.c" with { type: "text" };
import spawnC from "../../image/supervisor/spawn.c" with { type: "text" };
import stopC from "../../image/supervisor/stop.c" with { type: "text" };
import sysH from "../../image/supervisor/sys.h" with { type: "text" };
import teardownC from "../../image/supervisor/teardown.c" with { type: "text" };
import textC from "../../image/supervisor/text.c" with { type: "text" };
import usersC from "../../image/supervisor/users.c" with { type: "text" };
import containerC from "../../image/supervisor/container.c" with { type: "text" };
import nicC from "../../image/supervisor/nic.c" with { type: "text" };
import { supervisorWireHeader } from "../control/c-header";
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

/**
 * Every file of image/supervisor/ by name (main.c #includes the others), and wire.h generated from
 * the TypeScript homes of the constants both sides share; what compileSupervisor writes.
 */
export function supervisorSources(): Record<string, string> {
  return {
    "main.c": mainC, "sys.h": sysH, "wire.h": supervisorWireHeader(), "text.c": textC, "options.c": optionsC, "log.c": logC,
    "procfs.c": procfsC, "oom.c": oomC, "spawn.c": spawnC, "users.c": usersC, "teardown.c": teardownC, "stop.c": stopC,
    "channel.c": channelC, "sessions.c": sessionsC, "files.c": filesC, "snapshot.c": snapshotC, "nic.c": nicC, "container.c": containerC,
  };
}

export function addSupervisor(archive: CpioArchive, scratch: string, arch: Arch = hostArch()): void {
  archive.add({ type: "file", path: SUPERVISOR_PATH, data: compileSupervisor(scratch, arch), mode: 0o755 });
}

export function compileSupervisor(scratch: string, arch: Arch = hostArch()): Uint8Array {
  const dir = join(scratch, "supervisor");
  const source = join(dir, "main.c");
  const output = join(scratch, "supervisor.bin");
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(supervisorSources())) writeFileSync(join(dir, name), text);
  const compiler = compilerFor(arch, "the supervisor");
  runTool([compiler, ...SUPERVISOR_CFLAGS, `-ffile-prefix-map=${scratch}=.`, "-o", output, source], { what: "building the supervisor" });
  return new Uint8Array(readFileSync(output));
}
