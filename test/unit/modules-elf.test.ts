// The shared ELF64 section reader (module .modinfo, a binary's .dynamic), on real and broken files.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { checkElf64, cStringAt, readElfSections, sectionData } from "../../src/modules/elf-sections";
import { moduleDepends } from "../../src/modes/paravisor/module-load";

const SHT_DYNAMIC = 6;

describe("real files", () => {
  test("the running bun: named sections, a .dynamic whose link is its string table", () => {
    const bytes = new Uint8Array(readFileSync(process.execPath));
    const sections = readElfSections(bytes, process.execPath);
    const names = sections.map((section) => section.name);
    expect(names).toEqual(expect.arrayContaining([".text", ".dynamic", ".dynstr"]));
    const dynamic = sections.find((section) => section.type === SHT_DYNAMIC)!;
    expect(sections[dynamic.link]!.name).toBe(".dynstr");
    expect(sectionData(bytes, dynamic).length).toBe(dynamic.size);
  });
});

describe("broken files", () => {
  /** A minimal ELF64 LE header with `shnum` section headers of 64 bytes at `shoff`. */
  function header(shoff: number, shnum: number, shstrndx = 0): Uint8Array {
    const bytes = new Uint8Array(Math.max(64, shoff + shnum * 64));
    bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0x28, BigInt(shoff), true);
    view.setUint16(0x3a, 64, true);
    view.setUint16(0x3c, shnum, true);
    view.setUint16(0x3e, shstrndx, true);
    return bytes;
  }

  test("not ELF, not 64-bit, not little-endian: said so", () => {
    expect(() => checkElf64(new Uint8Array(16), "x")).toThrow("x is not an ELF file");
    const elf32 = header(0, 0);
    elf32[4] = 1;
    expect(() => readElfSections(elf32, "y")).toThrow("y is not a 64-bit ELF file");
    const bigEndian = header(0, 0);
    bigEndian[5] = 2;
    expect(() => readElfSections(bigEndian)).toThrow("file is not little-endian");
    expect(moduleDepends(new TextEncoder().encode("(xz data)".repeat(10)))).toEqual([]);
  });

  test("no section header table: no sections", () => {
    expect(readElfSections(header(0, 5))).toEqual([]);
    expect(readElfSections(header(64, 0))).toEqual([]);
  });

  test("a table past the end of the file is an error, not a read out of range", () => {
    const bytes = header(64, 3).subarray(0, 64 + 2 * 64);
    expect(() => readElfSections(bytes, "m.ko")).toThrow("m.ko: section headers lie outside the file");
    expect(moduleDepends(bytes)).toEqual([]);
  });

  test("sections and names pointing outside the file read as empty", () => {
    const bytes = header(64, 2, 1);
    const view = new DataView(bytes.buffer);
    // Section 1 (the name table) claims 1 MiB at offset 64; section 0's name offset is 5.
    view.setUint32(64, 5, true);
    view.setBigUint64(128 + 24, 64n, true);
    view.setBigUint64(128 + 32, 1n << 20n, true);
    const sections = readElfSections(bytes);
    expect(sections.map((section) => section.name)).toEqual(["", ""]);
    expect(sectionData(bytes, sections[1]!).length).toBe(0);
  });

  test("cStringAt stops at NUL or the end", () => {
    const bytes = new TextEncoder().encode("ab\0cd");
    expect(cStringAt(bytes, 0)).toBe("ab");
    expect(cStringAt(bytes, 3)).toBe("cd");
  });
});
