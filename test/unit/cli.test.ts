import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { cli } from "../../src/cli";

const BUN = process.execPath;
const MAIN = resolve(import.meta.dir, "../../src/main.ts");

function runCli(args: string[], env: Record<string, string> = {}, cwd?: string): { stdout: string; stderr: string; code: number } {
  const run = Bun.spawnSync([BUN, MAIN, ...args], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe", cwd });
  return { stdout: run.stdout.toString(), stderr: run.stderr.toString(), code: run.exitCode ?? -1 };
}

describe("CLI", () => {
  test("usage written to a pipe carries no colour codes", () => {
    const { stdout, code } = runCli(["--help"]);
    expect(code).toBe(0);
    expect(stdout).toContain("USAGE");
    expect(stdout).not.toContain("\u001b[");
    expect(runCli(["image", "--help"]).stdout).not.toContain("\u001b[");
  });

  test("a command named like an Object.prototype member is an unknown command", async () => {
    for (const name of ["toString", "constructor", "__proto__", "hasOwnProperty"]) expect(await cli([name])).toBe(2);
  });

  test("burrow run's default kernel and initrd follow --arch (named when missing, before QEMU starts)", () => {
    // An empty directory: the relative defaults exist nowhere, whatever this checkout has built.
    const empty = mkdtempSync(join(tmpdir(), "burrow-cli-"));
    try {
      const x86 = runCli(["run", "--arch", "x86_64", "--disk", "root.ext4"], {}, empty);
      expect(x86.code).toBe(1);
      expect(x86.stderr).toContain("not found: kernel build/kernel-micro/vmlinuz, initrd dist/initramfs.img, disk root.ext4");
      const arm = runCli(["run", "--arch", "arm64", "--disk", "root.ext4"], {}, empty);
      expect(arm.stderr).toContain("not found: kernel build/kernel-micro-arm64/vmlinuz, initrd dist/arm64/initramfs.img, disk root.ext4");
      const none = runCli(["run", "--arch", "arm64", "--initrd", "", "--disk", "root.ext4"], {}, empty);
      expect(none.stderr).toContain("not found: kernel build/kernel-micro-arm64/vmlinuz, disk root.ext4");
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test("burrow run refuses an option its form would not use: one line, status 1, before anything starts", () => {
    // An empty directory: no kernel, no snapshot, no QEMU run; the refusal must come before any of that is looked for.
    const empty = mkdtempSync(join(tmpdir(), "burrow-cli-"));
    try {
      const refused = (args: string[], line: string) => {
        const run = runCli(["run", ...args], {}, empty);
        expect({ code: run.code, stderr: run.stderr, stdout: run.stdout }).toEqual({ code: 1, stderr: `burrow: error: ${line}\n`, stdout: "" });
      };
      refused(["--snapshot-restore", "snap", "--mem", "512M", "--", "--serve"], "--mem cannot be combined with --snapshot-restore (the saved VM keeps its own; a restore takes --port NAME=FILE, --forward, --env, --timeout, --tcg-tb-size, --name, --detach and -- ARGS)");
      refused(["--disk", "root.ext4", "--env", "MODE=x"], "--env needs --snapshot-restore");
      refused(["--disk", "root.ext4", "--snapshot-warm"], "--snapshot-warm needs --snapshot-save");
      refused(["--snapshot-save", "snap", "--snapshot-restore", "snap"], "--snapshot-save cannot be combined with --snapshot-restore (a save boots a new VM, a restore starts a saved one)");
      refused(["--disk", "root.ext4", "--snapshot-save", "snap", "--name", "web", "--detach"], "--name cannot be combined with --snapshot-save (a save ends its VM)");
      refused(["--disk", "root.ext4", "--snapshot-save", "snap", "--serial-disk", "base=base.erofs"], "--serial-disk cannot be combined with --snapshot-save (snapshots record --disk disks only)");
      refused(["--disk", "root.ext4", "--memory", "1G"], "unknown option --memory (burrow run --help lists them)");
      // The save directory was never made: the refusal came before the save began.
      expect(existsSync(join(empty, "snap"))).toBe(false);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test("a bad enum value is one plain line on a pipe: citty's colour codes are stripped", () => {
    const { stderr, code } = runCli(["image", "--mode", "bogus", "--out", "/nonexistent/x.img"]);
    expect(code).toBe(1);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toContain("Invalid value for argument: --mode (bogus). Expected one of: microvm, paravisor.");
    expect(stderr).not.toContain("\u001b[");
  });

  test("burrow cmdline prints every problem as a warning, zram included", () => {
    const { stdout, stderr, code } = runCli(["cmdline", "burrow.zram=101% constructor.x=1 BUN_BE_BUN=1"]);
    expect(code).toBe(0);
    expect(stderr).toContain("burrow.zram=101%: a percentage must be above 0 and at most 100; keeping 50% of RAM");
    expect(stderr).toContain("BUN_BE_BUN=1 would steer the runtime");
    expect(JSON.parse(stdout).moduleParams).toEqual({ constructor: ["x=1"] });
  });
});
