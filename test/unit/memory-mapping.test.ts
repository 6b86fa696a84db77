// Guest mappings without /dev/mshv_vtl_low: a temporary file stands in for lower-VTL memory (file
// offset = physical base + GPA, as the device's). Memory is only ever touched through the kernel
// (read()/write() on a probe file), so a wrong mapping fails an assertion with EFAULT instead of
// killing the test runner with SIGBUS.
import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildMapping, reservationAlign, reserve, vaOf, zeroThrough, type GuestMapping } from "../../src/memory/mapping";
import { ONE_GB, PAGE, TWO_MB, type Range } from "../../src/memory/ranges";
import * as sys from "../../src/sys";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "burrow-memory-mapping-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `length` bytes at `va`, copied out by the kernel; null when the kernel cannot read them (EFAULT). */
function peek(va: number, length: number): Buffer | null {
  const path = join(dir, "peek");
  const fd = sys.open(path, sys.OpenFlags.WRONLY | sys.OpenFlags.CREAT | sys.OpenFlags.TRUNC | sys.OpenFlags.CLOEXEC);
  try {
    if (sys.writeFromAddress(fd, va, length) !== length) throw new Error("short copy");
  } catch (error) {
    if (sys.isErrno(error, "EFAULT")) return null;
    throw error;
  } finally {
    sys.close(fd);
  }
  return readFileSync(path);
}

/** Copy `data` to `va` through the kernel. */
function poke(va: number, data: Uint8Array): void {
  const path = join(dir, "poke");
  writeFileSync(path, data);
  const fd = sys.open(path);
  try {
    expect(sys.readToAddress(fd, va, data.byteLength)).toBe(data.byteLength);
  } finally {
    sys.close(fd);
  }
}

/** A "lower-VTL memory" file whose page N is filled with byte N. */
function memoryFile(pages: number): { path: string; fd: number } {
  const path = join(dir, `memory-${pages}`);
  const bytes = new Uint8Array(pages * PAGE);
  for (let page = 0; page < pages; page++) bytes.fill(page, page * PAGE, (page + 1) * PAGE);
  writeFileSync(path, bytes);
  return { path, fd: sys.open(path, sys.OpenFlags.RDWR | sys.OpenFlags.CLOEXEC) };
}

describe("reserve", () => {
  test.each([
    ["under 2 MiB: page-aligned", 5 * PAGE, PAGE, 5 * PAGE],
    ["under 1 GiB: 2 MiB-aligned, rounded up", 3 * 0x10_0000, TWO_MB, 2 * TWO_MB],
    ["1 GiB or more: 1 GiB-aligned, rounded up", ONE_GB + PAGE, ONE_GB, 2 * ONE_GB],
  ])("%s", (_, size, align, reserved) => {
    expect(reservationAlign(size)).toBe(align);
    const unmap = spyOn(sys, "munmap");
    let reservation;
    try {
      reservation = reserve(size);
      // The over-sized mapping loses exactly its slack: `align` bytes, before and after the reservation.
      const released = unmap.mock.calls.map(([address, length]) => ({ start: address, end: address + length }));
      expect(released.reduce((sum, r) => sum + (r.end - r.start), 0)).toBe(align);
      for (const r of released) expect(r.end === reservation.base || r.start === reservation.base + reservation.size).toBe(true);
    } finally {
      unmap.mockRestore();
    }
    expect(reservation).toEqual({ base: reservation.base, size: reserved, align });
    expect(reservation.base % align).toBe(0);
    // Reserved, not usable: PROT_NONE from the first page to the last.
    expect(peek(reservation.base, 1)).toBeNull();
    expect(peek(reservation.base + reserved - 1, 1)).toBeNull();
    sys.munmap(reservation.base, reservation.size);
  });
});

describe("buildMapping", () => {
  const ranges: Range[] = [{ start: 0x1000, end: 0x3000 }, { start: 0x5000, end: 0x6000 }];
  const physicalBase = 0x8000;
  let memory: { path: string; fd: number };
  let mapping: GuestMapping;
  beforeAll(() => {
    memory = memoryFile(16);
    mapping = buildMapping(memory.fd, "vtl0", ranges, physicalBase, false, physicalBase);
  });
  afterAll(() => {
    sys.munmap(mapping.reservation.base, mapping.reservation.size);
    sys.close(memory.fd);
  });

  test("one reservation over the address space, file offset = physical base + GPA", () => {
    expect(mapping).toMatchObject({ kind: "vtl0", shared: false, dmaBase: physicalBase, fileOffsetBase: BigInt(physicalBase), ranges, bitmaps: {} });
    expect(mapping.ranges[0]).not.toBe(ranges[0]); // a copy: the caller's list stays the caller's
    expect(mapping.reservation).toMatchObject({ size: 0x6000, align: PAGE });
    expect(vaOf(mapping, 0x1000)).toBe(mapping.reservation.base + 0x1000);
    // VA ≡ GPA: each page of a range shows the file page at physicalBase + GPA.
    for (const gpa of [0x1000, 0x2000, 0x5000]) expect(peek(vaOf(mapping, gpa), PAGE)).toEqual(Buffer.alloc(PAGE, (physicalBase + gpa) / PAGE));
  });

  test("gaps between and before the ranges stay unmapped", () => {
    for (const gpa of [0x0, 0x3000, 0x4000]) expect(peek(vaOf(mapping, gpa), 1)).toBeNull();
  });

  test("MAP_SHARED: a write through the mapping reaches the file", () => {
    poke(vaOf(mapping, 0x2100), Buffer.from("written through the mapping"));
    const file = readFileSync(memory.path);
    expect(file.subarray(physicalBase + 0x2100, physicalBase + 0x2100 + 27).toString()).toBe("written through the mapping");
  });

  test("the shared alias sets bit 63 of the file offset (which a regular file refuses)", () => {
    expect(() => buildMapping(memory.fd, "shared", ranges, 0, true, null)).toThrow(/^mmap\(.*offset="0x8000000000001000".*shared mapping of \[0x1000, 0x3000\)/);
  });

  test("zeroThrough zeroes only the given ranges, through the kernel", () => {
    expect(zeroThrough(mapping, [{ start: 0x5000, end: 0x6000 }])).toBe(PAGE);
    const file = readFileSync(memory.path);
    expect(file.subarray(physicalBase + 0x5000, physicalBase + 0x6000)).toEqual(Buffer.alloc(PAGE, 0));
    expect(file.subarray(physicalBase + 0x6000, physicalBase + 0x7000)).toEqual(Buffer.alloc(PAGE, (physicalBase + 0x6000) / PAGE));
    expect(() => zeroThrough(mapping, [{ start: 0x3000, end: 0x4000 }])).toThrow(/^zeroing \[0x3000, 0x4000\) through the vtl0 mapping failed near 0x3000: .*EFAULT/);
  });
});
