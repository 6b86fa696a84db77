// `burrow run --boot-disk PATH`: boot from burrow's ext4 boot disk (`burrow image --format ext4`)
// instead of an initramfs, the fastest cold layout on a kernel with virtio-blk and ext4 built in.
// The kernel mounts the boot disk as its own root (the first disk, attached read-only: the kernel
// cannot write to the image whatever its boot protocol's root flags say) and runs /init from it;
// the root burrow mounts for the agent is then named by burrow.root=.
import { splitAppend, wordKey } from "../config/cmdline";
import type { RunOptions } from "./qemu";

/** The boot disk is always the first virtio disk; the user's disks follow it. */
const BOOT_DISK_DEVICE = "/dev/vda";
/** burrow's root when the user names none: the first --disk, now the second device. */
const DEFAULT_ROOT = "/dev/vdb";

/**
 * The run with the boot disk in front: no initrd; the kernel's root= and init= point at the boot
 * disk; a root= the user wrote (meant for burrow) becomes burrow.root=. init= is the boot disk's
 * own business: a user's init= is refused rather than silently replaced.
 */
export function withBootDisk(options: RunOptions, bootDisk: string): RunOptions {
  const { kernelWords, initWords } = splitAppend(options.append);
  if (kernelWords.some((word) => wordKey(word) === "init")) {
    throw new Error("--boot-disk runs the boot disk's /init: remove init= from --append");
  }
  const hasBurrowRoot = kernelWords.some((word) => wordKey(word) === "burrow.root");
  const rewritten = kernelWords.flatMap((word) => {
    if (wordKey(word) !== "root") return [word];
    // With burrow.root= given, a root= as well would only fight the boot disk's: drop it.
    return hasBurrowRoot ? [] : [`burrow.root=${word.slice("root=".length)}`];
  });
  const namesRoot = rewritten.some((word) => wordKey(word) === "burrow.root");
  const append = [`root=${BOOT_DISK_DEVICE}`, "init=/init", ...(namesRoot ? [] : [`burrow.root=${DEFAULT_ROOT}`]), ...rewritten, ...initWords].join(" ");
  return { ...options, initrd: null, disks: [bootDisk, ...options.disks], readOnlyDisks: [...(options.readOnlyDisks ?? []), bootDisk], append };
}
