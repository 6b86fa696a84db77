// microvm boot plan.
import type { InitRuntime } from "../../boot/pid1";
import { endVm, writeReport } from "../../boot/pid1";
import { ensureMount } from "../../boot/mounts";
import { runPlan, type Step } from "../../boot/plan";
import { MountFlags } from "../../sys";

const plan: Step<InitRuntime>[] = [
  {
    name: "mounts",
    policy: "fatal",
    run() {
      ensureMount("proc", "/proc", "proc", MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC);
      ensureMount("devtmpfs", "/dev", "devtmpfs", MountFlags.NOSUID, "mode=0755");
      ensureMount("sysfs", "/sys", "sysfs", MountFlags.NOSUID | MountFlags.NODEV | MountFlags.NOEXEC);
      ensureMount("tmpfs", "/run", "tmpfs", MountFlags.NOSUID | MountFlags.NODEV, "mode=0755");
    },
  },
];

export async function bootMicrovm(runtime: InitRuntime): Promise<void> {
  await runPlan(plan, runtime, runtime.report, runtime.now);
  writeReport(runtime.report);
  await endVm("poweroff", 0);
}
