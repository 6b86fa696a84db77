// Devices the boot waits for: the root block device (a path, LABEL=/UUID= from ext4 or EROFS
// superblocks, SERIAL= from virtio-blk's serial, PARTUUID=/PARTLABEL= from the disk's GPT),
// virtio-serial ports (named symlinks under /dev/virtio-ports) and network interfaces.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync, symlinkSync, unlinkSync } from "node:fs";
import { readOptionalText } from "../../boot/optional-text";
import { SHARE_TAG } from "../../oci/guest-plan";
import { MAX_PARTLABEL_UNITS, parseGpt } from "./gpt";
import { formatUuid } from "./uuid";

const EXT_SUPER_MAGIC = 0xef53;
const SUPERBLOCK_OFFSET = 1024;
/** EROFS: superblock at 1024 too, magic u32 @0, uuid[16] @48, volume_name[16] @64. */
const EROFS_SUPER_MAGIC = 0xe0f5e1e2;
/** squashfs: "hsqs" at byte 0; it has neither UUID nor label. */
const SQUASHFS_MAGIC = 0x73717368;

export type FsIdentity = { type: "ext" | "erofs"; uuid: string; label: string } | { type: "squashfs"; uuid: null; label: null };

function nulTerminated(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return Buffer.from(end < 0 ? bytes : bytes.subarray(0, end)).toString("utf8");
}

/** The ext2/3/4 superblock at byte 1024: magic u16 @0x38, uuid[16] @0x68, volume name[16] @0x78. */
export function parseExtSuperblock(device: Uint8Array): FsIdentity | null {
  if (device.byteLength < SUPERBLOCK_OFFSET + 0x88) return null;
  const view = new DataView(device.buffer, device.byteOffset, device.byteLength);
  if (view.getUint16(SUPERBLOCK_OFFSET + 0x38, true) !== EXT_SUPER_MAGIC) return null;
  const uuid = formatUuid(device.subarray(SUPERBLOCK_OFFSET + 0x68, SUPERBLOCK_OFFSET + 0x78));
  return { type: "ext", uuid, label: nulTerminated(device.subarray(SUPERBLOCK_OFFSET + 0x78, SUPERBLOCK_OFFSET + 0x88)) };
}

export function parseErofsSuperblock(device: Uint8Array): FsIdentity | null {
  if (device.byteLength < SUPERBLOCK_OFFSET + 80) return null;
  const view = new DataView(device.buffer, device.byteOffset, device.byteLength);
  if (view.getUint32(SUPERBLOCK_OFFSET, true) !== EROFS_SUPER_MAGIC) return null;
  const uuid = formatUuid(device.subarray(SUPERBLOCK_OFFSET + 48, SUPERBLOCK_OFFSET + 64));
  return { type: "erofs", uuid, label: nulTerminated(device.subarray(SUPERBLOCK_OFFSET + 64, SUPERBLOCK_OFFSET + 80)) };
}

/** Which filesystem the first 2 KiB of a device hold, when it is one we can name (ext*, EROFS, squashfs). */
export function identifyFilesystem(head: Uint8Array): FsIdentity | null {
  if (head.byteLength >= 4 && new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) === SQUASHFS_MAGIC) return { type: "squashfs", uuid: null, label: null };
  return parseExtSuperblock(head) ?? parseErofsSuperblock(head);
}

export type RootSpec =
  | { kind: "path"; path: string }
  | { kind: "label"; label: string }
  | { kind: "uuid"; uuid: string }
  /** virtio-blk's serial (QEMU `-device virtio-blk-…,serial=NAME`), from /sys/block/<disk>/serial. */
  | { kind: "serial"; serial: string }
  | { kind: "partuuid"; partuuid: string }
  | { kind: "partlabel"; partlabel: string }
  /** A host directory shared over virtio (9p:TAG, virtiofs:TAG): no block device to wait for. */
  | { kind: "share"; fs: "9p" | "virtiofs"; tag: string }
  /** No device can ever match: fail at once instead of waiting out burrow.rootwait. */
  | { kind: "invalid"; reason: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** ext4's s_volume_name and EROFS's volume_name hold 16 bytes. */
const MAX_LABEL_BYTES = 16;
/** VIRTIO_BLK_ID_BYTES: the serial a virtio-blk device reports holds 20 bytes. */
export const MAX_SERIAL_BYTES = 20;

/** The value after one of `prefixes`, or null. */
function after(spec: string, prefixes: readonly string[]): string | null {
  const prefix = prefixes.find((candidate) => spec.startsWith(candidate));
  return prefix === undefined ? null : spec.slice(prefix.length);
}

/** virtio-fs's tag field holds 36 bytes (struct virtio_fs_config). */
const MAX_VIRTIOFS_TAG_BYTES = 36;
const VIRTIOFS_TAG = /^[A-Za-z0-9._-]+$/;

/** A device spec (root=, burrow.overlay=); `key` names it in the reason when no device can match. */
export function parseRootSpec(root: string, key = "root"): RootSpec {
  const ninep = after(root, ["9p:"]);
  if (ninep !== null) {
    if (!SHARE_TAG.test(ninep)) return { kind: "invalid", reason: `${key}=${root}: a 9p share tag has 1 to 31 of A-Z a-z 0-9 . _ -` };
    return { kind: "share", fs: "9p", tag: ninep };
  }
  const virtiofs = after(root, ["virtiofs:"]);
  if (virtiofs !== null) {
    if (!VIRTIOFS_TAG.test(virtiofs) || Buffer.byteLength(virtiofs) > MAX_VIRTIOFS_TAG_BYTES) return { kind: "invalid", reason: `${key}=${root}: a virtio-fs tag has 1 to ${MAX_VIRTIOFS_TAG_BYTES} of A-Z a-z 0-9 . _ -` };
    return { kind: "share", fs: "virtiofs", tag: virtiofs };
  }
  const label = after(root, ["LABEL=", "/dev/disk/by-label/"]);
  if (label !== null) {
    const bytes = Buffer.byteLength(label);
    if (bytes === 0 || bytes > MAX_LABEL_BYTES) return { kind: "invalid", reason: `${key}=${root}: an ext4 label has 1 to ${MAX_LABEL_BYTES} bytes` };
    return { kind: "label", label };
  }
  const uuid = after(root, ["UUID=", "/dev/disk/by-uuid/"]);
  if (uuid !== null) {
    if (!UUID.test(uuid.toLowerCase())) return { kind: "invalid", reason: `${key}=${root}: not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)` };
    return { kind: "uuid", uuid: uuid.toLowerCase() };
  }
  const serial = after(root, ["SERIAL=", "/dev/disk/by-id/virtio-"]);
  if (serial !== null) {
    const bytes = Buffer.byteLength(serial);
    if (bytes === 0 || bytes > MAX_SERIAL_BYTES) return { kind: "invalid", reason: `${key}=${root}: a virtio-blk serial has 1 to ${MAX_SERIAL_BYTES} bytes` };
    return { kind: "serial", serial };
  }
  const partuuid = after(root, ["PARTUUID=", "/dev/disk/by-partuuid/"]);
  if (partuuid !== null) {
    // GPT only: an MBR "SSSSSSSS-PP" PARTUUID is not supported, and saying so beats waiting.
    if (!UUID.test(partuuid.toLowerCase())) return { kind: "invalid", reason: `${key}=${root}: not a GPT partition GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)` };
    return { kind: "partuuid", partuuid: partuuid.toLowerCase() };
  }
  const partlabel = after(root, ["PARTLABEL=", "/dev/disk/by-partlabel/"]);
  if (partlabel !== null) {
    if (partlabel.length === 0 || partlabel.length > MAX_PARTLABEL_UNITS) return { kind: "invalid", reason: `${key}=${root}: a GPT partition name has 1 to ${MAX_PARTLABEL_UNITS} UTF-16 units` };
    return { kind: "partlabel", partlabel };
  }
  return { kind: "path", path: root.startsWith("/") ? root : `/dev/${root}` };
}

function isBlockDevice(path: string): boolean {
  try {
    return statSync(path).isBlockDevice();
  } catch {
    return false; // not there yet: the wait goes on
  }
}

/** `length` bytes of a device at `offset`, or null (no medium, too short, not there yet). */
function readAt(path: string, offset: number, length: number): Uint8Array | null {
  let fd = -1;
  try {
    fd = openSync(path, "r");
    const buffer = new Uint8Array(length);
    return readSync(fd, buffer, 0, length, offset) === length ? buffer : null;
  } catch {
    return null; // no medium or gone again: not a candidate
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

const SYS_CLASS_BLOCK = "/sys/class/block";

/** Block devices the kernel has now, by /sys/class/block name (zram and loop skipped: never a root here). */
function listBlockDevices(sysClassBlock = SYS_CLASS_BLOCK): string[] {
  try {
    return readdirSync(sysClassBlock).filter((name) => !/^(zram|loop|ram)\d/.test(name)).sort();
  } catch {
    return []; // no sysfs: no devices to look at
  }
}

/** null: the attribute is absent, so not this kind of device. */
function readSysText(path: string): string | null {
  return readOptionalText(path)?.trim() ?? null;
}

/** A partition's number (sysfs "partition"), or null for a whole disk. */
function partitionNumber(name: string, sysClassBlock = SYS_CLASS_BLOCK): number | null {
  const text = readSysText(`${sysClassBlock}/${name}/partition`);
  return text === null ? null : Number(text);
}

/** The whole disk a block device belongs to (itself when it is one). */
export function wholeDisk(name: string, sysClassBlock = SYS_CLASS_BLOCK): string {
  if (partitionNumber(name, sysClassBlock) === null) return name;
  try {
    // /sys/class/block/vda1 -> ../../devices/…/block/vda/vda1: the parent directory is the disk.
    const parts = readlinkSync(`${sysClassBlock}/${name}`).split("/");
    return parts.at(-2) ?? name;
  } catch {
    return name;
  }
}

/** A disk and its partitions, by name: every node that reads the same bytes. */
export function diskFamily(name: string, sysClassBlock = SYS_CLASS_BLOCK): string[] {
  const disk = wholeDisk(name, sysClassBlock);
  return [disk, ...listBlockDevices(sysClassBlock).filter((other) => other !== disk && partitionNumber(other, sysClassBlock) !== null && wholeDisk(other, sysClassBlock) === disk)];
}

function findPartition(spec: { kind: "partuuid"; partuuid: string } | { kind: "partlabel"; partlabel: string }, names: string[]): string | null {
  for (const disk of names.filter((name) => partitionNumber(name) === null)) {
    const table = parseGpt((offset, length) => readAt(`/dev/${disk}`, offset, length));
    const entry = table?.find((partition) => (spec.kind === "partuuid" ? partition.partuuid === spec.partuuid : partition.label === spec.partlabel));
    if (!entry) continue;
    const child = names.find((name) => partitionNumber(name) === entry.number && wholeDisk(name) === disk);
    // The table names it but the kernel has not added the partition yet: keep waiting.
    if (child && isBlockDevice(`/dev/${child}`)) return `/dev/${child}`;
  }
  return null;
}

/** The device path for a root spec if it is present now, else null. */
export function findRootDevice(spec: RootSpec): string | null {
  if (spec.kind === "invalid" || spec.kind === "share") return null;
  if (spec.kind === "path") return isBlockDevice(spec.path) ? spec.path : null;
  const names = listBlockDevices();
  if (spec.kind === "partuuid" || spec.kind === "partlabel") return findPartition(spec, names);
  for (const name of names) {
    const path = `/dev/${name}`;
    if (spec.kind === "serial") {
      if (readSysText(`${SYS_CLASS_BLOCK}/${name}/serial`) === spec.serial && isBlockDevice(path)) return path;
      continue;
    }
    const head = readAt(path, 0, 2048);
    const identity = head && identifyFilesystem(head);
    if (!identity) continue;
    if (spec.kind === "label" && identity.label === spec.label) return path;
    if (spec.kind === "uuid" && identity.uuid === spec.uuid) return path;
  }
  return null;
}

/** Does the device hold a filesystem we can name? (burrow.overlay.format formats only when not.) */
export function deviceFilesystem(path: string): FsIdentity | null {
  const head = readAt(path, 0, 2048);
  return head && identifyFilesystem(head);
}

/** Remove the device nodes of these disks and their partitions; returns the paths removed. */
export function removeDeviceNodes(devices: readonly string[]): string[] {
  const names = new Set(devices.flatMap((device) => diskFamily(device.replace(/^\/dev\//, ""))));
  const removed: string[] = [];
  for (const name of [...names].sort()) {
    const path = `/dev/${name}`;
    if (!existsSync(path)) continue;
    unlinkSync(path);
    removed.push(path);
  }
  return removed;
}

export interface VirtioPort { device: string; name: string | null }

export function listVirtioPorts(sysClass = "/sys/class/virtio-ports"): VirtioPort[] {
  let entries: string[];
  try {
    entries = readdirSync(sysClass).filter((entry) => entry.startsWith("vport")).sort();
  } catch {
    return []; // no virtio_console (yet): no ports
  }
  return entries.map((device) => {
    // "name" appears when the host sends the port's name (a KOBJ_CHANGE uevent follows).
    let name: string | null = null;
    try {
      name = readFileSync(`${sysClass}/${device}/name`, "utf8").trim() || null;
    } catch {
      // No name yet: the port stays unnamed until its change uevent.
    }
    return { device, name };
  });
}

/** /dev/virtio-ports/<name> → ../vportNpM for every named port; returns "name -> device" pairs made. */
export function linkVirtioPorts(ports: VirtioPort[], dir = "/dev/virtio-ports"): string[] {
  const made: string[] = [];
  for (const port of ports) {
    if (!port.name || port.name.includes("/") || port.name === "." || port.name === "..") continue;
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const link = `${dir}/${port.name}`;
    const target = `../${port.device}`;
    try {
      if (readlinkSync(link) === target) continue;
      unlinkSync(link);
    } catch {
      // No link there yet: symlinkSync below makes it.
    }
    symlinkSync(target, link);
    made.push(`${port.name} -> ${port.device}`);
  }
  return made;
}

/** Network interfaces other than loopback. */
export function listNetworkInterfaces(sysClassNet = "/sys/class/net"): string[] {
  try {
    return readdirSync(sysClassNet).filter((name) => name !== "lo").sort();
  } catch {
    return []; // no sysfs: no interfaces to report
  }
}

