// virtio shares in the guest: a host directory QEMU exports over virtio-9p (or a virtiofsd over
// virtio-fs), found by its tag. The drivers are built in (or loaded by the modules step) and probe
// synchronously, so a tag that is not there now is not coming: no wait, one line naming the tags
// that are there.
import { readdirSync } from "node:fs";
import { readOptionalText } from "../../boot/optional-text";
import * as sys from "../../sys";

export type ShareFs = "9p" | "virtiofs";

/**
 * Bytes per 9p message: what one read or write carries. 6.1's virtio transport takes at most
 * PAGE_SIZE × (VIRTQUEUE_NUM − 3) = 512000 (more is cut down with a kernel warning); the default
 * 128 KiB needs four round trips where this needs one.
 */
export const NINEP_MSIZE = 512_000;

/**
 * What the share holds decides the 9p cache mode. Measured in the micro kernel's guest under TCG
 * (4000 files of 0.5-8 KiB in 200 directories, caches dropped first; `find -type f`, then
 * `find -type f -exec cat {} +`, then both again): ext4 0.6 s + 4.3 s, again 0.15 s + 1.9 s;
 * cache=none 6.5 s + 24.9 s, again 3.8 s + 24.1 s; cache=mmap 7.1 s + 34.4 s, again 6.7 s + 29.7 s;
 * cache=loose 5.6 s + 10.5 s, again 1.05 s + 7.3 s.
 * - "root": an image's root filesystem, which the host does not change under a running container:
 *   cache=loose keeps pages and dentries in the guest (2.4x faster cold, 3-5x warm). The cost: a
 *   file the host changes while the guest runs may be seen stale.
 * - "volume": a bind-mounted host directory whose host-side writes the guest must see at once:
 *   cache=mmap reads every byte from the host (as cache=none) and still allows a shared writable
 *   mmap (SQLite's -shm file, which cache=none refuses).
 * - "bundle": the host's files for the mounts, read once.
 */
export type ShareRole = "root" | "volume" | "bundle";

const CACHE: Readonly<Record<ShareRole, string>> = { root: "loose", volume: "mmap", bundle: "none" };

/** mount(2)'s data for a 9p share. */
export function ninePMountData(role: ShareRole): string {
  return `trans=virtio,version=9p2000.L,msize=${NINEP_MSIZE},cache=${CACHE[role]}`;
}

const NINEP_DRIVER = "/sys/bus/virtio/drivers/9pnet_virtio";

/** The tags of the virtio-9p devices the kernel has (sysfs adds a NUL to each). */
export function ninePTags(driverDir = NINEP_DRIVER): string[] {
  let entries: string[];
  try {
    entries = readdirSync(driverDir).filter((entry) => entry.startsWith("virtio"));
  } catch {
    return []; // no 9pnet_virtio driver: no tags
  }
  return entries
    .map((entry) => readOptionalText(`${driverDir}/${entry}/mount_tag`)?.replace(/\0/g, "").trim() ?? "")
    .filter((tag) => tag !== "")
    .sort();
}

/** Why a share mount failed, for its one line: the tag's absence says more than the errno. */
export function shareFailure(fs: ShareFs, tag: string, code: string, tags: readonly string[] | null): string {
  if (fs === "virtiofs") return `${code}${code === "EINVAL" || code === "ENOENT" ? ` (no virtio-fs device tagged ${JSON.stringify(tag)}?)` : ""}`;
  if (tags === null || tags.includes(tag)) return code;
  return `${code} (no virtio-9p share tagged ${JSON.stringify(tag)}; tags present: ${tags.length ? tags.join(", ") : "none"})`;
}

/**
 * Mount a share as the root on `target`. Throws one line: the share, where, the errno name and,
 * for 9p, the tags that are there.
 */
export function mountRootShare(fs: ShareFs, tag: string, target: string, flags: number): void {
  try {
    if (fs === "9p") sys.mount(tag, target, "9p", flags, ninePMountData("root"));
    else sys.mount(tag, target, "virtiofs", flags);
  } catch (error) {
    if (!(error instanceof sys.SysError)) throw error;
    throw new Error(`cannot mount root ${fs}:${tag} on ${target} ${flags & sys.MountFlags.RDONLY ? "ro" : "rw"}: ${shareFailure(fs, tag, error.code, fs === "9p" ? ninePTags() : null)}`);
  }
}
