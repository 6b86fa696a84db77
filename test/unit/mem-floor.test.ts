import { describe, expect, test } from "bun:test";
import { MEM_FLOOR_MIB, memFloorBytes, memFloorProblem } from "../../src/host/mem-floor";

const MIB = 2 ** 20;
// dist/test/initramfs-micro.img when measured: 356 MiB booted, 352 MiB did not.
const SHIPPED_INITRAMFS = 116_073_856;

describe("the memory floor", () => {
  test("without an initramfs: below 28 MiB refused in one line; 28 MiB and the measured 30 MiB pass", () => {
    expect(MEM_FLOOR_MIB).toBe(28);
    expect(memFloorProblem("16M", null)).toBe('--mem 16M is below the smallest guest burrow boots (28 MiB without an initramfs; see docs/microvm.md, "Memory floor")');
    expect(memFloorProblem("28671K", null)).not.toBeNull();
    expect(memFloorProblem("28M", null)).toBeNull();
    expect(memFloorProblem("30M", null)).toBeNull();
  });

  test("with an initramfs: twice its size on top, never above a size that booted", () => {
    expect(memFloorBytes(SHIPPED_INITRAMFS)).toBe(28 * MIB + 2 * SHIPPED_INITRAMFS);
    expect(memFloorProblem("160M", SHIPPED_INITRAMFS)).toBe('--mem 160M is below the smallest guest burrow boots (250 MiB with this 111 MiB initramfs: 28 MiB plus the image and its unpacked copy; see docs/microvm.md, "Memory floor")');
    expect(memFloorProblem("356M", SHIPPED_INITRAMFS)).toBeNull();
    expect(memFloorProblem("512M", SHIPPED_INITRAMFS)).toBeNull();
    // A small initramfs asks for little more than a boot disk.
    expect(memFloorProblem("32M", 1 * MIB)).toBeNull();
  });

  test("a size burrow cannot read is refused by parseMem's own line first", () => {
    expect(() => memFloorProblem("lots", null)).toThrow(/--mem must be a size like 512M/);
  });
});
