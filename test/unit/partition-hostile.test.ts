// Partition descriptions from a hostile or careless host: each range a description can get
// wrong refused by name, and JSON that must end in one PartitionError line, never a TypeError, a RangeError or a hang.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadPartition, MAX_VNODES, parsePartition, PartitionError } from "../../src/memory/partition";

const FIXTURES = resolve(import.meta.dir, "../fixtures/partitions");
const work = mkdtempSync(join(tmpdir(), "burrow-partition-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const snp = JSON.parse(readFileSync(join(FIXTURES, "snp.json"), "utf8")) as Record<string, unknown>;
const none = JSON.parse(readFileSync(join(FIXTURES, "none.json"), "utf8")) as Record<string, unknown>;

/** The PartitionError message for `json`; fails the test on acceptance or on any other exception. */
function rejection(json: unknown): string {
  try {
    parsePartition(json);
  } catch (error) {
    if (!(error instanceof PartitionError)) throw error;
    expect(error.message).not.toContain("\n");
    expect(error.message.length).toBeLessThan(300);
    return error.message;
  }
  throw new Error("accepted an invalid description");
}
const ram = (entry: Record<string, unknown>) => ({ ...snp, ram: [entry], completeLayout: undefined, sharedPool: [], accepted: [], selfTest: undefined });

describe("rejections of a hostile or careless description", () => {
  test("every fixture but invalid.json is still accepted; invalid.json keeps its message", () => {
    for (const name of readdirSync(FIXTURES).filter((n) => n.endsWith(".json"))) {
      if (name === "invalid.json") expect(() => loadPartition(join(FIXTURES, name))).toThrow(/invalid\.json: ram\[1\] \[0xff0000, 0x1f38000\) overlaps ram\[0\] \[0x0, 0x1000000\)$/);
      else expect(loadPartition(join(FIXTURES, name)).ram.length).toBeGreaterThan(0);
    }
  });
  test("vtl2Ram at or above VTOM", () => {
    expect(rejection({ ...snp, vtl2Ram: [{ start: "0xffffc00000", end: "0x10000400000" }] })).toBe("vtl2Ram[0] [0xffffc00000, 0x10000400000) is above VTOM 0x10000000000");
    expect(rejection({ ...snp, vtl2Ram: [{ start: "0x10000000000", size: "0x1000" }] })).toMatch(/^vtl2Ram\[0\] .* is above VTOM/);
  });
  test("vtl2Ram at or above the alias-map bit", () => {
    expect(rejection({ ...none, vtl2Ram: [{ start: "0x10000000000", end: "0x10000400000" }] })).toBe("vtl2Ram[0] [0x10000000000, 0x10000400000) reaches the VTL0 alias map at 0x10000000000");
    expect(rejection({ ...none, vtl2Ram: [{ start: "0x3000000", end: "0x3400000" }, { start: "0xfffff00000", end: "0x10000100000" }] })).toMatch(/^vtl2Ram\[1\] .* reaches the VTL0 alias map/);
  });
  test("accepted ranges without isolation", () => {
    expect(rejection({ ...none, accepted: [{ start: "0x0", end: "0x123000" }] })).toBe("accepted[0] [0x0, 0x123000): a non-isolated partition accepts no memory");
    expect(parsePartition({ ...none, accepted: [] }).accepted).toEqual([]);
  });
  test("selfTest: unknown keys and non-objects", () => {
    expect(rejection({ ...snp, selfTest: { gpa: "0x1800000", mapping: "vtl0", marker: 1 } })).toBe('selfTest: unknown key "marker"');
    expect(rejection({ ...snp, selfTest: "0x1800000" })).toBe('selfTest: expected {"gpa", "mapping"}, got "0x1800000"');
    expect(rejection({ ...snp, selfTest: [] })).toBe('selfTest: expected {"gpa", "mapping"}, got an array of 0');
    expect(parsePartition({ ...snp, selfTest: null }).selfTest).toBeNull();
  });
  test(`vnode: a safe integer from 0 to ${MAX_VNODES - 1}`, () => {
    for (const vnode of [1e300, MAX_VNODES, -1, 1.5, "1", null, true, Number.MAX_SAFE_INTEGER + 2]) {
      expect(rejection(ram({ start: 0, end: 0x8000, vnode }))).toMatch(/^ram\[0\]\.vnode: expected an integer from 0 to 1023, got /);
    }
    expect(parsePartition(ram({ start: 0, end: 0x8000, vnode: MAX_VNODES - 1 })).ram[0]!.vnode).toBe(1023);
    expect(Object.is(parsePartition(ram({ start: 0, end: 0x8000, vnode: -0 })).ram[0]!.vnode, 0)).toBe(true);
  });
});

describe("hostile JSON: a PartitionError, never another exception", () => {
  test("numbers: 1e300, -0, Infinity from 1E400, non-integers, start + size beyond 2^53", () => {
    expect(rejection(ram({ start: 1e300, end: 0x8000 }))).toBe("ram[0].start: 1e+300 is not a non-negative integer below 2^53");
    expect(rejection(JSON.parse(`{"isolation":"none","vpCount":1,"ram":[{"start":0,"end":1E400}]}`))).toMatch(/^ram\[0\]\.end: Infinity is not/);
    expect(rejection(ram({ start: 0.5, end: 0x8000 }))).toMatch(/^ram\[0\]\.start: 0\.5 is not/);
    expect(rejection(ram({ start: "0x1fffffffffffff", size: "0x1fffffffffffff" }))).toBe("ram[0]: start + size is not below 2^53");
    expect(rejection({ ...snp, vpCount: 1e300 })).toBe("vpCount: expected an integer from 1 to 4096, got 1e+300");
    const p = parsePartition(ram({ start: -0, end: 0x8000 }));
    expect(Object.is(p.ram[0]!.start, 0)).toBe(true);
  });
  test("NaN-ish and malformed address strings", () => {
    for (const text of ["NaN", "Infinity", "-1", "0x", "1e5", " 1", "1 ", "0x1p3", "0b101", "+1", "", "0x-1", "١٢"]) {
      expect(rejection(ram({ start: text, end: 0x8000 }))).toMatch(/^ram\[0\]\.start: expected an address/);
    }
    expect(rejection(ram({ start: "0x" + "f".repeat(400), end: 0x8000 }))).toMatch(/^ram\[0\]\.start: "0xffff.*…" \(402 characters\) is not a non-negative integer/);
  });
  test("wrong types anywhere", () => {
    for (const junk of [null, 5, "x", [], true]) expect(rejection(junk)).toBe("expected a JSON object");
    expect(rejection({ ...snp, ram: {} })).toBe("ram: expected an array of ranges, got an object");
    expect(rejection({ ...snp, ram: [null] })).toMatch(/^ram\[0\]: expected \{"start", "end", "vnode"\}, got null/);
    expect(rejection({ ...snp, accepted: [[0, 4096]] })).toMatch(/^accepted\[0\]: expected \{"start", "end"\}, got an array of 2/);
    expect(rejection({ ...snp, isolation: { snp: true } })).toBe("isolation: expected none|vbs|snp|tdx, got an object");
    expect(rejection({ ...snp, arch: null })).toBe("arch: expected x86_64|aarch64, got null");
    expect(rejection({ ...snp, maxVtl: "1" })).toBe('maxVtl: expected 0, 1 or 2, got "1"');
    expect(rejection({ ...snp, comment: ["a"] })).toBe("comment: expected a string, got an array of 1");
    expect(rejection({ ...snp, vtom: { value: 1 } })).toMatch(/^vtom: expected an address .*got an object$/);
  });
  test("huge arrays and strings stop at the first bad element, quickly", () => {
    const started = performance.now();
    expect(rejection({ ...snp, ram: new Array(1_000_000).fill(0) })).toMatch(/^ram\[0\]: expected/);
    expect(rejection({ ...snp, ram: [{ start: 0, end: 0x8000 }, , { start: 0x8000, end: 0x10000 }] })).toMatch(/^ram\[1\]: expected .*got undefined$/);
    expect(rejection({ ...snp, isolation: "s".repeat(10_000_000) })).toMatch(/^isolation: expected none\|vbs\|snp\|tdx, got "s{40}…" \(10000000 characters\)$/);
    expect(performance.now() - started).toBeLessThan(2000);
  });
  test("deeply nested junk, and cycles (not JSON, but no stack overflow either)", () => {
    let deep: unknown = 0;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(rejection({ ...snp, isolation: deep })).toBe("isolation: expected none|vbs|snp|tdx, got an array of 1");
    expect(rejection({ ...snp, selfTest: { gpa: deep } })).toMatch(/^selfTest\.gpa: expected an address .*got an array of 1$/);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(rejection({ ...snp, vtom: cycle })).toMatch(/got an object$/);
    const path = join(work, "deep.json");
    writeFileSync(path, "[".repeat(1_000_000) + "]".repeat(1_000_000));
    expect(() => loadPartition(path)).toThrow(PartitionError);
    writeFileSync(path, `{"isolation":${"[".repeat(100_000)}${"]".repeat(100_000)}}`);
    expect(() => loadPartition(path)).toThrow(PartitionError);
  });
  test("prototype names as keys are unknown keys, and missing keys are never read from the prototype", () => {
    const text = JSON.stringify(snp).slice(0, -1);
    expect(rejection(JSON.parse(`${text},"__proto__":{"isolation":"none"}}`))).toBe('unknown key "__proto__"');
    expect(rejection(JSON.parse(`${text},"constructor":1}`))).toBe('unknown key "constructor"');
    expect(rejection(JSON.parse(`${text},"selfTest":{"gpa":"0x1800000","__proto__":{}}}`))).toBe('selfTest: unknown key "__proto__"');
    for (const key of ["constructor", "toString", "hasOwnProperty", "__proto__"]) {
      expect(rejection(JSON.parse(`{"isolation":"none","vpCount":1,"ram":[{"start":0,"end":4096,"${key}":1}]}`))).toBe(`ram[0]: unknown key "${key}"`);
    }
    // An inherited "isolation" (a polluted prototype) does not count as given.
    const inherited = Object.assign(Object.create({ isolation: "none", vpCount: 1 }), { ram: [{ start: 0, end: 4096 }] });
    expect(rejection(inherited)).toBe("isolation: expected none|vbs|snp|tdx, got undefined");
    const bare = Object.assign(Object.create(null), { isolation: "none", vpCount: 1, ram: [{ start: 0, end: 4096 }] });
    expect(parsePartition(bare).ram).toEqual([{ start: 0, end: 4096, vnode: 0 }]);
  });
  test("loadPartition refuses what is not a regular file without reading it", () => {
    expect(() => loadPartition("/dev/zero")).toThrow("cannot read /dev/zero: not a regular file");
    expect(() => loadPartition(work)).toThrow(`cannot read ${work}: not a regular file`);
    const fifo = join(work, "fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    expect(() => loadPartition(fifo)).toThrow(`cannot read ${fifo}: not a regular file`);
    expect(() => loadPartition(join(work, "absent"))).toThrow(`cannot read ${join(work, "absent")}: ENOENT`);
  });
});
