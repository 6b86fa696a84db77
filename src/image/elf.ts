// What a dynamically linked binary needs at run time: its interpreter (PT_INTERP) and its
// DT_NEEDED libraries. Section headers come from the one ELF section reader (modules/elf-sections).
import { checkElf64, cStringAt, readElfSections, sectionData } from "../modules/elf-sections";

export interface ElfDeps {
  interpreter: string | null;
  needed: string[];
}

const PT_INTERP = 3;
const SHT_DYNAMIC = 6;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DYNAMIC_ENTRY_SIZE = 16;

export function readElfDeps(bytes: Uint8Array, what = "file"): ElfDeps {
  const view = checkElf64(bytes, what);
  const u64 = (offset: number) => Number(view.getBigUint64(offset, true));
  const phoff = u64(32);
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);

  let interpreter: string | null = null;
  for (let i = 0; i < phnum; i++) {
    const base = phoff + i * phentsize;
    if (base + 16 <= bytes.length && view.getUint32(base, true) === PT_INTERP) interpreter = cStringAt(bytes, u64(base + 8));
  }

  const needed: string[] = [];
  const sections = readElfSections(bytes, what);
  for (const dynamic of sections.filter((section) => section.type === SHT_DYNAMIC)) {
    const entries = sectionData(bytes, dynamic);
    const strings = sections[dynamic.link] ? sectionData(bytes, sections[dynamic.link]!) : new Uint8Array(0);
    const table = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
    for (let entry = 0; entry + DYNAMIC_ENTRY_SIZE <= entries.length; entry += DYNAMIC_ENTRY_SIZE) {
      const tag = table.getBigUint64(entry, true);
      if (tag === DT_NULL) break;
      if (tag === DT_NEEDED) needed.push(cStringAt(strings, Number(table.getBigUint64(entry + 8, true))));
    }
  }
  return { interpreter, needed };
}
