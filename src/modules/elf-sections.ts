// ELF64 little-endian section headers: enough to find a module's .modinfo (paravisor mode) or a
// binary's .dynamic (the image builder). Offsets and sizes are checked against the file, so a
// truncated or hostile file is an error, never a read out of range.

export interface ElfSection {
  /** From the section-header string table; "" when that table is missing or broken. */
  name: string;
  /** sh_type (SHT_DYNAMIC = 6, …). */
  type: number;
  offset: number;
  size: number;
  /** sh_link: for SHT_DYNAMIC, the index of its string table. */
  link: number;
}

const SHT_NOBITS = 8;
const SECTION_HEADER_SIZE = 64;

/** Throws `${what} is not an ELF file` (or 64-bit, or little-endian) unless it is one we read. */
export function checkElf64(bytes: Uint8Array, what = "file"): DataView {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 64 || view.getUint32(0, false) !== 0x7f454c46) throw new Error(`${what} is not an ELF file`);
  if (bytes[4] !== 2) throw new Error(`${what} is not a 64-bit ELF file`);
  if (bytes[5] !== 1) throw new Error(`${what} is not little-endian`);
  return view;
}

/** The section headers, in index order. Throws when the file is not ELF64 LE or the table lies outside it. */
export function readElfSections(bytes: Uint8Array, what = "file"): ElfSection[] {
  const view = checkElf64(bytes, what);
  const shoff = Number(view.getBigUint64(0x28, true));
  const shentsize = view.getUint16(0x3a, true);
  const shnum = view.getUint16(0x3c, true);
  const shstrndx = view.getUint16(0x3e, true);
  if (shoff === 0 || shnum === 0) return []; // no section header table (allowed for executables)
  if (shentsize < SECTION_HEADER_SIZE || shoff + shnum * shentsize > bytes.length) throw new Error(`${what}: section headers lie outside the file`);
  const header = (i: number) => {
    const base = shoff + i * shentsize;
    const section: ElfSection = {
      name: "",
      type: view.getUint32(base + 4, true),
      offset: Number(view.getBigUint64(base + 24, true)),
      size: Number(view.getBigUint64(base + 32, true)),
      link: view.getUint32(base + 40, true),
    };
    return { nameOffset: view.getUint32(base, true), section };
  };
  const headers = Array.from({ length: shnum }, (_, i) => header(i));
  const names = shstrndx < shnum ? sectionData(bytes, headers[shstrndx]!.section) : new Uint8Array(0);
  return headers.map(({ nameOffset, section }) => ({ ...section, name: nameOffset < names.length ? cStringAt(names, nameOffset) : "" }));
}

/** A section's bytes; empty for SHT_NOBITS or a section that does not fit in the file. */
export function sectionData(bytes: Uint8Array, section: ElfSection): Uint8Array {
  if (section.type === SHT_NOBITS || section.offset + section.size > bytes.length) return new Uint8Array(0);
  return bytes.subarray(section.offset, section.offset + section.size);
}

/** The NUL-terminated UTF-8 string at `offset` (to the end of `bytes` when unterminated). */
export function cStringAt(bytes: Uint8Array, offset: number): string {
  const end = bytes.indexOf(0, offset);
  return new TextDecoder().decode(bytes.subarray(offset, end < 0 ? bytes.length : end));
}
