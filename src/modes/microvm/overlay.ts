// burrow.overlay=: a writable layer merged over a read-only root. The root step mounts a staging
// tmpfs on ROOT_MOUNT_POINT and the root read-only at <staging>/lower; this module mounts the
// upper layer at <staging>/rw (the staging tmpfs itself, or a disk) and the overlay on top of
// ROOT_MOUNT_POINT, so switch_root moves the overlay and the layers below stay out of sight.
import { existsSync, mkdirSync } from "node:fs";
import { spawnSync } from "bun";
import { ROOT_MOUNT_POINT } from "../../boot/paths";
import * as sys from "../../sys";
import { resolveInRoot } from "./switchroot";

export const OVERLAY_LOWER = `${ROOT_MOUNT_POINT}/lower`;
export const OVERLAY_RW = `${ROOT_MOUNT_POINT}/rw`;
/** Where the base's mkfs.ext4 may live, tried in order (mke2fs defaults to ext4 only with -t). */
const MKFS_CANDIDATES = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4", "/usr/sbin/mke2fs", "/sbin/mke2fs"] as const;

/** overlayfs mount options: writable (upper + work dirs) or read-only (the disk is one more lower layer). */
export function overlayMountData(lower: string, rw: string, readOnly: boolean): string {
  return readOnly ? `lowerdir=${rw}/upper:${lower}` : `lowerdir=${lower},upperdir=${rw}/upper,workdir=${rw}/work`;
}

/** The staging tmpfs: for a tmpfs overlay it holds the upper layer, so it gets the /tmp budget (half of RAM). */
export function mountStaging(): void {
  mkdirSync(ROOT_MOUNT_POINT, { recursive: true, mode: 0o755 });
  sys.mount("burrow-overlay", ROOT_MOUNT_POINT, "tmpfs", sys.MountFlags.NOSUID | sys.MountFlags.NODEV, "mode=0755,size=50%");
  mkdirSync(OVERLAY_LOWER, { mode: 0o755 });
  mkdirSync(OVERLAY_RW, { mode: 0o755 });
}

/**
 * mkfs.ext4 from the base itself (a chroot of the lower layer, as tiny-init does): the initramfs
 * carries no mkfs. /dev and /proc are bound in for the device node and mke2fs's mount check.
 * PID 1 chroots without chdir, so its cwd stays outside and chroot(".") comes back.
 */
export function formatFromLower(device: string, lower = OVERLAY_LOWER): string {
  const mkfs = MKFS_CANDIDATES.find((candidate) => {
    const resolved = resolveInRoot(lower, candidate);
    return "path" in resolved && existsSync(resolved.path);
  });
  if (!mkfs) throw new Error(`burrow.overlay.format=1: the root has no mkfs.ext4 (looked for ${MKFS_CANDIDATES.join(", ")}); cannot format ${device}`);
  const bound: string[] = [];
  try {
    for (const dir of ["/dev", "/proc"]) {
      if (!existsSync(`${lower}${dir}`)) throw new Error(`burrow.overlay.format=1: the root has no ${dir} directory to bind for ${mkfs}`);
      sys.mount(dir, `${lower}${dir}`, null, sys.MountFlags.BIND | sys.MountFlags.REC);
      bound.push(`${lower}${dir}`);
    }
    sys.chdir("/");
    sys.chroot(lower);
    let result;
    try {
      result = spawnSync([mkfs, "-q", "-F", "-t", "ext4", device], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
    } finally {
      sys.chroot(".");
    }
    if (result.exitCode !== 0) {
      const output = `${result.stderr.toString()}${result.stdout.toString()}`.trim().split("\n").at(-1) ?? "";
      throw new Error(`${mkfs} ${device} (run in the root) exited with ${result.exitCode ?? `signal ${result.signalCode}`}${output ? `: ${output}` : ""}`);
    }
    return mkfs;
  } finally {
    for (const path of bound.reverse()) {
      try {
        sys.umount2(path, sys.UmountFlags.DETACH);
      } catch {
        // Left bound under the lower layer: hidden by the overlay once it is mounted.
      }
    }
  }
}

/**
 * Mount the upper layer (when a disk) and the overlay over ROOT_MOUNT_POINT. Returns the options
 * used and, for a writable upper disk, an fd on it: once the overlay covers it no path reaches
 * that disk, and the supervisor's teardown freezes it through this fd.
 */
export function mountOverlay(upperDevice: string | null, upperType: string | null, readOnly: boolean): { data: string; upperFd: number | null } {
  const { NOATIME, RDONLY } = sys.MountFlags;
  if (upperDevice) sys.mount(upperDevice, OVERLAY_RW, upperType ?? "ext4", NOATIME | (readOnly ? RDONLY : 0));
  const upperFd = upperDevice && !readOnly ? sys.open(OVERLAY_RW, sys.OpenFlags.RDONLY | sys.OpenFlags.DIRECTORY | sys.OpenFlags.CLOEXEC) : null;
  if (!readOnly) {
    mkdirSync(`${OVERLAY_RW}/upper`, { recursive: true, mode: 0o755 });
    mkdirSync(`${OVERLAY_RW}/work`, { recursive: true, mode: 0o755 });
  } else if (!existsSync(`${OVERLAY_RW}/upper`)) {
    throw new Error(`burrow.overlay.ro=1: ${upperDevice ?? "the tmpfs"} has no /upper directory to merge`);
  }
  const data = overlayMountData(OVERLAY_LOWER, OVERLAY_RW, readOnly);
  sys.mount("overlay", ROOT_MOUNT_POINT, "overlay", NOATIME | (readOnly ? RDONLY : 0), data);
  return { data, upperFd };
}
