// Property tests for the partition validator (fast-check, seeded so a failure reproduces):
// (a) random valid layouts are accepted; (b) random mutations of them and junk JSON end in
// acceptance or a PartitionError, nothing else; (c) the sort-and-sweep overlap/containment
// searches agree with the pairwise loops they replaced, first offender included.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { parsePartition, PartitionError } from "../../src/memory/partition";
import { firstOutside, firstOverlap, type Range } from "../../src/memory/ranges";

const SEED = 42;
const UNIT = 0x8000; // 32 KiB: aligned for every isolation type

type Json = Record<string, unknown>;
type Kind = "ram" | "pool" | "vtl2";

const layoutInput = fc.record({
  isolation: fc.constantFrom("none", "vbs", "snp", "tdx"),
  arch: fc.constantFrom("x86_64", "aarch64"),
  vpCount: fc.integer({ min: 1, max: 4096 }),
  maxVtl: fc.constantFrom(0, 1, 2),
  wantAlias: fc.boolean(),
  firstUnit: fc.nat({ max: 2 ** 20 }),
  segments: fc.array(
    fc.record({
      kind: fc.constantFrom<Kind>("ram", "ram", "pool", "vtl2"),
      gap: fc.nat({ max: 3 }),
      units: fc.integer({ min: 1, max: 64 }),
      vnode: fc.integer({ min: 0, max: 1023 }),
      acceptedUnits: fc.nat({ max: 64 }),
    }),
    { minLength: 1, maxLength: 30 },
  ),
  headroomBits: fc.nat({ max: 4 }),
  encoding: fc.constantFrom("hex", "decimal", "number"),
  withSize: fc.boolean(),
  completeLayout: fc.constantFrom("default", "explicit", "coalesced"),
  selfTestPick: fc.option(fc.nat(), { nil: undefined }),
});
type LayoutInput = typeof layoutInput extends fc.Arbitrary<infer T> ? T : never;

const encode = (value: number, encoding: string): number | string =>
  encoding === "hex" ? `0x${value.toString(16)}` : encoding === "decimal" ? String(value) : value;

/** A description that satisfies every rule of schema/partition.schema.json and the validator. */
function validLayout(input: LayoutInput): { json: Json; ramCount: number } {
  const isolated = input.isolation !== "none";
  const hw = input.isolation === "snp" || input.isolation === "tdx";
  const lists: Record<Kind, (Range & { vnode: number })[]> = { ram: [], pool: [], vtl2: [] };
  const accepted: Range[] = [];
  let cursor = input.firstUnit * UNIT;
  input.segments.forEach((segment, index) => {
    cursor += segment.gap * UNIT;
    const r = { start: cursor, end: cursor + segment.units * UNIT, vnode: segment.vnode };
    cursor = r.end;
    // Every layout needs RAM; without isolation there is no shared pool.
    const kind: Kind = index === 0 ? "ram" : segment.kind === "pool" && !isolated ? "vtl2" : segment.kind;
    lists[kind].push(r);
    if (kind === "ram" && isolated && segment.acceptedUnits > 0) accepted.push({ start: r.start, end: r.start + Math.min(segment.acceptedUnits, segment.units) * UNIT });
  });
  const top = 2 ** (Math.ceil(Math.log2(cursor)) + input.headroomBits);
  const needsAlias = !hw && (input.wantAlias || (input.maxVtl >= 1 && input.arch === "x86_64"));
  const range = (r: Range & { vnode?: number }) => {
    const out: Json = { start: encode(r.start, input.encoding) };
    if (input.withSize) out.size = encode(r.end - r.start, input.encoding);
    else out.end = encode(r.end, input.encoding);
    if (r.vnode !== undefined) out.vnode = r.vnode;
    return out;
  };
  const json: Json = {
    isolation: input.isolation,
    arch: input.arch,
    vpCount: input.vpCount,
    maxVtl: input.maxVtl,
    ram: lists.ram.map(range),
    vtl2Ram: lists.vtl2.map(range),
  };
  if (isolated) {
    json.sharedPool = lists.pool.map(range);
    json.accepted = accepted.map(({ start, end }) => range({ start, end }));
  }
  if (hw) json.vtom = encode(top, input.encoding);
  if (needsAlias) json.vtl0AliasMap = encode(Math.min(top, 2 ** 48), input.encoding);
  const union = [...lists.ram, ...lists.pool].sort((a, b) => a.start - b.start);
  if (input.completeLayout === "explicit") json.completeLayout = union.map(range);
  if (input.completeLayout === "coalesced") {
    const merged: Range[] = [];
    for (const r of union) {
      const last = merged[merged.length - 1];
      if (last && last.end === r.start) last.end = r.end;
      else merged.push({ start: r.start, end: r.end });
    }
    json.completeLayout = merged.map(range);
  }
  if (input.selfTestPick !== undefined) {
    const target = lists.ram[input.selfTestPick % lists.ram.length]!;
    const canVtl1 = !hw && input.maxVtl >= 1 && needsAlias;
    const mapping = canVtl1 && input.selfTestPick % 2 === 0 ? "vtl1" : "vtl0";
    json.selfTest = { gpa: encode(target.start + 64 * (input.selfTestPick % ((target.end - target.start) / 64)), input.encoding), mapping };
  }
  return { json, ramCount: lists.ram.length };
}

/** JSON text and back, as loadPartition sees it (own "__proto__" keys stay plain keys). */
const viaJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

/** Set an own property, even one named "__proto__" (plain assignment would change the prototype). */
function setOwn(object: Json, key: string, value: unknown): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(1e300, -1e300, -0, -1, 0.5, 2 ** 53, Number.MAX_SAFE_INTEGER, "NaN", "Infinity", "-1", "0x", "1e5", " 1", "0x1p3", "", "__proto__", "constructor", null, true, [], {}),
  fc.string({ maxLength: 12 }),
  fc.integer({ min: -(2 ** 53), max: 2 ** 53 }),
);
const keyNames = fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "start", "end", "size", "vnode", "gpa", "mapping", "ram", "vtom", "x");
const listNames = ["ram", "completeLayout", "vtl2Ram", "accepted", "sharedPool"];
const topNames = ["isolation", "arch", "vpCount", "maxVtl", "vtom", "vtl0AliasMap", "selfTest", "comment", "$schema", ...listNames];

type Mutation =
  | { op: "replaceTop"; key: number; value: unknown }
  | { op: "addKey"; where: "top" | "range" | "selfTest"; key: string; value: unknown; list: number; index: number }
  | { op: "replaceField"; list: number; index: number; field: string; value: unknown }
  | { op: "shift"; list: number; index: number; field: "start" | "end"; delta: number }
  | { op: "duplicate" | "swap" | "drop" | "replaceRange"; list: number; index: number; value: unknown };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("replaceTop" as const), key: fc.nat(), value: junk }),
  fc.record({ op: fc.constant("addKey" as const), where: fc.constantFrom("top" as const, "range" as const, "selfTest" as const), key: keyNames, value: junk, list: fc.nat(), index: fc.nat() }),
  fc.record({ op: fc.constant("replaceField" as const), list: fc.nat(), index: fc.nat(), field: fc.constantFrom("start", "end", "size", "vnode"), value: junk }),
  fc.record({ op: fc.constant("shift" as const), list: fc.nat(), index: fc.nat(), field: fc.constantFrom("start" as const, "end" as const), delta: fc.integer({ min: -3 * UNIT, max: 3 * UNIT }) }),
  fc.record({ op: fc.constantFrom("duplicate" as const, "swap" as const, "drop" as const, "replaceRange" as const), list: fc.nat(), index: fc.nat(), value: junk }),
);

/** Apply one mutation to a JSON description (in place); ranges are read back as numbers for shifts. */
function mutate(json: Json, m: Mutation): void {
  const listName = listNames[("list" in m ? m.list : 0) % listNames.length]!;
  const list = Array.isArray(json[listName]) ? (json[listName] as Json[]) : null;
  const at = list && list.length > 0 ? ("index" in m ? m.index : 0) % list.length : -1;
  switch (m.op) {
    case "replaceTop":
      setOwn(json, topNames[m.key % topNames.length]!, m.value);
      return;
    case "addKey":
      if (m.where === "top") setOwn(json, m.key, m.value);
      else if (m.where === "range" && list && at >= 0) setOwn(list[at]!, m.key, m.value);
      else if (m.where === "selfTest" && typeof json.selfTest === "object" && json.selfTest !== null) setOwn(json.selfTest as Json, m.key, m.value);
      return;
    case "replaceField":
      if (list && at >= 0) setOwn(list[at]!, m.field, m.value);
      return;
    case "shift":
      if (list && at >= 0 && list[at]![m.field] !== undefined) list[at]![m.field] = Number(list[at]![m.field]) + m.delta;
      return;
    case "duplicate":
      if (list && at >= 0) list.splice(at, 0, { ...list[at]! });
      return;
    case "swap":
      if (list && at >= 0) [list[0], list[at]] = [list[at]!, list[0]!];
      return;
    case "drop":
      if (list && at >= 0) list.splice(at, 1);
      return;
    case "replaceRange":
      if (list && at >= 0) list[at] = m.value as Json;
  }
}

/** Accepted, or rejected with one PartitionError line: anything else fails the property. */
function acceptedOrPartitionError(json: unknown): void {
  try {
    parsePartition(json);
  } catch (error) {
    if (!(error instanceof PartitionError)) throw error;
    if (error.message.includes("\n") || error.message.length > 300) throw new Error(`not one short line: ${error.message}`);
  }
}

describe("partition validator properties", () => {
  test("(a) random valid layouts are accepted, ranges unchanged", () => {
    fc.assert(
      fc.property(layoutInput, (input) => {
        const { json, ramCount } = validLayout(input);
        const p = parsePartition(viaJson(json));
        expect(p.ram.length).toBe(ramCount);
        expect(p.isolation).toBe(input.isolation as typeof p.isolation);
      }),
      { seed: SEED, numRuns: 400 },
    );
  });

  test("(b) mutations (overlap, misalignment, wrong types, junk, prototype keys) → accepted or PartitionError", () => {
    fc.assert(
      fc.property(layoutInput, fc.array(mutation, { minLength: 1, maxLength: 4 }), (input, mutations) => {
        const json = viaJson(validLayout(input).json) as Json;
        for (const m of mutations) mutate(json, m);
        acceptedOrPartitionError(json); // as built, with -0 and own "__proto__" keys intact
        acceptedOrPartitionError(viaJson(json)); // and as JSON.parse would hand it over
      }),
      { seed: SEED, numRuns: 1500 },
    );
  });

  test("(b) junk JSON of any shape → PartitionError", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => acceptedOrPartitionError(value)),
      { seed: SEED, numRuns: 500 },
    );
  });
});

/** The pairwise loops the validator used before the sweep. */
function referenceOverlap(a: readonly Range[], b: readonly Range[]): [number, number] | null {
  for (let i = 0; i < a.length; i++) {
    for (let j = 0; j < b.length; j++) if (a[i]!.start < b[j]!.end && b[j]!.start < a[i]!.end) return [i, j];
  }
  return null;
}
function referenceOutside(inner: readonly Range[], outer: readonly Range[]): number | null {
  const index = inner.findIndex((r) => !outer.some((o) => o.start <= r.start && r.end <= o.end));
  return index < 0 ? null : index;
}

describe("sweep agrees with the O(n²) reference", () => {
  // Small coordinates so overlaps, touching ends, empty and inverted ranges all turn up often.
  const anyRange = fc.record({ start: fc.integer({ min: 0, max: 40 }), end: fc.integer({ min: 0, max: 40 }) });
  const anyList = fc.array(anyRange, { maxLength: 12 });
  const sortedDisjoint = fc.array(fc.tuple(fc.nat({ max: 4 }), fc.integer({ min: 1, max: 6 })), { maxLength: 12 }).map((steps) => {
    let cursor = 0;
    return steps.map(([gap, length]) => ({ start: (cursor += gap), end: (cursor += length) }));
  });
  const lists = fc.oneof(anyList, sortedDisjoint);

  test("(c) firstOverlap: same first pair", () => {
    fc.assert(fc.property(lists, lists, (a, b) => expect(firstOverlap(a, b)).toEqual(referenceOverlap(a, b))), { seed: SEED, numRuns: 3000 });
  });
  test("(c) firstOutside: same first range", () => {
    fc.assert(fc.property(lists, lists, (inner, outer) => expect(firstOutside(inner, outer)).toEqual(referenceOutside(inner, outer))), { seed: SEED, numRuns: 3000 });
  });
});
