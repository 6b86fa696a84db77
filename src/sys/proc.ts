// Process, time, module, swap and power calls.
import { ptr } from "bun:ffi";
import { check, cstr, errno, libc } from "./libc";
import { errnoName, SysError } from "./errno";
import { Clock, IdType, Syscalls as SYSCALLS, Wait } from "./constants";
import { closeQuietly, open } from "./fs";

export function getpid(): number {
  return libc("getpid")();
}

export interface RlimitValue { soft: bigint; hard: bigint }

export function prlimit(resource: number, limit?: RlimitValue, pid = 0): RlimitValue {
  const next = limit ? new BigUint64Array([limit.soft, limit.hard]) : null;
  const previous = new BigUint64Array(2);
  check(libc("prlimit")(pid, resource, next, previous), "prlimit", { pid, resource });
  return { soft: previous[0]!, hard: previous[1]! };
}

export interface Utsname { sysname: string; nodename: string; release: string; version: string; machine: string }

export function uname(): Utsname {
  const buffer = Buffer.alloc(65 * 6);
  check(libc("uname")(buffer), "uname");
  const field = (index: number) => {
    const slice = buffer.subarray(index * 65, index * 65 + 65);
    return slice.subarray(0, slice.indexOf(0)).toString("utf8");
  };
  return { sysname: field(0), nodename: field(1), release: field(2), version: field(3), machine: field(4) };
}

/** CLOCK_BOOTTIME (or another clock) in nanoseconds. */
export function clockNs(clock: number = Clock.BOOTTIME): bigint {
  const timespec = new BigInt64Array(2);
  check(libc("clock_gettime")(clock, timespec), "clock_gettime", { clock });
  return timespec[0]! * 1_000_000_000n + timespec[1]!;
}

/** CLOCK_BOOTTIME in milliseconds, as a float (what boot reports use). */
export function boottimeMs(): number {
  return Number(clockNs(Clock.BOOTTIME)) / 1e6;
}

export function finitModule(fd: number, params: string, flags = 0, module = ""): void {
  const keep = cstr(params);
  const result = libc("syscall")(SYSCALLS.finit_module, fd, ptr(keep), flags);
  if (result < 0) throw new SysError("finit_module", errno(), { module, params });
}

export function swapon(path: string, flags: number): void {
  check(libc("swapon")(cstr(path), flags), "swapon", { path, flags: `0x${flags.toString(16)}` });
}

export function sync(): void {
  libc("sync")();
}

export function reboot(command: number): void {
  check(libc("reboot")(command | 0), "reboot", { cmd: `0x${(command >>> 0).toString(16)}` });
}

/**
 * argv and envp as NULL-terminated pointer arrays. The Buffers they point into are returned too:
 * the caller keeps them referenced in its frame for the duration of the exec call.
 */
function execArrays(argv: string[], env: string[]): { strings: Buffer[]; argvArray: BigUint64Array; envArray: BigUint64Array } {
  const strings = [...argv, ...env].map(cstr);
  const argvArray = new BigUint64Array(argv.length + 1);
  const envArray = new BigUint64Array(env.length + 1);
  strings.slice(0, argv.length).forEach((s, i) => (argvArray[i] = BigInt(ptr(s))));
  strings.slice(argv.length).forEach((s, i) => (envArray[i] = BigInt(ptr(s))));
  return { strings, argvArray, envArray };
}

/** execve: replaces the process image (PID stays the same). Only returns by throwing. */
export function execve(path: string, argv: string[], env: string[]): never {
  const { strings, argvArray, envArray } = execArrays(argv, env);
  libc("execve")(cstr(path), argvArray, envArray);
  void strings;
  throw new SysError("execve", errno(), { path });
}

/**
 * fexecve: exec the program open on `fd` (the resident supervisor, opened before switch_root took
 * its file out of reach). Only returns by throwing.
 */
export function fexecve(fd: number, argv: string[], env: string[]): never {
  const { strings, argvArray, envArray } = execArrays(argv, env);
  libc("fexecve")(fd, argvArray, envArray);
  void strings;
  throw new SysError("fexecve", errno(), { fd, program: argv[0] });
}

export interface ChildState { pid: number; code: number; status: number; exited: boolean; signaled: boolean }

/** siginfo_t as waitid fills it: the same on x86_64 and arm64 (test/unit/sys-layout.test.ts checks both). */
export const SIGINFO = { size: 128, si_code: 8, si_pid: 16, si_status: 24 } as const;

/** waitid(P_ALL) — with WNOWAIT this peeks at a zombie without reaping it. null when none is ready. */
export function waitidAny(options: number): ChildState | null {
  const siginfo = new Uint8Array(SIGINFO.size);
  const result = libc("waitid")(IdType.P_ALL, 0, siginfo, options);
  if (result < 0) {
    const code = errno();
    if (errnoName(code) === "ECHILD") return null;
    throw new SysError("waitid", code, { options });
  }
  const view = new DataView(siginfo.buffer);
  const pid = view.getInt32(SIGINFO.si_pid, true);
  if (pid === 0) return null;
  const siCode = view.getInt32(SIGINFO.si_code, true);
  const status = view.getInt32(SIGINFO.si_status, true);
  // CLD_EXITED = 1, CLD_KILLED = 2, CLD_DUMPED = 3
  return { pid, code: siCode, status, exited: siCode === 1, signaled: siCode === 2 || siCode === 3 };
}

/** waitpid; returns null for WNOHANG with nothing ready or ECHILD. */
export function waitpid(pid: number, options: number = Wait.WNOHANG): { pid: number; status: number } | null {
  const status = new Int32Array(1);
  const result = libc("waitpid")(pid, status, options);
  if (result < 0) {
    const code = errno();
    if (errnoName(code) === "ECHILD") return null;
    throw new SysError("waitpid", code, { pid, options });
  }
  if (result === 0) return null;
  return { pid: result, status: status[0]! };
}

/** Reset a signal to SIG_DFL (ignored dispositions survive execve). */
export function resetSignal(signal: number): void {
  const SIG_ERR = 0xffffffffffffffff;
  if (libc("signal")(signal, 0) === SIG_ERR) throw new SysError("signal", errno(), { signal });
}

/** Unblock every signal (blocked masks survive execve). */
export function unblockAllSignals(): void {
  const SIG_SETMASK = 2;
  const empty = new BigUint64Array(1);
  check(libc("sigprocmask")(SIG_SETMASK, empty, null), "sigprocmask");
}

export function prctl(option: number, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0): number {
  return check(libc("prctl")(option, arg2, arg3, arg4, arg5), "prctl", { option });
}

/** CLONE_NEWNET: setns(2)'s nstype for a network namespace. */
export const CLONE_NEWNET = 0x40000000;

/**
 * The calling thread joins the namespace `path` names (/run/netns/NAME, /proc/PID/ns/net). Called
 * on the main thread, it is what /proc/<this pid>/ns/… shows; the children spawned after it inherit it.
 */
export function setns(path: string, nstype: number): void {
  const fd = open(path);
  try {
    check(libc("setns")(fd, nstype), "setns", { path, nstype });
  } finally {
    closeQuietly(fd);
  }
}

export function closeRangeCloexec(first: number): void {
  const CLOSE_RANGE_CLOEXEC = 4;
  const result = libc("syscall")(SYSCALLS.close_range, first, 0xffffffff, CLOSE_RANGE_CLOEXEC);
  if (result < 0) throw new SysError("close_range", errno(), { first });
}

