// The memory step's split across vCPU threads: the plan is the description's, the threads only
// share it out, so every job runs once whatever the vCPU count.
import { describe, expect, test } from "bun:test";
import { addStats, newOpStats, planAcceptJobs, planVtl2Protections } from "../../src/memory/ops";
import { dealShares } from "../../src/memory/parallel";

const r = (start: number, end: number) => ({ start, end });
const RAM = [r(0, 0x8000_0000), r(0x1_0000_0000, 0x10_8000_0000)];

describe("lanes over threads", () => {
  test("accept: 7 lanes for 8 VPs; every job exactly once in the shares, at any CPU count", () => {
    const { lanes, report } = planAcceptJobs(RAM, [r(0, 0x12_3000)], 8, true);
    expect(lanes).toHaveLength(7);
    const all = lanes.flat();
    expect(all.filter((job) => job.op === "grant-vtl0").map((job) => job.range)).toEqual([r(0, 0x12_3000)]);
    expect(all.filter((job) => job.op === "accept")).toHaveLength(report.alignedChunks + report.edgeRanges);
    for (const cpus of [1, 2, 3, 4, 16]) {
      const shares = dealShares(lanes, cpus);
      expect(shares).toHaveLength(Math.min(7, cpus));
      expect(shares.flat().sort((a, b) => a.range.start - b.range.start)).toEqual([...all].sort((a, b) => a.range.start - b.range.start));
    }
  });

  test("protections: empty lanes get no thread; one share at least", () => {
    const plan = planVtl2Protections([r(0x8000_0000, 0x8400_0000), r(0x10_8000_0000, 0x11_8000_0000)], 8);
    expect(plan.jobs.filter((lane) => lane.length > 0)).toHaveLength(3);
    expect(dealShares(plan.jobs, 4)).toHaveLength(3);
    expect(dealShares([[], []], 4)).toEqual([[]]);
  });

  test("addStats sums every counter", () => {
    const into = newOpStats();
    const a = { ...newOpStats(), calls: { "0x00d9": 3 }, ioctls: { pvalidate: 1 }, tdcallLeaves: { "6": 2 }, timeouts: 1, pagesAccepted: 10 };
    addStats(into, a);
    addStats(into, a);
    expect(into).toMatchObject({ calls: { "0x00d9": 6 }, ioctls: { pvalidate: 2 }, tdcallLeaves: { "6": 4 }, timeouts: 2, pagesAccepted: 20 });
  });
});
