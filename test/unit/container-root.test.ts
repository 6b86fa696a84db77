// A container's root and mounts, the parts that need no VM: burrow.root=9p:/virtiofs: specs,
// burrow.bundle=, the modules a share root wants, QEMU's share and sandbox arguments, the 9p mount
// data and tags, and where each plan mount is made.
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config";
import { qemuArgs, SANDBOX } from "../../src/host/qemu-argv";
import type { RunOptions } from "../../src/host/run-options";
import { checkRunInputs } from "../../src/host/run-checks";
import type { GuestPlan } from "../../src/oci/guest-plan";
import { checkPlanMounts, kernelFilesystems, perMountFlags, placeOf } from "../../src/modes/microvm/container-mounts";
import { findRootDevice, parseRootSpec } from "../../src/modes/microvm/devices";
import { wantedModules } from "../../src/modes/microvm/modules";
import { MOVED_MOUNTS } from "../../src/modes/microvm/mounts";
import { ninePMountData, ninePTags, shareFailure } from "../../src/modes/microvm/shares";
import { MountFlags } from "../../src/sys/constants";

describe("a share as the root", () => {
  test("9p:TAG and virtiofs:TAG; bad tags fail at once, naming the key", () => {
    expect(parseRootSpec("9p:rootfs")).toEqual({ kind: "share", fs: "9p", tag: "rootfs" });
    expect(parseRootSpec("virtiofs:my.root-1")).toEqual({ kind: "share", fs: "virtiofs", tag: "my.root-1" });
    expect(parseRootSpec("9p:")).toEqual({ kind: "invalid", reason: "root=9p:: a 9p share tag has 1 to 31 of A-Z a-z 0-9 . _ -" });
    expect(parseRootSpec(`9p:${"t".repeat(32)}`).kind).toBe("invalid");
    expect(parseRootSpec(`9p:${"t".repeat(31)}`).kind).toBe("share");
    expect(parseRootSpec("9p:a,b").kind).toBe("invalid");
    expect(parseRootSpec(`virtiofs:${"t".repeat(37)}`, "burrow.overlay")).toEqual({ kind: "invalid", reason: `burrow.overlay=virtiofs:${"t".repeat(37)}: a virtio-fs tag has 1 to 36 of A-Z a-z 0-9 . _ -` });
    // No block device is ever looked for.
    expect(findRootDevice({ kind: "share", fs: "9p", tag: "rootfs" })).toBeNull();
  });

  test("burrow.bundle=TAG is a 9p tag; anything else is reported and ignored", () => {
    expect(parseConfig("burrow.bundle=bundle").bundle).toBe("bundle");
    expect(parseConfig("").bundle).toBeNull();
    const bad = parseConfig("burrow.bundle=has/slash");
    expect(bad.bundle).toBeNull();
    expect(bad.problems.map((problem) => problem.message)).toEqual(["burrow.bundle=has/slash: expected a 9p share tag (1 to 31 of A-Z a-z 0-9 . _ -)"]);
    expect(parseConfig("burrow.bundle").problems).toHaveLength(1);
  });

  test("a share root wants the 9p (or virtio-fs) modules instead of a disk's; a bundle wants 9p", () => {
    const ninep = wantedModules(parseConfig("burrow.root=9p:rootfs burrow.zram=off")).required;
    expect(ninep).toContain("9pnet_virtio");
    expect(ninep).toContain("9p");
    expect(ninep).not.toContain("ext4");
    const virtiofs = wantedModules(parseConfig("root=virtiofs:r burrow.zram=off")).required;
    expect(virtiofs).toContain("virtiofs");
    expect(virtiofs).not.toContain("9p");
    const bundled = wantedModules(parseConfig("burrow.bundle=b burrow.zram=off")).required;
    expect(bundled).toEqual(expect.arrayContaining(["ext4", "9pnet_virtio", "9p"]));
  });

  test("9p mount data: the root caches, volumes read through, every share at the transport's largest msize", () => {
    expect(ninePMountData("root")).toBe("trans=virtio,version=9p2000.L,msize=512000,cache=loose");
    expect(ninePMountData("volume")).toBe("trans=virtio,version=9p2000.L,msize=512000,cache=mmap");
    expect(ninePMountData("bundle")).toBe("trans=virtio,version=9p2000.L,msize=512000,cache=none");
  });

  test("the tags present come from the 9pnet_virtio driver's devices (sysfs ends each with a NUL)", () => {
    const dir = mkdtempSync(join(tmpdir(), "burrow-9p-tags-"));
    try {
      for (const [device, tag] of [["virtio3", "vol0\0\n"], ["virtio1", "rootfs\0"], ["virtio2", ""]]) {
        mkdirSync(join(dir, device!));
        writeFileSync(join(dir, device!, "mount_tag"), tag!);
      }
      writeFileSync(join(dir, "bind"), "");
      expect(ninePTags(dir)).toEqual(["rootfs", "vol0"]);
      expect(ninePTags(join(dir, "absent"))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a failed share mount names the missing tag and the tags there", () => {
    expect(shareFailure("9p", "rootfs", "ENOENT", ["bundle", "vol0"])).toBe('ENOENT (no virtio-9p share tagged "rootfs"; tags present: bundle, vol0)');
    expect(shareFailure("9p", "rootfs", "ENOENT", [])).toBe('ENOENT (no virtio-9p share tagged "rootfs"; tags present: none)');
    expect(shareFailure("9p", "rootfs", "EACCES", ["rootfs"])).toBe("EACCES");
    expect(shareFailure("virtiofs", "r", "EINVAL", null)).toBe('EINVAL (no virtio-fs device tagged "r"?)');
  });
});

describe("QEMU's shares and sandbox", () => {
  const base: RunOptions = { kernel: "k", initrd: "i", disks: [], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "kvm", append: "", timeoutSeconds: 10 };

  test("-fsdev local per share, a virtio-9p device on the machine's bus, paths escaped", () => {
    const args = qemuArgs({ ...base, shares: [{ tag: "rootfs", path: "/var/lib/c,1/root", readOnly: false }, { tag: "bundle", path: "/run/b", readOnly: true }] });
    const fsdevs = args.flatMap((arg, index) => (args[index - 1] === "-fsdev" ? [arg] : []));
    expect(fsdevs).toEqual(["local,id=fs0,path=/var/lib/c,,1/root,security_model=passthrough", "local,id=fs1,path=/run/b,security_model=passthrough,readonly=on"]);
    expect(args).toContain("virtio-9p-device,fsdev=fs0,mount_tag=rootfs");
    expect(args).toContain("virtio-9p-device,fsdev=fs1,mount_tag=bundle");
    const q35 = qemuArgs({ ...base, machine: "q35", shares: [{ tag: "rootfs", path: "/r", readOnly: false }] });
    expect(q35).toContain("virtio-9p-pci,fsdev=fs0,mount_tag=rootfs");
    const virt = qemuArgs({ ...base, arch: "arm64", machine: "virt", shares: [{ tag: "rootfs", path: "/r", readOnly: false }] });
    expect(virt).toContain("virtio-9p-pci,fsdev=fs0,mount_tag=rootfs");
    expect(qemuArgs(base)).not.toContain("-fsdev");
  });

  test("bad or repeated tags and empty paths are refused before QEMU starts", () => {
    expect(() => qemuArgs({ ...base, shares: [{ tag: "a,b", path: "/r", readOnly: false }] })).toThrow('bad share tag "a,b" (1 to 31 of A-Z a-z 0-9 . _ -)');
    expect(() => qemuArgs({ ...base, shares: [{ tag: "r", path: "/a", readOnly: false }, { tag: "r", path: "/b", readOnly: true }] })).toThrow("two shares are tagged r");
    expect(() => qemuArgs({ ...base, shares: [{ tag: "r", path: "", readOnly: false }] })).toThrow("share r path is empty");
    const dir = mkdtempSync(join(tmpdir(), "burrow-share-check-"));
    try {
      writeFileSync(join(dir, "k"), "");
      expect(() => checkRunInputs({ ...base, kernel: join(dir, "k"), initrd: null, shares: [{ tag: "r", path: join(dir, "absent"), readOnly: false }] })).toThrow(`not found: share r directory ${join(dir, "absent")}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the sandbox: seccomp on, with the four deny groups", () => {
    const args = qemuArgs({ ...base, sandbox: true });
    expect(args[args.indexOf("-sandbox") + 1]).toBe("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
    expect(SANDBOX).toBe(args[args.indexOf("-sandbox") + 1]!);
    expect(qemuArgs(base)).not.toContain("-sandbox");
  });
});

describe("where the plan's mounts go", () => {
  test("inside the new root, on the VM's moved tree, or the VM's own API mount", () => {
    expect(placeOf("/data", MOVED_MOUNTS)).toEqual({ in: "root", path: "/data" });
    expect(placeOf("/etc//hosts/", MOVED_MOUNTS)).toEqual({ in: "root", path: "/etc/hosts" });
    expect(placeOf("/devices", MOVED_MOUNTS)).toEqual({ in: "root", path: "/devices" });
    expect(placeOf("/dev/pts", MOVED_MOUNTS)).toEqual({ in: "vm", path: "/dev/pts" });
    expect(placeOf("/run/.containerenv", MOVED_MOUNTS)).toEqual({ in: "vm", path: "/run/.containerenv" });
    expect(placeOf("/run", MOVED_MOUNTS)).toEqual({ in: "vm", path: "/run" });
    expect(placeOf("/tmp", MOVED_MOUNTS)).toEqual({ in: "vm", path: "/tmp" });
    expect(placeOf("/sys/fs/cgroup", MOVED_MOUNTS)).toEqual({ in: "vm", path: "/sys/fs/cgroup" });
    expect(placeOf("/proc", MOVED_MOUNTS)).toEqual({ in: "vm-own", path: "/proc", type: "proc" });
    expect(placeOf("/sys/", MOVED_MOUNTS)).toEqual({ in: "vm-own", path: "/sys", type: "sysfs" });
    expect(placeOf("/dev", MOVED_MOUNTS)).toEqual({ in: "vm-own", path: "/dev", type: "devtmpfs" });
  });

  test("every mount's options are checked before any is made; the first bad one is one line", () => {
    const plan = (mounts: GuestPlan["mounts"]): GuestPlan => ({ version: 1, readonlyRoot: false, mounts });
    const checked = checkPlanMounts(plan([
      { kind: "fs", type: "tmpfs", source: "tmpfs", destination: "/tmp", options: ["nosuid", "size=1m", "tmpcopyup"] },
      { kind: "share", tag: "v", destination: "/v", options: ["rbind", "ro"] },
    ]));
    expect(checked.map((entry) => entry.label)).toEqual(["tmpfs", "9p share v"]);
    expect(checked[0]!.options).toMatchObject({ flags: MountFlags.NOSUID, data: "size=1m", ignored: ["tmpcopyup"] });
    expect(() => checkPlanMounts(plan([{ kind: "fs", type: "tmpfs", source: "t", destination: "/x", options: ["nosiud"] }]))).toThrow('container mount /x (tmpfs): unknown mount option "nosiud" (EINVAL)');
    expect(() => checkPlanMounts(plan([{ kind: "fs", type: "none", source: "/a", destination: "/x", options: ["rbind"] }]))).toThrow("container mount /x (none): a bind mount must be a share or a file in the plan (EINVAL)");
    expect(() => checkPlanMounts(plan([{ kind: "file", file: "f", destination: "/x", options: ["remount"] }]))).toThrow("container mount /x (file f): remount is not a mount the plan can make (EINVAL)");
  });

  test("per-mount flags drop how to mount (bind, rec, remount); /proc/filesystems lists every type", () => {
    const { BIND, REC, REMOUNT, RDONLY, NOSUID } = MountFlags;
    expect(perMountFlags(BIND | REC | REMOUNT | RDONLY | NOSUID)).toBe(RDONLY | NOSUID);
    expect(kernelFilesystems("nodev\tsysfs\nnodev\tproc\n\text4\nnodev\t9p\nnodev\tmqueue\n")).toEqual(new Set(["sysfs", "proc", "ext4", "9p", "mqueue"]));
  });
});
