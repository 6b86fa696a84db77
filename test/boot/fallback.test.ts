// The fallbacks after a fatal boot failure (burrow.onfail=shell|halt), end to end under QEMU
// (TCG): a shell driven through the serial console on a unix socket, and a halt that `burrow run`
// notices and reports with the guest's status instead of waiting for the timeout.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "bun";
import { exitStatusLine } from "../../src/exit-marker";
import { buildImage } from "../../src/image/build";
import { BURROW, INITRAMFS, requireArtifacts } from "../helpers/artifacts";
import { boot, bootWithConsole, tail } from "../helpers/boot";

// TCG boots take 10-30 s; generous, and no assertion is about time.
const BOOT_TIMEOUT_MS = 240_000;
// A root that never appears, and a short wait for it: the root-device step fails fast.
const FAILING_ROOT = "root=/dev/nonexistent burrow.rootwait=200";
const ROOT_FAILURE = /boot failed: root-device: root device \/dev\/nonexistent did not appear within 200 ms/;

const work = mkdtempSync(join(tmpdir(), "burrow-fallback-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The shipped initramfs has no shell (only /init, its runtime, modules): what the fallback does then. */
function initramfsHasShell(): boolean {
  const listing = spawnSync(["cpio", "-t", "--quiet"], { stdin: Bun.file(INITRAMFS), stdout: "pipe", stderr: "pipe" });
  const names = listing.stdout.toString().split("\n");
  return names.includes("bin/sh") || names.includes("bin/busybox");
}

/** busybox-static (`just deps`): a static binary, so it runs from the initramfs without libraries. */
function staticBusybox(): string {
  const found = ["/bin/busybox", "/usr/bin/busybox"].find((path) => existsSync(path) && /statically linked/.test(spawnSync(["file", "-L", path]).stdout.toString()));
  if (!found) throw new Error("busybox-static is not installed (just deps)");
  return found;
}

describe("burrow.onfail=shell", () => {
  test("an initramfs without a shell: says so, then powers off with status 1", async () => {
    requireArtifacts(INITRAMFS);
    expect(initramfsHasShell()).toBe(false);
    const result = await boot({ append: `${FAILING_ROOT} burrow.onfail=shell` });
    const why = `outcome ${result.outcome} (${result.reason})\n${tail(result)}`;
    if (!ROOT_FAILURE.test(result.output)) throw new Error(`no root-device failure:\n${why}`);
    expect(result.output).toMatch(/no shell available; powering off/);
    expect(result.output).toMatch(/reboot: Power down/);
    // Needs the guest to echo burrow.runid (without it: outcome "poweroff", exit code 0).
    expect(result.output).toContain(exitStatusLine(1, result.runId));
    expect(result).toMatchObject({ outcome: "exit-status", exitCode: 1 });
  }, BOOT_TIMEOUT_MS);

  test("with busybox in the initramfs: a working shell on the console (/dev, /proc, the image's files), powered off from the shell", async () => {
    requireArtifacts(BURROW);
    const initramfs = join(work, "initramfs-busybox.img");
    // Only /bin/busybox is added: burrow runs it as `busybox sh`, whose applets need no links.
    // No modules: the boot helper's default kernel is the micro one.
    await buildImage({ binary: BURROW, out: initramfs, kernelDir: null, modules: [], add: [[staticBusybox(), "/bin/busybox"]], compress: "none", mtime: 0 });

    const answers: Record<string, { output: string; status: number }> = {};
    const { result, transcript } = await bootWithConsole({ initrd: initramfs, append: `${FAILING_ROOT} burrow.onfail=shell` }, async (guest) => {
      await guest.waitFor(ROOT_FAILURE);
      await guest.waitFor(/dropping to \/bin\/busybox \(burrow\.onfail=shell\)/);
      answers.pid = await guest.run("echo $$");
      answers.comm = await guest.run("cat /proc/1/comm");
      answers.dev = await guest.run("ls -l /dev/console /dev/null && ls /dev | grep -c .");
      answers.mounts = await guest.run("cat /proc/mounts");
      answers.cmdline = await guest.run("cat /proc/cmdline");
      answers.root = await guest.run("ls /");
      answers.preload = await guest.run("ls /lib/burrow");
      answers.report = await guest.run("cat /run/burrow/boot.json");
      answers.missing = await guest.run("ls /dev/nonexistent");
      // -f: straight to reboot(2), no init to signal (the shell is PID 1).
      guest.write("poweroff -f\n");
      await guest.waitFor(/reboot: Power down/);
    });

    // The shell replaced burrow as PID 1.
    expect(answers.pid).toEqual({ output: "1\n", status: 0 });
    expect(answers.comm!.output.trim()).toMatch(/^(busybox|sh)$/);
    // /dev: devtmpfs with the console and the other nodes; /proc, /sys mounted by burrow.
    expect(answers.dev!.status).toBe(0);
    expect(answers.dev!.output).toMatch(/^c.* 5,\s+1 .* \/dev\/console$/m);
    expect(answers.dev!.output).toMatch(/^c.* 1,\s+3 .* \/dev\/null$/m);
    expect(Number(answers.dev!.output.trim().split("\n").at(-1))).toBeGreaterThan(10);
    for (const mount of [/^devtmpfs \/dev devtmpfs /m, /^proc \/proc proc /m, /^sysfs \/sys sysfs /m]) expect(answers.mounts!.output).toMatch(mount);
    expect(answers.cmdline!.output).toContain("burrow.onfail=shell");
    expect(answers.cmdline!.output).toMatch(/burrow\.runid=[A-Za-z0-9]{16,}/);
    // The initramfs as burrow left it: /init, the mount point for the root that never came, the preload.
    for (const name of ["init", "bin", "lib", "sysroot"]) expect(answers.root!.output.split(/\s+/)).toContain(name);
    expect(answers.preload!.output).toMatch(/early-mounts\.so/);
    // The boot report is on disk for the shell's user to read: which step failed.
    const report = JSON.parse(answers.report!.output) as { steps: { name: string; status: string }[] };
    expect(report.steps.find((step) => step.name === "root-device")?.status).toBe("failed");
    // Statuses come back through the console: a failing command is non-zero.
    expect(answers.missing!.status).not.toBe(0);

    // Powered off cleanly by the shell: QEMU exited 0, no panic, no timeout.
    if (result.outcome !== "poweroff") throw new Error(`run ended ${result.outcome} (${result.reason})\n${transcript.split("\n").slice(-40).join("\n")}`);
    expect(result.exitCode).toBe(0);
    expect(transcript).not.toMatch(/Kernel panic/);
  }, BOOT_TIMEOUT_MS);
});

describe("burrow.onfail=halt", () => {
  test("the guest halts without powering off; burrow run stops QEMU and reports halted with the guest's status", async () => {
    // The timeout is far beyond the boot: the run must end on the halt line, not on the timer.
    const result = await boot({ append: `${FAILING_ROOT} burrow.onfail=halt`, timeoutSeconds: 600 });
    const why = `outcome ${result.outcome} (${result.reason})\n${tail(result)}`;
    if (!ROOT_FAILURE.test(result.output)) throw new Error(`no root-device failure:\n${why}`);
    expect(result.output).toMatch(/burrow: halting/);
    expect(result.output).toMatch(/^(\[\s*[\d.]+\] )?reboot: System halted\r?$/m);
    expect(result.output).not.toMatch(/reboot: Power down/);
    expect(result.outcome).toBe("halted");
    // Needs the guest to echo burrow.runid (without it: exit code 3, "halted without reporting an exit status").
    expect(result.output).toContain(exitStatusLine(1, result.runId));
    expect(result).toMatchObject({ exitCode: 1, reason: "guest halted with exit status 1" });
  }, BOOT_TIMEOUT_MS);
});
