// The smallest --mem burrow run lets a guest have. Below it the guest cannot boot, and how it
// fails says nothing about memory (28 MiB with a boot disk hangs until the timeout; too little
// for an initramfs panics with "No working init found"), so it is refused before QEMU starts.
// Measured with the micro kernel (docs/microvm.md, "Memory floor"): the floor is the smallest
// size that booted, so every size below it is refused and none that booted is.
import { parseConfig } from "../config/config";
import { memBytes } from "./options";

const MIB = 2 ** 20;
/** Without an initramfs (a boot disk): 30 MiB boots, 28 MiB hangs. */
export const MEM_FLOOR_MIB = 30;
/**
 * A virtio-serial device (any --port, and the control port of a supervised guest, the default)
 * costs the kernel 8 MiB more before burrow runs: a boot disk with it boots at 38 MiB and panics
 * at 37 ("System is deadlocked on memory").
 */
export const VIRTIO_SERIAL_MIB = 8;
/**
 * What an initramfs costs per byte before burrow runs: the image, its unpacked copy and the
 * kernel's bookkeeping, fitted to the shipped 111 MiB image (356 MiB boots, 352 MiB panics).
 */
export const INITRD_COST = 2.93;

/** The floor for this run: with an initramfs the kernel holds the image and its unpacked copy at once. */
export function memFloorBytes(initrdBytes: number | null, virtioSerial = false): number {
  return (MEM_FLOOR_MIB + (virtioSerial ? VIRTIO_SERIAL_MIB : 0)) * MIB + Math.round(INITRD_COST * (initrdBytes ?? 0));
}

/** One line when `mem` is below the floor, else null. virtioSerial: the VM has ports (a supervised guest's control port among them). */
export function memFloorProblem(mem: string, initrdBytes: number | null, virtioSerial = false): string | null {
  const floor = memFloorBytes(initrdBytes, virtioSerial);
  if (memBytes(mem) >= floor) return null;
  const floorMib = Math.ceil(floor / MIB);
  const base = virtioSerial ? `${MEM_FLOOR_MIB + VIRTIO_SERIAL_MIB} MiB with virtio-serial ports (the control port is one)` : `${MEM_FLOOR_MIB} MiB`;
  const why = initrdBytes === null
    ? `${floorMib} MiB without an initramfs${virtioSerial ? ", with virtio-serial ports (the control port is one)" : ""}`
    : `${floorMib} MiB with this ${(initrdBytes / MIB).toFixed(0)} MiB initramfs: ${base} plus ${INITRD_COST}× the image, for it and its unpacked copy`;
  return `--mem ${mem} is below the smallest guest burrow boots (${why}; see docs/microvm.md, "Memory floor")`;
}

/** Whether a run has a virtio-serial device: ports of its own, or the control port (a supervised guest, or any snapshot save). */
export function hasVirtioSerial(options: { ports: readonly unknown[]; append: string }, snapshotSave = false): boolean {
  return options.ports.length > 0 || snapshotSave || parseConfig(options.append).supervise;
}
