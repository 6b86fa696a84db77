import { describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpioArchive, cpioName } from "../../src/image/cpio";

function extract(bytes: Uint8Array): string {
  const dir = mkdtempSync(join(tmpdir(), "burrow-cpio-"));
  const result = spawnSync(["cpio", "-i", "--make-directories", "--no-absolute-filenames", "--quiet"], { cwd: dir, stdin: bytes, stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`cpio -i failed: ${result.stderr}`);
  return dir;
}

describe("cpio newc writer", () => {
  test("round-trips through the system cpio byte for byte, with modes and symlinks", () => {
    const random = new Uint8Array(10_003);
    crypto.getRandomValues(random);
    const archive = new CpioArchive()
      .add({ type: "file", path: "/init", data: random, mode: 0o755 })
      .add({ type: "file", path: "/etc/ld.so.preload", data: Buffer.from("/lib/x.so\n"), mode: 0o644 })
      .add({ type: "file", path: "/empty", data: new Uint8Array(0), mode: 0o600 })
      .add({ type: "symlink", path: "/lib64/ld.so", target: "/lib/x86_64-linux-gnu/ld.so" })
      .add({ type: "dir", path: "/tmp", mode: 0o1777 });
    const dir = extract(archive.bytes());
    try {
      expect(new Uint8Array(readFileSync(join(dir, "init")))).toEqual(random);
      expect(lstatSync(join(dir, "init")).mode & 0o7777).toBe(0o755);
      expect(readFileSync(join(dir, "etc/ld.so.preload"), "utf8")).toBe("/lib/x.so\n");
      expect(lstatSync(join(dir, "empty")).size).toBe(0);
      expect(lstatSync(join(dir, "empty")).mode & 0o7777).toBe(0o600);
      expect(readlinkSync(join(dir, "lib64/ld.so"))).toBe("/lib/x86_64-linux-gnu/ld.so");
      expect(lstatSync(join(dir, "tmp")).mode & 0o7777).toBe(0o1777);
      expect(lstatSync(join(dir, "lib64")).isDirectory()).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("device nodes carry type, major and minor (cpio -t listing)", () => {
    const archive = new CpioArchive()
      .add({ type: "char", path: "/dev/console", major: 5, minor: 1, mode: 0o600 })
      .add({ type: "char", path: "/dev/null", major: 1, minor: 3, mode: 0o666 })
      .add({ type: "block", path: "/dev/vda", major: 254, minor: 0, mode: 0o660 });
    const listing = spawnSync(["cpio", "-itv", "--quiet"], { stdin: archive.bytes() }).stdout.toString();
    expect(listing).toMatch(/^crw------- .* 5,\s+1 .* dev\/console$/m);
    expect(listing).toMatch(/^crw-rw-rw- .* 1,\s+3 .* dev\/null$/m);
    expect(listing).toMatch(/^brw-rw---- .* 254,\s+0 .* dev\/vda$/m);
  });

  test("the layout matches the newc format: magic, 4-byte alignment, trailer", () => {
    const bytes = new CpioArchive().add({ type: "file", path: "a", data: Buffer.from("xyz") }).bytes({ mtime: 1234 });
    const text = Buffer.from(bytes).toString("latin1");
    expect(text.startsWith("070701")).toBe(true);
    expect(bytes.length % 4).toBe(0);
    expect(text).toContain("TRAILER!!!");
    // mtime field (7th) is SOURCE_DATE_EPOCH
    expect(parseInt(text.slice(6 + 8 * 5, 6 + 8 * 6), 16)).toBe(1234);
    // name size includes the NUL; data starts 4-aligned after 110-byte header + "a\0"
    expect(text.slice(112, 115)).toBe("xyz");
  });

  test("same inputs, same bytes, whatever the insertion order", () => {
    const a = new CpioArchive().add({ type: "file", path: "/b/c", data: Buffer.from("1") }).add({ type: "file", path: "/a", data: Buffer.from("2") });
    const b = new CpioArchive().add({ type: "file", path: "/a", data: Buffer.from("2") }).add({ type: "file", path: "/b/c", data: Buffer.from("1") });
    expect(Buffer.from(a.bytes()).equals(Buffer.from(b.bytes()))).toBe(true);
  });

  test("bad paths are refused", () => {
    expect(() => cpioName("/")).toThrow();
    expect(() => cpioName("../etc/passwd")).toThrow();
    expect(cpioName("//a//b/")).toBe("a/b");
    expect(() => new CpioArchive().add({ type: "file", path: "/x", data: new Uint8Array() }).add({ type: "file", path: "/x/y", data: new Uint8Array() })).toThrow(/not a directory/);
  });
});
