import { describe, expect, test } from "bun:test";
import { MAX_MODULE_NAME_LENGTH, MODULE_FILE_PATTERN, ModuleIndex, moduleCompression, moduleNameFromPath, normalizeAliasPattern, NOT_IN_INDEX } from "../../src/modules";

describe("module index parsing", () => {
  const index = ModuleIndex.parse({
    dep: "kernel/a.ko: kernel/b.ko kernel/c.ko\nkernel/b.ko: kernel/c.ko\nkernel/c.ko:\nkernel/d-x.ko:\nkernel/f.ko.zst:\n",
    softdep: "softdep a pre: d-x post: e\n",
    alias: "alias fs-foo a\nalias pci:v00001AF4d* b\nalias usb:v1234d0[0-2]* c\nalias of:N*T*Cvendor-dev f\nalias gone-* e\n",
    builtin: "kernel/e.ko\n",
  });

  test("topological order, softdep pre becomes a dependency", () => {
    const { order, builtin } = index.closure(["fs-foo"]);
    expect(order.map((node) => node.name)).toEqual(["c", "b", "d_x", "a"]);
    expect(order.at(-1)!.after.sort()).toEqual(["b", "c", "d_x"]);
    expect(order.find((node) => node.name === "d_x")!.optional).toBe(true);
    expect(builtin).toEqual(["e"]);
  });

  test("glob aliases", () => {
    expect(index.resolve("pci:v00001AF4d00001001")).toEqual({ kind: "module", names: ["b"] });
    expect(index.resolve("pci:v00001AF5d00001001")).toEqual({ kind: "missing", reason: NOT_IN_INDEX });
  });

  test("bracket classes are classes, not literal text", () => {
    expect(index.resolve("usb:v1234d01ff")).toEqual({ kind: "module", names: ["c"] });
    expect(index.resolve("usb:v1234d03ff")).toEqual({ kind: "missing", reason: NOT_IN_INDEX });
    expect(index.resolve("usb:v1234d0[0-2]")).toEqual({ kind: "missing", reason: NOT_IN_INDEX });
  });

  test("dashes and underscores are equal in glob aliases too (kmod normalizes both sides)", () => {
    expect(index.resolve("of:NfooTbarCvendor_dev")).toEqual({ kind: "module", names: ["f"] });
    expect(index.resolve("of:NfooTbarCvendor-dev")).toEqual({ kind: "module", names: ["f"] });
    expect(normalizeAliasPattern("usb-x[a-c]-y")).toBe("usb_x[a-c]_y");
  });

  test("an alias of a built-in module resolves to built in", () => {
    expect(index.resolve("gone-anything")).toEqual({ kind: "builtin" });
  });

  test("absurdly long names are refused before any lookup, and say so", () => {
    const long = "pci:v00001AF4d" + "0".repeat(1_400);
    const resolution = index.resolve(long);
    expect(resolution).toEqual({ kind: "missing", reason: `not looked up: the name is ${long.length} characters long (at most ${MAX_MODULE_NAME_LENGTH})` });
    const { missing, missingReasons } = index.closure([long, "c"]);
    expect(missing).toEqual([long]);
    expect(missingReasons.get(long)).toMatch(/characters long/);
    // At the limit it is still looked up (and matches the glob).
    expect(index.resolve("pci:v00001AF4d" + "0".repeat(MAX_MODULE_NAME_LENGTH - 14))).toEqual({ kind: "module", names: ["b"] });
  });
});

describe("module file names", () => {
  test.each([
    ["kernel/crypto/crc32c-intel.ko.zst", "crc32c_intel", "zst"],
    ["kernel/fs/ext4/ext4.ko", "ext4", null],
    ["a-b.ko.xz", "a_b", "xz"],
    ["zsmalloc.ko.gz", "zsmalloc", "gz"],
  ] as const)("%s", (path, name, compression) => {
    expect(MODULE_FILE_PATTERN.test(path)).toBe(true);
    expect(moduleNameFromPath(path)).toBe(name);
    expect(moduleCompression(path)).toBe(compression);
  });

  test("other files are not module files", () => {
    for (const path of ["modules.dep", "x.ko.bz2", "x.kok", "ko"]) expect(MODULE_FILE_PATTERN.test(path)).toBe(false);
    expect(moduleCompression("x.ko.bz2")).toBeNull();
  });
});
