// The directories and device nodes every image has, whatever the kernel and the binary.
import { ROOT_MOUNT_POINT } from "../boot/paths";
import type { CpioArchive } from "./cpio";

const DIRECTORIES: [string, number][] = [
  ["/proc", 0o755], ["/sys", 0o755], ["/dev", 0o755], ["/run", 0o755], ["/tmp", 0o1777],
  ["/root", 0o700], ["/etc", 0o755], [ROOT_MOUNT_POINT, 0o755],
];

export function addBaseLayout(archive: CpioArchive): void {
  for (const [path, mode] of DIRECTORIES) archive.add({ type: "dir", path, mode });
  // The kernel opens /dev/console as fds 0-2 for init only if the node exists; Bun needs /dev/null.
  archive.add({ type: "char", path: "/dev/console", major: 5, minor: 1, mode: 0o600 });
  archive.add({ type: "char", path: "/dev/null", major: 1, minor: 3, mode: 0o666 });
}
