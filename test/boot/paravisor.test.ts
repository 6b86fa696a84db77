// Paravisor mode under QEMU (TCG, Debian's kernel): burrow as PID 1 runs underhill_init's sequence
// and a test worker (test/fixtures/paravisor/openvmm_hcl.sh, busybox) reports what it sees
// through its stderr, which burrow points at /dev/ttyprintk: "[U] hcl: KEY VALUE" lines.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildImage } from "../../src/image/build";
import { BURROW, KERNEL, KERNEL_DIR, ROOT, requireArtifacts } from "../helpers/artifacts";
import { boot, keyedLines, tail, type BootResult } from "../helpers/boot";

const WORKER = join(ROOT, "test/fixtures/paravisor/openvmm_hcl.sh");
const work = mkdtempSync(join(tmpdir(), "burrow-paravisor-boot-"));
const image = join(work, "paravisor.img");
/** Built with nothing but `mode: "paravisor"`: its defaults (ttyprintk, ordered layout) must boot. */
const modeDefaults = join(work, "mode-defaults.img");
/** Built with the microvm defaults: no ttyprintk module for paravisor mode's stderr. */
const microvmDefaults = join(work, "microvm-defaults.img");

/** "[U] hcl: key rest" lines: key → values in order. */
const hclReports = (result: BootResult) => keyedLines(result.output, "[U] hcl: ");

describe("boot: paravisor mode", () => {
  beforeAll(async () => {
    requireArtifacts(BURROW, KERNEL, join(KERNEL_DIR, "lib/modules"));
    symlinkSync("busybox", join(work, "sh"));
    await buildImage({
      binary: BURROW,
      out: image,
      kernelDir: KERNEL_DIR,
      modules: ["ttyprintk", "zram"],
      noDefaultModules: true,
      moduleLayout: "ordered",
      add: [["/bin/busybox", "/bin/busybox"], [join(work, "sh"), "/bin/sh"], [WORKER, "/bin/openvmm_hcl"]],
      compress: "none",
      mtime: 0,
    });
    const plain = { binary: BURROW, kernelDir: KERNEL_DIR, modules: [], add: [["/bin/busybox", "/bin/busybox"], [join(work, "sh"), "/bin/sh"], [WORKER, "/bin/openvmm_hcl"]] as [string, string][], compress: "none" as const, mtime: 0 };
    await buildImage({ ...plain, out: modeDefaults, mode: "paravisor" });
    await buildImage({ ...plain, out: microvmDefaults });
  }, 120_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test("runs the worker with the reference's setup, reaps orphans, and passes its exit code 7 to the host", async () => {
    const result = await boot({
      kernel: KERNEL,
      initrd: image,
      timeoutSeconds: 150,
      append: 'burrow.mode=paravisor zram.num_devices=2 OPENHCL_TEST_MARK=hello BUN_TEST_SCRUB=1 -- --setup-script "echo A=1; echo B=x=y; echo no-equals" --foo bar',
    });
    const hcl = hclReports(result);
    if (result.exitCode !== 7 || !hcl.has("end")) console.error(tail(result, 150));

    // The worker: argv, environment, limits, parent, stdio.
    expect(hcl.get("arg")).toEqual(["--pid", "/run/underhill.pid", "--foo", "bar"]);
    const env = hcl.get("env") ?? [];
    expect(env).toContain("A=1");
    expect(env).toContain("B=x=y");
    expect(env).toContain("OPENHCL_TEST_MARK=hello");
    expect(env.some((line) => /^KERNEL_BOOT_TIME=\d{6,}$/.test(line))).toBe(true);
    expect(env.some((line) => /^(BUN_|JSC_)/.test(line))).toBe(false);
    expect(env.some((line) => line.startsWith("no-equals"))).toBe(false);
    expect(hcl.get("nofile")).toEqual(["1048576 1048576"]);
    expect(hcl.get("ppid")).toEqual(["1"]);
    expect(hcl.get("stdin")?.[0]).toBe("/dev/null stdout /dev/null stderr /dev/ttyprintk");

    // System writes read back.
    const sysctl = Object.fromEntries((hcl.get("sysctl") ?? []).map((line) => line.split("=", 2) as [string, string]));
    expect(sysctl).toMatchObject({
      "/proc/sys/kernel/threads-max": "32768",
      "/proc/sys/kernel/kptr_restrict": "1",
      "/sys/kernel/mm/transparent_hugepage/enabled": "always [madvise] never",
      "/proc/sys/kernel/core_pipe_limit": "1",
      "/proc/sys/vm/panic_on_oom": "1",
      "/proc/sys/vm/min_free_kbytes": "1024",
      "/proc/sys/vm/watermark_scale_factor": "1",
      "/proc/sys/vm/watermark_boost_factor": "0",
    });
    expect((hcl.get("sysctl") ?? []).find((line) => line.startsWith("/proc/sys/kernel/core_pattern="))).toBe("/proc/sys/kernel/core_pattern=|/bin/underhill-crash %p %i %s %e");

    // Mounts with the reference's flags.
    const mounts = hcl.get("mount") ?? [];
    expect(mounts).toContain("/proc proc rw,nosuid,nodev,noexec,relatime");
    expect(mounts).toContain("/sys sysfs rw,nosuid,nodev,noexec,relatime");
    expect(mounts.find((line) => line.startsWith("/dev devtmpfs "))).toMatch(/^\/dev devtmpfs rw,nosuid,noexec,relatime/);
    expect(mounts.find((line) => line.startsWith("/dev/pts devpts "))).toMatch(/^\/dev\/pts devpts rw,nosuid,noexec,relatime/);

    // Modules: loaded in the background with their parameters, then /lib/modules removed.
    const modules = hcl.get("module") ?? [];
    for (const name of ["ttyprintk", "zram", "zsmalloc"]) expect(modules).toContain(name);
    expect(hcl.get("zram_devices")).toEqual(["2"]); // zram.num_devices=2 reached finit_module
    expect(hcl.get("lib_modules")).toEqual(["gone"]);

    // Orphans reaped by PID 1, none left as zombies.
    expect(hcl.get("zombies")).toEqual(["0"]);
    expect((hcl.get("orphan") ?? []).filter((line) => line.endsWith("reaped")).length).toBe(3);

    // kmsg records at facility 2: info = 21, warning = 20.
    const kmsg = hcl.get("kmsg") ?? [];
    expect(kmsg.some((line) => /^21,\d+,\d+,[^;]*;burrow: running \/bin\/openvmm_hcl --pid \/run\/underhill.pid --foo bar$/.test(line))).toBe(true);
    expect(kmsg.some((line) => /^21,\d+,\d+,[^;]*;burrow: setting env var A=1$/.test(line))).toBe(true);
    expect(kmsg.filter((line) => /^20,\d+,\d+,[^;]*;burrow: skipping write of "[0-9a-f-]{36}" to \/sys\/bus\/vmbus\/drivers\/uio_hv_generic\/new_id: \/sys\/bus\/vmbus does not exist/.test(line)).length).toBe(3);
    expect(kmsg.some((line) => /^20,\d+,\d+,[^;]*;burrow: did not get entropy from the host/.test(line))).toBe(true);
    // No kmsg record is written twice (the console sink stays off once fd 2 is ttyprintk).
    const texts = kmsg.map((line) => line.slice(line.indexOf(";") + 1));
    expect(texts.filter((text) => text.startsWith("burrow: running /bin/openvmm_hcl")).length).toBe(1);

    // The exit code reached the host through init's exit.
    expect(hcl.has("end")).toBe(true);
    expect(result.output).toMatch(/burrow: worker terminated unsuccessfully: exit status 7/);
    expect(result.output).toMatch(/Attempted to kill init! exitcode=0x00000700/);
    expect(result.outcome).toBe("init-exited");
    expect(result.exitCode).toBe(7);
  }, 200_000);

  test("a failing setup script is fatal: one line naming the script and its status, non-zero end (image: --mode paravisor defaults)", async () => {
    const result = await boot({
      kernel: KERNEL,
      initrd: modeDefaults,
      timeoutSeconds: 150,
      append: 'burrow.mode=paravisor OPENHCL_WAIT_FOR_MODULES=1 -- --setup-script "echo A=1; exit 3"',
    });
    if (result.exitCode !== 1) console.error(tail(result, 80));
    expect(result.output).toMatch(/burrow: (error: )?boot failed: setup-scripts: setup script "echo A=1; exit 3" failed: exit status 3/);
    expect(result.output).not.toMatch(/\[U\] hcl: start/);
    // The paravisor defaults brought ttyprintk: stderr opened, no hint printed.
    expect(result.output).not.toMatch(/ttyprintk is neither built in/);
    expect(result.exitCode).toBe(1);
  }, 200_000);

  test("an image with the microvm defaults: one line says where ttyprintk comes from, then a non-zero end", async () => {
    const result = await boot({ kernel: KERNEL, initrd: microvmDefaults, timeoutSeconds: 150, append: "burrow.mode=paravisor" });
    if (result.exitCode === 0) console.error(tail(result, 80));
    expect(result.output).toMatch(/ttyprintk is neither built in nor under \S+: build the image with `burrow image --mode paravisor` \(or add --modules ttyprintk\)/);
    expect(result.output).toMatch(/cannot open \/dev\/ttyprintk for stderr: ENOENT.*burrow image --mode paravisor/);
    expect(result.output).not.toMatch(/\[U\] hcl: start/);
    expect(result.exitCode).not.toBe(0);
  }, 200_000);
});
