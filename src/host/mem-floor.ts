// The smallest --mem burrow run lets a guest have. Below it the guest cannot boot, and how it
// fails says nothing about memory (28 MiB with a boot disk hangs until the timeout; too little
// for an initramfs panics with "No working init found"), so it is refused before QEMU starts.
// Measured with the micro kernel (docs/microvm.md, "Memory floor"); a floor, never above a size
// that booted.
import { memBytes } from "./options";

const MIB = 2 ** 20;
/** Without an initramfs (a boot disk): 30 MiB boots, 28 MiB does not. */
export const MEM_FLOOR_MIB = 28;

/**
 * The floor for this run: with an initramfs the kernel holds the image and its unpacked copy at
 * once, so twice its size on top (the shipped 111 MiB one measured: 356 MiB boots, 352 MiB not).
 */
export function memFloorBytes(initrdBytes: number | null): number {
  return MEM_FLOOR_MIB * MIB + 2 * (initrdBytes ?? 0);
}

/** One line when `mem` is below the floor, else null. */
export function memFloorProblem(mem: string, initrdBytes: number | null): string | null {
  const floor = memFloorBytes(initrdBytes);
  if (memBytes(mem) >= floor) return null;
  const floorMib = Math.ceil(floor / MIB);
  const why = initrdBytes === null
    ? `${floorMib} MiB without an initramfs`
    : `${floorMib} MiB with this ${(initrdBytes / MIB).toFixed(0)} MiB initramfs: ${MEM_FLOOR_MIB} MiB plus the image and its unpacked copy`;
  return `--mem ${mem} is below the smallest guest burrow boots (${why}; see docs/microvm.md, "Memory floor")`;
}
