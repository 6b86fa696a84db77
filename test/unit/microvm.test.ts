// The pure parts of microvm mode: uevent and superblock parsers, root and initramfs checks, module
// loading order and failures, zram sizing, the agent's environment, the initramfs delete walk.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseMountinfoLine } from "../../src/boot/mounts";
import { parseConfig } from "../../src/config/config";
import { ModuleIndex } from "../../src/modules";
import { SysError } from "../../src/sys/errno";
import { agentArgv, buildAgentEnv } from "../../src/modes/microvm/agent";
import { linkVirtioPorts, parseExtSuperblock, parseRootSpec } from "../../src/modes/microvm/devices";
import { loadModules, wantedModules } from "../../src/modes/microvm/modules";
import { blockFilesystems, rootFsTypes, rootMountFlags } from "../../src/modes/microvm/root";
import { deleteTree, RAMFS_MAGIC, rootIsInitramfs, TMPFS_MAGIC } from "../../src/modes/microvm/switchroot";
import { parseUevents } from "../../src/modes/microvm/uevent";
import { memTotalBytes } from "../../src/modes/microvm/meminfo";
import { parseCompAlgorithms, zramDiskSize } from "../../src/modes/microvm/zram";

const MiB = 2 ** 20;

describe("uevent parser", () => {
  const message = (...tokens: string[]) => Buffer.from(tokens.join("\0") + "\0", "latin1");

  test("one kernel message", () => {
    const [event, ...rest] = parseUevents(message("add@/devices/virtio-mmio-cmdline/virtio0/block/vda", "ACTION=add", "DEVPATH=/devices/virtio-mmio-cmdline/virtio0/block/vda", "SUBSYSTEM=block", "MAJOR=254", "MINOR=0", "DEVNAME=vda", "DEVTYPE=disk", "SEQNUM=1042"));
    expect(rest).toEqual([]);
    expect(event).toEqual({
      action: "add",
      devpath: "/devices/virtio-mmio-cmdline/virtio0/block/vda",
      env: { ACTION: "add", DEVPATH: "/devices/virtio-mmio-cmdline/virtio0/block/vda", SUBSYSTEM: "block", MAJOR: "254", MINOR: "0", DEVNAME: "vda", DEVTYPE: "disk", SEQNUM: "1042" },
    });
  });

  test("several datagrams in one read, values containing @ and =, udev messages skipped", () => {
    const data = Buffer.concat([
      message("change@/devices/pci0000:00/virtio2/virtio-ports/vport1p1", "ACTION=change", "SUBSYSTEM=virtio-ports", "NAME=a=b@c"),
      message("libudev", "\u00fe\u00ed\u00ca\u00fe", "ACTION=add", "SUBSYSTEM=bogus"),
      message("add@/devices/virtual/net/eth0", "ACTION=add", "INTERFACE=eth0"),
    ]);
    const events = parseUevents(data);
    expect(events.map((event) => `${event.action} ${event.devpath}`)).toEqual(["change /devices/pci0000:00/virtio2/virtio-ports/vport1p1", "add /devices/virtual/net/eth0"]);
    expect(events[0]!.env.NAME).toBe("a=b@c");
    expect(events[1]!.env.INTERFACE).toBe("eth0");
  });

  test("garbage gives no events", () => {
    expect(parseUevents(new Uint8Array(0))).toEqual([]);
    expect(parseUevents(Buffer.from("KEY=value\0noise\0"))).toEqual([]);
  });
});

describe("ext superblock parser", () => {
  test("reads label and uuid of a real mke2fs image", () => {
    const dir = mkdtempSync(join(tmpdir(), "burrow-sb-"));
    try {
      const image = join(dir, "fs.img");
      const made = spawnSync(["mke2fs", "-q", "-t", "ext4", "-L", "my-root", "-U", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "-F", image, "1M"], { stderr: "pipe" });
      expect(made.exitCode).toBe(0);
      const head = new Uint8Array(readFileSync(image).subarray(0, 2048));
      expect(parseExtSuperblock(head)).toEqual({ type: "ext", uuid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", label: "my-root" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a 16-byte label without NUL, wrong magic, short reads", () => {
    const head = new Uint8Array(2048);
    const view = new DataView(head.buffer);
    view.setUint16(1024 + 0x38, 0xef53, true);
    head.set(Buffer.from("sixteen-chars-ok"), 1024 + 0x78);
    expect(parseExtSuperblock(head)?.label).toBe("sixteen-chars-ok");
    view.setUint16(1024 + 0x38, 0x1234, true);
    expect(parseExtSuperblock(head)).toBeNull();
    expect(parseExtSuperblock(new Uint8Array(1100))).toBeNull();
  });

  test("root specs", () => {
    expect(parseRootSpec("/dev/vda")).toEqual({ kind: "path", path: "/dev/vda" });
    expect(parseRootSpec("vdb1")).toEqual({ kind: "path", path: "/dev/vdb1" });
    expect(parseRootSpec("LABEL=burrow-root")).toEqual({ kind: "label", label: "burrow-root" });
    expect(parseRootSpec("UUID=6F1D2C3B-4A59-4E21-9B7C-5D0E8F1A2B3C")).toEqual({ kind: "uuid", uuid: "6f1d2c3b-4a59-4e21-9b7c-5d0e8f1a2b3c" });
    // Specs no device can match fail at once rather than after burrow.rootwait.
    expect(parseRootSpec("UUID=xyz")).toEqual({ kind: "invalid", reason: "root=UUID=xyz: not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)" });
    expect(parseRootSpec("LABEL=")).toEqual({ kind: "invalid", reason: "root=LABEL=: an ext4 label has 1 to 16 bytes" });
    expect(parseRootSpec("LABEL=" + "x".repeat(17)).kind).toBe("invalid");
  });
});

describe("initramfs detection (mountinfo / statfs)", () => {
  const initramfs = [parseMountinfoLine("1 1 0:2 / / rw - rootfs rootfs rw,size=230000k,nr_inodes=57500"), parseMountinfoLine("20 1 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,mode=755")];
  const disk = [parseMountinfoLine("22 1 254:0 / / rw,noatime - ext4 /dev/vda rw")];

  test("statfs magic decides when known", () => {
    expect(rootIsInitramfs(disk, RAMFS_MAGIC)).toBe(true);
    expect(rootIsInitramfs(disk, TMPFS_MAGIC)).toBe(true);
    expect(rootIsInitramfs(initramfs, 0xef53)).toBe(false);
  });

  test("mountinfo's rootfs entry otherwise", () => {
    expect(rootIsInitramfs(initramfs, null)).toBe(true);
    expect(rootIsInitramfs(disk, null)).toBe(false);
    expect(rootIsInitramfs([], null)).toBe(false);
  });
});

describe("root filesystem types and flags", () => {
  const procFilesystems = "nodev\tsysfs\nnodev\ttmpfs\n\text3\n\text2\n\text4\n\tvfat\nnodev\tdevpts\n\tfuseblk\n";
  test("block filesystems, ext4 first; FUSE's fuseblk never", () => {
    expect(blockFilesystems(procFilesystems)).toEqual(["ext4", "ext3", "ext2", "vfat"]);
    expect(rootFsTypes(parseConfig(""), () => procFilesystems)[0]).toBe("ext4");
    expect(rootFsTypes(parseConfig(""), () => "")).toEqual(["ext4"]);
    expect(rootFsTypes(parseConfig("rootfstype=xfs,btrfs"))).toEqual(["xfs", "btrfs"]);
  });
  test("noatime always; ro only when asked", () => {
    expect(rootMountFlags(parseConfig(""))).toBe(0x400);
    expect(rootMountFlags(parseConfig("ro"))).toBe(0x401);
  });
});

describe("modules", () => {
  const index = ModuleIndex.parse({
    dep: [
      "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko",
      "kernel/fs/jbd2/jbd2.ko:", "kernel/fs/mbcache.ko:", "kernel/lib/crc16.ko:",
      "kernel/crypto/crc32c_generic.ko:",
      "kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio.ko:", "kernel/drivers/virtio/virtio_ring.ko:",
      "kernel/drivers/block/zram/zram.ko: kernel/mm/zsmalloc.ko", "kernel/mm/zsmalloc.ko:",
      "kernel/crypto/lz4.ko: kernel/lib/lz4/lz4_compress.ko", "kernel/lib/lz4/lz4_compress.ko:",
    ].join("\n"),
    softdep: "softdep ext4 pre: crypto-crc32c\n",
    alias: "alias crypto-crc32c crc32c_generic\nalias crypto-lz4 lz4\n",
    builtin: "kernel/crypto/lzo.ko\nkernel/crypto/lzo-rle.ko\n",
  });
  const config = parseConfig("ext4.debug=1 burrow.modules=virtio_mmio");
  const request = { required: ["ext4", "virtio_mmio", "zram"], optional: ["lz4", "lzo-rle", "lzo", "nosuch"] };

  test("base set from the configuration", () => {
    expect(wantedModules(parseConfig(""))).toEqual({ required: ["virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console", "ext4", "zram"], optional: ["lz4", "lzo-rle", "lzo"] });
    const more = wantedModules(parseConfig("rootfstype=btrfs burrow.zram=off burrow.net=1 init.balloon=1 burrow.modules=vsock,ext4"));
    expect(more.required).toEqual(["virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console", "btrfs", "virtio_net", "virtio_balloon", "vsock", "ext4"]);
    expect(more.optional).toEqual([]);
  });

  test("dependencies first, parameters passed, EEXIST is success, built-ins counted", () => {
    const calls: string[] = [];
    let clock = 0;
    const result = loadModules(index, request, config, (node, params) => {
      calls.push(params ? `${node.name}(${params})` : node.name);
      if (node.name === "virtio") throw new SysError("finit_module", 17);
    }, () => clock++);
    for (const [before, after] of [["jbd2", "ext4(debug=1)"], ["crc32c_generic", "ext4(debug=1)"], ["virtio_ring", "virtio_mmio"], ["virtio", "virtio_mmio"], ["zsmalloc", "zram"], ["lz4_compress", "lz4"]]) {
      expect(calls.indexOf(before!)).toBeGreaterThanOrEqual(0);
      expect(calls.indexOf(before!)).toBeLessThan(calls.indexOf(after!));
    }
    expect(result.already).toEqual(["virtio"]);
    expect(result.builtin.sort()).toEqual(["lzo", "lzo-rle"]);
    expect(result.failed.size).toBe(0);
  });

  test("a failure is reported with its errno; its users are not tried; a missing name is reported", () => {
    const calls: string[] = [];
    const result = loadModules(index, { required: ["ext4", "zram", "nosuch"], optional: ["lz4"] }, parseConfig(""), (node) => {
      calls.push(node.name);
      if (node.name === "jbd2") throw new SysError("finit_module", 8);
      if (node.name === "lz4_compress") throw new SysError("finit_module", 22);
    }, () => 0);
    expect(result.failed.get("jbd2")).toBe("ENOEXEC (exec format error)");
    expect(result.failed.get("ext4")).toBe("needs jbd2, which failed");
    expect(result.failed.get("nosuch")).toMatch(/not found/);
    expect(calls).not.toContain("ext4");
    expect(calls).toContain("zram");
    // Optional (compressor) failures are not warnings.
    expect(result.failed.has("lz4_compress")).toBe(false);
  });
});

describe("zram sizing", () => {
  const mem = 466532 * 1024;
  test("MemTotal", () => {
    expect(memTotalBytes("MemTotal:         466532 kB\nMemFree: 1 kB\n")).toBe(mem);
    expect(memTotalBytes("nothing")).toBeNull();
  });
  test("percent, bytes, off; whole pages", () => {
    expect(zramDiskSize(parseConfig("").zram, mem)).toEqual({ bytes: Math.floor(mem / 2 / 4096) * 4096 });
    expect(zramDiskSize(parseConfig("burrow.zram=64M").zram, mem)).toEqual({ bytes: 64 * MiB });
    expect(zramDiskSize(parseConfig("burrow.zram=off").zram, mem)).toBeNull();
  });
  test("a size beyond RAM names the value; a bad value sizes as the default", () => {
    expect(zramDiskSize(parseConfig("burrow.zram=4G").zram, mem)).toEqual({ problem: expect.stringMatching(/^burrow\.zram=4096M: more than the guest's RAM/) });
    expect(zramDiskSize(parseConfig("burrow.zram=12QB").zram, mem)).toEqual(zramDiskSize(parseConfig("").zram, mem));
  });
  test("comp_algorithm", () => {
    expect(parseCompAlgorithms("lzo [lzo-rle] lz4 lz4hc zstd \n")).toEqual({ available: ["lzo", "lzo-rle", "lz4", "lz4hc", "zstd"], selected: "lzo-rle" });
  });
});

describe("agent environment", () => {
  test("PATH, HOME, TERM, KERNEL_BOOT_TIME; kernel-passed variables kept; runtime ones dropped", () => {
    const env = buildAgentEnv({ HOME: "/", TERM: "vt220", BUN_OPTIONS: "x", JSC_SIGNAL_FOR_GC: "40", NODE_ENV: "production", LD_PRELOAD: "/x.so", myflag: "1", PATH: "/bin", "bad-name": "x" }, 1234567890n);
    expect(env).toEqual(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=vt220", "KERNEL_BOOT_TIME=1234567890", "myflag=1"]);
    expect(buildAgentEnv({}, 1n)).toContain("TERM=linux");
    expect(agentArgv("/usr/local/bin/guest-agent", ["a", "b c"])).toEqual(["/usr/local/bin/guest-agent", "a", "b c"]);
  });
});

describe("filesystem helpers", () => {
  test("deleteTree removes files and dirs on one device, skipping listed mount points", () => {
    const dir = mkdtempSync(join(tmpdir(), "burrow-del-"));
    try {
      mkdirSync(join(dir, "a/b"), { recursive: true });
      writeFileSync(join(dir, "a/b/f"), "x");
      writeFileSync(join(dir, "init"), "x");
      symlinkSync("/nonexistent", join(dir, "link"));
      mkdirSync(join(dir, "sysroot/keep"), { recursive: true });
      const result = deleteTree(dir, lstatSync(dir).dev, new Set([join(dir, "sysroot")]));
      expect(result).toEqual({ files: 3, errors: [] });
      expect(existsSync(join(dir, "a"))).toBe(false);
      expect(existsSync(join(dir, "sysroot/keep"))).toBe(true);
      // Another device (here: any other st_dev) is never entered.
      writeFileSync(join(dir, "other"), "x");
      expect(deleteTree(dir, lstatSync(dir).dev + 1, new Set()).files).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("virtio port symlinks by name; unnamed and unsafe names skipped; idempotent", () => {
    const dir = mkdtempSync(join(tmpdir(), "burrow-ports-"));
    try {
      const links = join(dir, "virtio-ports");
      const ports = [{ device: "vport1p1", name: "demo.port" }, { device: "vport1p2", name: null }, { device: "vport1p3", name: "../evil" }];
      expect(linkVirtioPorts(ports, links)).toEqual(["demo.port -> vport1p1"]);
      expect(linkVirtioPorts(ports, links)).toEqual([]);
      expect(lstatSync(join(links, "demo.port")).isSymbolicLink()).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
