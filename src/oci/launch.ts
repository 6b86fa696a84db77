// What create hands the holder (plan.json): the VM's run, sized from the container's limits and
// checked once in create where an error can still reach the engine, the container's process and
// the cgroup directories the holder joins. The kernel and boot disk are found beside the
// executable (dist/oci/, `just oci`) unless the environment names others.
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { hostArch } from "../arch";
import { MAX_TIMEOUT_SECONDS } from "../host/options";
import type { StoredRun } from "../host/run-options";
import { bootRun } from "../host/run-plan";
import { BUNDLE_TAG, type ContainerPlan, type ContainerProcess } from "./bundle";
import { type HostResources, NO_RESOURCES } from "./cgroup-resources";
import { vmSize } from "./cgroup-sizing";
import type { ContainerPaths } from "./container-dir";
import { type NetworkPlan, networkWords } from "./network";
import type { TemplateStart } from "./template";

export const KERNEL_ENV = "BURROW_OCI_KERNEL";
export const BOOT_DISK_ENV = "BURROW_OCI_BOOT_DISK";

export interface LaunchPlan {
  run: StoredRun;
  process: ContainerProcess;
  /** The engine's network the VM takes over (the holder makes the tap and the mirror before QEMU starts), or null: no NIC. */
  network: NetworkPlan | null;
  notes: string[];
  /** Start from this template (a restore; src/oci/template.ts) instead of booting `run`; absent or null: a cold boot. */
  template?: TemplateStart | null;
  /** The container's cgroup in every host hierarchy (cgroups.ts): the holder joins them before QEMU starts; empty: none. */
  cgroups: string[];
}

export interface OciAssets {
  kernel: string;
  bootDisk: string;
}

export function findAssets(env: Record<string, string | undefined> = process.env, executable = process.execPath): OciAssets {
  const dir = join(dirname(executable), "oci");
  const assets = { kernel: env[KERNEL_ENV] || join(dir, "vmlinuz"), bootDisk: env[BOOT_DISK_ENV] || join(dir, "boot.ext4") };
  for (const [what, path, variable] of [["kernel", assets.kernel, KERNEL_ENV], ["boot disk", assets.bootDisk, BOOT_DISK_ENV]] as const) {
    if (!existsSync(path)) throw new Error(`no ${what} at ${path} (build it with \`npx just oci\`, or set ${variable})`);
  }
  return assets;
}

/** The run for the container's VM: its memory and vCPUs from `resources` (cgroup-sizing.ts); `cgroups` is create's to fill. */
export function launchPlan(plan: ContainerPlan, paths: ContainerPaths, assets: OciAssets, debug: boolean, network: NetworkPlan | null = null, resources: HostResources = NO_RESOURCES, hostCpus = availableParallelism()): LaunchPlan {
  const notes = [...plan.notes];
  const size = vmSize(resources, hostCpus, notes);
  const append = [
    `burrow.root=9p:${plan.root.tag}`,
    `burrow.bundle=${BUNDLE_TAG}`,
    "burrow.start=host",
    // Loopback up in every container, as runc brings it up in each network namespace it makes.
    "burrow.net.lo=1",
    ...(network === null ? [] : networkWords(network)),
    ...plan.kernelWords,
    ...(debug ? [] : ["quiet"]),
  ].join(" ");
  const run = bootRun({
    arch: hostArch(),
    kernel: assets.kernel,
    bootDisk: assets.bootDisk,
    disks: [],
    serialDisks: [],
    ports: [],
    mem: `${size.memMiB}M`,
    smp: size.cpus,
    accel: "tcg",
    ...(size.tcgTbSizeMiB === null ? {} : { tcgTbSizeMiB: size.tcgTbSizeMiB }),
    append,
    net: false,
    forwards: [],
    timeoutSeconds: MAX_TIMEOUT_SECONDS,
  });
  return {
    run: {
      ...run,
      shares: [plan.root, { tag: BUNDLE_TAG, path: paths.bundleShare, readOnly: true }, ...plan.shares],
      sandbox: true,
      qmpSocket: paths.qmpSocket,
      // Not a temporary directory of runVm's: a holder killed with SIGKILL would leave that behind.
      controlSocket: paths.vmPortSocket,
      ownSignals: true,
      ...(network === null ? {} : { net: { tap: { ifname: network.tap, mac: network.mac } }, netns: network.netns }),
    },
    process: plan.process,
    network,
    notes,
    cgroups: [],
  };
}
