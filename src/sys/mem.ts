// Memory mappings. Addresses are plain JS numbers (user space fits in 47 bits).
import { toArrayBuffer, type Pointer } from "bun:ffi";
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

/** A zero-copy view of mapped memory. */
export function view(address: number, length: number): ArrayBuffer {
  return toArrayBuffer(address as Pointer, 0, length);
}
