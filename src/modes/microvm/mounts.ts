// The API filesystems microvm mode mounts (a table), and the console routing.
import type { MountSpec } from "../../boot/mounts";
import * as sys from "../../sys";

const { NOSUID, NODEV, NOEXEC } = sys.MountFlags;

/**
 * Order matters: /dev before /dev/pts and /dev/shm. /tmp is capped at 50% of RAM (the tmpfs
 * default, spelled out): tmpfs pages count as memory, and a cap keeps one runaway writer from
 * taking all of it before the OOM killer can act; with zram swap behind it, idle /tmp pages
 * compress. /run is small by nature (sockets, pid files, the boot report): 10%.
 */
export const API_MOUNTS: readonly MountSpec[] = [
  { source: "devtmpfs", target: "/dev", fstype: "devtmpfs", flags: NOSUID, data: "mode=0755" },
  { source: "proc", target: "/proc", fstype: "proc", flags: NOSUID | NODEV | NOEXEC },
  { source: "sysfs", target: "/sys", fstype: "sysfs", flags: NOSUID | NODEV | NOEXEC },
  { source: "tmpfs", target: "/tmp", fstype: "tmpfs", flags: NOSUID | NODEV, data: "mode=1777,size=50%" },
  { source: "tmpfs", target: "/run", fstype: "tmpfs", flags: NOSUID | NODEV, data: "mode=0755,size=10%" },
  { source: "devpts", target: "/dev/pts", fstype: "devpts", flags: NOSUID | NOEXEC, data: "mode=0620,ptmxmode=0666" },
  { source: "tmpfs", target: "/dev/shm", fstype: "tmpfs", flags: NOSUID | NODEV, data: "mode=1777" },
];

/** Mount points moved into the new root by switch_root (submounts such as /dev/pts travel along). */
export const MOVED_MOUNTS = ["/dev", "/proc", "/sys", "/run", "/tmp"] as const;

const CONSOLE_CANDIDATES = ["/dev/hvc0", "/dev/ttyS0", "/dev/ttyAMA0"] as const;
const EMPTY = new Uint8Array(0);

/** Point fds 0-2 at the first console device that opens and takes a write; keep /dev/console otherwise. Returns the device. */
export function routeConsole(candidates: readonly string[] = CONSOLE_CANDIDATES): string {
  for (const path of candidates) {
    let fd: number;
    try {
      // O_NONBLOCK so a serial line without carrier cannot block the open; cleared right after.
      fd = sys.open(path, sys.OpenFlags.RDWR | sys.OpenFlags.NOCTTY | sys.OpenFlags.NONBLOCK | sys.OpenFlags.CLOEXEC);
    } catch {
      continue; // not this machine's console: try the next
    }
    try {
      // A 16550 slot with no UART behind it (ttyS0 on arm64's virt) opens but fails every write
      // with EIO; an empty write finds that out before fds 0-2 point at it.
      sys.write(fd, EMPTY);
    } catch {
      sys.close(fd);
      continue;
    }
    try {
      const flags = sys.fcntl(fd, sys.Fcntl.F_GETFL);
      sys.fcntl(fd, sys.Fcntl.F_SETFL, flags & ~sys.OpenFlags.NONBLOCK);
      for (const target of [0, 1, 2]) sys.dup2(fd, target);
    } finally {
      if (fd > 2) sys.close(fd);
    }
    return path;
  }
  return "/dev/console";
}

/** fds 0-2 must be blocking for the next program (O_NONBLOCK lives on the shared open file). */
export function makeStdioBlocking(): void {
  for (const fd of [0, 1, 2]) {
    try {
      const flags = sys.fcntl(fd, sys.Fcntl.F_GETFL);
      if (flags & sys.OpenFlags.NONBLOCK) sys.fcntl(fd, sys.Fcntl.F_SETFL, flags & ~sys.OpenFlags.NONBLOCK);
    } catch {
      // Not open: nothing to make blocking.
    }
  }
}
