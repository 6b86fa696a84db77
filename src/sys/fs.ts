// Filesystem calls: mounts, nodes and raw file descriptors.
import { FFIType, ptr } from "bun:ffi";
import { SysError } from "./errno";
import { check, cstr, errno, libc, libcAs } from "./libc";
import { OpenFlags, Syscalls } from "./constants";

export function mount(source: string, target: string, fstype: string | null, flags = 0, data: string | null = null): void {
  const sourceBuf = cstr(source);
  const targetBuf = cstr(target);
  const typeBuf = fstype === null ? null : cstr(fstype);
  const dataBuf = data === null || data === "" ? null : cstr(data);
  check(libc("mount")(sourceBuf, targetBuf, typeBuf, flags, dataBuf), "mount", {
    source, target, fstype: fstype ?? "none", flags: `0x${flags.toString(16)}`, ...(data ? { data } : {}),
  });
}

export function umount2(target: string, flags = 0): void {
  check(libc("umount2")(cstr(target), flags), "umount2", { target, flags });
}

/** pivot_root(2): glibc has no wrapper, so the raw syscall. */
export function pivotRoot(newRoot: string, putOld: string): void {
  const newRootBuf = cstr(newRoot);
  const putOldBuf = cstr(putOld);
  if (libc("syscall")(Syscalls.pivot_root, ptr(newRootBuf), ptr(putOldBuf), 0) < 0) throw new SysError("pivot_root", errno(), { new_root: newRoot, put_old: putOld });
}

export function mkdir(path: string, mode = 0o755): void {
  check(libc("mkdir")(cstr(path), mode), "mkdir", { path });
}

export function mkdirat(dirFd: number, path: string, mode = 0o755): void {
  check(libc("mkdirat")(dirFd, cstr(path), mode), "mkdirat", { dirfd: dirFd, path });
}


/**
 * openat2(2) (glibc has no wrapper): `path` walked from `dirFd` under `resolve` (ResolveFlags;
 * IN_ROOT keeps every symlink and ".." inside dirFd, as if it were "/").
 */
export function openat2(dirFd: number, path: string, flags: number, resolve: number, mode = 0): number {
  // struct open_how: flags, mode, resolve, each a u64 in the machine's byte order.
  const how = new BigUint64Array([BigInt(flags), BigInt(mode), BigInt(resolve)]);
  const pathBuf = cstr(path);
  const syscall4 = libcAs("syscall_4", "syscall", { args: ["i64", "i64", "i64", "i64", "i64"], returns: FFIType.i64_fast });
  const fd = Number(syscall4(Syscalls.openat2, dirFd, ptr(pathBuf), ptr(how), how.byteLength));
  if (fd < 0) throw new SysError("openat2", errno(), { dirfd: dirFd, path, flags: `0x${flags.toString(16)}`, resolve: `0x${resolve.toString(16)}` });
  return fd;
}

export function chroot(path: string): void {
  check(libc("chroot")(cstr(path)), "chroot", { path });
}

export function chdir(path: string): void {
  check(libc("chdir")(cstr(path)), "chdir", { path });
}

export function open(path: string, flags: number = OpenFlags.RDONLY | OpenFlags.CLOEXEC, mode = 0o644): number {
  return check(libc("open")(cstr(path), flags, mode), "open", { path });
}

export function close(fd: number): void {
  check(libc("close")(fd), "close", { fd });
}

/** Close on a path that is already failing: that first error is the one to report, not close's. */
export function closeQuietly(fd: number): void {
  libc("close")(fd);
}

export function read(fd: number, buffer: Uint8Array, length = buffer.byteLength): number {
  return check(libc("read")(fd, buffer, length), "read", { fd });
}

export function write(fd: number, data: Uint8Array | string): number {
  const buffer = typeof data === "string" ? Buffer.from(data) : data;
  return check(libc("write")(fd, buffer, buffer.byteLength), "write", { fd });
}

/** Write a whole buffer, retrying short writes. */
export function writeAll(fd: number, data: Uint8Array | string): void {
  let buffer = typeof data === "string" ? Buffer.from(data) : data;
  while (buffer.byteLength > 0) {
    const written = write(fd, buffer);
    buffer = buffer.subarray(written);
  }
}

export function dup2(oldFd: number, newFd: number): void {
  check(libc("dup2")(oldFd, newFd), "dup2", { oldfd: oldFd, newfd: newFd });
}

export function fcntl(fd: number, command: number, argument = 0): number {
  return check(libc("fcntl")(fd, command, argument), "fcntl", { fd, cmd: command });
}

/** ioctl with an integer argument. */
export function ioctlInt(fd: number, request: number | bigint, argument: number | bigint = 0, what: Record<string, unknown> = {}): number {
  return check(libc("ioctl")(fd, BigInt(request), BigInt(argument)), "ioctl", {
    fd, request: `0x${BigInt(request).toString(16)}`, ...what,
  });
}

/** ioctl with a pointer to a buffer the kernel reads and/or writes. */
export function ioctlPtr(fd: number, request: number | bigint, argument: ArrayBufferView | null, what: Record<string, unknown> = {}): number {
  const fn = libcAs("ioctl_ptr", "ioctl", { args: ["i32", "u64", "ptr"], returns: "i32" });
  return check(fn(fd, BigInt(request), argument), "ioctl", {
    fd, request: `0x${BigInt(request).toString(16)}`, ...what,
  });
}

export function unlink(path: string): void {
  check(libc("unlink")(cstr(path)), "unlink", { path });
}
