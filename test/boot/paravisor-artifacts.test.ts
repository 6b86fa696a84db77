// Paravisor pieces checked against build artifacts (Debian's kernel modules under build/kernel,
// dist/burrow); moved from test/unit/paravisor.test.ts so test/unit runs without a build.
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildImage } from "../../src/image/build";
import { moduleDepends } from "../../src/modes/paravisor/module-load";
import { BURROW, KERNEL_DIR, requireArtifacts } from "../helpers/artifacts";

const work = mkdtempSync(join(tmpdir(), "burrow-paravisor-artifacts-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("module files", () => {
  test("depends= from .modinfo", () => {
    requireArtifacts(join(KERNEL_DIR, "lib/modules"));
    const release = spawnSync(["ls", join(KERNEL_DIR, "lib/modules")]).stdout.toString().trim().split("\n")[0]!;
    const read = (path: string) => new Uint8Array(readFileSync(join(KERNEL_DIR, "lib/modules", release, path)));
    expect(moduleDepends(read("kernel/drivers/block/zram/zram.ko"))).toEqual(["zsmalloc"]);
    expect(moduleDepends(read("kernel/drivers/char/ttyprintk.ko"))).toEqual([]);
    expect(moduleDepends(new Uint8Array(16))).toEqual([]);
  });
});

describe("image: ordered module layout", () => {
  test("the closure in load order as /lib/modules/NNN/<name>.ko and nothing else", async () => {
    requireArtifacts(BURROW, join(KERNEL_DIR, "lib/modules"));
    const out = join(work, "ordered.img");
    const summary = await buildImage({
      binary: BURROW, out, kernelDir: KERNEL_DIR, modules: ["zram", "ttyprintk"], noDefaultModules: true,
      moduleLayout: "ordered", add: [], compress: "none", mtime: 0,
    });
    const listing = spawnSync(["cpio", "-it", "--quiet"], { stdin: readFileSync(out) }).stdout.toString().split("\n");
    const underModules = listing.filter((line) => line.startsWith("lib/modules/") && !/^lib\/modules\/\d+$/.test(line));
    expect(underModules).toEqual(["lib/modules/000/ttyprintk.ko", "lib/modules/001/zsmalloc.ko", "lib/modules/002/zram.ko"]);
    expect(summary.modules).toEqual(["ttyprintk", "zsmalloc", "zram"]);
  }, 120_000);
});
