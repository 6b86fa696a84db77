// The only door to libc. Symbols are bound on first use, or all at once with prebind (PID 1,
// where every dlopen is a TinyCC compile under emulation). Variadic functions (ioctl, syscall,
// open) get fixed prototypes: on x86-64 SysV and aarch64 integer varargs travel in the same
// registers as fixed arguments.
import { dlopen, FFIType, linkSymbols, read, type FFIFunction, type Pointer } from "bun:ffi";
import { SysError } from "./errno";

const LIBC = "libc.so.6";

const DECLS = {
  __errno_location: { args: [], returns: "ptr" },
  mount: { args: ["ptr", "ptr", "ptr", "u64", "ptr"], returns: "i32" },
  umount2: { args: ["ptr", "i32"], returns: "i32" },
  mkdir: { args: ["ptr", "u32"], returns: "i32" },
  mkdirat: { args: ["i32", "ptr", "u32"], returns: "i32" },
  chroot: { args: ["ptr"], returns: "i32" },
  chdir: { args: ["ptr"], returns: "i32" },
  open: { args: ["ptr", "i32", "u32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  read: { args: ["i32", "ptr", "u64"], returns: FFIType.i64_fast },
  write: { args: ["i32", "ptr", "u64"], returns: FFIType.i64_fast },
  dup2: { args: ["i32", "i32"], returns: "i32" },
  fcntl: { args: ["i32", "i32", "i64"], returns: "i32" },
  ioctl: { args: ["i32", "u64", "u64"], returns: "i32" },
  mmap: { args: ["u64", "u64", "i32", "i32", "i32", "i64"], returns: FFIType.u64_fast },
  munmap: { args: ["u64", "u64"], returns: "i32" },
  madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
  prlimit: { args: ["i32", "i32", "ptr", "ptr"], returns: "i32" },
  uname: { args: ["ptr"], returns: "i32" },
  clock_gettime: { args: ["i32", "ptr"], returns: "i32" },
  syscall: { args: ["i64", "i64", "i64", "i64"], returns: FFIType.i64_fast },
  swapon: { args: ["ptr", "i32"], returns: "i32" },
  reboot: { args: ["i32"], returns: "i32" },
  sync: { args: [], returns: "void" },
  execve: { args: ["ptr", "ptr", "ptr"], returns: "i32" },
  fexecve: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  unlink: { args: ["ptr"], returns: "i32" },
  waitid: { args: ["i32", "u32", "ptr", "i32"], returns: "i32" },
  waitpid: { args: ["i32", "ptr", "i32"], returns: "i32" },
  getpid: { args: [], returns: "i32" },
  signal: { args: ["i32", "u64"], returns: FFIType.u64_fast },
  sigprocmask: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  prctl: { args: ["i32", "u64", "u64", "u64", "u64"], returns: "i32" },
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  listen: { args: ["i32", "i32"], returns: "i32" },
  accept4: { args: ["i32", "ptr", "ptr", "i32"], returns: "i32" },
  socketpair: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  sendmsg: { args: ["i32", "ptr", "i32"], returns: FFIType.i64_fast },
  recvmsg: { args: ["i32", "ptr", "i32"], returns: FFIType.i64_fast },
  setns: { args: ["i32", "i32"], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;

/** Host-side only (passing fds to a container engine, trimming an idle holder): PID 1 never calls them, so never pays to bind them. */
const HOST_ONLY: ReadonlySet<LibcSymbol> = new Set<LibcSymbol>(["listen", "accept4", "socketpair", "sendmsg", "recvmsg", "setns", "madvise"]);

export type LibcSymbol = keyof typeof DECLS;
type AnyFn = (...args: any[]) => any;

const bound = new Map<string, AnyFn>();
let errnoAddress: Pointer | null = null;

/** A libc function, bound on first use. */
export function libc(name: LibcSymbol): AnyFn {
  let fn = bound.get(name);
  if (!fn) {
    const lib = dlopen(LIBC, { [name]: DECLS[name] } as Record<string, FFIFunction>);
    fn = lib.symbols[name] as AnyFn;
    bound.set(name, fn);
  }
  return fn;
}

/**
 * Bind symbols now, all in one dlopen: each dlopen compiles its trampolines in one TinyCC run,
 * and that run's fixed cost dominates (measured under TCG: 10 symbols 3.8 ms together, 23.9 ms
 * one by one). A symbol bound later still binds once libc.so.6's file is gone (an emptied
 * initramfs, a new root without one): dlopen finds the loaded libc by its soname.
 */
export function prebind(names: readonly LibcSymbol[]): void {
  const missing = [...new Set(names)].filter((name) => !bound.has(name));
  if (missing.length === 0) return;
  const lib = dlopen(LIBC, Object.fromEntries(missing.map((name) => [name, DECLS[name]])) as Record<string, FFIFunction>);
  for (const name of missing) bound.set(name, lib.symbols[name] as AnyFn);
}

/** Every libc function PID 1 may call (all but the host-only ones): it binds them at once, before its first call. */
export const LIBC_SYMBOLS = (Object.keys(DECLS) as LibcSymbol[]).filter((name) => !HOST_ONLY.has(name));

/** Bind an extra prototype for a symbol (a second signature of a variadic function). */
export function libcAs(alias: string, name: LibcSymbol, decl: FFIFunction): AnyFn {
  let fn = bound.get(alias);
  if (!fn) {
    const address = (libc(name) as unknown as { ptr: Pointer }).ptr;
    fn = linkSymbols({ [alias]: { ...decl, ptr: address } }).symbols[alias] as AnyFn;
    bound.set(alias, fn);
  }
  return fn;
}

/** errno of the calling thread; read it immediately after the failing call. */
export function errno(): number {
  if (errnoAddress === null) errnoAddress = libc("__errno_location")() as Pointer;
  return read.i32(errnoAddress, 0);
}

/** Throw a SysError when a libc call returned -1 (or a negative value). */
export function check<T extends number>(result: T, call: string, args: Record<string, unknown> = {}): T {
  if (result < 0) throw new SysError(call, errno(), args);
  return result;
}

/** A NUL-terminated copy of a JS string for a `ptr` argument. Keep it referenced during the call. */
export function cstr(value: string): Buffer {
  return Buffer.from(value + "\0", "utf8");
}
