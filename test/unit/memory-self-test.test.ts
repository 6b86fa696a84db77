// The memory self-test against a temporary file standing in for lower-VTL memory: the marker lands
// at the GPA's file offset, and a page the kernel cannot reach is one clear error (EFAULT), never a
// SIGBUS in the process.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildMapping, reserve, type GuestMapping } from "../../src/memory/mapping";
import { parsePartition } from "../../src/memory/partition";
import { MARKER_BYTES, runSelfTest, selfTestMarker } from "../../src/memory/self-test";
import * as sys from "../../src/sys";

const RAM_END = 0x10_0000;
const description = (isolation: "none" | "snp", selfTest: Record<string, unknown>) => ({
  isolation,
  vpCount: 1,
  ...(isolation === "snp" ? { vtom: "0x10000000000" } : {}),
  ram: [{ start: "0x0", end: `0x${RAM_END.toString(16)}` }],
  vtl2Ram: [{ start: "0x200000", end: "0x400000" }],
  selfTest,
});

let dir: string;
let path: string;
let fd: number;
const mappings: GuestMapping[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "burrow-memory-self-test-"));
  path = join(dir, "memory");
  writeFileSync(path, new Uint8Array(RAM_END));
  fd = sys.open(path, sys.OpenFlags.RDWR | sys.OpenFlags.CLOEXEC);
});
afterAll(() => {
  for (const m of mappings) sys.munmap(m.reservation.base, m.reservation.size);
  sys.close(fd);
  rmSync(dir, { recursive: true, force: true });
});

const mapRam = (kind: GuestMapping["kind"]): GuestMapping => {
  const mapping = buildMapping(fd, kind, [{ start: 0, end: RAM_END }], 0, false, 0);
  mappings.push(mapping);
  return mapping;
};

describe("runSelfTest", () => {
  test("writes the marker at the GPA through the mapping that covers it and reads it back", () => {
    const partition = parsePartition(description("none", { gpa: "0x1040" }));
    const mapping = mapRam("vtl0");
    const result = runSelfTest(partition, [mapping]);
    const marker = selfTestMarker("none", 0x1040);
    expect(marker.byteLength).toBe(MARKER_BYTES);
    expect(result).toEqual({ gpa: "0x1040", mapping: "vtl0", va: `0x${(mapping.reservation.base + 0x1040).toString(16)}`, marker: marker.toString("ascii"), registrations: null });
    expect(readFileSync(path).toString("latin1", 0x1040, 0x1040 + MARKER_BYTES)).toBe(marker.toString("latin1"));
  });

  test("hardware isolation: vtl0 means the private mapping", () => {
    const partition = parsePartition(description("snp", { gpa: "0x2000", mapping: "vtl0" }));
    expect(() => runSelfTest(partition, [])).toThrow("self-test: no vtl0-private mapping");
    expect(runSelfTest(partition, [mapRam("vtl0-private")]).mapping).toBe("vtl0-private");
    expect(readFileSync(path).toString("latin1", 0x2000, 0x2000 + MARKER_BYTES)).toBe(selfTestMarker("snp", 0x2000).toString("latin1"));
  });

  test("a page the kernel cannot reach: EFAULT in one message, not SIGBUS", () => {
    const partition = parsePartition(description("none", { gpa: "0x3000" }));
    // Reserved (PROT_NONE) but never mapped: what a failed mapping would leave behind.
    const reservation = reserve(RAM_END);
    const unmapped: GuestMapping = { kind: "vtl0", reservation, fileOffsetBase: 0n, shared: false, dmaBase: 0, ranges: [{ start: 0, end: RAM_END }], bitmaps: {}, registrar: null };
    mappings.push(unmapped);
    expect(() => runSelfTest(partition, [unmapped])).toThrow(/^self-test: writing the marker at GPA 0x3000 through the vtl0 mapping failed: read\(.*EFAULT/);
  });
});

describe("runSelfTest with a registrar", () => {
  test("registers the marker's chunk before the kernel touches its VA", async () => {
    const { MemoryRegistrar } = await import("../../src/memory/registrar");
    const partition = parsePartition(description("none", { gpa: "0x2040" }));
    const mapping = mapRam("vtl0");
    const calls: number[][] = [];
    mapping.registrar = new MemoryRegistrar((s, l) => calls.push([s, l]), mapping.ranges, 0, false);
    expect(runSelfTest(partition, [mapping]).registrations).toBe(1);
    expect(calls).toEqual([[0, RAM_END / 4096]]);
  });
});
