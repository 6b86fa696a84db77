// One boot, step by step, from burrow's boot report (/run/burrow/boot.json), drawn the way
// `systemd-analyze plot` draws one: a time axis, one bar per step from its start to its end, named
// with its duration. Above it, the whole boot on the guest clock (kernel, Bun's start, burrow,
// the agent) when the console gave those times, so the steps are seen in proportion. Pure: data
// in, SVG text out (layoutTimeline for the geometry the unit test checks).
import { type Box, Canvas, document, line, rect, textBox, ticks } from "./svg";

/** The parts of burrow's BootReport (src: BootReport) the picture reads. */
export interface ReportStep { name: string; policy: string; startMs: number; endMs: number; status: "ok" | "failed" | "skipped" | string; error?: string }
export interface BootReportData { mode: string; kernel: string; startedMs: number; steps: ReportStep[] }

export interface BootTimeline {
  report: BootReportData;
  /** The kernel's printk time of "Run /init as init process", ms (CLOCK_BOOTTIME); absent if unknown. */
  runInitMs?: number;
  /** The agent's /proc/uptime at its first line, ms; absent if unknown. */
  agentStartMs?: number;
}

export interface TimelineBar {
  name: string;
  /** The step's own row, or a phase of the whole boot. */
  kind: "step" | "phase";
  status: string;
  durationMs: number;
  bar: Box;
  label: Box;
  labelText: string;
  /** The label is drawn on its own bar (no room on either side), wholly inside it. */
  onBar: boolean;
}

export interface TimelineLayout {
  width: number;
  height: number;
  bars: TimelineBar[];
  /** Every text's box: all must lie inside the picture. */
  texts: Box[];
  /** The two plot areas: the whole boot (null without console times) and burrow's steps. */
  overview: Box | null;
  steps: Box;
  svg: string;
}

const WIDTH = 860;
const PLOT_LEFT = 14;
const PLOT_RIGHT = WIDTH - 14;
const ROW = 20;
const BAR = 13;
const FONT_SIZE = 12;
const LABEL_GAP = 6;

const COLOURS = {
  kernel: "#999999",
  bun: "#CC79A7",
  prelude: "#56B4E9",
  steps: "#0072B2",
  agent: "#E69F00",
  ok: "#0072B2",
  failed: "#D55E00",
  skipped: "#bbbbbb",
};

/** Whether white text reads better than black on `colour` (#rrggbb): WCAG contrast, luminance below ~0.18. */
export function dark(colour: string): boolean {
  const [r, g, b] = [1, 3, 5].map((at) => Number.parseInt(colour.slice(at, at + 2), 16) / 255).map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.179;
}

function duration(ms: number): string {
  return ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`;
}

/** Ticks covering [0, span] on a plot `width` wide, labels no closer than ~60 px. */
function axisTicks(span: number, width: number): number[] {
  return ticks(span, Math.max(2, Math.floor(width / 70))).filter((tick) => tick <= span * 1.0001);
}

interface Pending { name: string; kind: "step" | "phase"; status: string; start: number; end: number; colour: string; labelText: string }

/**
 * One axis' rows, drawn in order: the row stripes, the grid and ticks, then bars and labels. A
 * label goes right of its bar; left of it when the right has no room; inside it (on a wide bar)
 * when neither side has.
 */
function drawRows(canvas: Canvas, rows: Pending[], top: number, from: number, span: number, caption: string): { bars: TimelineBar[]; bottom: number } {
  const scale = (PLOT_RIGHT - PLOT_LEFT) / Math.max(span, 1e-9);
  const x = (ms: number) => PLOT_LEFT + (ms - from) * scale;
  const bottom = top + rows.length * ROW;
  rows.forEach((_, index) => {
    if (index % 2 === 0) canvas.add(rect({ x: PLOT_LEFT, y: top + index * ROW, width: PLOT_RIGHT - PLOT_LEFT, height: ROW }, "#f4f4f4"));
  });
  // A tick whose centred label would leave the picture is not drawn.
  for (const tick of axisTicks(span, PLOT_RIGHT - PLOT_LEFT).filter((tick) => PLOT_LEFT + tick * scale + textBox(String(tick), 0, 0, 11).width / 2 <= WIDTH - 4)) {
    canvas.add(line(PLOT_LEFT + tick * scale, top, PLOT_LEFT + tick * scale, bottom, tick === 0 ? "#888" : "#dddddd"));
    canvas.text(PLOT_LEFT + tick * scale, bottom + 14, String(tick), { "text-anchor": tick === 0 ? "start" : "middle", "font-size": 11, fill: "#444" });
  }
  canvas.add(line(PLOT_LEFT, bottom, PLOT_RIGHT, bottom, "#888"));
  canvas.text(PLOT_RIGHT, bottom + 28, caption, { "text-anchor": "end", "font-size": 11, fill: "#444" });
  const bars: TimelineBar[] = [];
  rows.forEach((row, index) => {
    const barY = top + index * ROW + (ROW - BAR) / 2;
    // A zero-length (skipped) step still gets a visible 2 px mark at its time.
    const width = Math.max((row.end - row.start) * scale, 2);
    const bar = { x: Math.min(x(row.start), PLOT_RIGHT - width), y: barY, width, height: BAR };
    const baseline = barY + BAR / 2 + FONT_SIZE * 0.36;
    const right = textBox(row.labelText, bar.x + bar.width + LABEL_GAP, baseline, FONT_SIZE);
    const left = textBox(row.labelText, bar.x - LABEL_GAP, baseline, FONT_SIZE, "end");
    const within = textBox(row.labelText, bar.x + LABEL_GAP, baseline, FONT_SIZE);
    const label = right.x + right.width <= PLOT_RIGHT ? right : left.x >= PLOT_LEFT ? left : within.x + within.width <= bar.x + bar.width - LABEL_GAP ? within : right;
    canvas.add(rect(bar, row.colour, row.status === "skipped" ? { stroke: "#888", "stroke-width": 0.5 } : {}));
    // On its own bar (no room either side): white on a dark bar.
    const onBar = label === within;
    const emphasis: Record<string, string> = row.status === "failed" ? { fill: onBar ? "white" : COLOURS.failed, "font-weight": "bold" } : onBar && dark(row.colour) ? { fill: "white" } : {};
    canvas.text(label.x, baseline, row.labelText, emphasis);
    bars.push({ name: row.name, kind: row.kind, status: row.status, durationMs: row.end - row.start, bar, label, labelText: row.labelText, onBar });
  });
  return { bars, bottom };
}

export function layoutTimeline(data: BootTimeline, heading: { title: string; subtitle: string }): TimelineLayout {
  const { report } = data;
  const steps = report.steps;
  const firstStart = steps.length ? Math.min(...steps.map((step) => step.startMs)) : report.startedMs;
  const lastEnd = steps.length ? Math.max(...steps.map((step) => step.endMs)) : report.startedMs;
  const canvas = new Canvas();
  const bars: TimelineBar[] = [];
  const titleEnd = canvas.paragraph(10, 22, heading.title, WIDTH - 20, 18, { "font-size": 15, "font-weight": "bold" });
  let top = canvas.paragraph(10, titleEnd + 18, heading.subtitle, WIDTH - 20, 14, { "font-size": 11, fill: "#444" }) + 14;

  // The whole boot, when the console gave the kernel's and the agent's times.
  let overview: Box | null = null;
  if (data.runInitMs !== undefined && data.agentStartMs !== undefined) {
    const end = Math.max(data.agentStartMs, lastEnd);
    const phase = (name: string, start: number, stop: number, colour: string, words: string): Pending =>
      ({ name, kind: "phase", status: "ok", start, end: stop, colour, labelText: `${words} ${duration(stop - start)}` });
    const phases = [
      phase("kernel", 0, data.runInitMs, COLOURS.kernel, "kernel, to “Run /init”"),
      phase("bun", data.runInitMs, report.startedMs, COLOURS.bun, "Bun starts and loads burrow’s code"),
      phase("burrow", report.startedMs, lastEnd, COLOURS.steps, "burrow: its first line → the workload’s exec"),
      phase("agent", lastEnd, data.agentStartMs, COLOURS.agent, "exec → the agent’s first line"),
    ];
    top = canvas.paragraph(10, top + 12, `The whole boot on the guest clock: the agent is up at ${(data.agentStartMs / 1000).toFixed(2)} s`, WIDTH - 20, 16, { "font-weight": "bold", "font-size": 13 }) + 8;
    const placed = drawRows(canvas, phases, top, 0, end, "ms of guest uptime (CLOCK_BOOTTIME)");
    bars.push(...placed.bars);
    overview = { x: PLOT_LEFT, y: top, width: PLOT_RIGHT - PLOT_LEFT, height: placed.bottom - top };
    top = placed.bottom + 44;
  }

  // burrow's part, on its own axis: what it does before its first step, then one bar per step.
  const span = lastEnd - report.startedMs;
  const failed = steps.find((step) => step.status === "failed");
  const stepsTitle = `burrow's steps (mode ${report.mode}, kernel ${report.kernel}): ${duration(span)} from its first line to the end of the last step${failed ? ` — ${failed.name} failed` : ""}`;
  top = canvas.paragraph(10, top + 12, stepsTitle, WIDTH - 20, 16, { "font-weight": "bold", "font-size": 13 }) + 8;
  const rows: Pending[] = [];
  if (firstStart > report.startedMs) {
    rows.push({ name: "before the first step", kind: "phase", status: "ok", start: report.startedMs, end: firstStart, colour: COLOURS.prelude, labelText: `before the first step: command line, logging, the mode’s code ${duration(firstStart - report.startedMs)}` });
  }
  for (const step of steps) {
    const status = step.status === "ok" ? "" : ` (${step.status})`;
    const words = step.status === "skipped" ? `${step.name} skipped` : `${step.name} ${duration(step.endMs - step.startMs)}${status}`;
    rows.push({ name: step.name, kind: "step", status: step.status, start: step.startMs, end: step.endMs, colour: COLOURS[step.status as "ok" | "failed" | "skipped"] ?? COLOURS.ok, labelText: words });
  }
  const placed = drawRows(canvas, rows, top, report.startedMs, span, `ms after burrow's first line (at ${report.startedMs.toFixed(0)} ms of guest uptime)`);
  bars.push(...placed.bars);
  const stepsBox = { x: PLOT_LEFT, y: top, width: PLOT_RIGHT - PLOT_LEFT, height: placed.bottom - top };
  const height = placed.bottom + 40;
  return { width: WIDTH, height, bars, texts: canvas.texts, overview, steps: stepsBox, svg: document(WIDTH, height, canvas.body, heading.title) };
}

export function timelineChart(data: BootTimeline, heading: { title: string; subtitle: string }): string {
  return layoutTimeline(data, heading).svg;
}
