// The partition description (burrow.partition=PATH): what underhill_mem's Init gets from the boot
// shim and the host. Parsed and validated completely before anything is touched; the first
// problem is reported as one line naming the offending range. Format: schema/partition.schema.json.
import { readFileSync } from "node:fs";
import { fmt, hex, isAligned, PAGE, type Range } from "./ranges";

export type Isolation = "none" | "vbs" | "snp" | "tdx";
export type Arch = "x86_64" | "aarch64";

export interface NodeRange extends Range {
  vnode: number;
}

export interface SelfTest {
  /** A GPA written with a marker through the mapping that covers it, then read back. */
  gpa: number;
  /** Which mapping: VTL0 (the private one on hardware isolation), VTL1, or the shared one. */
  mapping: "vtl0" | "vtl1" | "shared";
}

export interface Partition {
  isolation: Isolation;
  arch: Arch;
  vpCount: number;
  maxVtl: 0 | 1 | 2;
  /** VTL0 RAM (mem_layout), sorted. */
  ram: NodeRange[];
  /** RAM plus the shared pool (complete_memory_layout). */
  completeLayout: NodeRange[];
  vtl2Ram: NodeRange[];
  accepted: Range[];
  sharedPool: NodeRange[];
  vtom: number | null;
  vtl0AliasMap: number | null;
  selfTest: SelfTest | null;
}

export const isIsolated = (p: Pick<Partition, "isolation">): boolean => p.isolation !== "none";
export const isHardwareIsolated = (p: Pick<Partition, "isolation">): boolean => p.isolation === "snp" || p.isolation === "tdx";

/** The architectural GPA limit (52 bits). */
export const MAX_GPA = 2 ** 52;
/** underhill_core drops an alias map above 1 << 48 (no 5-level paging). */
export const MAX_ALIAS_MAP = 2 ** 48;
/** Bitmaps hold one byte per 8 pages: hardware-isolated layouts must be 32 KiB-aligned. */
export const BITMAP_ALIGN = 8 * PAGE;

export class PartitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PartitionError";
  }
}

const KEYS = new Set(["$schema", "isolation", "arch", "vpCount", "maxVtl", "ram", "completeLayout", "vtl2Ram", "accepted", "sharedPool", "vtom", "vtl0AliasMap", "selfTest", "comment"]);

/** A JSON number (a safe integer) or a "0x…"/decimal string. */
function address(value: unknown, where: string): number {
  let parsed: number;
  if (typeof value === "number") parsed = value;
  else if (typeof value === "string" && /^(0x[0-9a-f]+|\d+)$/i.test(value)) parsed = Number(value);
  else throw new PartitionError(`${where}: expected an address (an integer or a "0x…" string), got ${JSON.stringify(value)}`);
  if (!Number.isSafeInteger(parsed) || parsed < 0) throw new PartitionError(`${where}: ${JSON.stringify(value)} is not a non-negative integer below 2^53`);
  return parsed;
}

function ranges(value: unknown, name: string, withNode: boolean): NodeRange[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new PartitionError(`${name}: expected an array of ranges`);
  return value.map((item, index) => {
    const where = `${name}[${index}]`;
    if (typeof item !== "object" || item === null || Array.isArray(item)) throw new PartitionError(`${where}: expected {"start", "end"${withNode ? ', "vnode"' : ""}}`);
    const entry = item as Record<string, unknown>;
    for (const key of Object.keys(entry)) {
      if (!["start", "end", "size", "vnode"].includes(key)) throw new PartitionError(`${where}: unknown key ${JSON.stringify(key)}`);
    }
    const start = address(entry.start, `${where}.start`);
    if ((entry.end === undefined) === (entry.size === undefined)) throw new PartitionError(`${where}: give exactly one of "end" and "size"`);
    const end = entry.end !== undefined ? address(entry.end, `${where}.end`) : start + address(entry.size, `${where}.size`);
    let vnode = 0;
    if (entry.vnode !== undefined) {
      if (!withNode) throw new PartitionError(`${where}: "vnode" is not used here`);
      if (!Number.isInteger(entry.vnode) || (entry.vnode as number) < 0) throw new PartitionError(`${where}.vnode: expected a non-negative integer`);
      vnode = entry.vnode as number;
    }
    return { start, end, vnode };
  });
}

/** Sorted, non-overlapping, non-empty, 4 KiB-aligned, below 2^52. */
function checkList(list: readonly Range[], name: string, align = PAGE, alignWhy = "4 KiB-aligned"): void {
  list.forEach((r, index) => {
    const where = `${name}[${index}] ${fmt(r)}`;
    if (!isAligned(r.start, PAGE) || !isAligned(r.end, PAGE)) throw new PartitionError(`${where} is not 4 KiB-aligned`);
    if (r.end <= r.start) throw new PartitionError(`${where} is empty or inverted`);
    if (r.end > MAX_GPA) throw new PartitionError(`${where} ends above the 52-bit GPA limit`);
    if (!isAligned(r.start, align) || !isAligned(r.end, align)) throw new PartitionError(`${where} is not ${alignWhy}`);
    const previous = list[index - 1];
    if (previous) {
      if (r.start < previous.start) throw new PartitionError(`${where} is not sorted: it starts before ${name}[${index - 1}] ${fmt(previous)}`);
      if (r.start < previous.end) throw new PartitionError(`${where} overlaps ${name}[${index - 1}] ${fmt(previous)}`);
    }
  });
}

/** Every range of `inner` lies inside one range of `outer`. */
function checkInside(inner: readonly Range[], innerName: string, outer: readonly Range[], outerName: string): void {
  inner.forEach((r, index) => {
    if (!outer.some((o) => o.start <= r.start && r.end <= o.end)) {
      throw new PartitionError(`${innerName}[${index}] ${fmt(r)} is not inside any ${outerName} range`);
    }
  });
}

function checkDisjoint(a: readonly Range[], aName: string, b: readonly Range[], bName: string): void {
  a.forEach((r, i) => {
    b.forEach((o, j) => {
      if (r.start < o.end && o.start < r.end) throw new PartitionError(`${aName}[${i}] ${fmt(r)} overlaps ${bName}[${j}] ${fmt(o)}`);
    });
  });
}

const isPowerOfTwo = (value: number) => value > 0 && 2 ** Math.round(Math.log2(value)) === value;

/** Parse and validate a description (an object from JSON). Throws PartitionError naming the problem. */
export function parsePartition(json: unknown): Partition {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new PartitionError("expected a JSON object");
  const raw = json as Record<string, unknown>;
  for (const key of Object.keys(raw)) if (!KEYS.has(key)) throw new PartitionError(`unknown key ${JSON.stringify(key)}`);

  const isolation = raw.isolation;
  if (!["none", "vbs", "snp", "tdx"].includes(isolation as string)) throw new PartitionError(`isolation: expected none|vbs|snp|tdx, got ${JSON.stringify(isolation)}`);
  const arch = raw.arch ?? "x86_64";
  if (arch !== "x86_64" && arch !== "aarch64") throw new PartitionError(`arch: expected x86_64|aarch64, got ${JSON.stringify(arch)}`);
  const vpCount = raw.vpCount;
  if (!Number.isInteger(vpCount) || (vpCount as number) < 1 || (vpCount as number) > 4096) throw new PartitionError(`vpCount: expected an integer from 1 to 4096, got ${JSON.stringify(vpCount)}`);
  const maxVtl = raw.maxVtl ?? 0;
  if (maxVtl !== 0 && maxVtl !== 1 && maxVtl !== 2) throw new PartitionError(`maxVtl: expected 0, 1 or 2, got ${JSON.stringify(maxVtl)}`);

  const p: Partition = {
    isolation: isolation as Isolation,
    arch,
    vpCount: vpCount as number,
    maxVtl,
    ram: ranges(raw.ram, "ram", true),
    completeLayout: ranges(raw.completeLayout, "completeLayout", true),
    vtl2Ram: ranges(raw.vtl2Ram, "vtl2Ram", true),
    accepted: ranges(raw.accepted, "accepted", false).map(({ start, end }) => ({ start, end })),
    sharedPool: ranges(raw.sharedPool, "sharedPool", true),
    vtom: raw.vtom === undefined || raw.vtom === null ? null : address(raw.vtom, "vtom"),
    vtl0AliasMap: raw.vtl0AliasMap === undefined || raw.vtl0AliasMap === null ? null : address(raw.vtl0AliasMap, "vtl0AliasMap"),
    selfTest: null,
  };
  if (raw.completeLayout === undefined) {
    // Default: RAM plus the shared pool, merged in address order.
    p.completeLayout = [...p.ram, ...p.sharedPool].sort((a, b) => a.start - b.start).map((r) => ({ ...r }));
  }
  const hw = isHardwareIsolated(p);

  if (p.ram.length === 0) throw new PartitionError("ram: at least one range is required");
  // Bitmaps (hardware isolation) track pages a byte at a time: OV's BadAlignment.
  const [align, alignWhy] = hw ? [BITMAP_ALIGN, "32 KiB-aligned (the page bitmaps of a hardware-isolated partition need it)"] : [PAGE, "4 KiB-aligned"];
  checkList(p.ram, "ram", align, alignWhy);
  checkList(p.vtl2Ram, "vtl2Ram");
  checkList(p.accepted, "accepted");
  checkList(p.sharedPool, "sharedPool", align, alignWhy);

  checkDisjoint(p.sharedPool, "sharedPool", p.ram, "ram");
  checkDisjoint(p.vtl2Ram, "vtl2Ram", p.ram, "ram");
  checkDisjoint(p.vtl2Ram, "vtl2Ram", p.sharedPool, "sharedPool");
  checkList(p.completeLayout, "completeLayout", align, alignWhy);
  checkInside(p.ram, "ram", p.completeLayout, "completeLayout");
  checkInside(p.sharedPool, "sharedPool", p.completeLayout, "completeLayout");
  checkInside(p.completeLayout, "completeLayout", [...p.ram, ...p.sharedPool].sort((a, b) => a.start - b.start).reduce<Range[]>((merged, r) => {
    const last = merged[merged.length - 1];
    if (last && last.end === r.start) last.end = r.end;
    else merged.push({ start: r.start, end: r.end });
    return merged;
  }, []), "ram or sharedPool");

  if (p.vtl0AliasMap !== null) {
    if (hw) throw new PartitionError(`vtl0AliasMap ${hex(p.vtl0AliasMap)}: a hardware-isolated (${p.isolation}) partition has no alias map`);
    if (!isPowerOfTwo(p.vtl0AliasMap)) throw new PartitionError(`vtl0AliasMap ${hex(p.vtl0AliasMap)} is not a single address bit`);
    if (p.vtl0AliasMap > MAX_ALIAS_MAP) throw new PartitionError(`vtl0AliasMap ${hex(p.vtl0AliasMap)} is above 1 << 48 (needs 5-level paging)`);
    p.ram.forEach((r, index) => {
      if (r.end > p.vtl0AliasMap!) throw new PartitionError(`ram[${index}] ${fmt(r)} reaches the VTL0 alias map at ${hex(p.vtl0AliasMap!)}`);
    });
  }
  if (hw && p.vtom === null) throw new PartitionError(`vtom: required for a hardware-isolated (${p.isolation}) partition`);
  if (!hw && p.vtom !== null) throw new PartitionError(`vtom ${hex(p.vtom)}: only a hardware-isolated (snp|tdx) partition has one`);
  if (p.vtom !== null) {
    if (!isPowerOfTwo(p.vtom)) throw new PartitionError(`vtom ${hex(p.vtom)} is not a power of two`);
    if (p.vtom > 2 ** 51) throw new PartitionError(`vtom ${hex(p.vtom)} leaves no room for the shared alias below 2^52`);
    for (const [list, name] of [[p.ram, "ram"], [p.completeLayout, "completeLayout"], [p.sharedPool, "sharedPool"]] as const) {
      list.forEach((r, index) => {
        if (r.end > p.vtom!) throw new PartitionError(`${name}[${index}] ${fmt(r)} is above VTOM ${hex(p.vtom!)}`);
      });
    }
  }
  if (!hw && p.maxVtl >= 1 && p.vtl0AliasMap === null && p.arch === "x86_64") {
    throw new PartitionError(`maxVtl ${p.maxVtl}: cannot safely support VTL 1 without using the alias map (vtl0AliasMap is not set)`);
  }
  if (!isIsolated(p) && p.sharedPool.length > 0) {
    throw new PartitionError(`sharedPool[0] ${fmt(p.sharedPool[0]!)}: a non-isolated partition has no shared pool`);
  }

  if (raw.selfTest !== undefined && raw.selfTest !== null) {
    const st = raw.selfTest as Record<string, unknown>;
    const mapping = st.mapping ?? "vtl0";
    if (mapping !== "vtl0" && mapping !== "vtl1" && mapping !== "shared") throw new PartitionError(`selfTest.mapping: expected vtl0|vtl1|shared`);
    if (mapping === "shared" && !hw) throw new PartitionError(`selfTest.mapping: only a hardware-isolated partition has a shared mapping`);
    if (mapping === "vtl1" && (hw || p.maxVtl < 1 || p.vtl0AliasMap === null)) throw new PartitionError(`selfTest.mapping: vtl1 needs a non-hardware-isolated partition with maxVtl >= 1 and an alias map`);
    const gpa = address(st.gpa, "selfTest.gpa");
    if (!isAligned(gpa, 64)) throw new PartitionError(`selfTest.gpa ${hex(gpa)} is not 64-byte aligned`);
    const within = mapping === "shared" ? p.sharedPool : p.ram;
    if (!within.some((r) => r.start <= gpa && gpa + 64 <= r.end)) throw new PartitionError(`selfTest.gpa ${hex(gpa)} is not inside ${mapping === "shared" ? "sharedPool" : "ram"}`);
    p.selfTest = { gpa, mapping };
  }
  return p;
}

/** Read, parse and validate the description at `path`. */
export function loadPartition(path: string): Partition {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new PartitionError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new PartitionError(`${path} is not JSON: ${(error as Error).message}`);
  }
  try {
    return parsePartition(json);
  } catch (error) {
    if (error instanceof PartitionError) throw new PartitionError(`${path}: ${error.message}`);
    throw error;
  }
}
