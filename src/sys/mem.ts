// Memory mappings. Addresses are plain JS numbers (user space fits in 47 bits).
import { ptr, toArrayBuffer, type Pointer } from "bun:ffi";
import { check, errno, libc } from "./libc";
import { SysError } from "./errno";

const MAP_FAILED = 2 ** 64 - 1;

export function mmap(address: number, length: number, prot: number, flags: number, fd = -1, offset: bigint | number = 0, what: Record<string, unknown> = {}): number {
  const result = libc("mmap")(address, length, prot, flags, fd, BigInt.asIntN(64, BigInt(offset)));
  if (result === MAP_FAILED || result === -1 || (typeof result === "bigint" && result === 0xffffffffffffffffn)) {
    throw new SysError("mmap", errno(), {
      addr: `0x${address.toString(16)}`, length, fd, offset: `0x${BigInt(offset).toString(16)}`, ...what,
    });
  }
  return Number(result);
}

export function munmap(address: number, length: number): void {
  check(libc("munmap")(address, length), "munmap", { addr: `0x${address.toString(16)}`, length });
}

export function madvise(address: number, length: number, advice: number): void {
  check(libc("madvise")(address, length, advice), "madvise", { addr: `0x${address.toString(16)}`, length, advice });
}

/** A zero-copy view of mapped memory. */
export function view(address: number, length: number): ArrayBuffer {
  return toArrayBuffer(address as Pointer, 0, length);
}

/** The address of a TypedArray's bytes, for structs that carry pointers (keep the array referenced). */
export function addressOf(data: Uint8Array | BigUint64Array | DataView): number {
  return ptr(data) as number;
}

/**
 * read(fd) straight into mapped memory at `address`. A bad page there makes the kernel's copy fail
 * with EFAULT instead of raising SIGBUS in this process. Returns the bytes read.
 */
export function readToAddress(fd: number, address: number, length: number): number {
  const result = libc("read")(fd, address, length);
  if (result < 0) throw new SysError("read", errno(), { fd, addr: `0x${address.toString(16)}`, length });
  return Number(result);
}

/** write(fd) straight from mapped memory at `address` (EFAULT, not SIGBUS, on a bad page). */
export function writeFromAddress(fd: number, address: number, length: number): number {
  const result = libc("write")(fd, address, length);
  if (result < 0) throw new SysError("write", errno(), { fd, addr: `0x${address.toString(16)}`, length });
  return Number(result);
}
