import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildImage, type ImageOptions } from "../../src/image/build";
import { fakeStaticBinary, scratchDir } from "./image-fixtures";

const work = scratchDir("image-ext4");
afterAll(() => rmSync(work, { recursive: true, force: true }));

function debugfs(image: string, request: string): string {
  return spawnSync(["/usr/sbin/debugfs", "-R", request, image], { stdout: "pipe", stderr: "pipe" }).stdout.toString();
}

describe("ext4 boot disk", () => {
  const binary = fakeStaticBinary(work);
  const tree = join(work, "tree");
  mkdirSync(join(tree, "sub dir/deeper"), { recursive: true });
  writeFileSync(join(tree, "sub dir/deeper/data.bin"), crypto.getRandomValues(new Uint8Array(70_000)));
  writeFileSync(join(tree, "config"), "key=value\n", { mode: 0o600 });
  symlinkSync("../config", join(tree, "sub dir/link"));
  chmodSync(join(tree, "sub dir"), 0o750);
  const options = (out: string, mtime: number): ImageOptions => ({
    binary, out, kernelDir: null, modules: [], add: [[tree, "/opt/app"], [binary, "/usr/bin/tool"]], compress: "none", format: "ext4", mtime,
  });

  for (const mtime of [0, 1_700_000_000]) {
    test(`two builds of the same inputs are byte-identical (mtime ${mtime})`, async () => {
      const a = join(work, `a-${mtime}.ext4`);
      const b = join(work, `b-${mtime}.ext4`);
      await buildImage(options(a, mtime));
      // The staging tree's ctimes (copied by mke2fs, settable by no one) now differ by a second.
      await Bun.sleep(1100);
      await buildImage(options(b, mtime));
      const bytesA = readFileSync(a);
      expect(bytesA.length).toBeGreaterThan(0);
      expect(bytesA.equals(readFileSync(b))).toBe(true);
    }, 30_000);
  }

  test("holds the entries with their modes, owner 0 and every timestamp from the build's mtime", async () => {
    const out = join(work, "stat.ext4");
    await buildImage(options(out, 1_700_000_000));
    expect(debugfs(out, "cat /opt/app/config")).toBe("key=value\n");
    expect(debugfs(out, `stat "/opt/app/sub dir/link"`)).toContain("Type: symlink");
    for (const [path, mode] of [["/init", "0755"], ["/opt/app/config", "0600"], ["/opt/app/sub dir", "0750"], ["/tmp", "01777"]] as const) {
      const stat = debugfs(out, `stat "${path}"`);
      expect(stat).toMatch(new RegExp(`Mode:\\s+${mode}\\s`));
      expect(stat).toMatch(/User:\s+0\s+Group:\s+0/);
      for (const field of ["ctime", "atime", "mtime"]) expect(stat).toContain(`${field}: 0x6553f100:`);
    }
    expect(spawnSync(["/usr/sbin/e2fsck", "-fn", out], { stdout: "pipe", stderr: "pipe" }).exitCode).toBe(0);
  }, 30_000);
});
