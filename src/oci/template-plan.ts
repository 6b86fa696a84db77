// What a container started from a template hands its guest: the supervisor attaches the root and
// makes the mounts itself after the restore (image/supervisor/container.c), in C, so every mount
// option is parsed here on the host into mount(2)'s flags and data (the same parser and the same
// placement as a cold boot's container-mounts.ts), and the text is lines of numbers and hex.
// The guest still opens every mount point inside the new root (RESOLVE_IN_ROOT): placement is
// decided here, resolution there.
import { parseConfig } from "../config/config";
import { ninePMountData } from "../modes/microvm/shares";
import { checkPlanMounts, perMountFlags, placeOf } from "../modes/microvm/container-mounts";
import { MOVED_MOUNTS } from "../modes/microvm/mounts";
import { rootMountFlags } from "../modes/microvm/root";
import { MountFlags } from "../sys/constants";
import { resolveWorkload } from "../workload/resolve";
import type { ContainerPlan } from "./bundle";
import type { NetworkPlan } from "./network";
import { templateNicLines } from "./template-nic";

/** The file on the bundle share the supervisor reads after the restore. */
export const TEMPLATE_PLAN_FILE = "container.plan";

const hex = (text: string) => (text === "" ? "-" : Buffer.from(text, "utf8").toString("hex"));

/** The file copies' tmpfs: room for them and for the container to grow them (a line appended to /etc/hosts), as a cold boot sizes it. */
export function filesTmpfsBytes(sizes: readonly number[]): number {
  if (sizes.length === 0) return 0;
  const bytes = sizes.reduce((sum, size) => sum + size, 0);
  return Math.max(1 << 20, Math.ceil((bytes * 2) / 4096) * 4096);
}

/**
 * container.plan's text: "burrow-container 1", the root line (tag, mount flags, 9p data, the
 * read-only remount's flags or 0, the files' tmpfs bytes or 0), then one line per mount in the
 * plan's order: KIND (f a filesystem — a share is a 9p one —, b a file copy, o the VM's own mount
 * remounted) TREE (root | vm) FLAGS PROPAGATION SOURCE TYPE DATA DESTINATION, strings in hex
 * ("-" empty); on the engine's network, the NIC's lines last (template-nic.ts). Throws one line
 * for a mount the plan cannot make, as a cold boot would.
 */
export function templatePlanText(plan: ContainerPlan, fileSizes: readonly number[], network: NetworkPlan | null = null): { text: string; skipped: string[] } {
  const rootFlags = rootMountFlags(parseConfig(""));
  const { RDONLY, BIND, REMOUNT } = MountFlags;
  const readonlyFlags = plan.guestPlan.readonlyRoot ? REMOUNT | BIND | RDONLY | perMountFlags(rootFlags) : 0;
  const lines = ["burrow-container 1", `root ${hex(plan.root.tag)} ${rootFlags} ${hex(ninePMountData("root"))} ${readonlyFlags} ${filesTmpfsBytes(fileSizes)}`];
  const skipped: string[] = [];
  for (const { mount, options, label } of checkPlanMounts(plan.guestPlan)) {
    const place = placeOf(mount.destination, MOVED_MOUNTS);
    const flags = perMountFlags(options.flags);
    const propagation = options.propagation ?? 0;
    if (place.in === "vm-own") {
      if (mount.kind === "fs" && mount.type === place.type) lines.push(`mount o vm ${flags} 0 - - - ${hex(place.path)}`);
      else skipped.push(`${place.path} (${label}): the VM's own ${place.type} stays there`);
      continue;
    }
    const tree = place.in === "root" ? "root" : "vm";
    if (mount.kind === "share") lines.push(`mount f ${tree} ${flags} ${propagation} ${hex(mount.tag)} ${hex("9p")} ${hex(ninePMountData("volume"))} ${hex(place.path)}`);
    else if (mount.kind === "file") lines.push(`mount b ${tree} ${flags} ${propagation} ${hex(mount.file)} - - ${hex(place.path)}`);
    else lines.push(`mount f ${tree} ${flags} ${propagation} ${hex(mount.source || mount.type)} ${hex(mount.type)} ${hex(options.data)} ${hex(place.path)}`);
  }
  if (network !== null) lines.push(...templateNicLines(network));
  return { text: `${lines.join("\n")}\n`, skipped };
}

/**
 * The container's workload spec (hostname, capabilities, no-new-privs, rlimits, OOM score) as the
 * supervisor's words, which a template's resume carries instead of the kernel command line a cold
 * boot puts them on. Or why not: a spec needing the guest's files stays a cold boot's.
 */
export function templateSpecWords(kernelWords: readonly string[]): { words: string[] } | { problem: string } {
  const config = parseConfig(kernelWords.join(" "));
  if (config.problems.length > 0) return { problem: `the workload spec's words: ${config.problems[0]!.message}` };
  const resolved = resolveWorkload(config.workload, () => null);
  if (!resolved.ok) return { problem: resolved.reason };
  // A cgroup limit is the template's own: its boot made the workload's cgroup with the same limits (template.ts).
  return { words: resolved.words };
}
