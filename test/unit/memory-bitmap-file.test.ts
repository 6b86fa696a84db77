// Bitmaps handed to the worker are sparse files mapped MAP_SHARED, so a reader of
// the file (the worker, through the inherited fd) sees exactly what burrow set, and later updates.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addBitmap, Bitmap, type GuestMapping } from "../../src/memory/mapping";
import * as sys from "../../src/sys";

const dir = mkdtempSync(join(tmpdir(), "burrow-bitmap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("file-backed bitmaps", () => {
  test("updates reach the file at once (LSB first, one bit per page)", () => {
    const file = join(dir, "one");
    const bitmap = new Bitmap(0x10000, { file });
    expect(bitmap.fd).not.toBeNull();
    expect(statSync(file).size).toBe(0x2000);
    bitmap.update({ start: 0x3000, end: 0x15000 }, true); // pages 3..0x14
    const bytes = readFileSync(file);
    expect([...bytes.subarray(0, 4)]).toEqual([0xf8, 0xff, 0x1f, 0x00]);
    bitmap.update({ start: 0x8000, end: 0x10000 }, false);
    expect(readFileSync(file)[1]).toBe(0x00);
    // the fd reads the same bytes (what the worker gets)
    const viaFd = Buffer.alloc(4);
    expect(sys.read(bitmap.fd!, viaFd)).toBe(4);
    expect([...viaFd]).toEqual([0xf8, 0x00, 0x1f, 0x00]);
    sys.close(bitmap.fd!);
  });

  test("addBitmap with a directory names the file <kind>.<name> and fills the mapping's ranges", () => {
    const mapping = { kind: "shared", reservation: { base: 0, size: 0x400000, align: 0x200000 }, ranges: [{ start: 0x100000, end: 0x140000 }], bitmaps: {} } as unknown as GuestMapping;
    const bitmap = addBitmap(mapping, "valid", true, join(dir, "bitmaps"));
    expect(bitmap.path).toBe(join(dir, "bitmaps", "shared.valid"));
    const bytes = readFileSync(bitmap.path!);
    expect(bytes.byteLength).toBe(0x1000);
    expect(bytes.subarray(0x20, 0x28).every((b) => b === 0xff)).toBe(true);
    expect(bytes.reduce((n, b) => n + (b === 0xff ? 1 : b === 0 ? 0 : 1000), 0)).toBe(8);
    sys.close(bitmap.fd!);
  });
});
