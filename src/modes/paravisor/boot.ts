// Paravisor (VTL2) boot plan — see modes/paravisor/plan.ts.
import type { InitRuntime } from "../../boot/pid1";
import { endVm } from "../../boot/pid1";
import { log } from "../../log";

export async function bootParavisor(runtime: InitRuntime): Promise<void> {
  log.error(`paravisor mode is not available in this build (kernel ${runtime.kernelRelease})`);
  await endVm("poweroff", 1);
}
