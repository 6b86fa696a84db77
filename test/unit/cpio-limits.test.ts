import { describe, expect, test } from "bun:test";
import { CpioArchive, cpioName } from "../../src/image/cpio";

describe("cpio newc limits", () => {
  test("a directory is replaced only by a directory", () => {
    const archive = new CpioArchive().add({ type: "file", path: "/lib/libc.so.6", data: new Uint8Array(1) });
    expect(() => archive.add({ type: "symlink", path: "/lib", target: "/usr/lib" })).toThrow('archive path "lib" is a directory; a symlink does not replace it');
    expect(() => archive.add({ type: "file", path: "/lib", data: new Uint8Array() })).toThrow('archive path "lib" is a directory; a file does not replace it');
    archive.add({ type: "dir", path: "/lib", mode: 0o700 });
    expect(archive.get("/lib")).toEqual({ type: "dir", path: "lib", mode: 0o700 });
    expect(archive.has("/lib/libc.so.6")).toBe(true);
  });

  test("names: NUL, NAME_MAX and PATH_MAX; symlink targets: empty, NUL, PATH_MAX", () => {
    expect(() => cpioName("/a\0b")).toThrow("contains a NUL byte");
    expect(cpioName(`/${"x".repeat(255)}`)).toHaveLength(255);
    expect(() => cpioName(`/${"x".repeat(256)}`)).toThrow("is 256 bytes, over NAME_MAX (255)");
    // 16 components of 255 bytes and 15 slashes: 4095 bytes, 4097 with the leading slash and the NUL.
    const tooLong = Array.from({ length: 16 }, () => "y".repeat(255)).join("/");
    expect(() => cpioName(tooLong)).toThrow("longer than PATH_MAX");
    expect(cpioName(tooLong.slice(1))).toHaveLength(4094);
    const archive = new CpioArchive();
    expect(() => archive.add({ type: "symlink", path: "/l", target: "" })).toThrow('bad symlink "l": symlink target is empty');
    expect(() => archive.add({ type: "symlink", path: "/l", target: "a\0b" })).toThrow("contains a NUL byte");
    expect(() => archive.add({ type: "symlink", path: "/l", target: "z".repeat(4096) })).toThrow("longer than PATH_MAX");
    archive.add({ type: "symlink", path: "/l", target: "z".repeat(4095) });
  });

  test("header fields: mtime and device numbers must fit 8 hex digits, checked before any byte is produced", () => {
    const archive = new CpioArchive().add({ type: "file", path: "/a", data: new Uint8Array(1) });
    expect(() => archive.bytes({ mtime: 2 ** 32 })).toThrow("mtime 4294967296 (SOURCE_DATE_EPOCH) does not fit a cpio newc header");
    expect(archive.bytes({ mtime: 2 ** 32 - 1 }).length).toBeGreaterThan(0);
    archive.add({ type: "block", path: "/dev/big", major: 2 ** 32, minor: 0 });
    expect(() => archive.chunks()).toThrow('cannot store "/dev/big" in the initramfs: device number 4294967296:0 does not fit a cpio newc header');
  });

  test("a file of 4 GiB or more is refused, naming it (its size field is 32 bits)", () => {
    // Only byteLength is read before the refusal; no 4 GiB buffer is needed.
    const huge = { byteLength: 2 ** 32 } as Uint8Array;
    const archive = new CpioArchive().add({ type: "file", path: "/big.img", data: huge });
    expect(() => archive.chunks()).toThrow(`cannot store "/big.img" in the initramfs: ${2 ** 32} bytes is 4 GiB or more`);
  });
});
