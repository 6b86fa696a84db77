// The paravisor's system setup, as data where underhill_init has data: the mounts, the stdio
// wiring, the kernel/sysfs writes (in underhill_init's order) and the host entropy.
import { existsSync, fstatSync, readFileSync } from "node:fs";
import type { MountSpec } from "../../boot/mounts";
import { describeError } from "../../errors";
import { log } from "../../log";
import * as sys from "../../sys";

const { NOSUID, NODEV, NOEXEC, RELATIME } = sys.MountFlags;

/** underhill_init's mounts, with its flags. */
export const PARAVISOR_MOUNTS: readonly MountSpec[] = [
  { source: "proc", target: "/proc", fstype: "proc", flags: NOSUID | NODEV | NOEXEC | RELATIME },
  { source: "sysfs", target: "/sys", fstype: "sysfs", flags: NOSUID | NODEV | NOEXEC | RELATIME },
  { source: "dev", target: "/dev", fstype: "devtmpfs", flags: NOSUID | NOEXEC | RELATIME },
  { source: "devpts", target: "/dev/pts", fstype: "devpts", flags: NOSUID | NOEXEC | RELATIME },
  // From a read-only boot disk (burrow's pages evictable, not pinned in ramfs): where the worker
  // (its --pid file) and burrow (the boot report) write.
  { source: "tmpfs", target: "/run", fstype: "tmpfs", flags: NOSUID | NODEV | RELATIME, data: "mode=0755", whenRootReadOnly: true },
  { source: "tmpfs", target: "/tmp", fstype: "tmpfs", flags: NOSUID | NODEV | RELATIME, data: "mode=1777", whenRootReadOnly: true },
];

/** Where /dev/ttyprintk comes from, for the line that says it is missing. */
export const TTYPRINTK_HINT = "build the image with `burrow image --mode paravisor` (or add --modules ttyprintk), or use a kernel with CONFIG_TTY_PRINTK=y";

/** stdin and stdout to /dev/null, stderr to ttyprintk (so a crash's last words reach the kernel log). */
export function wireStdio(stderrPath = "/dev/ttyprintk"): void {
  const { RDONLY, WRONLY, CLOEXEC } = sys.OpenFlags;
  const moveTo = (path: string, flags: number, target: number) => {
    const fd = sys.open(path, flags | CLOEXEC);
    if (fd !== target) {
      sys.dup2(fd, target); // dup2 clears FD_CLOEXEC on the target
      sys.close(fd);
    } else {
      sys.fcntl(fd, sys.Fcntl.F_SETFD, 0);
    }
  };
  moveTo("/dev/null", RDONLY, 0);
  moveTo("/dev/null", WRONLY, 1);
  try {
    moveTo(stderrPath, WRONLY, 2);
  } catch (error) {
    // Logged while the console still works and kmsg is open: the reason must be visible.
    const reason = error instanceof sys.SysError ? error.reason : String(error);
    const hint = stderrPath === "/dev/ttyprintk" && sys.isErrno(error, "ENOENT", "ENXIO", "ENODEV") ? ` (${TTYPRINTK_HINT})` : "";
    log.error(`failed to open stderr output ${stderrPath}: ${reason}${hint}`);
    throw new Error(`cannot open ${stderrPath} for stderr: ${reason}${hint}`);
  }
}

/** What underhill_init dumps at trace level before its writes. */
const STAT_FILES = [
  "/proc/uptime", "/proc/timer_list", "/proc/interrupts", "/proc/meminfo", "/proc/iomem", "/proc/ioports",
  "/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max", "/proc/sys/vm/max_map_count",
];

export function dumpStatFiles(files: readonly string[] = STAT_FILES): void {
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue; // as underhill_init: files that cannot be opened are left out
    }
    log.trace(file);
    for (const line of text.split("\n")) if (line !== "") log.trace(line);
  }
}

export interface SystemWrite {
  path: string;
  value: string;
  /** A bus or driver directory the write lives under; when this machine lacks it, skip with a warning. */
  needs?: string;
  why: string;
}

const UIO_HV_GENERIC = "/sys/bus/vmbus/drivers/uio_hv_generic";

/** underhill_init's writes, in its order. */
export function systemWrites(confidentialFiltering: boolean): SystemWrite[] {
  return [
    { path: "/proc/sys/kernel/threads-max", value: "32768", why: "the RAM-derived default is too small for the worker" },
    { path: "/proc/sys/kernel/kptr_restrict", value: "1", why: "censor kernel pointers in logs" },
    // A kernel built without THP (burrow's micro kernel) has no such directory: skipped with a warning.
    { path: "/sys/kernel/mm/transparent_hugepage/enabled", value: "madvise", needs: "/sys/kernel/mm/transparent_hugepage", why: "huge pages for VTL0 mappings on request" },
    { path: `${UIO_HV_GENERIC}/new_id`, value: "8dedd1aa-9056-49e4-bfd6-1bf90dc38ef0", needs: UIO_HV_GENERIC, why: "GET channel to user mode" },
    { path: `${UIO_HV_GENERIC}/new_id`, value: "8b60ccf6-709f-4c11-90b5-229c959a9e6a", needs: UIO_HV_GENERIC, why: "UART channel to user mode" },
    { path: `${UIO_HV_GENERIC}/new_id`, value: "427b03e7-4ceb-4286-b5fc-486f4a1dd439", needs: UIO_HV_GENERIC, why: "crash-dump channel to user mode" },
    {
      path: "/proc/sys/kernel/core_pattern",
      value: confidentialFiltering ? "" : "|/bin/underhill-crash %p %i %s %e",
      // A kernel without core dump support (CONFIG_COREDUMP) has neither file: skipped with a warning.
      needs: "/proc/sys/kernel/core_pattern",
      why: confidentialFiltering ? "no crash dumps in a confidential VM" : "user-mode crashes go to underhill-crash",
    },
    { path: "/proc/sys/kernel/core_pipe_limit", value: "1", needs: "/proc/sys/kernel/core_pipe_limit", why: "one crashing process at a time" },
    { path: "/proc/sys/vm/panic_on_oom", value: "1", why: "panic (and dump) rather than OOM-kill" },
    { path: "/proc/sys/vm/min_free_kbytes", value: "1024", why: "lowest recommended min watermark" },
    { path: "/proc/sys/vm/watermark_scale_factor", value: "1", why: "low/high watermarks next to min" },
    { path: "/proc/sys/vm/watermark_boost_factor", value: "0", why: "no watermark boost" },
  ];
}

/** The NVMe class match that binds every NVMe controller, any vendor, to vfio-pci. */
export const NVME_VFIO_WRITE: SystemWrite = {
  path: "/sys/bus/pci/drivers/vfio-pci/new_id",
  value: "ffffffff ffffffff ffffffff ffffffff 010802 ffffff",
  needs: "/sys/bus/pci/drivers/vfio-pci",
  why: "user-mode NVMe through vfio",
};

/** The first missing directory on the way to `path`, or null when it exists. */
export function firstMissing(path: string): string | null {
  if (existsSync(path)) return null;
  const parts = path.split("/").filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const prefix = "/" + parts.slice(0, i).join("/");
    if (!existsSync(prefix)) return prefix;
  }
  return path;
}

/**
 * One write() of the value, as fs::write does. An empty value is written as "\n": a zero-length
 * write to a sysctl changes nothing, and the point of the empty core_pattern is to clear it.
 */
export function writeValue(path: string, value: string): void {
  let fd = -1;
  try {
    fd = sys.open(path, sys.OpenFlags.WRONLY | sys.OpenFlags.CLOEXEC);
    sys.write(fd, value === "" ? "\n" : value);
  } catch (error) {
    const reason = error instanceof sys.SysError ? `${error.call}: ${error.reason}` : String(error);
    throw new Error(`failed to write ${JSON.stringify(value)} to ${path}: ${reason}`);
  } finally {
    if (fd >= 0) sys.close(fd);
  }
}

export type WriteOutcome = "written" | "skipped";

export function applyWrite(write: SystemWrite): WriteOutcome {
  if (write.needs) {
    const missing = firstMissing(write.needs);
    if (missing !== null) {
      log.warn(`skipping write of ${JSON.stringify(write.value)} to ${write.path}: ${missing} does not exist on this machine`);
      return "skipped";
    }
  }
  writeValue(write.path, write.value);
  log.debug(`wrote ${JSON.stringify(write.value)} to ${write.path} (${write.why})`);
  return "written";
}

export const MAX_ENTROPY_SIZE = 256;
export const RNDADDENTROPY = sys.RNDADDENTROPY;

export interface EntropyOptions {
  source: string;
  confidential: boolean;
  /** Where /dev/random is (tests put a fake there). */
  randomPath?: string;
  /** The ioctl call (tests record it). */
  ioctl?: (fd: number, request: number, argument: Uint8Array) => number;
}

export type EntropyOutcome = { kind: "missing"; reason: string } | { kind: "credited" | "written"; bytes: number; truncatedFrom?: number };

/**
 * The most read from the entropy source. The real one is a small device-tree property; the bound
 * keeps a hostile burrow.entropy.path (/dev/zero, a huge file) from filling memory.
 */
export const ENTROPY_READ_LIMIT = 4096;

export interface BoundedRead {
  /** At most `limit` bytes. */
  data: Uint8Array;
  /** The source held more than `limit` bytes; `data` is its first `limit`. */
  truncated: boolean;
}

/**
 * One read() of at most limit + 1 bytes (the extra byte tells "exactly limit" from "more") from a
 * regular file (a device-tree property is one) or a character device. Opened non-blocking, so a
 * FIFO or a device with nothing to give fails (EAGAIN) instead of stalling PID 1; any other file
 * type is refused. Throws SysError, or Error for the wrong file type.
 */
export function readBounded(path: string, limit: number): BoundedRead {
  const { RDONLY, NONBLOCK, CLOEXEC } = sys.OpenFlags;
  const fd = sys.open(path, RDONLY | NONBLOCK | CLOEXEC);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() && !stat.isCharacterDevice()) throw new Error("not a regular file or character device");
    const buffer = new Uint8Array(limit + 1);
    const count = sys.read(fd, buffer);
    return { data: buffer.subarray(0, Math.min(count, limit)), truncated: count > limit };
  } finally {
    sys.close(fd);
  }
}

/**
 * Mix the host's entropy into the pool. Outside a confidential VM it is credited (RNDADDENTROPY);
 * in one the host is not trusted, so it is only written (mixed in without credit).
 */
export function useHostEntropy(options: EntropyOptions): EntropyOutcome {
  let read: BoundedRead;
  try {
    read = readBounded(options.source, ENTROPY_READ_LIMIT);
  } catch (error) {
    const reason = error instanceof sys.SysError ? error.code : describeError(error);
    log.warn(`did not get entropy from the host: ${options.source}: ${reason}`);
    return { kind: "missing", reason };
  }
  let data = read.data;
  // truncatedFrom: the bytes received (at most ENTROPY_READ_LIMIT; read.truncated says there were more).
  let truncatedFrom: number | undefined;
  if (read.truncated || data.length > MAX_ENTROPY_SIZE) {
    const received = read.truncated ? `more than ${ENTROPY_READ_LIMIT} bytes; read the first ${ENTROPY_READ_LIMIT}` : `${data.length} bytes`;
    log.warn(`truncating host-provided entropy (received ${received}; using ${MAX_ENTROPY_SIZE})`);
    truncatedFrom = data.length;
    data = data.subarray(0, MAX_ENTROPY_SIZE);
  }
  log.info(`using ${data.length} bytes of entropy from the host`);
  const randomPath = options.randomPath ?? "/dev/random";
  const fd = sys.open(randomPath, sys.OpenFlags.WRONLY | sys.OpenFlags.CLOEXEC);
  try {
    if (options.confidential) {
      sys.writeAll(fd, data);
      return { kind: "written", bytes: data.length, ...(truncatedFrom ? { truncatedFrom } : {}) };
    }
    const ioctl = options.ioctl ?? ((f, request, argument) => sys.ioctlPtr(f, request, argument, { what: "RNDADDENTROPY", path: randomPath }));
    ioctl(fd, RNDADDENTROPY, sys.rndAddEntropyArgument(data, MAX_ENTROPY_SIZE));
    return { kind: "credited", bytes: data.length, ...(truncatedFrom ? { truncatedFrom } : {}) };
  } finally {
    sys.close(fd);
  }
}
