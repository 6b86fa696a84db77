import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BURROW, KERNEL_DIR, requireArtifacts } from "../helpers/artifacts";

const work = mkdtempSync(join(tmpdir(), "burrow-image-test-"));
// bun test does not run process "exit" handlers per file.
afterAll(() => rmSync(work, { recursive: true, force: true }));

function burrowImage(...args: string[]) {
  const result = spawnSync([BURROW, "image", ...args], { stderr: "pipe", stdout: "pipe", env: { ...process.env, SOURCE_DATE_EPOCH: "1700000000" } });
  return { code: result.exitCode, stderr: result.stderr.toString(), stdout: result.stdout.toString() };
}

describe("burrow image", () => {
  requireArtifacts(BURROW, join(KERNEL_DIR, "lib/modules"));

  test("is reproducible: two builds give the same bytes", () => {
    const a = join(work, "a.img");
    const b = join(work, "b.img");
    expect(burrowImage("--kernel-dir", KERNEL_DIR, "--compress", "gzip", "--out", a).code).toBe(0);
    expect(burrowImage("--kernel-dir", KERNEL_DIR, "--compress", "gzip", "--out", b).code).toBe(0);
    const hash = (path: string) => new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");
    expect(hash(a)).toBe(hash(b));
  }, 120_000);

  test("holds /init, the glibc runtime, the early-mounts preload, device nodes and the module subset", () => {
    const out = join(work, "list.img");
    expect(burrowImage("--kernel-dir", KERNEL_DIR, "--modules", "ttyprintk", "--out", out).code).toBe(0);
    const listing = spawnSync(["cpio", "-itv", "--quiet"], { stdin: readFileSync(out) }).stdout.toString();
    expect(listing).toMatch(/^-rwxr-xr-x .* init$/m);
    expect(listing).toMatch(/lib\/x86_64-linux-gnu\/libc\.so\.6$/m);
    expect(listing).toMatch(/lib\/x86_64-linux-gnu\/ld-linux-x86-64\.so\.2$/m);
    expect(listing).toMatch(/^l.* lib64\/ld-linux-x86-64\.so\.2 -> \/lib\/x86_64-linux-gnu\/ld-linux-x86-64\.so\.2$/m);
    expect(listing).toMatch(/ etc\/ld\.so\.preload$/m);
    expect(listing).toMatch(/ lib\/burrow\/early-mounts\.so$/m);
    expect(listing).toMatch(/^crw------- .* 5,\s+1 .* dev\/console$/m);
    expect(listing).toMatch(/^crw-rw-rw- .* 1,\s+3 .* dev\/null$/m);
    for (const module of ["virtio_blk.ko", "virtio_mmio.ko", "virtio_pci.ko", "virtio_console.ko", "ext4.ko", "jbd2.ko", "mbcache.ko", "crc16.ko", "crc32c_generic.ko", "zram.ko", "zsmalloc.ko", "lz4.ko", "ttyprintk.ko"]) {
      expect(listing).toContain(`/${module}`);
    }
    expect(listing).toMatch(/modules\.dep$/m);
    expect(listing).toMatch(/modules\.softdep$/m);
    // Only the closure, not the kernel's 3000+ modules.
    expect(listing.split("\n").filter((line) => line.endsWith(".ko")).length).toBeLessThan(40);
  }, 60_000);

  test("an unknown module: one line naming it and where it looked, no image left", () => {
    const out = join(work, "bad-module.img");
    const result = burrowImage("--kernel-dir", KERNEL_DIR, "--modules", "no_such_mod", "--out", out);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toContain("module not found: no_such_mod");
    expect(result.stderr).toContain("modules.dep");
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((name) => name.includes("bad-module"))).toEqual([]);
  });

  test("a missing kernel dir or binary is named", () => {
    const missingKernel = burrowImage("--kernel-dir", "/nonexistent/kernel", "--out", join(work, "x.img"));
    expect(missingKernel.code).not.toBe(0);
    expect(missingKernel.stderr).toContain("kernel directory not found: /nonexistent/kernel");
    const missingBinary = burrowImage("--binary", "/nonexistent/burrow", "--kernel-dir", "none", "--out", join(work, "y.img"));
    expect(missingBinary.code).not.toBe(0);
    expect(missingBinary.stderr).toContain("burrow binary not found: /nonexistent/burrow");
    expect(existsSync(join(work, "x.img")) || existsSync(join(work, "y.img"))).toBe(false);
  });

  test("cmdline prints the effective configuration and lists unknown keys", () => {
    const result = spawnSync([BURROW, "cmdline", 'burrow.mode=paravisor burrow.nope=1 -- --setup-script "echo A=1" --foo bar'], { stderr: "pipe" });
    expect(result.exitCode).toBe(0);
    const json = JSON.parse(result.stdout.toString());
    expect(json.mode).toBe("paravisor");
    expect(json.plan.setupScripts).toEqual(["echo A=1"]);
    expect(json.plan.worker.argv).toEqual(["/bin/openvmm_hcl", "--pid", "/run/underhill.pid", "--foo", "bar"]);
    expect(result.stderr.toString()).toContain("unknown key burrow.nope");
  });
});

