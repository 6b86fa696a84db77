// Root composition, pure parts: device specs (SERIAL=, PARTUUID=, PARTLABEL= beside paths,
// LABEL=, UUID=), GPT tables built in a buffer, EROFS/squashfs identification, overlay options,
// the new command-line keys and `burrow run --serial-disk`.
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/config";
import type { RunOptions } from "../../src/host/qemu";
import { parseSerialDisk, qemuArgs } from "../../src/host/qemu-argv";
import { identifyFilesystem, parseRootSpec } from "../../src/modes/microvm/devices";
import { encodeGuid, formatGuid, parseGpt } from "../../src/modes/microvm/gpt";
import { overlayMountData } from "../../src/modes/microvm/overlay";
import { rootMountFailure, typesIdentifiedFirst } from "../../src/modes/microvm/root";

describe("parseRootSpec", () => {
  test("SERIAL=, PARTUUID=, PARTLABEL= and their /dev/disk spellings", () => {
    expect(parseRootSpec("SERIAL=base")).toEqual({ kind: "serial", serial: "base" });
    expect(parseRootSpec("/dev/disk/by-id/virtio-base")).toEqual({ kind: "serial", serial: "base" });
    expect(parseRootSpec("PARTUUID=0FC63DAF-8483-4772-8E79-3D69D8477DE4")).toEqual({ kind: "partuuid", partuuid: "0fc63daf-8483-4772-8e79-3d69d8477de4" });
    expect(parseRootSpec("/dev/disk/by-partuuid/0fc63daf-8483-4772-8e79-3d69d8477de4").kind).toBe("partuuid");
    expect(parseRootSpec("PARTLABEL=root a")).toEqual({ kind: "partlabel", partlabel: "root a" });
    expect(parseRootSpec("/dev/disk/by-partlabel/rootfs")).toEqual({ kind: "partlabel", partlabel: "rootfs" });
    // Paths, LABEL= and UUID= as before.
    expect(parseRootSpec("vda")).toEqual({ kind: "path", path: "/dev/vda" });
    expect(parseRootSpec("LABEL=x")).toEqual({ kind: "label", label: "x" });
  });

  test("specs no device can match fail at once, naming the key", () => {
    expect(parseRootSpec("SERIAL=")).toEqual({ kind: "invalid", reason: "root=SERIAL=: a virtio-blk serial has 1 to 20 bytes" });
    expect(parseRootSpec("SERIAL=" + "s".repeat(21)).kind).toBe("invalid");
    expect(parseRootSpec("SERIAL=" + "s".repeat(20)).kind).toBe("serial");
    expect(parseRootSpec("PARTUUID=1234abcd-01")).toEqual({ kind: "invalid", reason: "root=PARTUUID=1234abcd-01: not a GPT partition GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)" });
    expect(parseRootSpec("PARTLABEL=").kind).toBe("invalid");
    expect(parseRootSpec("PARTLABEL=" + "p".repeat(37)).kind).toBe("invalid");
    expect(parseRootSpec("PARTLABEL=" + "p".repeat(36)).kind).toBe("partlabel");
    expect(parseRootSpec("UUID=nope", "burrow.overlay")).toEqual({ kind: "invalid", reason: "burrow.overlay=UUID=nope: not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)" });
  });
});

interface TestPartition { type: string; guid: string; name: string; index: number }

/** A disk image with a protective MBR, a GPT header at LBA 1 and `count` entries from LBA `entriesLba`. */
function gptImage(partitions: TestPartition[], sectorSize = 512, count = 128, entrySize = 128, entriesLba = 2): Uint8Array {
  const disk = new Uint8Array((entriesLba + Math.ceil((count * entrySize) / sectorSize) + 1) * sectorSize);
  const view = new DataView(disk.buffer);
  disk.set(Buffer.from("EFI PART", "latin1"), sectorSize);
  view.setBigUint64(sectorSize + 72, BigInt(entriesLba), true);
  view.setUint32(sectorSize + 80, count, true);
  view.setUint32(sectorSize + 84, entrySize, true);
  for (const partition of partitions) {
    const at = entriesLba * sectorSize + partition.index * entrySize;
    disk.set(encodeGuid(partition.type), at);
    disk.set(encodeGuid(partition.guid), at + 16);
    disk.set(Buffer.from(partition.name, "utf16le"), at + 56);
  }
  return disk;
}

const reader = (disk: Uint8Array) => (offset: number, length: number) => (offset + length <= disk.byteLength ? disk.subarray(offset, offset + length) : null);
const LINUX_FS = "0fc63daf-8483-4772-8e79-3d69d8477de4";

describe("GPT", () => {
  test("GUIDs round-trip in GPT's mixed-endian layout", () => {
    const bytes = encodeGuid("01234567-89ab-cdef-0123-456789abcdef");
    expect(Buffer.from(bytes).toString("hex")).toBe("67452301ab89efcd0123456789abcdef");
    expect(formatGuid(bytes)).toBe("01234567-89ab-cdef-0123-456789abcdef");
  });

  test("used entries with the kernel's numbers (index + 1, gaps kept), GUIDs and UTF-16 names", () => {
    const disk = gptImage([
      { type: LINUX_FS, guid: "11111111-2222-3333-4444-555555555555", name: "base", index: 0 },
      { type: LINUX_FS, guid: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", name: "snäp ü", index: 2 },
    ]);
    expect(parseGpt(reader(disk))).toEqual([
      { number: 1, typeGuid: LINUX_FS, partuuid: "11111111-2222-3333-4444-555555555555", label: "base" },
      { number: 3, typeGuid: LINUX_FS, partuuid: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", label: "snäp ü" },
    ]);
  });

  test("4096-byte sectors, larger entries and a 36-unit name", () => {
    const name = "n".repeat(36);
    const disk = gptImage([{ type: LINUX_FS, guid: "11111111-2222-3333-4444-555555555555", name, index: 0 }], 4096, 4, 256);
    expect(parseGpt(reader(disk))?.[0]?.label).toBe(name);
  });

  test("no table, a short disk or absurd header fields: null, never a throw", () => {
    expect(parseGpt(reader(new Uint8Array(8192)))).toBeNull();
    expect(parseGpt(reader(new Uint8Array(10)))).toBeNull();
    expect(parseGpt(reader(gptImage([], 512, 100_000)))).toBeNull();
    expect(parseGpt(reader(gptImage([], 512, 4, 64)))).toBeNull();
    const truncated = gptImage([{ type: LINUX_FS, guid: "11111111-2222-3333-4444-555555555555", name: "x", index: 0 }]).subarray(0, 1536);
    expect(parseGpt(reader(truncated))).toBeNull();
  });
});

describe("identifyFilesystem", () => {
  test("EROFS: magic at 1024, uuid @48, volume name @64", () => {
    const head = new Uint8Array(2048);
    new DataView(head.buffer).setUint32(1024, 0xe0f5e1e2, true);
    head.set(Buffer.from("0a1b2c3d4e5f4a6b8c7d9e0f1a2b3c4d", "hex"), 1024 + 48);
    head.set(Buffer.from("base"), 1024 + 64);
    expect(identifyFilesystem(head)).toEqual({ type: "erofs", uuid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", label: "base" });
    expect(parseRootSpec("LABEL=base")).toEqual({ kind: "label", label: "base" });
  });

  test("squashfs: \"hsqs\" at 0, no UUID or label", () => {
    const head = new Uint8Array(2048);
    head.set(Buffer.from("hsqs"), 0);
    expect(identifyFilesystem(head)).toEqual({ type: "squashfs", uuid: null, label: null });
  });

  test("the identified type is tried first; unknown or absent types leave the list alone", () => {
    const types = ["ext4", "ext3", "ext2", "squashfs", "erofs"];
    expect(typesIdentifiedFirst(types, "erofs")).toEqual(["erofs", "ext4", "ext3", "ext2", "squashfs"]);
    expect(typesIdentifiedFirst(types, "ext")).toEqual(types);
    expect(typesIdentifiedFirst(types, null)).toEqual(types);
    expect(typesIdentifiedFirst(["ext4"], "squashfs")).toEqual(["ext4"]);
  });

  test("ext4 as before; zeros and short buffers are nothing", () => {
    const head = new Uint8Array(2048);
    new DataView(head.buffer).setUint16(1024 + 0x38, 0xef53, true);
    expect(identifyFilesystem(head)?.type).toBe("ext");
    expect(identifyFilesystem(new Uint8Array(2048))).toBeNull();
    expect(identifyFilesystem(new Uint8Array(3))).toBeNull();
  });
});

describe("overlay", () => {
  test("mount options: writable with upper and work dirs, read-only as a second lower layer", () => {
    expect(overlayMountData("/sysroot/lower", "/sysroot/rw", false)).toBe("lowerdir=/sysroot/lower,upperdir=/sysroot/rw/upper,workdir=/sysroot/rw/work");
    expect(overlayMountData("/sysroot/lower", "/sysroot/rw", true)).toBe("lowerdir=/sysroot/rw/upper:/sysroot/lower");
  });

  test("burrow.overlay, .format, .ro, hide-root-devices, console-stdin", () => {
    const config = parseConfig("root=SERIAL=base burrow.overlay=SERIAL=snap burrow.overlay.format=1 burrow.overlay.ro=0 burrow.hide-root-devices burrow.console-stdin=1");
    expect(config.problems).toEqual([]);
    expect(config.root).toBe("SERIAL=base");
    expect(config.overlay).toEqual({ kind: "device", spec: "SERIAL=snap" });
    expect([config.overlayFormat, config.overlayReadOnly, config.hideRootDevices, config.consoleStdin]).toEqual([true, false, true, true]);
    expect(parseConfig("burrow.overlay=tmpfs").overlay).toEqual({ kind: "tmpfs" });
    expect(parseConfig("burrow.overlay=tmpfs burrow.overlay=off").overlay).toEqual({ kind: "none" });
    const defaults = parseConfig("");
    expect([defaults.overlay, defaults.overlayFormat, defaults.hideRootDevices, defaults.consoleStdin]).toEqual([{ kind: "none" }, false, false, false]);
    const bad = parseConfig("burrow.overlay burrow.overlay.format=maybe");
    expect(bad.problems.map((problem) => problem.key)).toEqual(["burrow.overlay", "burrow.overlay.format"]);
    expect(bad.overlay).toEqual({ kind: "none" });
  });
});

describe("burrow run --serial-disk NAME=PATH", () => {
  const base: RunOptions = { kernel: "k", initrd: "i", disks: [], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "kvm", append: "", timeoutSeconds: 10 };

  test("the first = ends the name; the path keeps = and , (escaped for QEMU)", () => {
    expect(parseSerialDisk("base=/tmp/a=b,c.img")).toEqual({ serial: "base", file: "/tmp/a=b,c.img" });
    const args = qemuArgs({ ...base, disks: ["plain.img"], serialDisks: [parseSerialDisk("base=/tmp/a=b,c.img")] });
    const devices = args.filter((_, index) => args[index - 1] === "-device");
    expect(devices).toContain("virtio-blk-device,drive=disk0");
    expect(devices).toContain("virtio-blk-device,drive=disk1,serial=base");
    expect(args.filter((_, index) => args[index - 1] === "-drive")[1]).toEndWith("file.filename=/tmp/a=b,,c.img");
  });

  test("names QEMU or the guest could not carry are refused with one line", () => {
    for (const spec of ["/tmp/x.img", "=x.img", "base=", "a,b=x.img", "s".repeat(21) + "=x.img", "na me=x"]) expect(() => parseSerialDisk(spec)).toThrow(/--serial-disk needs NAME=PATH/);
  });
});

describe("rootMountFailure", () => {
  const rw = { readOnly: false, rootflags: null };
  test("every type failing alike is said once, with what the errno means", () => {
    const tried = ["ext4", "ext3", "squashfs"].map((type) => ({ type, code: "EIO", module: null }));
    expect(rootMountFailure("/dev/vda", "/sysroot", rw, tried)).toBe("cannot mount root /dev/vda on /sysroot rw: tried ext4, ext3, squashfs: EIO (the disk failed the reads)");
    expect(rootMountFailure("/dev/vdb", "/sysroot/lower", { readOnly: true, rootflags: "errors=remount-ro" }, [{ type: "ext4", code: "EINVAL", module: null }]))
      .toBe("cannot mount root /dev/vdb on /sysroot/lower ro (errors=remount-ro): tried ext4: EINVAL (no valid superblock of that type)");
  });

  test("mixed errnos and module failures are listed per type; an errno without a known meaning is bare", () => {
    const tried = [{ type: "ext4", code: "EUCLEAN", module: null }, { type: "xfs", code: "ENODEV", module: "ENOENT" }];
    expect(rootMountFailure("/dev/vda", "/sysroot", rw, tried)).toBe("cannot mount root /dev/vda on /sysroot rw: tried ext4: EUCLEAN (the filesystem is corrupted); xfs: ENODEV, module xfs: ENOENT");
  });
});
