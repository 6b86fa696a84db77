import { describe, expect, test } from "bun:test";
import { hasVirtioSerial, INITRD_COST, MEM_FLOOR_MIB, memFloorBytes, memFloorProblem } from "../../src/host/mem-floor";

const MIB = 2 ** 20;
// dist/test/initramfs-micro.img when measured: 356 MiB booted, 352 MiB did not.
const SHIPPED_INITRAMFS = 116_073_856;

describe("the memory floor", () => {
  test("without an initramfs: below the measured 30 MiB refused in one line (28 MiB hangs); 30 MiB passes", () => {
    expect(MEM_FLOOR_MIB).toBe(30);
    expect(memFloorProblem("16M", null)).toBe('--mem 16M is below the smallest guest burrow boots (30 MiB without an initramfs; see docs/microvm.md, "Memory floor")');
    expect(memFloorProblem("28M", null)).not.toBeNull();
    // The floor counts the RAM QEMU gives: -m rounds up to 8 KiB, so 30712K is the last size below 30 MiB and 30719K is 30 MiB.
    expect(memFloorProblem("30712K", null)).not.toBeNull();
    expect(memFloorProblem("30719K", null)).toBeNull();
    expect(memFloorProblem("30M", null)).toBeNull();
  });

  test("with an initramfs: the measured failure (352 MiB) refused, the measured minimum (356 MiB) not", () => {
    expect(memFloorBytes(SHIPPED_INITRAMFS)).toBe(30 * MIB + Math.round(INITRD_COST * SHIPPED_INITRAMFS));
    expect(memFloorProblem("160M", SHIPPED_INITRAMFS)).toBe('--mem 160M is below the smallest guest burrow boots (355 MiB with this 111 MiB initramfs: 30 MiB plus 2.93× the image, for it and its unpacked copy; see docs/microvm.md, "Memory floor")');
    expect(memFloorProblem("352M", SHIPPED_INITRAMFS)).not.toBeNull();
    expect(memFloorProblem("356M", SHIPPED_INITRAMFS)).toBeNull();
    expect(memFloorProblem("512M", SHIPPED_INITRAMFS)).toBeNull();
    // A small initramfs asks for little more than a boot disk.
    expect(memFloorProblem("34M", 1 * MIB)).toBeNull();
  });

  test("with virtio-serial ports (a supervised guest's control port): 8 MiB more, measured (38 MiB boots, 37 MiB panics)", () => {
    expect(memFloorProblem("37M", null, true)).toBe('--mem 37M is below the smallest guest burrow boots (38 MiB without an initramfs, with virtio-serial ports (the control port is one); see docs/microvm.md, "Memory floor")');
    expect(memFloorProblem("38M", null, true)).toBeNull();
    expect(memFloorProblem("360M", SHIPPED_INITRAMFS, true)).toMatch(/363 MiB with this 111 MiB initramfs: 38 MiB with virtio-serial ports \(the control port is one\) plus 2\.93× the image/);
    expect(hasVirtioSerial({ ports: [], append: "" })).toBe(true);
    expect(hasVirtioSerial({ ports: [], append: "burrow.supervise=0" })).toBe(false);
    expect(hasVirtioSerial({ ports: [], append: "burrow.supervise=0" }, true)).toBe(true);
    expect(hasVirtioSerial({ ports: [{}], append: "burrow.supervise=0" })).toBe(true);
  });

  test("a size burrow cannot read is refused by parseMem's own line first", () => {
    expect(() => memFloorProblem("lots", null)).toThrow(/--mem must be a size like 512M/);
  });
});
