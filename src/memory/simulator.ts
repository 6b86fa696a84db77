// The mshv simulator (test/fixtures/mshv-sim) as a stand-in for the hypervisor's devices. When
// /dev/mshv is absent and the module file is in the image, the memory step loads it itself,
// synchronously (finit_module with the command line's mshv_sim.* parameters), instead of waiting
// for the background module walk. Documented paths, first found wins:
//   /lib/burrow/mshv_sim.ko   (outside /lib/modules: the module walk never sees it)
//   /lib/modules/mshv_sim.ko  (also picked up by the walk; whichever loads first wins, EEXIST is fine)
// Having loaded it, burrow also plays the boot loader's part that the simulator cannot know:
// the description's `accepted` ranges are marked accepted (VTL2-only on hardware isolation) via
// debugfs `set`, as the boot shim would have left them.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { moduleParamString, type Config } from "../config/config";
import { log } from "../log";
import { finitModuleFile } from "../modules/load";
import * as sys from "../sys";
import { DEV_MSHV } from "./devices";
import { isHardwareIsolated, type Partition } from "./partition";
import { fmt, PAGE, pageCount } from "./ranges";

const SIM_MODULE_PATHS = ["/lib/burrow/mshv_sim.ko", "/lib/modules/mshv_sim.ko"];
const SIM_DEBUGFS = "/sys/kernel/debug/mshv_sim";
const ISOLATION_CODE = { none: 0, vbs: 1, snp: 2, tdx: 3 } as const;
/** The simulator's isolation knob (it stands in for CPUID 0x4000000C). */
const SIM_ISOLATION_PARAMETER = "/sys/module/mshv_sim/parameters/isolation";
/** The most pages one write to debugfs `set` may name (mshv_sim.c set_write refuses more). */
const SIM_SET_MAX_PAGES = 2 ** 26;

export type SimulatorLoad = { loaded: false; why: string } | { loaded: true; path: string; params: string };

/** Load the simulator if the devices are missing and the module is in the image. */
export function ensureMshvDevices(config: Pick<Config, "moduleParams">, partition: Partition): SimulatorLoad {
  if (existsSync(DEV_MSHV)) return { loaded: false, why: `${DEV_MSHV} present` };
  const path = SIM_MODULE_PATHS.find((candidate) => existsSync(candidate));
  if (!path) throw new Error(`${DEV_MSHV} is missing and no mshv simulator module is at ${SIM_MODULE_PATHS.join(" or ")}`);
  let params = moduleParamString(config.moduleParams, "mshv_sim");
  // The simulator's isolation must match the description's unless the command line says otherwise.
  if (!/(^|\s)isolation=/.test(params)) params = `${params} isolation=${ISOLATION_CODE[partition.isolation]}`.trim();
  try {
    finitModuleFile(path, params, "mshv_sim");
  } catch (error) {
    // The background walk may have loaded it and removed /lib/modules meanwhile.
    const openFailed = error instanceof sys.SysError && error.call === "open";
    if (openFailed && error.code === "ENOENT" && existsSync(DEV_MSHV)) return { loaded: false, why: "loaded by the module walk" };
    if (openFailed || !sys.isErrno(error, "EEXIST")) throw error;
  }
  if (!existsSync(DEV_MSHV)) throw new Error(`loaded ${path} but ${DEV_MSHV} did not appear`);
  log.info(`memory: loaded the mshv simulator ${path} ${params}`);
  modelBootLoader(partition);
  return { loaded: true, path, params };
}

function ensureDebugfs(): void {
  if (existsSync(SIM_DEBUGFS)) return;
  mkdirSync("/sys/kernel/debug", { recursive: true });
  try {
    sys.mount("debugfs", "/sys/kernel/debug", "debugfs", sys.MountFlags.NOSUID | sys.MountFlags.NODEV | sys.MountFlags.NOEXEC);
  } catch (error) {
    if (!sys.isErrno(error, "EBUSY")) throw error;
  }
}

/** What the boot shim leaves: accepted ranges accepted, VTL2-only when hardware-isolated. */
export function bootLoaderState(partition: Partition): string[] {
  if (partition.isolation === "none") return [];
  const extra = isHardwareIsolated(partition) ? " prot0=0 prot1=0" : "";
  const lines: string[] = [];
  for (const r of partition.accepted) {
    for (let gpn = r.start / PAGE, left = pageCount(r); left > 0; gpn += SIM_SET_MAX_PAGES, left -= SIM_SET_MAX_PAGES) {
      lines.push(`0x${gpn.toString(16)} ${Math.min(SIM_SET_MAX_PAGES, left)} acc=1${extra}`);
    }
  }
  return lines;
}

function modelBootLoader(partition: Partition): void {
  const lines = bootLoaderState(partition);
  if (lines.length === 0) return;
  ensureDebugfs();
  for (const line of lines) writeFileSync(`${SIM_DEBUGFS}/set`, line);
  log.info(`memory: simulator: boot loader state for ${partition.accepted.map(fmt).join(" ")} (${lines.length} set writes)`);
}

/** When the devices are the simulator's, its isolation must agree with the description's. */
export function checkSimulatorIsolation(partition: Partition): void {
  let text: string;
  try {
    text = readFileSync(SIM_ISOLATION_PARAMETER, "utf8").trim();
  } catch {
    return; // not the simulator
  }
  if (Number(text) !== ISOLATION_CODE[partition.isolation]) {
    throw new Error(`the partition says isolation ${partition.isolation} (${ISOLATION_CODE[partition.isolation]}) but the mshv simulator runs with isolation=${text}`);
  }
}
