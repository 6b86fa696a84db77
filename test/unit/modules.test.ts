import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { readdirSync } from "node:fs";
import { loadModuleIndex } from "../../src/image/build";
import { ModuleIndex } from "../../src/modules";
import { KERNEL_DIR, requireArtifacts } from "../helpers/artifacts";

describe("module closure against Debian's real modules.dep", () => {
  requireArtifacts(join(KERNEL_DIR, "lib/modules"));
  const release = readdirSync(join(KERNEL_DIR, "lib/modules"))[0]!;
  const index = loadModuleIndex(join(KERNEL_DIR, "lib/modules", release));
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

  test("unknown names are returned as missing", () => {
    expect(index.closure(["no_such_module_xyz"]).missing).toEqual(["no_such_module_xyz"]);
  });

  test("aliases resolve (crypto-crc32c)", () => {
    const resolution = index.resolve("crypto-crc32c");
    expect(resolution.kind).toBe("module");
  });
});

describe("module index parsing", () => {
  const index = ModuleIndex.parse({
    dep: "kernel/a.ko: kernel/b.ko kernel/c.ko\nkernel/b.ko: kernel/c.ko\nkernel/c.ko:\nkernel/d-x.ko:\n",
    softdep: "softdep a pre: d-x post: e\n",
    alias: "alias fs-foo a\nalias pci:v00001AF4d* b\n",
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
  });
});
