// What create hands the holder (plan.json): the VM's run, checked once in create where an error
// can still reach the engine, and the container's process. The kernel and boot disk are found
// beside the executable (dist/oci/, `just oci`) unless the environment names others.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { hostArch } from "../arch";
import { MAX_TIMEOUT_SECONDS } from "../host/options";
import type { StoredRun } from "../host/run-options";
import { bootRun } from "../host/run-plan";
import { parseSize } from "../config/size";
import { BUNDLE_TAG, type ContainerPlan, type ContainerProcess } from "./bundle";
import type { ContainerPaths } from "./container-dir";
import { type NetworkPlan, networkWords } from "./network";
import type { TemplateStart } from "./template";

export const KERNEL_ENV = "BURROW_OCI_KERNEL";
export const BOOT_DISK_ENV = "BURROW_OCI_BOOT_DISK";
/** The guest's memory when config.json sets no limit: what a small service needs beside burrow's own. */
export const DEFAULT_MEMORY = "256M";


export interface LaunchPlan {
  run: StoredRun;
  process: ContainerProcess;
  /** The engine's network the VM takes over (the holder makes the tap and the mirror before QEMU starts), or null: no NIC. */
  network: NetworkPlan | null;
  notes: string[];
  /** Start from this template (a restore; src/oci/template.ts) instead of booting `run`; absent or null: a cold boot. */
  template?: TemplateStart | null;
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

/** The guest's memory: the container's limit, never below what the VM needs to boot. */
function guestMemory(limit: number | null, notes: string[]): string {
  if (limit === null) return DEFAULT_MEMORY;
  const mib = Math.ceil(limit / (1 << 20));
  const floor = parseSize(DEFAULT_MEMORY);
  const floorMib = "bytes" in floor ? floor.bytes / (1 << 20) : 256;
  if (mib < floorMib) {
    notes.push(`linux.resources.memory.limit ${mib} MiB is below what a container VM boots in; the VM gets ${floorMib} MiB`);
    return `${floorMib}M`;
  }
  return `${mib}M`;
}

export function launchPlan(plan: ContainerPlan, paths: ContainerPaths, assets: OciAssets, debug: boolean, network: NetworkPlan | null = null): LaunchPlan {
  const notes = [...plan.notes];
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
    mem: guestMemory(plan.memoryBytes, notes),
    smp: 1,
    accel: "tcg",
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
      ownSignals: true,
      ...(network === null ? {} : { net: { tap: { ifname: network.tap, mac: network.mac } }, netns: network.netns }),
    },
    process: plan.process,
    network,
    notes,
  };
}

export function readLaunchPlan(path: string): LaunchPlan {
  return JSON.parse(readFileSync(path, "utf8")) as LaunchPlan;
}
