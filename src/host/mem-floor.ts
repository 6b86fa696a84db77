// The smallest --mem burrow run lets a guest have. Below it the guest cannot boot, and how it
// fails says nothing about memory (28 MiB with a boot disk hangs until the timeout; too little
// for an initramfs panics with "No working init found"), so it is refused before QEMU starts.
// Measured with the micro kernel (docs/microvm.md, "Memory floor"): the floor is the smallest
// size that booted, so every size below it is refused and none that booted is.
import { memBytes } from "./options";

const MIB = 2 ** 20;
/** Without an initramfs (a boot disk): 30 MiB boots, 28 MiB hangs. */
export const MEM_FLOOR_MIB = 30;
/**
 * What an initramfs costs per byte before burrow runs: the image, its unpacked copy and the
 * kernel's bookkeeping, fitted to the shipped 111 MiB image (356 MiB boots, 352 MiB panics).
 */
export const INITRD_COST = 2.93;

/** The floor for this run: with an initramfs the kernel holds the image and its unpacked copy at once. */
export function memFloorBytes(initrdBytes: number | null): number {
  return MEM_FLOOR_MIB * MIB + Math.round(INITRD_COST * (initrdBytes ?? 0));
}

/** One line when `mem` is below the floor, else null. */
export function memFloorProblem(mem: string, initrdBytes: number | null): string | null {
  const floor = memFloorBytes(initrdBytes);
  if (memBytes(mem) >= floor) return null;
  const floorMib = Math.ceil(floor / MIB);
  const why = initrdBytes === null
    ? `${floorMib} MiB without an initramfs`
    : `${floorMib} MiB with this ${(initrdBytes / MIB).toFixed(0)} MiB initramfs: ${MEM_FLOOR_MIB} MiB plus ${INITRD_COST}× the image, for it and its unpacked copy`;
  return `--mem ${mem} is below the smallest guest burrow boots (${why}; see docs/microvm.md, "Memory floor")`;
}
