// Root composition on the micro kernel (EROFS, squashfs and overlayfs built in): a read-only base
// found by its virtio serial, a writable overlay, hardening, the root disks' nodes removed. The
// base is the demo root disk's contents (debugfs rdump) plus a probe that reports what the agent
// sees and then execs the demo agent.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "bun";
import { buildImage } from "../../src/image/build";
import { encodeGuid } from "../../src/modes/microvm/gpt";
import { BURROW, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../helpers/artifacts";
import { boot, tail, type BootResult } from "../helpers/boot";

const BOOT_TIMEOUT_MS = 180_000;
/** BURROW_TEST_BINARY: boot a freshly compiled burrow instead of dist/burrow. */
const BINARY = process.env.BURROW_TEST_BINARY ?? BURROW;

const PROBE = `#!/bin/sh
say() { echo "agent: $*"; }
say "previous $(cat /etc/probe-write 2>/dev/null || echo none)"
if echo written > /etc/probe-write 2>/dev/null; then say "write $(cat /etc/probe-write)"; else say "write failed"; fi
for node in mem kmem port; do [ -e /dev/$node ] && say "devnode /dev/$node"; done
say "devmode $(stat -c '%n=%a' /dev/random /dev/urandom | tr '\\n' ' ')"
say "vd-nodes $(ls /dev | grep '^vd' | tr '\\n' ' ')"
say "stdin $(readlink /proc/$$/fd/0)"
say "proc-mount $(grep ' /proc ' /proc/mounts)"
say "tmp-mount $(grep ' /tmp ' /proc/mounts)"
say "cgroup $(grep -c cgroup /proc/mounts)"
exec /usr/local/bin/guest-agent "$@"
`;

function run(argv: string[]): void {
  const result = spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${result.exitCode}\n${result.stderr.toString()}`);
}

function values(result: BootResult, key: string): string[] {
  return result.agent.get(key) ?? [];
}

function explain(result: BootResult): string {
  return `outcome ${result.outcome} (${result.reason})\n${tail(result, 80)}`;
}

describe("root composition on the micro kernel", () => {
  const work = mkdtempSync(join(tmpdir(), "burrow-rootcomp-"));
  const stage = join(work, "stage");
  const initramfs = join(work, "initramfs.img");
  const erofs = join(work, "base.erofs");
  const squashfs = join(work, "base.squashfs");

  beforeAll(async () => {
    requireArtifacts(KERNEL_MICRO, BINARY, ROOTFS);
    run(["mkdir", "-p", stage]);
    run(["debugfs", "-R", `rdump / ${stage}`, ROOTFS]);
    writeFileSync(join(stage, "usr/local/bin/probe"), PROBE);
    chmodSync(join(stage, "usr/local/bin/probe"), 0o755);
    run(["mkfs.erofs", "--quiet", "--all-root", "-T0", "-U", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", erofs, stage]);
    run(["mksquashfs", stage, squashfs, "-quiet", "-noappend", "-all-root", "-comp", "zstd"]);
    await buildImage({ binary: BINARY, out: initramfs, kernelDir: null, modules: [], add: [], compress: "none", mtime: 0 });
  }, BOOT_TIMEOUT_MS);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /**
   * A protective MBR, the primary GPT header and 128 entries (LBA 0-33), with the CRCs the kernel
   * checks; no backup header (the kernel warns and uses the primary).
   */
  function gptHead(sectors: number, partitions: { first: number; last: number; guid: string; name: string }[]): Uint8Array {
    const head = new Uint8Array(34 * 512);
    const view = new DataView(head.buffer);
    head[446 + 4] = 0xee;
    view.setUint32(446 + 8, 1, true);
    view.setUint32(446 + 12, Math.min(sectors - 1, 0xffffffff), true);
    view.setUint16(510, 0xaa55, true);
    for (const [index, partition] of partitions.entries()) {
      const at = 1024 + index * 128;
      head.set(encodeGuid(LINUX_FS.toLowerCase()), at);
      head.set(encodeGuid(partition.guid), at + 16);
      view.setBigUint64(at + 32, BigInt(partition.first), true);
      view.setBigUint64(at + 40, BigInt(partition.last), true);
      head.set(Buffer.from(partition.name, "utf16le"), at + 56);
    }
    head.set(Buffer.from("EFI PART", "latin1"), 512);
    view.setUint32(512 + 8, 0x00010000, true);
    view.setUint32(512 + 12, 92, true);
    view.setBigUint64(512 + 24, 1n, true);
    view.setBigUint64(512 + 32, BigInt(sectors - 1), true);
    view.setBigUint64(512 + 40, 34n, true);
    view.setBigUint64(512 + 48, BigInt(sectors - 34), true);
    head.set(encodeGuid("1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0"), 512 + 56);
    view.setBigUint64(512 + 72, 2n, true);
    view.setUint32(512 + 80, 128, true);
    view.setUint32(512 + 84, 128, true);
    view.setUint32(512 + 88, Bun.hash.crc32(head.subarray(1024, 1024 + 128 * 128)), true);
    view.setUint32(512 + 16, Bun.hash.crc32(head.subarray(512, 512 + 92)), true);
    return head;
  }

  const BASE_PARTUUID = "5a0e3c1d-2b4f-4c6a-8e9d-0f1a2b3c4d5e";
  const LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

  /** A GPT disk: partition 1 "base" (EROFS with the host's mkfs.ext4 and its libraries), partition 2 "snap" (zeros). */
  function partitionedDisk(): string {
    const withMkfs = join(work, "stage-mkfs");
    run(["cp", "-a", stage, withMkfs]);
    const mkfs = spawnSync(["sh", "-c", "command -v mkfs.ext4"]).stdout.toString().trim();
    const libraries = spawnSync(["ldd", mkfs]).stdout.toString().match(/\/\S+\.so[.\d]*/g) ?? [];
    for (const library of libraries) run(["cp", "-L", "--parents", library, withMkfs]);
    run(["cp", "-L", mkfs, join(withMkfs, "sbin/mkfs.ext4")]);
    const image = join(work, "base-mkfs.erofs");
    run(["mkfs.erofs", "--quiet", "--all-root", "-T0", image, withMkfs]);
    const baseSectors = Math.ceil(Bun.file(image).size / 512 / 2048) * 2048;
    const snapSectors = 32 * 2048;
    const disk = join(work, "gpt.img");
    run(["truncate", "-s", String((2048 + baseSectors + snapSectors + 2048) * 512), disk]);
    const head = gptHead((2048 + baseSectors + snapSectors + 2048), [
      { first: 2048, last: 2048 + baseSectors - 1, guid: BASE_PARTUUID, name: "base" },
      { first: 2048 + baseSectors, last: 2048 + baseSectors + snapSectors - 1, guid: "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a", name: "snap" },
    ]);
    const fd = openSync(disk, "r+");
    writeSync(fd, head, 0, head.byteLength, 0);
    closeSync(fd);
    run(["dd", `if=${image}`, `of=${disk}`, "bs=512", "seek=2048", "conv=notrunc", "status=none"]);
    return disk;
  }

  test("GPT disk: root by PARTUUID=, overlay disk by PARTLABEL= formatted on first use from the base's mkfs.ext4, kept on the next boot", async () => {
    const disk = partitionedDisk();
    const append = `root=PARTUUID=${BASE_PARTUUID} burrow.overlay=PARTLABEL=snap burrow.overlay.format=1 burrow.hide-root-devices=1 burrow.agent=/usr/local/bin/probe burrow.zram=off`;
    const first = await boot({ kernel: KERNEL_MICRO, initrd: initramfs, machine: "microvm", disks: [disk], append });
    if (!first.agent.has("done")) throw new Error(`the agent did not finish:\n${explain(first)}`);
    expect(first.burrow.some((line) => /root device PARTUUID=\S+ is \/dev\/vda1/.test(line))).toBe(true);
    expect(first.burrow.some((line) => /overlay: formatted \/dev\/vda2 with the root's \/sbin\/mkfs\.ext4/.test(line))).toBe(true);
    expect(values(first, "previous")).toEqual(["none"]);
    expect(values(first, "write")).toEqual(["written"]);
    expect(values(first, "mount").find((line) => line.startsWith("/ "))).toMatch(/^\/ overlay overlay rw,/);
    expect(values(first, "vd-nodes")[0]?.trim()).toBe("");

    const second = await boot({ kernel: KERNEL_MICRO, initrd: initramfs, machine: "microvm", disks: [disk], append });
    if (!second.agent.has("done")) throw new Error(`the agent did not finish:\n${explain(second)}`);
    expect(second.burrow.some((line) => /overlay: formatted/.test(line))).toBe(false);
    expect(values(second, "previous")).toEqual(["written"]);
  }, BOOT_TIMEOUT_MS);

  test("EROFS base by SERIAL=, tmpfs overlay: / is overlay and writable, hardening visible, root nodes gone, stdin /dev/null", async () => {
    const result = await boot({
      kernel: KERNEL_MICRO, initrd: initramfs, machine: "microvm", disks: [], serialDisks: [{ serial: "base", file: erofs }],
      append: "root=SERIAL=base burrow.overlay=tmpfs burrow.harden=tmp-limits burrow.hide-root-devices=1 burrow.agent=/usr/local/bin/probe burrow.zram=off -- composed",
    });
    if (!result.agent.has("done")) throw new Error(`the agent did not finish:\n${explain(result)}`);
    // The supervisor's child (supervise mode, the default): the probe, then the agent it exec'd.
    expect(values(result, "pid")[0]).toMatch(/^\d+ ppid=1$/);
    expect(values(result, "arg[1]")).toEqual(["composed"]);
    expect(result.burrow.some((line) => /root device SERIAL=base is \/dev\/vda/.test(line))).toBe(true);
    expect(result.burrow.some((line) => /root \/dev\/vda \(erofs\) mounted on \/sysroot\/lower ro/.test(line))).toBe(true);
    expect(values(result, "mount").find((line) => line.startsWith("/ "))).toMatch(/^\/ overlay overlay rw,/);
    expect(values(result, "write")).toEqual(["written"]);
    // Hardening: /dev/port (the micro kernel has no /dev/mem) removed, random devices 0644,
    // /proc hidepid, /tmp limits (tmp-limits switched on), no cgroupfs.
    expect(values(result, "devnode")).toEqual([]);
    expect(values(result, "devmode")[0]?.trim()).toBe("/dev/random=644 /dev/urandom=644");
    expect(values(result, "proc-mount")[0]).toMatch(/hidepid=(2|invisible)/);
    expect(values(result, "tmp-mount")[0]).toMatch(/nosuid,nodev/);
    expect(values(result, "tmp-mount")[0]).toMatch(/nr_inodes=16384/);
    expect(values(result, "cgroup")).toEqual(["0"]);
    expect(values(result, "vd-nodes")[0]?.trim()).toBe("");
    expect(values(result, "stdin")).toEqual(["/dev/null"]);
    const report = JSON.parse(values(result, "boot-report")[0] ?? "null") as { steps: { name: string; status: string }[] };
    expect(Object.fromEntries(report.steps.map((step) => [step.name, step.status]))).toMatchObject({ root: "ok", overlay: "ok", harden: "ok", "switch-root": "ok", "start-workload": "ok" });
    expect(result).toMatchObject({ outcome: "exit-status", exitCode: 0 });
  }, BOOT_TIMEOUT_MS);

  test("squashfs (zstd) base by path, no overlay: identified from its superblock, mounted read-only, default hardening only", async () => {
    const result = await boot({
      kernel: KERNEL_MICRO, initrd: initramfs, machine: "microvm", disks: [squashfs],
      append: "root=/dev/vda ro burrow.agent=/usr/local/bin/probe burrow.zram=off burrow.console-stdin=1",
    });
    if (!result.agent.has("done")) throw new Error(`the agent did not finish:\n${explain(result)}`);
    expect(values(result, "mount").find((line) => line.startsWith("/ "))).toMatch(/^\/ squashfs \/dev\/vda ro,/);
    expect(values(result, "write")).toEqual(["failed"]);
    expect(values(result, "tmp-mount")[0]).not.toMatch(/nr_inodes=16384/);
    expect(values(result, "vd-nodes")[0]?.trim()).toBe("vda");
    expect(values(result, "stdin")[0]).toMatch(/^\/dev\/(ttyS0|hvc0|console)$/);
    expect(result).toMatchObject({ outcome: "exit-status", exitCode: 0 });
  }, BOOT_TIMEOUT_MS);
});
