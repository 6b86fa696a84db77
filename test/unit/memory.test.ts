// The memory step's pure parts: the partition validator, range math, hypercall batching/resume and
// failure reporting (against a fake hypervisor), the struct encoders, the TDX page walk, bitmaps.
import { describe, expect, test } from "bun:test";
import { acceptPagesCall, gpnListCall, gpnRange, HypercallError, type HypercallFn } from "../../src/memory/hv";
import {
  acceptInput, allowBitmap, control, encodeResult, gpnListInput, HvCall, HvStatus, hvcallArgument, parseResult, pvalidateArgument,
  readTdcall, rmpadjustArgument, sevRmpAdjust, tdcallArgument, TdxStatus,
} from "../../src/memory/hv-abi";
import { Bitmap, reservationAlign, summarize } from "../../src/memory/mapping";
import { newOpStats, planAcceptJobs, planVtl2Protections, runJobs, tdxWalk } from "../../src/memory/ops";
import type { MemoryOps } from "../../src/memory/devices";
import { parsePartition, PartitionError } from "../../src/memory/partition";
import { alignedSubranges, overlappingRanges, planAccept, spread, subtractRanges, type Range } from "../../src/memory/ranges";
import { bootLoaderState } from "../../src/memory/simulator";

const M = 0x10_0000;
const G = 0x4000_0000;
const r = (start: number, end: number): Range => ({ start, end });

const base = {
  isolation: "snp",
  vpCount: 4,
  vtom: "0x10000000000",
  ram: [{ start: "0x0", end: "0x1000000", vnode: 0 }, { start: "0x1000000", end: "0x1f38000", vnode: 1 }],
  sharedPool: [{ start: "0x2000000", end: "0x2300000" }],
  accepted: [{ start: "0x0", end: "0x123000" }],
  vtl2Ram: [{ start: "0x3000000", end: "0x3400000" }],
};
const reject = (patch: Record<string, unknown>) => {
  try {
    parsePartition({ ...base, ...patch });
  } catch (error) {
    expect(error).toBeInstanceOf(PartitionError);
    return (error as Error).message;
  }
  throw new Error("accepted an invalid description");
};

describe("partition validator", () => {
  test("accepts a good description and fills the complete layout", () => {
    const p = parsePartition(base);
    expect(p.isolation).toBe("snp");
    expect(p.vtom).toBe(2 ** 40);
    expect(p.completeLayout.map((x) => [x.start, x.end])).toEqual([[0, 0x1000000], [0x1000000, 0x1f38000], [0x2000000, 0x2300000]]);
    expect(p.ram[1]!.vnode).toBe(1);
  });
  test("overlapping ranges name both", () => {
    expect(reject({ ram: [{ start: "0x0", end: "0x200000" }, { start: "0x100000", end: "0x400000" }] })).toBe("ram[1] [0x100000, 0x400000) overlaps ram[0] [0x0, 0x200000)");
  });
  test("unsorted ranges", () => {
    expect(reject({ accepted: [{ start: "0x200000", end: "0x300000" }, { start: "0x0", end: "0x1000" }] })).toMatch(/^accepted\[1\] \[0x0, 0x1000\) is not sorted/);
  });
  test("not 4 KiB-aligned", () => {
    expect(reject({ vtl2Ram: [{ start: "0x3000800", end: "0x3400000" }] })).toBe("vtl2Ram[0] [0x3000800, 0x3400000) is not 4 KiB-aligned");
  });
  test("hardware isolation needs 32 KiB-aligned RAM (bitmaps)", () => {
    expect(reject({ ram: [{ start: "0x0", end: "0x1001000" }] })).toMatch(/^ram\[0\] \[0x0, 0x1001000\) is not 32 KiB-aligned/);
  });
  test("RAM above VTOM", () => {
    expect(reject({ vtom: "0x1000000" })).toBe("ram[1] [0x1000000, 0x1f38000) is above VTOM 0x1000000");
  });
  test("alias map with hardware isolation", () => {
    expect(reject({ vtl0AliasMap: "0x10000000000" })).toMatch(/^vtl0AliasMap 0x10000000000: a hardware-isolated \(snp\) partition has no alias map/);
  });
  test("VTL1 without the alias map on x86, allowed on aarch64 and with the alias", () => {
    const none = { ...base, isolation: "none", vtom: undefined, sharedPool: [], accepted: [], maxVtl: 1 };
    expect(() => parsePartition(none)).toThrow("maxVtl 1: cannot safely support VTL 1 without using the alias map");
    expect(parsePartition({ ...none, arch: "aarch64" }).maxVtl).toBe(1);
    expect(parsePartition({ ...none, vtl0AliasMap: "0x10000000000" }).vtl0AliasMap).toBe(2 ** 40);
  });
  test("VTOM presence follows hardware isolation; shared pool overlap; unknown keys", () => {
    expect(reject({ vtom: undefined })).toBe("vtom: required for a hardware-isolated (snp) partition");
    expect(reject({ isolation: "vbs" })).toMatch(/^vtom 0x10000000000: only a hardware-isolated/);
    expect(reject({ sharedPool: [{ start: "0x1f00000", end: "0x2000000" }] })).toBe("sharedPool[0] [0x1f00000, 0x2000000) overlaps ram[1] [0x1000000, 0x1f38000)");
    expect(reject({ ram2: [] })).toBe('unknown key "ram2"');
    expect(reject({ isolation: "sev" })).toMatch(/^isolation: expected none\|vbs\|snp\|tdx/);
  });
});

describe("range math", () => {
  test("subtract and overlap", () => {
    const ram = [r(0, 16 * M), r(32 * M, 48 * M)];
    const acc = [r(0, 0x123000), r(40 * M, 50 * M)];
    expect(subtractRanges(ram, acc)).toEqual([r(0x123000, 16 * M), r(32 * M, 40 * M)]);
    expect(overlappingRanges(ram, acc)).toEqual([r(0, 0x123000), r(40 * M, 48 * M)]);
  });
  test("aligned subranges cut at 2M/1G boundaries and at most 2 GiB each", () => {
    expect(alignedSubranges(r(0x1000, 5 * M))).toEqual([r(0x1000, 2 * M), r(2 * M, 4 * M), r(4 * M, 5 * M)]);
    const units = alignedSubranges(r(4 * G - 2 * M, 9 * G), 2 * G);
    expect(units[0]).toEqual(r(4 * G - 2 * M, 4 * G));
    expect(units.every((u) => u.end - u.start <= 2 * G)).toBe(true);
    expect(units.map((u) => [u.start / G, u.end / G])).toEqual([[4 - 2 / 1024, 4], [4, 6], [6, 8], [8, 9]]);
  });
  test("accept plan: 2 MiB chunks spread over VPs − 1, then the edges", () => {
    const plan = planAccept([r(0x123000, 0x1000000), r(0x1000000, 0x1f38000)], 3);
    // [0x200000, 0x1000000) = 7 × 2M over 2 workers → 4 × 2M chunks; [0x1000000, 0x1e00000) = 7 × 2M → 8M chunks
    expect(plan.aligned).toEqual([r(0x200000, 0xa00000), r(0xa00000, 0x1000000), r(0x1000000, 0x1800000), r(0x1800000, 0x1e00000)]);
    expect(plan.edges).toEqual([r(0x123000, 0x200000), r(0x1e00000, 0x1f38000)]);
    expect(planAccept([r(0x1000, 0x3000)], 8)).toEqual({ aligned: [], edges: [r(0x1000, 0x3000)] });
    expect(spread([1, 2, 3, 4, 5], 2)).toEqual([[1, 3, 5], [2, 4]]);
  });
  test("VTL2 protection plan: ≤ 2 GiB units round-robin over VPs", () => {
    const plan = planVtl2Protections([r(0x3000000, 0x3400000), r(4 * G, 7 * G)], 2);
    expect(plan.units.map((u) => [u.start, u.end])).toEqual([[0x3000000, 0x3400000], [4 * G, 6 * G], [6 * G, 7 * G]]);
    expect(plan.lanes.map((lane) => lane.length)).toEqual([2, 1]);
  });
});

/** A fake hypervisor: records calls; `fail` / `timeoutAfter` like the simulator's knobs. */
function fakeHv(options: { failGpn?: number; timeoutAfter?: number; status?: number } = {}) {
  const calls: { code: number; count: number; start: number; gpns: number[] }[] = [];
  const applied: number[] = [];
  const fn: HypercallFn = (controlWord, input) => {
    const code = Number(controlWord & 0xffffn);
    const count = Number((controlWord >> 32n) & 0xfffn);
    const start = Number((controlWord >> 48n) & 0xfffn);
    const view = new DataView(input.buffer);
    const gpnAt = (i: number) => (code === HvCall.AcceptGpaPages ? Number(view.getBigUint64(16, true)) + i : Number(view.getBigUint64(16 + 8 * i, true)));
    calls.push({ code, count, start, gpns: Array.from({ length: count }, (_, i) => gpnAt(i)) });
    let done = 0;
    for (let i = start; i < count; i++) {
      if (options.timeoutAfter && done === options.timeoutAfter) return encodeResult(HvStatus.Timeout, i);
      if (gpnAt(i) === options.failGpn) return encodeResult(options.status ?? HvStatus.AccessDenied, i);
      applied.push(gpnAt(i));
      done++;
    }
    return encodeResult(HvStatus.Success, count);
  };
  return { fn, calls, applied };
}

describe("hypercall batching", () => {
  test("510 GPNs per call: ceil(pages / 510) calls for one run", () => {
    const hv = fakeHv();
    gpnListCall(hv.fn, HvCall.ModifySparseGpaPageHostVisibility, 3, 0, gpnRange(0x2000000, 0x2300000), "vis");
    expect(hv.calls.map((c) => c.count)).toEqual([510, 258]);
    expect(hv.applied.length).toBe(768);
    expect(new Set(hv.applied).size).toBe(768);
  });
  test("Timeout resumes from elements processed; every GPN applied once", () => {
    const hv = fakeHv({ timeoutAfter: 100 });
    const stats = newOpStats();
    gpnListCall(hv.fn, HvCall.ModifySparseGpaPageHostVisibility, 3, 0, gpnRange(0, 768 * 4096), "vis", stats);
    // 510 → 6 calls (5 timeouts), 258 → 3 calls (2 timeouts)
    expect(hv.calls.map((c) => c.start)).toEqual([0, 100, 200, 300, 400, 500, 0, 100, 200]);
    expect(stats.timeouts).toBe(7);
    expect(stats.calls["0x00db"]).toBe(9);
    expect(hv.applied).toEqual(Array.from({ length: 768 }, (_, i) => i));
  });
  test("a failure in the second batch names the right GPN (batch offset + processed)", () => {
    const failGpn = 0x2000 + 510 + 7;
    const hv = fakeHv({ failGpn, timeoutAfter: 3 });
    let error: unknown;
    try {
      gpnListCall(hv.fn, HvCall.ModifySparseGpaPageHostVisibility, 3, 0, gpnRange(0x2000000, 0x2300000), "vis");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HypercallError);
    expect((error as HypercallError).gpn).toBe(failGpn);
    expect((error as HypercallError).index).toBe(517);
    expect((error as Error).message).toContain("AccessDenied(0x6) at GPN 0x2205");
  });
  test("AcceptGpaPages: 509 pages per count-only call, failing page reported", () => {
    const hv = fakeHv();
    acceptPagesCall(hv.fn, 0, 1024 * 4096);
    expect(hv.calls.map((c) => [c.count, c.gpns[0]])).toEqual([[509, 0], [509, 509], [6, 1018]]);
    const bad = fakeHv({ failGpn: 600 });
    expect(() => acceptPagesCall(bad.fn, 0, 1024 * 4096)).toThrow("at GPN 0x258 (element 600)");
  });
});

describe("struct encoders", () => {
  test("control and result words", () => {
    expect(control(0xdb, 510, 100)).toBe(0xdbn | (510n << 32n) | (100n << 48n));
    expect(parseResult(0x0000_0065_0000_0078n)).toEqual({ status: 0x78, processed: 0x65 });
  });
  test("GPN list input: header then GPNs", () => {
    const input = gpnListInput(HvCall.ModifyVtlProtectionMask, 0, 0x00, 2, (i) => 0x3000 + i);
    const view = new DataView(input.buffer);
    expect(input.byteLength).toBe(32);
    expect(view.getBigUint64(0, true)).toBe(0xffff_ffff_ffff_ffffn);
    expect(view.getUint32(8, true)).toBe(0);
    expect(view.getUint8(12)).toBe(0);
    expect(view.getBigUint64(24, true)).toBe(0x3001n);
    const vis = new DataView(gpnListInput(HvCall.ModifySparseGpaPageHostVisibility, 3, 0, 1, () => 7).buffer);
    expect(vis.getUint32(8, true)).toBe(3);
  });
  test("accept, hvcall, pvalidate, rmpadjust, tdcall layouts", () => {
    const accept = new DataView(acceptInput(0x123).buffer);
    expect([accept.getUint32(8, true), accept.getBigUint64(16, true)]).toEqual([1, 0x123n]);
    const call = new DataView(hvcallArgument(control(0xd9, 3), new Uint8Array(24), 0x7000).buffer);
    expect([call.getBigUint64(8, true), call.getBigUint64(16, true), call.byteLength]).toEqual([24n, 0x7000n, 48]);
    const pv = pvalidateArgument(0x200, 512, true);
    expect([pv.byteLength, pv[16], pv[17], pv[18]]).toEqual([20, 1, 0, 0]);
    const rmp = new DataView(rmpadjustArgument(0x200, 512, 0xf02).buffer);
    expect([rmp.byteLength, rmp.getBigUint64(16, true)]).toEqual([32, 0xf02n]);
    expect(sevRmpAdjust(0, 0xf)).toBe(0xf02);
    expect(sevRmpAdjust(1, 0)).toBe(0x1);
    const td = tdcallArgument({ rax: 6n, rcx: 0x200001n, rdx: 0n, r8: 0n, r9: 0n });
    expect(td.byteLength).toBe(56);
    expect(readTdcall(td).rcx).toBe(0x200001n);
    const bits = new Uint8Array(allowBitmap([0x0c, 0xd9, 0xdb]).buffer);
    expect(bits.length).toBe(32);
    expect([bits[1], bits[27]]).toEqual([0x10, 0x0a]);
    expect(bits.reduce((sum, byte) => sum + byte, 0)).toBe(0x10 + 0x0a);
  });
});

describe("acceptors against fakes", () => {
  const ops = (overrides: Partial<MemoryOps>): MemoryOps => ({
    hypercall: () => encodeResult(0, 0),
    pvalidate: () => 0,
    rmpadjust: () => 0,
    tdcall: (regs) => ({ ...regs, r10: 0n, r11: 0n, rax: 0n }),
    ...overrides,
  });
  test("TDX: 2M accept, PAGE_SIZE_MISMATCH falls back to 4K; ATTR.WR follows each ACCEPT", () => {
    const log: string[] = [];
    const fake = ops({
      tdcall: (regs) => {
        const level = Number(regs.rcx & 7n);
        log.push(`${regs.rax}:${level}`);
        const mismatch = regs.rax === 6n && level === 1 && regs.rcx >> 12n === 0x400n;
        return { ...regs, r10: 0n, r11: 0n, rax: mismatch ? TdxStatus.PAGE_SIZE_MISMATCH << 32n : 0n };
      },
    });
    const stats = newOpStats();
    tdxWalk(fake, r(0x200000, 0x600000), stats, true);
    expect(log.slice(0, 3)).toEqual(["6:1", "24:1", "6:1"]);
    expect(log.slice(3, 5)).toEqual(["6:0", "24:0"]);
    expect(log.length).toBe(3 + 2 * 512);
  });
  test("SNP: boot-loader-accepted RAM gets VTL0 access; the rest is PVALIDATEd then RMPADJUSTed once each", () => {
    const pv: Range[] = [];
    const adj: Range[] = [];
    const fake = ops({
      pvalidate: (pfn, count) => (pv.push(r(pfn * 4096, (pfn + count) * 4096)), 0),
      rmpadjust: (pfn, count, value) => (expect(value).toBe(0xf02), adj.push(r(pfn * 4096, (pfn + count) * 4096)), 0),
    });
    const p = parsePartition(base);
    const { report, lanes } = planAcceptJobs(p.ram, p.accepted, p.vpCount, true);
    for (const lane of lanes) runJobs("snp", true, fake, lane, newOpStats());
    const pages = (list: Range[]) => list.reduce((sum, x) => sum + (x.end - x.start) / 4096, 0);
    expect(pages(pv)).toBe((0x1f38000 - 0x123000) / 4096);
    expect(pages(adj)).toBe(0x1f38000 / 4096);
    expect(report.validated).toEqual([r(0x123000, 0x1000000), r(0x1000000, 0x1f38000)]);
    expect(bootLoaderState(p)).toEqual(["0x0 291 acc=1 prot0=0 prot1=0"]);
  });
});

describe("bitmaps and reservations", () => {
  test("ragged updates and run summaries", () => {
    const bitmap = new Bitmap(1024, new Uint8Array(128));
    bitmap.update(r(3 * 4096, 21 * 4096), true);
    expect(bitmap.get(2)).toBe(false);
    expect(bitmap.get(3)).toBe(true);
    expect(bitmap.get(20)).toBe(true);
    expect(bitmap.get(21)).toBe(false);
    bitmap.update(r(8 * 4096, 16 * 4096), false);
    expect(summarize(bitmap, [r(0, 1024 * 4096)])).toEqual({ pagesSet: 10, runs: ["[0x3000, 0x8000)", "[0x10000, 0x15000)"], truncated: false });
  });
  test("reservation alignment: 4K below 2M, 2M below 1G, else 1G", () => {
    expect([reservationAlign(M), reservationAlign(64 * M), reservationAlign(64 * G)]).toEqual([4096, 2 * M, G]);
  });
});
