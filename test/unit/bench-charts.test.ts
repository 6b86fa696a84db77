// The bench pictures (bench/charts/): the wall-time comparison and the boot timeline are pure
// functions of their data; what a reader needs of them is checked on the geometry they lay out —
// labels clear of bars and whiskers, every text inside the picture, one colour per kind of init,
// one bar per boot step — and on the saved results they are drawn from.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { inside, overlaps, ticks, type Box } from "../../bench/charts/svg";
import { layoutTimeline, type BootTimeline, type ReportStep } from "../../bench/charts/timeline";
import { layoutWall, SERIES, seriesFor, type WallRow } from "../../bench/charts/wall";
import { bootFromConsole, median, parseResultsMarkdown, wallRowsFromData } from "../../bench/results-data";

const PROPERTY = { seed: 0x706963, numRuns: 300 } as const;
const HEADING = { title: "Launch to guest agent", subtitle: "a subtitle long enough to need more than one line: ".repeat(4) };

function picture(layout: { width: number; height: number }): Box {
  return { x: 0, y: 0, width: layout.width, height: layout.height };
}

/** A whisker's drawn extent: its line's stroke reaches a little past the box. */
function grown(box: Box, by = 1): Box {
  return { x: box.x - by, y: box.y - by, width: box.width + 2 * by, height: box.height + 2 * by };
}

// bench/results/latest.md's rows (2026-11-29), the ones the committed picture shows.
const LATEST: WallRow[] = [
  ["debian", "burrow", 6839, 6769, 6934], ["debian", "busybox", 5429, 5326, 5471], ["debian", "restore", 783, 775, 808],
  ["debian", "bun-hello", 6018, 5814, 6109], ["micro", "burrow", 2320, 2139, 2690], ["micro", "busybox", 980, 924, 992],
  ["micro", "burrow-disk", 1744, 1644, 1783], ["micro", "restore", 367, 350, 413], ["micro", "bun-hello", 2055, 2030, 2218],
  ["micro", "bun-hello-disk", 1248, 1219, 1306],
].map(([kernel, init, medianMs, minMs, maxMs]) => ({ kernel: kernel as string, init: init as string, medianMs: medianMs as number, minMs: minMs as number, maxMs: maxMs as number, runs: 5, failures: 0 }));

function checkWall(rows: WallRow[]): void {
  const layout = layoutWall(rows, HEADING);
  const marks = layout.rows.flatMap((row) => [row.bar, ...(row.whisker ? [grown(row.whisker)] : [])]);
  for (const row of layout.rows) {
    // No bar or whisker (of any row) runs through a value label or a name.
    for (const mark of marks) {
      if (mark.width > 0) expect(overlaps(row.label, mark)).toBe(false);
      if (mark.width > 0) expect(overlaps(row.name, mark)).toBe(false);
    }
    // The label starts after whichever of bar and whisker ends later.
    const end = Math.max(row.bar.x + row.bar.width, row.whisker ? row.whisker.x + row.whisker.width : 0);
    expect(row.label.x).toBeGreaterThan(end);
    // Bars and whiskers stay on the axis.
    expect(row.bar.x + row.bar.width).toBeLessThanOrEqual(layout.plot.x + layout.plot.width + 0.01);
    if (row.whisker) expect(row.whisker.x).toBeGreaterThanOrEqual(layout.plot.x - 0.01);
  }
  // Every text fits in the picture; no two texts overlap.
  for (const box of layout.texts) expect(inside(box, picture(layout))).toBe(true);
  for (const [index, a] of layout.texts.entries()) for (const b of layout.texts.slice(index + 1)) expect(overlaps(a, b)).toBe(false);
}

describe("wall-time picture", () => {
  test("the saved results: labels clear of every bar and whisker, texts inside the picture, one row per bench row", () => {
    checkWall(LATEST);
    expect(layoutWall(LATEST, HEADING).rows).toHaveLength(LATEST.length);
  });

  test("every kind of init has its own colour, the same in every kernel's group, Bun's floor not busybox's", () => {
    const colours = SERIES.map((series) => series.colour.toLowerCase());
    expect(new Set(colours).size).toBe(colours.length);
    const layout = layoutWall(LATEST, HEADING);
    for (const init of new Set(LATEST.map((row) => row.init))) {
      expect(new Set(layout.rows.filter((row) => row.row.init === init).map((row) => row.series.colour)).size).toBe(1);
    }
    const colourOf = (init: string) => layout.rows.find((row) => row.row.init === init)!.series.colour;
    expect(colourOf("bun-hello")).not.toBe(colourOf("busybox"));
    expect(colourOf("bun-hello-disk")).not.toBe(colourOf("bun-hello"));
    expect(colourOf("burrow-disk")).not.toBe(colourOf("burrow"));
    expect(colourOf("restore")).not.toBe(colourOf("burrow"));
    // Inits the table does not know still get colours of their own.
    const extra = seriesFor([...LATEST, { ...LATEST[0]!, init: "other" }, { ...LATEST[0]!, init: "another" }]);
    expect(new Set(extra.map((series) => series.colour)).size).toBe(extra.length);
  });

  test("a row no run finished says so, without a bar", () => {
    const rows = [...LATEST, { kernel: "micro", init: "restore", medianMs: NaN, minMs: NaN, maxMs: NaN, runs: 0, failures: 5 }].filter((row, index, all) => all.findLastIndex((other) => other.kernel === row.kernel && other.init === row.init) === index);
    const failed = layoutWall(rows, HEADING).rows.find((row) => row.row.kernel === "micro" && row.row.init === "restore")!;
    expect(failed.bar.width).toBe(0);
    expect(failed.whisker).toBeNull();
    expect(failed.labelText).toMatch(/no run reached the agent \(5 failed\)/);
    checkWall(rows);
  });

  test("any rows: labels never touch a bar or whisker and always fit", () => {
    const row = fc.record({
      kernel: fc.constantFrom("debian", "micro", "arm64", "arm64-micro"),
      init: fc.constantFrom(...SERIES.map((series) => series.init)),
      values: fc.array(fc.double({ min: 1, max: 60_000, noNaN: true }), { minLength: 3, maxLength: 3 }),
    }).map(({ kernel, init, values }) => {
      const [minMs, medianMs, maxMs] = [...values].sort((a, b) => a - b) as [number, number, number];
      return { kernel, init, minMs, medianMs, maxMs, runs: 5, failures: 0 };
    });
    fc.assert(fc.property(fc.uniqueArray(row, { minLength: 1, maxLength: 16, selector: (r) => `${r.kernel}/${r.init}` }), (rows) => checkWall(rows)), PROPERTY);
  });
});

// One boot's report (micro kernel, boot disk, TCG), the committed timeline's shape.
function step(name: string, startMs: number, endMs: number, status = "ok"): ReportStep {
  return { name, policy: "warn", startMs, endMs, status };
}
const BOOT: BootTimeline = {
  runInitMs: 1431,
  agentStartMs: 4720,
  report: {
    mode: "microvm", kernel: "6.1.192", startedMs: 3657,
    steps: [
      step("mounts", 3988, 4017), step("console", 4017, 4038), step("uevents", 4038, 4047), step("modules", 4047, 4055),
      step("zram", 4055, 4205), step("root-device", 4205, 4264), step("virtio-ports", 4264, 4286), step("network", 4286, 4286, "skipped"),
      step("root", 4286, 4349), step("overlay", 4349, 4349, "skipped"), step("harden", 4349, 4365), step("switch-root", 4365, 4445),
      step("snapshot", 4445, 4445, "skipped"), step("start-workload", 4445, 4475),
    ],
  },
};

function checkTimeline(data: BootTimeline): void {
  const layout = layoutTimeline(data, HEADING);
  const stepBars = layout.bars.filter((bar) => bar.kind === "step");
  // One bar per step, in the report's order, named and with its duration.
  expect(stepBars.map((bar) => bar.name)).toEqual(data.report.steps.map((s) => s.name));
  for (const [index, bar] of stepBars.entries()) {
    const source = data.report.steps[index]!;
    expect(bar.durationMs).toBeCloseTo(source.endMs - source.startMs, 6);
    expect(bar.labelText.startsWith(source.name)).toBe(true);
    if (source.status === "skipped") expect(bar.labelText).toMatch(/skipped/);
    else expect(bar.labelText).toMatch(/\d ms/);
    expect(inside(bar.bar, grown(layout.steps, 0.01))).toBe(true);
  }
  // Time runs left to right: a later step never starts left of an earlier one.
  for (let index = 1; index < stepBars.length; index++) expect(stepBars[index]!.bar.x).toBeGreaterThanOrEqual(stepBars[index - 1]!.bar.x - 0.01);
  // A label is never on another bar; on its own only when neither side has room, and then within its length.
  for (const bar of layout.bars) {
    for (const other of layout.bars) if (other !== bar) expect(overlaps(bar.label, other.bar)).toBe(false);
    if (bar.onBar) expect(bar.label.x >= bar.bar.x && bar.label.x + bar.label.width <= bar.bar.x + bar.bar.width).toBe(true);
    else expect(overlaps(bar.label, bar.bar)).toBe(false);
  }
  for (const box of layout.texts) expect(inside(box, picture(layout))).toBe(true);
  for (const [index, a] of layout.texts.entries()) for (const b of layout.texts.slice(index + 1)) expect(overlaps(a, b)).toBe(false);
}

describe("boot timeline picture", () => {
  test("one bar per step, labels clear of every bar, texts inside the picture; the whole boot above", () => {
    checkTimeline(BOOT);
    const layout = layoutTimeline(BOOT, HEADING);
    expect(layout.overview).not.toBeNull();
    expect(layout.bars.filter((bar) => bar.kind === "phase").map((bar) => bar.name)).toEqual(["kernel", "bun", "burrow", "agent", "before the first step"]);
  });

  test("without the console's times: only burrow's steps; a failed step is named in the title", () => {
    const steps = [step("mounts", 10, 20), step("root-device", 20, 220, "failed")];
    const layout = layoutTimeline({ report: { ...BOOT.report, startedMs: 5, steps } }, HEADING);
    expect(layout.overview).toBeNull();
    expect(layout.bars.filter((bar) => bar.kind === "step")).toHaveLength(2);
    expect(layout.svg).toContain("root-device failed");
    checkTimeline({ report: { ...BOOT.report, startedMs: 5, steps } });
  });

  test("any report: one bar per step, labels never on a bar, everything inside", () => {
    const report = fc.array(fc.record({ gap: fc.double({ min: 0, max: 300, noNaN: true }), length: fc.double({ min: 0, max: 3000, noNaN: true }), status: fc.constantFrom("ok", "ok", "skipped", "failed") }), { minLength: 1, maxLength: 20 })
      .map((parts) => {
        let at = 1000;
        const steps = parts.map(({ gap, length, status }, index) => {
          const startMs = at + gap;
          at = startMs + (status === "skipped" ? 0 : length);
          return step(`step-${index}`, startMs, at, status);
        });
        return { mode: "microvm", kernel: "6.1.192", startedMs: 900, steps };
      });
    fc.assert(fc.property(report, fc.boolean(), (data, withConsole) => {
      const last = Math.max(...data.steps.map((s) => s.endMs));
      checkTimeline(withConsole ? { report: data, runInitMs: 300, agentStartMs: last + 200 } : { report: data });
    }), PROPERTY);
  });
});

describe("the saved results", () => {
  test("both markdown table layouts give each row's wall-time median and range", () => {
    const older = [
      "# burrow vs busybox init — 2026-11-22T05:33:17.718Z", "", "5 boots per init, interleaved; QEMU TCG.", "",
      "| kernel | init | init phase ms, median (min–max) | QEMU wall to agent ms, median (min–max) | MemAvailable KiB, median | image MiB | runs |",
      "|---|---|---|---|---|---|---|",
      "| micro | burrow-disk | 1971 (1865–2138) | 3009 (2919–3249) | 479688 | 129.0 | 5/5 |",
      "| micro | restore | – | – | 0 | 63.7 | 0/5 |",
    ].join("\n");
    const table = parseResultsMarkdown(older);
    expect(table.date).toBe("2026-11-22T05:33:17.718Z");
    expect(table.description).toBe("5 boots per init, interleaved; QEMU TCG.");
    expect(table.rows[0]).toEqual({ kernel: "micro", init: "burrow-disk", medianMs: 3009, minMs: 2919, maxMs: 3249, runs: 5, failures: 0 });
    expect(table.rows[1]).toMatchObject({ init: "restore", runs: 0, failures: 5 });
    expect(Number.isNaN(table.rows[1]!.medianMs)).toBe(true);
    const newer = older.replace("| init phase ms, median (min–max) |", "| init phase ms, median (min–max) | burrow's steps ms (first line → exec), median |").replace("|---|---|---|---|---|---|---|", "|---|---|---|---|---|---|---|---|").replace("| 1971 (1865–2138) |", "| 1971 (1865–2138) | 166 |").replace("| – | – | 0 |", "| – | – | – | 0 |");
    expect(parseResultsMarkdown(newer).rows).toEqual(table.rows);
  });

  test("raw samples: median and range of the wall times; JSON's null for NaN is no problem", () => {
    const sample = (wallToAgentMs: number) => ({ initMs: null, wallToAgentMs, memAvailableKiB: 1, stepsMs: null });
    const rows = wallRowsFromData({ date: "", description: "", rows: [{ kernel: "micro", init: "restore", imageBytes: 1, samples: [400, 350, 360, 413].map(sample), failures: ["x"] }] });
    expect(rows).toEqual([{ kernel: "micro", init: "restore", medianMs: 380, minMs: 350, maxMs: 413, runs: 4, failures: 1 }]);
    expect(median([3, 1, 2])).toBe(2);
  });

  test("a boot's console gives the report and the times around it", () => {
    const console = "[    1.431178] Run /init as init process\r\nburrow: starting\r\nagent: start uptime=4.72\r\nagent: boot-report {\"mode\":\"microvm\",\"kernel\":\"6.1\",\"startedMs\":3657.1,\"steps\":[]}\r\nagent: done\r\n";
    expect(bootFromConsole(console)).toEqual({ report: { mode: "microvm", kernel: "6.1", startedMs: 3657.1, steps: [] }, runInitMs: 1431.178, agentStartMs: 4720 });
    expect(bootFromConsole("no report here")).toBeNull();
  });

  test("axis ticks: round steps from 0 past the maximum", () => {
    expect(ticks(6934, 8)).toEqual([0, 1000, 2000, 3000, 4000, 5000, 6000, 7000]);
    expect(ticks(818, 10)).toEqual([0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
  });
});
