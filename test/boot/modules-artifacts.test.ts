// Module code against Debian's real kernel (build/kernel, made by `just kernel`): the closure
// walk over its modules.dep/softdep/alias and the ELF reader on a real module.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { normalizeAliasPattern, NOT_IN_INDEX, readModuleIndex } from "../../src/modules";
import { compileGlob, globMatches } from "../../src/modules/glob";
import { readElfSections, sectionData } from "../../src/modules/elf-sections";
import { moduleDepends } from "../../src/modes/paravisor/module-load";
import { KERNEL_DIR, requireArtifacts } from "../helpers/artifacts";

describe("module closure against Debian's real modules.dep", () => {
  requireArtifacts(join(KERNEL_DIR, "lib/modules"));
  const release = readdirSync(join(KERNEL_DIR, "lib/modules"))[0]!;
  const moduleDir = join(KERNEL_DIR, "lib/modules", release);
  const index = readModuleIndex(moduleDir)!;
  const position = (order: { name: string }[], name: string) => order.findIndex((node) => node.name === name);

  test("ext4 pulls jbd2, mbcache, crc16 before it and its crc32c softdep", () => {
    const { order, missing } = index.closure(["ext4"]);
    expect(missing).toEqual([]);
    const names = order.map((node) => node.name);
    for (const dep of ["jbd2", "mbcache", "crc16"]) {
      expect(names).toContain(dep);
      expect(position(order, dep)).toBeLessThan(position(order, "ext4"));
    }
    expect(names).toContain("crc32c_generic");
    expect(position(order, "crc32c_generic")).toBeLessThan(position(order, "ext4"));
    expect(order.find((node) => node.name === "ext4")!.after).toEqual(expect.arrayContaining(["jbd2", "mbcache", "crc16", "crc32c_generic"]));
  });

  test("virtio_blk needs virtio and virtio_ring; dashes and underscores are equal", () => {
    const { order } = index.closure(["virtio-blk"]);
    const blk = order.find((node) => node.name === "virtio_blk")!;
    expect(blk.after).toEqual(expect.arrayContaining(["virtio", "virtio_ring"]));
    expect(position(order, "virtio_ring")).toBeLessThan(position(order, "virtio_blk"));
  });

  test("zram with zsmalloc; built-in names resolve to nothing to load", () => {
    const { order, builtin } = index.closure(["zram", "lzo", "lzo-rle"]);
    expect(order.map((node) => node.name)).toEqual(expect.arrayContaining(["zram", "zsmalloc"]));
    expect(builtin).toEqual(["lzo", "lzo-rle"]);
  });

  test("unknown names are returned as missing, with why", () => {
    const { missing, missingReasons } = index.closure(["no_such_module_xyz"]);
    expect(missing).toEqual(["no_such_module_xyz"]);
    expect(missingReasons.get("no_such_module_xyz")).toBe(NOT_IN_INDEX);
  });

  test("exact aliases resolve to every provider", () => {
    const resolution = index.resolve("crypto-crc32c");
    expect(resolution.kind).toBe("module");
    if (resolution.kind === "module") expect(resolution.names.sort()).toEqual(["crc32c_generic", "crc32c_intel"]);
    expect(index.resolve("fs-ext4")).toEqual({ kind: "module", names: ["ext4"] });
  });

  test("glob aliases resolve, bracket classes included", () => {
    expect(index.resolve("virtio:d00000002v00001AF4")).toEqual({ kind: "module", names: ["virtio_blk"] });
    expect(index.resolve("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00")).toEqual({ kind: "module", names: ["virtio_pci"] });
    // Only "usb:v0D96p5200d000[1-9]dc*…" matches bcdDevice 0005: a literal "[" would miss it.
    expect(index.resolve("usb:v0D96p5200d0005dc00dsc00dp00ic00isc00ip00in00")).toEqual({ kind: "module", names: ["usb_storage"] });
  });

  test("a 10,000-character name runs through every alias pattern of the kernel", () => {
    const patterns = readFileSync(join(moduleDir, "modules.alias"), "utf8").split("\n").map((line) => line.split(/\s+/)[1]).filter((word): word is string => !!word);
    expect(patterns.length).toBeGreaterThan(10_000);
    const globs = patterns.map((pattern) => compileGlob(normalizeAliasPattern(pattern)));
    for (const name of ["usb:v13FDp3940d00" + "dc".repeat(5_000), "pci:v" + "0".repeat(10_000), "a".repeat(10_000)]) {
      expect(globs.filter((glob) => globMatches(glob, name)).length).toBe(0);
    }
    // Matches only after the last "*" has backtracked across almost the whole name.
    const matching = "usb:v13FDp3940d00" + "dc".repeat(4_990) + "dsc00dp00ic00isc00ip00in00";
    expect(matching.length).toBeGreaterThan(10_000);
    expect(globs.filter((glob) => globMatches(glob, matching)).length).toBeGreaterThan(0);
    // The index itself refuses to look such a name up.
    expect(index.resolve("usb:v" + "dc".repeat(5_000)).kind).toBe("missing");
  });
});


describe("ELF sections of a real module", () => {
  test("a kernel module's .modinfo", () => {
    requireArtifacts(join(KERNEL_DIR, "lib/modules"));
    const release = readdirSync(join(KERNEL_DIR, "lib/modules"))[0]!;
    const bytes = new Uint8Array(readFileSync(join(KERNEL_DIR, "lib/modules", release, "kernel/drivers/block/zram/zram.ko")));
    const modinfo = readElfSections(bytes).find((section) => section.name === ".modinfo")!;
    expect(new TextDecoder().decode(sectionData(bytes, modinfo))).toContain("name=zram\0");
    expect(moduleDepends(bytes)).toEqual(["zsmalloc"]);
  });
});
