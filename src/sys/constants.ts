// Linux UAPI constants (<linux/mount.h>, <asm-generic/fcntl.h>, <linux/reboot.h>…). Most are the
// same on x86_64 and arm64; what differs (open flags, raw syscall numbers) has one table per
// architecture, picked from process.arch when this module loads. test/unit/sys-uapi.test.ts checks
// every table against both architectures' kernel headers.
import { archOfNode, type Arch } from "../arch";

export const MountFlags = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  SYNCHRONOUS: 0x10,
  REMOUNT: 0x20,
  MANDLOCK: 0x40,
  DIRSYNC: 0x80,
  NOSYMFOLLOW: 0x100,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  BIND: 0x1000,
  MOVE: 0x2000,
  REC: 0x4000,
  SILENT: 0x8000,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;

/** umount2 flags: the kernel keeps them out of its UAPI headers (glibc's <sys/mount.h> spells them). */
export const UmountFlags = { FORCE: 1, DETACH: 2, EXPIRE: 4, NOFOLLOW: 8 } as const;

/** The architectures burrow runs on, spelled as everywhere in burrow (src/arch.ts). */
export type SysArch = Arch;

const OPEN_FLAGS_COMMON = {
  RDONLY: 0o0,
  WRONLY: 0o1,
  RDWR: 0o2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

/** arm64 moves four open flags (arch/arm64/include/uapi/asm/fcntl.h); x86_64 keeps asm-generic's. */
export const OpenFlagsByArch = {
  x86_64: { ...OPEN_FLAGS_COMMON, DIRECTORY: 0o200000, NOFOLLOW: 0o400000, DIRECT: 0o40000, LARGEFILE: 0o100000 },
  arm64: { ...OPEN_FLAGS_COMMON, DIRECTORY: 0o40000, NOFOLLOW: 0o100000, DIRECT: 0o200000, LARGEFILE: 0o400000 },
} as const satisfies Record<SysArch, Record<string, number>>;

/** Raw syscall numbers for calls glibc has no wrapper for (x86_64: unistd_64.h; arm64: asm-generic/unistd.h). */
export const SyscallNumber = {
  x86_64: { finit_module: 313, close_range: 436, pivot_root: 155, openat2: 437 },
  arm64: { finit_module: 273, close_range: 436, pivot_root: 41, openat2: 437 },
} as const satisfies Record<SysArch, Record<string, number>>;

/** This process's architecture from Node's name for it; another one has no checked table, so refuse it by name. */
export function sysArch(nodeArch: string = process.arch): SysArch {
  const arch = archOfNode(nodeArch);
  if (arch !== null) return arch;
  throw new Error(`burrow's system layer has tables for x86_64 and arm64 only, not ${nodeArch}`);
}

export const SYS_ARCH: SysArch = sysArch();
export const OpenFlags: (typeof OpenFlagsByArch)[SysArch] = OpenFlagsByArch[SYS_ARCH];
export const Syscalls: (typeof SyscallNumber)[SysArch] = SyscallNumber[SYS_ARCH];

/** openat2(2)'s open_how.resolve (<linux/openat2.h>): how a path may be walked. */
export const ResolveFlags = { NO_XDEV: 0x01, NO_MAGICLINKS: 0x02, NO_SYMLINKS: 0x04, BENEATH: 0x08, IN_ROOT: 0x10 } as const;

export const Fcntl = { F_GETFD: 1, F_SETFD: 2, F_GETFL: 3, F_SETFL: 4, FD_CLOEXEC: 1 } as const;

export const RebootCmd = {
  RESTART: 0x01234567,
  HALT: 0xcdef0123,
  POWER_OFF: 0x4321fedc,
  CAD_ON: 0x89abcdef,
  CAD_OFF: 0x00000000,
} as const;

export const Signals = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9,
  SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGCHLD: 17, SIGCONT: 18,
  SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGXCPU: 24, SIGXFSZ: 25, SIGPWR: 30, SIGSYS: 31,
} as const;

export const Wait = { WNOHANG: 1, WUNTRACED: 2, WEXITED: 4, WCONTINUED: 8, WNOWAIT: 0x01000000 } as const;
export const IdType = { P_ALL: 0, P_PID: 1, P_PGID: 2, P_PIDFD: 3 } as const;

export const Rlimit = { CPU: 0, FSIZE: 1, DATA: 2, STACK: 3, CORE: 4, RSS: 5, NPROC: 6, NOFILE: 7, MEMLOCK: 8, AS: 9 } as const;

export const Clock = { REALTIME: 0, MONOTONIC: 1, BOOTTIME: 7 } as const;

export const Prot = { NONE: 0, READ: 1, WRITE: 2, EXEC: 4 } as const;
export const MapFlags = {
  SHARED: 0x01,
  PRIVATE: 0x02,
  FIXED: 0x10,
  ANONYMOUS: 0x20,
  NORESERVE: 0x4000,
  POPULATE: 0x8000,
  FIXED_NOREPLACE: 0x100000,
} as const;

/** madvise(2) advice (<asm-generic/mman-common.h>, the same on x86_64 and arm64). */
export const Madvise = { DONTNEED: 4 } as const;

export const SwapFlags = { PREFER: 0x8000, PRIO_MASK: 0x7fff, DISCARD: 0x10000 } as const;

export const AddressFamily = { UNIX: 1, INET: 2, INET6: 10, NETLINK: 16 } as const;
/** SOCK_NONBLOCK and SOCK_CLOEXEC are O_NONBLOCK and O_CLOEXEC. */
export const SocketType = { STREAM: 1, DGRAM: 2, RAW: 3, SEQPACKET: 5, NONBLOCK: OpenFlags.NONBLOCK, CLOEXEC: OpenFlags.CLOEXEC } as const;
export const NetlinkProtocol = { ROUTE: 0, KOBJECT_UEVENT: 15 } as const;

export const ModuleInitFlags = { IGNORE_MODVERSIONS: 1, IGNORE_VERMAGIC: 2, COMPRESSED_FILE: 4 } as const;
