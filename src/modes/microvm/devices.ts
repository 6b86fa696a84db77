// Devices the boot waits for: the root block device (a path, LABEL= or UUID=, resolved from ext4
// superblocks), virtio-serial ports (named symlinks under /dev/virtio-ports) and network interfaces.
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync, symlinkSync, unlinkSync } from "node:fs";
import { formatUuid } from "./swapheader";

const EXT_SUPER_MAGIC = 0xef53;
const SUPERBLOCK_OFFSET = 1024;

export interface FsIdentity { type: "ext"; uuid: string; label: string }

/** The ext2/3/4 superblock at byte 1024: magic u16 @0x38, uuid[16] @0x68, volume name[16] @0x78. */
export function parseExtSuperblock(device: Uint8Array): FsIdentity | null {
  if (device.byteLength < SUPERBLOCK_OFFSET + 0x88) return null;
  const view = new DataView(device.buffer, device.byteOffset, device.byteLength);
  if (view.getUint16(SUPERBLOCK_OFFSET + 0x38, true) !== EXT_SUPER_MAGIC) return null;
  const uuid = formatUuid(device.subarray(SUPERBLOCK_OFFSET + 0x68, SUPERBLOCK_OFFSET + 0x78));
  const labelBytes = device.subarray(SUPERBLOCK_OFFSET + 0x78, SUPERBLOCK_OFFSET + 0x88);
  const end = labelBytes.indexOf(0);
  const label = Buffer.from(end < 0 ? labelBytes : labelBytes.subarray(0, end)).toString("utf8");
  return { type: "ext", uuid, label };
}

export type RootSpec =
  | { kind: "path"; path: string }
  | { kind: "label"; label: string }
  | { kind: "uuid"; uuid: string }
  /** No device can ever match: fail at once instead of waiting out burrow.rootwait. */
  | { kind: "invalid"; reason: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** ext4's s_volume_name holds 16 bytes. */
const MAX_LABEL_BYTES = 16;

export function parseRootSpec(root: string): RootSpec {
  const label = root.startsWith("LABEL=") ? root.slice(6) : root.startsWith("/dev/disk/by-label/") ? root.slice("/dev/disk/by-label/".length) : null;
  if (label !== null) {
    const bytes = Buffer.byteLength(label);
    if (bytes === 0 || bytes > MAX_LABEL_BYTES) return { kind: "invalid", reason: `root=${root}: an ext4 label has 1 to ${MAX_LABEL_BYTES} bytes` };
    return { kind: "label", label };
  }
  const uuid = root.startsWith("UUID=") ? root.slice(5) : root.startsWith("/dev/disk/by-uuid/") ? root.slice("/dev/disk/by-uuid/".length) : null;
  if (uuid !== null) {
    if (!UUID.test(uuid.toLowerCase())) return { kind: "invalid", reason: `root=${root}: not a UUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)` };
    return { kind: "uuid", uuid: uuid.toLowerCase() };
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

/** The first 2 KiB of a block device, or null (no medium, size 0, not there yet). */
function readHead(path: string): Uint8Array | null {
  let fd = -1;
  try {
    fd = openSync(path, "r");
    const buffer = new Uint8Array(2048);
    return readSync(fd, buffer, 0, buffer.byteLength, 0) === buffer.byteLength ? buffer : null;
  } catch {
    return null; // no medium or gone again: not a candidate
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Block devices the kernel has now, by /sys/class/block name (zram and loop skipped: never a root here). */
function listBlockDevices(sysClassBlock = "/sys/class/block"): string[] {
  try {
    return readdirSync(sysClassBlock).filter((name) => !/^(zram|loop|ram)\d/.test(name)).sort();
  } catch {
    return []; // no sysfs: no devices to look at
  }
}

/** The device path for a root spec if it is present now, else null. */
export function findRootDevice(spec: RootSpec): string | null {
  if (spec.kind === "invalid") return null;
  if (spec.kind === "path") return isBlockDevice(spec.path) ? spec.path : null;
  for (const name of listBlockDevices()) {
    const path = `/dev/${name}`;
    const head = readHead(path);
    const identity = head && parseExtSuperblock(head);
    if (!identity) continue;
    if (spec.kind === "label" && identity.label === spec.label) return path;
    if (spec.kind === "uuid" && identity.uuid === spec.uuid) return path;
  }
  return null;
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

