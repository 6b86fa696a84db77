// The fault matrix, guest side (issue 21): a root disk that fails its reads at mount time, a disk
// that fails reads and writes while the workload runs, an overlay upper disk that fills up, a root
// whose superblock is gone, a workload that eats the guest's memory (supervised, and as PID 1), and
// a --mem below the smallest guest burrow boots. Each row injects the fault for real (QEMU's
// blkdebug driver, a damaged image, a real allocation) and asserts the one line the user sees,
// the exit status `burrow run` returns and, where it matters, what is on the disk afterwards.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, openSync, rmSync, writeFileSync, writeSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { spawnSync } from "bun";
import { withBootDisk } from "../../src/host/boot-disk";
import type { RunOptions } from "../../src/host/qemu";
import { buildImage } from "../../src/image/build";
import { BURROW, copyOfRoot, INITRAMFS, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../helpers/artifacts";
import { boot, consoleLines, tail, type BootResult } from "../helpers/boot";

// TCG boots take 10-30 s; generous, and no assertion is about time except the no-hang bounds.
const BOOT_TIMEOUT_MS = 150_000;
let work: string;
let bootDisk: string;

beforeAll(async () => {
  requireArtifacts(KERNEL_MICRO, INITRAMFS, ROOTFS, BURROW);
  work = mkdtempSync(join(tmpdir(), "burrow-guest-faults-"));
  // The memory rows boot from a boot disk: the initramfs alone needs ~2x its 110 MB unpacked.
  bootDisk = join(work, "boot.ext4");
  await buildImage({ binary: BURROW, out: bootDisk, kernelDir: null, modules: [], add: [], compress: "none", mtime: 0, format: "ext4" });
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A fresh writable copy of the demo root for one boot. */
const rootCopy = () => copyOfRoot(work);

/**
 * A virtio-blk disk (serial `serial`) behind QEMU's blkdebug driver with these rules. runVm builds
 * its own -drive for `disks`; this one goes in through extraArgs, found by root=SERIAL=.
 */
function failingDisk(serial: string, image: string, rules: string): string[] {
  const config = join(work, `${serial}-${basename(image)}.blkdebug`);
  writeFileSync(config, rules);
  return ["-drive", `id=${serial},if=none,format=raw,file.driver=blkdebug,file.config=${config},file.image.filename=${image}`, "-device", `virtio-blk-device,drive=${serial},serial=${serial}`];
}

/** A blkdebug rule: every `event` request (read_aio, write_aio) fails with errno 5, or only those covering `sector`. */
function eioRule(event: "read_aio" | "write_aio", sector?: number): string {
  return `[inject-error]\nevent = "${event}"\nerrno = "5"\n${sector === undefined ? "" : `sector = "${sector}"\n`}\n`;
}

/** A shell workload under the supervisor (the kernel's command line carries no double quote inside quotes). */
function supervised(script: string, words = ""): string {
  if (script.includes('"')) throw new Error(`a kernel command line cannot carry a double quote inside quotes: ${script}`);
  return `burrow.supervise=1 ${words} burrow.agent=/bin/sh -- -c "${script}"`;
}

function explain(result: BootResult): string {
  return `outcome ${result.outcome} (${result.reason})\n${tail(result, 60)}`;
}

/** Lines the workload printed ("ws: key value"), key → value. */
function reported(result: BootResult): Map<string, string> {
  const lines = consoleLines(result.output).map((line) => /^ws: (\S+) ?(.*)$/.exec(line)).filter((match) => match !== null);
  return new Map(lines.map((match) => [match![1]!, match![2]!]));
}

/** The one line burrow printed for the failed boot (console; the kmsg echo is the same line). */
function bootFailures(result: BootResult): string[] {
  return [...new Set(result.burrow.filter((line) => /boot failed:/.test(line)))];
}

function run(command: string[]): { code: number; out: string } {
  const result = spawnSync(command, { stdout: "pipe", stderr: "pipe" });
  return { code: result.exitCode, out: `${result.stdout.toString()}${result.stderr.toString()}` };
}

function debugfs(disk: string, request: string, write = false): string {
  // Its banner and errors go to stderr; the answer alone to stdout.
  const result = spawnSync(["debugfs", ...(write ? ["-w"] : []), "-R", request, disk], { stdout: "pipe", stderr: "pipe" });
  const stderr = result.stderr.toString();
  if (result.exitCode !== 0 || /not found|error|cannot/i.test(stderr)) throw new Error(`debugfs -R '${request}' ${disk}: ${stderr}`);
  return result.stdout.toString();
}

/** A 512-byte sector holding the first data block of `path` on an ext4 image (blkdebug counts sectors). */
function firstSectorOf(disk: string, path: string): number {
  const blockSize = Number(/Block size:\s+(\d+)/.exec(run(["dumpe2fs", "-h", disk]).out)?.[1]);
  const block = Number(debugfs(disk, `bmap ${path} 0`).trim());
  if (!(blockSize > 0 && block > 0)) throw new Error(`no block for ${path} on ${disk}`);
  return (block * blockSize) / 512;
}

function bootDiskRun(options: Partial<RunOptions> & { disks: string[]; append: string; mem: string }): Partial<RunOptions> {
  const base: RunOptions = { kernel: KERNEL_MICRO, initrd: null, ports: [], smp: 1, machine: "microvm", accel: "tcg", timeoutSeconds: 90, ...options };
  return withBootDisk(base, bootDisk);
}

describe("a failing root disk", () => {
  test("EIO on every read at mount time: one line naming the disk, the types and EIO; the fallback; status 1", async () => {
    const disk = rootCopy();
    const result = await boot({ disks: [], append: "root=SERIAL=bad", extraArgs: failingDisk("bad", disk, eioRule("read_aio")) });
    expect(bootFailures(result), explain(result)).toEqual([
      "burrow: boot failed: root: cannot mount root /dev/vda on /sysroot rw: tried ext4, ext3, ext2, squashfs, erofs: EIO (the disk failed the reads)",
    ]);
    // The default fallback (burrow.onfail=poweroff), the status at the host.
    expect(result.burrow).toContain("burrow: powering off");
    expect(result).toMatchObject({ outcome: "exit-status", exitCode: 1, reason: "guest reported exit status 1" });
    expect(result.output).not.toMatch(/Kernel panic/);
  }, BOOT_TIMEOUT_MS);

  test("a zeroed primary superblock: one line naming the disk and EINVAL; burrow.onfail=halt is honoured; status 1", async () => {
    const disk = rootCopy();
    // ext4's primary superblock: 1024 bytes at offset 1024.
    const fd = openSync(disk, "r+");
    writeSync(fd, Buffer.alloc(1024), 0, 1024, 1024);
    closeSync(fd);
    const result = await boot({ disks: [disk], append: "burrow.onfail=halt", timeoutSeconds: 300 });
    expect(bootFailures(result), explain(result)).toEqual([
      "burrow: boot failed: root: cannot mount root /dev/vda on /sysroot rw: tried ext4, ext3, ext2, squashfs, erofs: EINVAL (no valid superblock of that type)",
    ]);
    expect(result.output).toMatch(/VFS: Can't find ext4 filesystem/);
    expect(result.burrow).toContain("burrow: halting");
    // Ended on the halt line, not the 300 s timer.
    expect(result).toMatchObject({ outcome: "halted", exitCode: 1, reason: "guest halted with exit status 1" });
    expect(result.wallMs).toBeLessThan(120_000);
  }, BOOT_TIMEOUT_MS);
});

describe("a disk failing while the workload runs (supervise mode)", () => {
  test("a read and an fsynced write hit EIO: the workload sees both, its status reaches the host, the teardown ends the VM", async () => {
    const disk = rootCopy();
    const data = join(work, "data");
    writeFileSync(data, Buffer.alloc(64 * 1024, 0x5a));
    debugfs(disk, `write ${data} /r`, true);
    debugfs(disk, `write ${data} /w`, true);
    // Only the sectors of /r's and /w's first blocks fail: the mount, the boot and the teardown read and write elsewhere.
    const rules = eioRule("read_aio", firstSectorOf(disk, "/r")) + eioRule("write_aio", firstSectorOf(disk, "/w"));
    const script = "cat /r > /dev/null; echo ws: read $?; dd if=/dev/zero of=/w bs=1024 count=4 conv=notrunc,fsync || exit 7; echo ws: wrote";
    const result = await boot({ disks: [], append: supervised(script, "root=SERIAL=flaky"), extraArgs: failingDisk("flaky", disk, rules) });
    expect(result.output, explain(result)).toMatch(/^cat: read error: Input\/output error\r?$/m);
    expect(reported(result).get("read")).toBe("1");
    expect(result.output).toMatch(/^dd: \/w: Input\/output error\r?$/m);
    expect(reported(result).has("wrote")).toBe(false);
    expect(result.burrow.some((line) => /^burrow: workload \(pid \d+\) exited with status 7$/.test(line))).toBe(true);
    // The teardown still runs to its line and the VM ends well before any timer.
    expect(result.burrow.some((line) => /^burrow: teardown: .*\/ read-only, synced/.test(line))).toBe(true);
    expect(result.output).toMatch(/reboot: Power down/);
    expect(result).toMatchObject({ outcome: "exit-status", exitCode: 7 });
    expect(result.wallMs).toBeLessThan(60_000);
  }, BOOT_TIMEOUT_MS);
});

describe("an overlay upper disk that fills up (supervise mode)", () => {
  test("the workload gets ENOSPC and says so; what it fsynced before is on the upper disk, which is clean", async () => {
    const upper = join(work, "upper.ext4");
    const made = run(["mkfs.ext4", "-q", "-F", upper, "4M"]);
    expect(made.code, made.out).toBe(0);
    const script = "echo fsynced | dd of=/kept conv=fsync 2>/dev/null || exit 3; dd if=/dev/zero of=/fill bs=64k; s=$?; echo ws: fill $s; [ $s = 0 ] || exit 28";
    const result = await boot({ disks: [rootCopy()], serialDisks: [{ serial: "upper", file: upper }], append: supervised(script, "ro burrow.overlay=SERIAL=upper") });
    expect(result.output, explain(result)).toMatch(/^dd: error writing '\/fill': No space left on device\r?$/m);
    expect(reported(result).get("fill")).toBe("1");
    expect(result).toMatchObject({ outcome: "exit-status", exitCode: 28 });
    expect(result.burrow.some((line) => /^burrow: teardown: .*froze 1/.test(line))).toBe(true);
    expect(debugfs(upper, "cat /upper/kept")).toBe("fsynced\n");
    const check = run(["e2fsck", "-fn", upper]);
    expect(check.code, check.out).toBe(0);
  }, BOOT_TIMEOUT_MS);
});

describe("memory pressure (boot disk, 160 MiB)", () => {
  // tail -n 1 on /dev/zero buffers a line that never ends: it grows at read speed past RAM and zram.
  const HOG = "exec tail -n 1 /dev/zero";

  test("supervised, zram on: the workload is OOM-killed, PID 1 is not, the host gets 137 and the OOM line", async () => {
    const result = await boot(bootDiskRun({ disks: [rootCopy()], mem: "160M", append: supervised(`echo ws: started; ${HOG}`, "burrow.zram=16M") }));
    expect(reported(result).has("started"), explain(result)).toBe(true);
    expect(result.output).toMatch(/burrow: zram: \/dev\/zram0 /);
    expect(result.output).toMatch(/Out of memory: Killed process \d+ \(tail\)/);
    // The micro kernel has no VM event counters: the supervisor reads the OOM killer's record in /dev/kmsg.
    expect(result.burrow.some((line) => /^burrow: workload \(pid \d+\) was killed by the OOM killer \(signal 9\): status 137$/.test(line))).toBe(true);
    expect(result.output).not.toMatch(/Kernel panic/);
    expect(result.burrow.some((line) => /^burrow: teardown: .*\/ read-only, synced/.test(line))).toBe(true);
    expect(result).toMatchObject({ outcome: "exit-status", exitCode: 137 });
  }, BOOT_TIMEOUT_MS);

  test("exec mode (burrow.supervise=0): the hog is PID 1, which the OOM killer spares; the panic's reason says out of memory, status 125", async () => {
    const result = await boot(bootDiskRun({ disks: [rootCopy()], mem: "160M", append: `burrow.supervise=0 burrow.zram=off burrow.agent=/bin/sh -- -c "echo ws: started; ${HOG}"` }));
    expect(reported(result).has("started"), explain(result)).toBe(true);
    expect(result.output).toMatch(/Out of memory and no killable processes/);
    expect(result).toMatchObject({ outcome: "panic", exitCode: 125, reason: "kernel panic: System is deadlocked on memory (the guest ran out of memory)" });
  }, BOOT_TIMEOUT_MS);
});

describe("a --mem below the smallest guest burrow boots", () => {
  test("refused before QEMU starts, one line naming the floor, status 1; the floor itself is below what boots", async () => {
    const refuse = async (args: string[]) => {
      const child = Bun.spawn([BURROW, "run", "--kernel", KERNEL_MICRO, "--disk", ROOTFS, "--timeout", "30", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
      return { code, stdout, lines: stderr.trim().split("\n") };
    };
    const small = await refuse(["--initrd", INITRAMFS, "--mem", "160M"]);
    expect(small.lines).toEqual([expect.stringMatching(/^burrow: (error: )?--mem 160M is below the smallest guest burrow boots \(\d+ MiB with this \d+ MiB initramfs: 38 MiB with virtio-serial ports \(the control port is one\) plus 2\.93× the image, for it and its unpacked copy; see docs\/microvm\.md, "Memory floor"\)$/)]);
    expect(small.code).toBe(1);
    // Nothing booted: QEMU never started, so no console.
    expect(small.stdout).toBe("");
    const tiny = await refuse(["--boot-disk", bootDisk, "--mem", "16M", "--append", "burrow.supervise=0"]);
    expect(tiny.lines).toEqual([expect.stringMatching(/--mem 16M is below the smallest guest burrow boots \(30 MiB without an initramfs;/)]);
    expect(tiny.code).toBe(1);
    // The default (supervised) guest has the control port: a virtio-serial device costs 8 MiB more.
    const ported = await refuse(["--boot-disk", bootDisk, "--mem", "37M"]);
    expect(ported.lines).toEqual([expect.stringMatching(/--mem 37M is below the smallest guest burrow boots \(38 MiB without an initramfs, with virtio-serial ports/)]);
  }, BOOT_TIMEOUT_MS);

  test("a boot disk just above the floor still boots to the agent: 32 MiB in exec mode without ports, 40 MiB supervised", async () => {
    const bare = await boot(bootDiskRun({ disks: [rootCopy()], mem: "32M", append: "burrow.supervise=0" }));
    expect(bare.agent.has("start"), explain(bare)).toBe(true);
    const supervised = await boot(bootDiskRun({ disks: [rootCopy()], mem: "40M", append: "" }));
    expect(supervised.agent.has("start"), explain(supervised)).toBe(true);
  }, BOOT_TIMEOUT_MS);
});
