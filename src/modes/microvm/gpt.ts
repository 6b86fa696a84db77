// GUID partition tables, read from the disk itself: the kernel's sysfs names a partition's number
// and (7-bit) name, but not its unique GUID, so root=PARTUUID= needs the table.

/** "EFI PART": the header signature at the start of LBA 1. */
const GPT_SIGNATURE = "EFI PART";
const MIN_ENTRY_SIZE = 128;
/** UEFI asks for at least 16 KiB of entries; more than this many is not a table we trust. */
const MAX_ENTRIES = 1024;
const NAME_OFFSET = 56;
const NAME_UNITS = 36;

export interface GptPartition {
  /** The kernel's partition number: the entry's index + 1 (unused entries keep their numbers). */
  number: number;
  typeGuid: string;
  /** The partition's unique GUID: what PARTUUID= names. */
  partuuid: string;
  /** The UTF-16LE name up to its first NUL: what PARTLABEL= names. */
  label: string;
}

/** A GUID as GPT stores it: the first three fields little-endian, the rest as bytes. */
export function formatGuid(bytes: Uint8Array): string {
  const hex = (from: number, to: number, reverse: boolean) => {
    const part = Array.from(bytes.subarray(from, to));
    return Buffer.from(reverse ? part.reverse() : part).toString("hex");
  };
  return `${hex(0, 4, true)}-${hex(4, 6, true)}-${hex(6, 8, true)}-${hex(8, 10, false)}-${hex(10, 16, false)}`;
}

/** The reverse of formatGuid: 16 bytes for a GUID string (tests build tables with it). */
export function encodeGuid(guid: string): Uint8Array {
  const hex = guid.replaceAll("-", "");
  const bytes = Uint8Array.from(Buffer.from(hex, "hex"));
  bytes.subarray(0, 4).reverse();
  bytes.subarray(4, 6).reverse();
  bytes.subarray(6, 8).reverse();
  return bytes;
}

/**
 * The used entries of a disk's GPT, or null when there is none. `read(offset, length)` returns
 * the disk's bytes there (null when it cannot). Tries 512-byte sectors, then 4096 (the header is
 * at LBA 1 either way). CRCs are not checked: a torn table yields at worst a wrong name, and the
 * kernel, which does check them, then has no such partition to open.
 */
export function parseGpt(read: (offset: number, length: number) => Uint8Array | null): GptPartition[] | null {
  for (const sectorSize of [512, 4096]) {
    const header = read(sectorSize, 92);
    if (!header || header.byteLength < 92 || Buffer.from(header.subarray(0, 8)).toString("latin1") !== GPT_SIGNATURE) continue;
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
    const entriesLba = Number(view.getBigUint64(72, true));
    const count = view.getUint32(80, true);
    const entrySize = view.getUint32(84, true);
    if (entrySize < MIN_ENTRY_SIZE || entrySize % 8 !== 0 || count > MAX_ENTRIES || entriesLba < 2) return null;
    const table = read(entriesLba * sectorSize, count * entrySize);
    if (!table || table.byteLength < count * entrySize) return null;
    const partitions: GptPartition[] = [];
    for (let index = 0; index < count; index++) {
      const entry = table.subarray(index * entrySize, (index + 1) * entrySize);
      if (entry.subarray(0, 16).every((byte) => byte === 0)) continue; // unused entry
      partitions.push({ number: index + 1, typeGuid: formatGuid(entry.subarray(0, 16)), partuuid: formatGuid(entry.subarray(16, 32)), label: decodeName(entry.subarray(NAME_OFFSET, NAME_OFFSET + NAME_UNITS * 2)) });
    }
    return partitions;
  }
  return null;
}

function decodeName(bytes: Uint8Array): string {
  const units = new Uint16Array(NAME_UNITS);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let length = 0;
  while (length < NAME_UNITS && length * 2 + 1 < bytes.byteLength) {
    const unit = view.getUint16(length * 2, true);
    if (unit === 0) break;
    units[length++] = unit;
  }
  return String.fromCharCode(...units.subarray(0, length));
}

/** GPT names hold 36 UTF-16 code units. */
export const MAX_PARTLABEL_UNITS = NAME_UNITS;
