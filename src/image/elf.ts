// Just enough ELF64 reading to find what a dynamically linked binary needs at run time:
// its interpreter (PT_INTERP) and its DT_NEEDED libraries.

export interface ElfDeps {
  interpreter: string | null;
  needed: string[];
}

const PT_INTERP = 3;
const SHT_DYNAMIC = 6;
const DT_NULL = 0;
const DT_NEEDED = 1;

export function readElfDeps(bytes: Uint8Array, what = "file"): ElfDeps {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 64 || view.getUint32(0, false) !== 0x7f454c46) throw new Error(`${what} is not an ELF file`);
  if (bytes[4] !== 2) throw new Error(`${what} is not a 64-bit ELF file`);
  if (bytes[5] !== 1) throw new Error(`${what} is not little-endian`);
  const u64 = (offset: number) => Number(view.getBigUint64(offset, true));
  const phoff = u64(32);
  const shoff = u64(40);
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  const shentsize = view.getUint16(58, true);
  const shnum = view.getUint16(60, true);
  const cString = (offset: number) => {
    const end = bytes.indexOf(0, offset);
    return Buffer.from(bytes.subarray(offset, end < 0 ? bytes.length : end)).toString("utf8");
  };

  let interpreter: string | null = null;
  for (let i = 0; i < phnum; i++) {
    const base = phoff + i * phentsize;
    if (view.getUint32(base, true) === PT_INTERP) interpreter = cString(u64(base + 8));
  }

  const needed: string[] = [];
  for (let i = 0; i < shnum; i++) {
    const base = shoff + i * shentsize;
    if (view.getUint32(base + 4, true) !== SHT_DYNAMIC) continue;
    const dynOffset = u64(base + 24);
    const dynSize = u64(base + 32);
    const strtabIndex = view.getUint32(base + 40, true);
    const strtabOffset = u64(shoff + strtabIndex * shentsize + 24);
    for (let entry = dynOffset; entry + 16 <= dynOffset + dynSize; entry += 16) {
      const tag = u64(entry);
      if (tag === DT_NULL) break;
      if (tag === DT_NEEDED) needed.push(cString(strtabOffset + u64(entry + 8)));
    }
  }
  return { interpreter, needed };
}
