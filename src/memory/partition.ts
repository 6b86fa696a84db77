// The partition description (burrow.partition=PATH): what underhill_mem's Init gets from the boot
// shim and the host. Parsed and validated completely before anything is touched; the first
// problem is reported as one line naming the offending range. Format: schema/partition.schema.json.
import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";
import { describeError } from "../errors";
import { coalesce, firstOutside, firstOverlap, fmt, hex, isAligned, PAGE, type Range } from "./ranges";

export type Isolation = "none" | "vbs" | "snp" | "tdx";
/** The schema's spelling, OpenHCL's (its guest_arch cfg says aarch64); not burrow's guest Arch (src/arch.ts, arm64). */
export type PartitionArch = "x86_64" | "aarch64";

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
  arch: PartitionArch;
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
const MAX_GPA = 2 ** 52;
/** underhill_core drops an alias map above 1 << 48 (no 5-level paging). */
const MAX_ALIAS_MAP = 2 ** 48;
/** Bitmaps hold one byte per 8 pages: hardware-isolated layouts must be 32 KiB-aligned. */
const BITMAP_ALIGN = 8 * PAGE;

export class PartitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PartitionError";
  }
}

/** vnode bound: Linux's MAX_NUMNODES on x86_64 (NODES_SHIFT 10); anything larger is junk, not a node. */
export const MAX_VNODES = 1024;
/** loadPartition refuses bigger files (about a million ranges) rather than filling VTL2 memory. */
const MAX_DESCRIPTION_BYTES = 64 * 1024 * 1024;

const KEYS = new Set(["$schema", "isolation", "arch", "vpCount", "maxVtl", "ram", "completeLayout", "vtl2Ram", "accepted", "sharedPool", "vtom", "vtl0AliasMap", "selfTest", "comment"]);
const RANGE_KEYS = new Set(["start", "end", "size", "vnode"]);
const SELF_TEST_KEYS = new Set(["gpa", "mapping"]);

type JsonObject = Record<string, unknown>;
const isObject = (value: unknown): value is JsonObject => typeof value === "object" && value !== null && !Array.isArray(value);
/** Own properties only: a key the input lacks must never be answered by Object.prototype. */
const field = (object: JsonObject, key: string): unknown => (Object.hasOwn(object, key) ? object[key] : undefined);

const SHOWN_CHARACTERS = 40;
/**
 * A value for an error message: short, one line, and never throwing (JSON.stringify throws on
 * deep nesting and cycles, and a hostile string may be megabytes long).
 */
function show(value: unknown): string {
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "object" && value !== null) return "an object";
  if (typeof value === "function" || typeof value === "symbol") return `a ${typeof value}`;
  if (typeof value !== "string") return String(value);
  if (value.length <= SHOWN_CHARACTERS) return JSON.stringify(value);
  return `${JSON.stringify(value.slice(0, SHOWN_CHARACTERS)).slice(0, -1)}…" (${value.length} characters)`;
}

function rejectUnknownKeys(object: JsonObject, known: ReadonlySet<string>, where: string): void {
  for (const key of Object.keys(object)) if (!known.has(key)) throw new PartitionError(`${where}unknown key ${show(key)}`);
}

/** A JSON number (a safe integer) or a "0x…"/decimal string. */
function address(value: unknown, where: string): number {
  let parsed: number;
  if (typeof value === "number") parsed = value;
  else if (typeof value === "string" && /^(0x[0-9a-f]+|\d+)$/i.test(value)) parsed = Number(value);
  else throw new PartitionError(`${where}: expected an address (an integer or a "0x…" string), got ${show(value)}`);
  if (!Number.isSafeInteger(parsed) || parsed < 0) throw new PartitionError(`${where}: ${show(value)} is not a non-negative integer below 2^53`);
  return parsed + 0; // -0 becomes 0
}

function ranges(value: unknown, name: string, withNode: boolean): NodeRange[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new PartitionError(`${name}: expected an array of ranges, got ${show(value)}`);
  const out: NodeRange[] = [];
  // An index loop rather than map: map skips holes, and a hole must be reported, not returned.
  for (let index = 0; index < value.length; index++) {
    const item: unknown = value[index];
    const where = `${name}[${index}]`;
    if (!isObject(item)) throw new PartitionError(`${where}: expected {"start", "end"${withNode ? ', "vnode"' : ""}}, got ${show(item)}`);
    rejectUnknownKeys(item, RANGE_KEYS, `${where}: `);
    const start = address(field(item, "start"), `${where}.start`);
    const [endValue, sizeValue] = [field(item, "end"), field(item, "size")];
    if ((endValue === undefined) === (sizeValue === undefined)) throw new PartitionError(`${where}: give exactly one of "end" and "size"`);
    const end = endValue !== undefined ? address(endValue, `${where}.end`) : start + address(sizeValue, `${where}.size`);
    if (!Number.isSafeInteger(end)) throw new PartitionError(`${where}: start + size is not below 2^53`);
    let vnode = 0;
    const vnodeValue = field(item, "vnode");
    if (vnodeValue !== undefined) {
      if (!withNode) throw new PartitionError(`${where}: "vnode" is not used here`);
      // Number.isInteger alone lets 1e300 through.
      if (typeof vnodeValue !== "number" || !Number.isSafeInteger(vnodeValue) || vnodeValue < 0 || vnodeValue >= MAX_VNODES) {
        throw new PartitionError(`${where}.vnode: expected an integer from 0 to ${MAX_VNODES - 1}, got ${show(vnodeValue)}`);
      }
      vnode = vnodeValue + 0;
    }
    out.push({ start, end, vnode });
  }
  return out;
}

/** Sorted, non-overlapping, non-empty, 4 KiB-aligned, below 2^52. One pass: each range against the one before. */
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
  const index = firstOutside(inner, outer);
  if (index !== null) throw new PartitionError(`${innerName}[${index}] ${fmt(inner[index]!)} is not inside any ${outerName} range`);
}

function checkDisjoint(a: readonly Range[], aName: string, b: readonly Range[], bName: string): void {
  const pair = firstOverlap(a, b);
  if (pair) throw new PartitionError(`${aName}[${pair[0]}] ${fmt(a[pair[0]]!)} overlaps ${bName}[${pair[1]}] ${fmt(b[pair[1]]!)}`);
}

/** No range of `list` reaches `limit`. */
function checkBelow(list: readonly Range[], name: string, limit: number, what: string): void {
  const index = list.findIndex((r) => r.end > limit);
  if (index >= 0) throw new PartitionError(`${name}[${index}] ${fmt(list[index]!)} ${what}`);
}

const isPowerOfTwo = (value: number) => value > 0 && 2 ** Math.round(Math.log2(value)) === value;
const byStart = (a: Range, b: Range) => a.start - b.start;

/** Parse and validate a description (an object from JSON). Throws PartitionError naming the problem. */
export function parsePartition(json: unknown): Partition {
  if (!isObject(json)) throw new PartitionError("expected a JSON object");
  const raw = json;
  rejectUnknownKeys(raw, KEYS, "");
  for (const key of ["$schema", "comment"]) {
    const value = field(raw, key);
    if (value !== undefined && typeof value !== "string") throw new PartitionError(`${key}: expected a string, got ${show(value)}`);
  }

  const isolation = field(raw, "isolation");
  if (isolation !== "none" && isolation !== "vbs" && isolation !== "snp" && isolation !== "tdx") throw new PartitionError(`isolation: expected none|vbs|snp|tdx, got ${show(isolation)}`);
  const archValue = field(raw, "arch");
  const arch = archValue === undefined ? "x86_64" : archValue;
  if (arch !== "x86_64" && arch !== "aarch64") throw new PartitionError(`arch: expected x86_64|aarch64, got ${show(arch)}`);
  const vpCount = field(raw, "vpCount");
  if (typeof vpCount !== "number" || !Number.isInteger(vpCount) || vpCount < 1 || vpCount > 4096) throw new PartitionError(`vpCount: expected an integer from 1 to 4096, got ${show(vpCount)}`);
  const maxVtlValue = field(raw, "maxVtl");
  const maxVtl = maxVtlValue === undefined ? 0 : maxVtlValue;
  if (maxVtl !== 0 && maxVtl !== 1 && maxVtl !== 2) throw new PartitionError(`maxVtl: expected 0, 1 or 2, got ${show(maxVtl)}`);
  const optionalAddress = (key: string) => {
    const value = field(raw, key);
    return value === undefined || value === null ? null : address(value, key);
  };

  const p: Partition = {
    isolation,
    arch,
    vpCount,
    maxVtl: (maxVtl + 0) as 0 | 1 | 2, // -0 becomes 0
    ram: ranges(field(raw, "ram"), "ram", true),
    completeLayout: ranges(field(raw, "completeLayout"), "completeLayout", true),
    vtl2Ram: ranges(field(raw, "vtl2Ram"), "vtl2Ram", true),
    accepted: ranges(field(raw, "accepted"), "accepted", false).map(({ start, end }) => ({ start, end })),
    sharedPool: ranges(field(raw, "sharedPool"), "sharedPool", true),
    vtom: optionalAddress("vtom"),
    vtl0AliasMap: optionalAddress("vtl0AliasMap"),
    selfTest: null,
  };
  if (field(raw, "completeLayout") === undefined) {
    // Default: RAM plus the shared pool, merged in address order.
    p.completeLayout = [...p.ram, ...p.sharedPool].sort(byStart).map((r) => ({ ...r }));
  }
  const hw = isHardwareIsolated(p);

  if (p.ram.length === 0) throw new PartitionError("ram: at least one range is required");
  // Bitmaps (hardware isolation) track pages a byte at a time: mapping.rs's MappingError::BadAlignment.
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
  // ram and sharedPool are sorted and disjoint by now, so their sorted union coalesces cleanly.
  checkInside(p.completeLayout, "completeLayout", coalesce([...p.ram, ...p.sharedPool].sort(byStart)), "ram or sharedPool");

  if (p.vtl0AliasMap !== null) {
    const alias = p.vtl0AliasMap;
    if (hw) throw new PartitionError(`vtl0AliasMap ${hex(alias)}: a hardware-isolated (${p.isolation}) partition has no alias map`);
    if (!isPowerOfTwo(alias)) throw new PartitionError(`vtl0AliasMap ${hex(alias)} is not a single address bit`);
    if (alias > MAX_ALIAS_MAP) throw new PartitionError(`vtl0AliasMap ${hex(alias)} is above 1 << 48 (needs 5-level paging)`);
    // Addresses with the alias bit set are VTL0's alias of the ones below: no RAM of any VTL up there.
    checkBelow(p.ram, "ram", alias, `reaches the VTL0 alias map at ${hex(alias)}`);
    checkBelow(p.vtl2Ram, "vtl2Ram", alias, `reaches the VTL0 alias map at ${hex(alias)}`);
  }
  if (hw && p.vtom === null) throw new PartitionError(`vtom: required for a hardware-isolated (${p.isolation}) partition`);
  if (!hw && p.vtom !== null) throw new PartitionError(`vtom ${hex(p.vtom)}: only a hardware-isolated (snp|tdx) partition has one`);
  if (p.vtom !== null) {
    const vtom = p.vtom;
    if (!isPowerOfTwo(vtom)) throw new PartitionError(`vtom ${hex(vtom)} is not a power of two`);
    if (vtom > 2 ** 51) throw new PartitionError(`vtom ${hex(vtom)} leaves no room for the shared alias below 2^52`);
    // At and above VTOM is the shared (host-visible) alias: private memory, VTL2's included, lives below.
    for (const [list, name] of [[p.ram, "ram"], [p.completeLayout, "completeLayout"], [p.sharedPool, "sharedPool"], [p.vtl2Ram, "vtl2Ram"]] as const) {
      checkBelow(list, name, vtom, `is above VTOM ${hex(vtom)}`);
    }
  }
  if (!hw && p.maxVtl >= 1 && p.vtl0AliasMap === null && p.arch === "x86_64") {
    throw new PartitionError(`maxVtl ${p.maxVtl}: cannot safely support VTL 1 without using the alias map (vtl0AliasMap is not set)`);
  }
  if (!isIsolated(p) && p.sharedPool.length > 0) {
    throw new PartitionError(`sharedPool[0] ${fmt(p.sharedPool[0]!)}: a non-isolated partition has no shared pool`);
  }
  if (!isIsolated(p) && p.accepted.length > 0) {
    // Nothing is accepted without isolation; a list here means the description was made for another partition.
    throw new PartitionError(`accepted[0] ${fmt(p.accepted[0]!)}: a non-isolated partition accepts no memory`);
  }

  const selfTest = field(raw, "selfTest");
  if (selfTest !== undefined && selfTest !== null) {
    if (!isObject(selfTest)) throw new PartitionError(`selfTest: expected {"gpa", "mapping"}, got ${show(selfTest)}`);
    rejectUnknownKeys(selfTest, SELF_TEST_KEYS, "selfTest: ");
    const mapping = field(selfTest, "mapping") ?? "vtl0";
    if (mapping !== "vtl0" && mapping !== "vtl1" && mapping !== "shared") throw new PartitionError(`selfTest.mapping: expected vtl0|vtl1|shared, got ${show(mapping)}`);
    if (mapping === "shared" && !hw) throw new PartitionError(`selfTest.mapping: only a hardware-isolated partition has a shared mapping`);
    if (mapping === "vtl1" && (hw || p.maxVtl < 1 || p.vtl0AliasMap === null)) throw new PartitionError(`selfTest.mapping: vtl1 needs a non-hardware-isolated partition with maxVtl >= 1 and an alias map`);
    const gpa = address(field(selfTest, "gpa"), "selfTest.gpa");
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
  let fd = -1;
  try {
    // Non-blocking open: a FIFO given as the path must not stall boot before the type check refuses it.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new PartitionError(`cannot read ${path}: not a regular file`);
    if (stat.size > MAX_DESCRIPTION_BYTES) throw new PartitionError(`cannot read ${path}: ${stat.size} bytes is more than the ${MAX_DESCRIPTION_BYTES} allowed`);
    text = readFileSync(fd, "utf8");
  } catch (error) {
    if (error instanceof PartitionError) throw error;
    throw new PartitionError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new PartitionError(`${path} is not JSON: ${describeError(error)}`);
  }
  try {
    return parsePartition(json);
  } catch (error) {
    if (error instanceof PartitionError) throw new PartitionError(`${path}: ${error.message}`);
    throw error;
  }
}
