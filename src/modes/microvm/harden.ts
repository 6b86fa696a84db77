// Guest hardening: what each rule of the table in src/config/harden.ts does, run before
// switch_root on the API mounts.
import { chmodSync, existsSync, mkdirSync, unlinkSync } from "node:fs";
import { enabledRules, TMP_INODES, type HardenRuleName, type HardenSwitches } from "../../config/harden";
import * as sys from "../../sys";
import { memTotalBytes } from "./meminfo";

const { NOSUID, NODEV, NOEXEC, REMOUNT } = sys.MountFlags;

const PAGE_SIZE = 4096;

/** /tmp at half of RAM, page-aligned, and a fixed inode count. */
export function tmpLimitsData(memTotalKiB: number): string {
  const bytes = Math.floor((memTotalKiB * 1024) / 2 / PAGE_SIZE) * PAGE_SIZE;
  return `mode=1777,size=${bytes},nr_inodes=${TMP_INODES}`;
}

/** MemTotal in KiB. */
function memTotalKiB(): number {
  const bytes = memTotalBytes();
  if (bytes === null) throw new Error("no MemTotal in /proc/meminfo");
  return bytes / 1024;
}

function removeNodes(paths: readonly string[]): string {
  const removed = paths.filter((path) => existsSync(path));
  for (const path of removed) unlinkSync(path);
  return removed.length ? `removed ${removed.join(" ")}` : "none present";
}

/** What each rule does; returns what it did (one short phrase), throws on failure. */
const APPLY: Readonly<Record<HardenRuleName, () => string>> = {
  "dev-mem": () => removeNodes(["/dev/mem", "/dev/kmem", "/dev/port"]),
  "random-mode"() {
    const present = ["/dev/random", "/dev/urandom"].filter((path) => existsSync(path));
    for (const path of present) chmodSync(path, 0o644);
    return present.length ? `${present.join(" ")} 0644` : "none present";
  },
  "proc-hidepid"() {
    sys.mount("proc", "/proc", "proc", REMOUNT | NOSUID | NODEV | NOEXEC, "hidepid=2");
    return "/proc hidepid=2";
  },
  "tmp-limits"() {
    const data = tmpLimitsData(memTotalKiB());
    sys.mount("tmpfs", "/tmp", "tmpfs", REMOUNT | NOSUID | NODEV, data);
    return `/tmp ${data}`;
  },
  cgroupfs() {
    mkdirSync("/sys/fs/cgroup", { recursive: true });
    sys.mount("cgroup2", "/sys/fs/cgroup", "cgroup2", NOSUID | NODEV | NOEXEC, "nsdelegate");
    return "cgroup2 on /sys/fs/cgroup";
  },
};

/** Run every enabled rule; returns what each did and each failure as "name: reason". */
export function applyHardening(switches: HardenSwitches, describe: (error: unknown) => string): { done: string[]; failed: string[] } {
  const done: string[] = [];
  const failed: string[] = [];
  for (const rule of enabledRules(switches)) {
    try {
      done.push(`${rule.name}: ${APPLY[rule.name]()}`);
    } catch (error) {
      failed.push(`${rule.name}: ${describe(error)}`);
    }
  }
  return { done, failed };
}
