// The bench's comparison picture: QEMU wall time from launch to the guest agent's first line, the
// one measure every row has (cold boots and restores alike, all on the host's clock), grouped by
// kernel. One colour per kind of init, the same in every group; bar = median, whisker = min–max,
// the value label right of whichever ends later, so no whisker runs through it. Pure: data in,
// SVG text out (layoutWall for the geometry the unit test checks).
import { type Box, Canvas, document, formatMs, line, rect, textBox, ticks } from "./svg";

/** One bench row's wall time to the agent (ms); NaN median when no run reached the agent. */
export interface WallRow { kernel: string; init: string; medianMs: number; minMs: number; maxMs: number; runs: number; failures: number }

export interface Series { init: string; label: string; colour: string }

/** The kinds of init a user compares, in the order drawn (Okabe–Ito colours, readable on white). */
export const SERIES: readonly Series[] = [
  { init: "burrow", label: "burrow cold, initramfs", colour: "#0072B2" },
  { init: "burrow-disk", label: "burrow cold, boot disk", colour: "#56B4E9" },
  { init: "restore", label: "burrow restored (snapshot)", colour: "#009E73" },
  { init: "busybox", label: "busybox script init", colour: "#E69F00" },
  { init: "bun-hello", label: "Bun's floor, initramfs", colour: "#CC79A7" },
  { init: "bun-hello-disk", label: "Bun's floor, boot disk", colour: "#7E4A9E" },
];
/** For an init the table above does not know: still a colour of its own. */
const SPARE_COLOURS = ["#555555", "#D55E00", "#B8A21B", "#8C564B"];

const KERNEL_TITLES: Record<string, string> = {
  debian: "Debian's kernel (x86_64; drivers as modules, so no boot-disk rows)",
  micro: "micro kernel (x86_64; drivers built in)",
  arm64: "Debian's arm64 kernel (virt; drivers as modules)",
  "arm64-micro": "arm64 micro kernel (virt; drivers built in)",
};

export function seriesFor(rows: readonly WallRow[]): Series[] {
  const known = SERIES.filter((series) => rows.some((row) => row.init === series.init));
  const unknown = [...new Set(rows.map((row) => row.init))].filter((init) => !SERIES.some((series) => series.init === init));
  return [...known, ...unknown.map((init, index) => ({ init, label: init, colour: SPARE_COLOURS[index % SPARE_COLOURS.length]! }))];
}

export interface WallRowLayout {
  row: WallRow;
  series: Series;
  /** The median bar; zero width when no run reached the agent. */
  bar: Box;
  /** min–max, with its end caps; null when no run reached the agent. */
  whisker: Box | null;
  label: Box;
  labelText: string;
  name: Box;
}

export interface WallLayout {
  width: number;
  height: number;
  /** Where bars and whiskers may go (the axis' extent). */
  plot: Box;
  rows: WallRowLayout[];
  /** Every text's box (titles, names, labels, tick labels): all must lie inside the picture. */
  texts: Box[];
  svg: string;
}

const WIDTH = 860;
const LEFT = 196;
const RIGHT_MARGIN = 16;
const BAR = 16;
const ROW = 24;
const GROUP_GAP = 14;
const GROUP_HEAD = 22;
const LABEL_GAP = 7;
const CAP = 5;
const FONT_SIZE = 12;

function labelFor(row: WallRow, busybox: WallRow | undefined): string {
  if (!(row.runs > 0) || Number.isNaN(row.medianMs)) return `no run reached the agent (${row.failures} failed)`;
  const ratio = busybox && row !== busybox && busybox.runs > 0 ? ` · ${(row.medianMs / busybox.medianMs).toFixed(2)}× busybox` : "";
  const failed = row.failures ? ` · ${row.failures} failed` : "";
  return `${formatMs(row.medianMs)}${ratio}${failed}`;
}

export function layoutWall(rows: readonly WallRow[], heading: { title: string; subtitle: string }): WallLayout {
  const series = seriesFor(rows);
  const kernels = [...new Set(rows.map((row) => row.kernel))];
  const right = WIDTH - RIGHT_MARGIN;
  const canvas = new Canvas();
  const titleEnd = canvas.paragraph(10, 22, heading.title, WIDTH - 20, 18, { "font-size": 15, "font-weight": "bold" });
  const top = canvas.paragraph(10, titleEnd + 18, heading.subtitle, WIDTH - 20, 14, { "font-size": 11, fill: "#444" }) + 14;
  const reached = rows.filter((row) => row.runs > 0 && !Number.isNaN(row.medianMs));
  // The scale leaves every row room for its label right of its bar or whisker, whichever is longer.
  const busyboxOf = (kernel: string) => rows.find((row) => row.kernel === kernel && row.init === "busybox");
  let scale = Infinity;
  for (const row of reached) {
    const end = Math.max(row.medianMs, row.maxMs);
    const room = right - LEFT - CAP - LABEL_GAP - textBox(labelFor(row, busyboxOf(row.kernel)), 0, 0, FONT_SIZE).width;
    if (end > 0) scale = Math.min(scale, room / end);
  }
  if (!Number.isFinite(scale) || scale <= 0) scale = 1;
  const axisMax = (right - LEFT) / scale;
  const x = (ms: number) => LEFT + ms * scale;
  // A tick whose centred label would leave the picture is not drawn.
  const axisTicks = ticks(axisMax, 8).filter((tick) => x(tick) + textBox(String(tick), 0, 0, 11).width / 2 <= WIDTH - 4);

  // Rows first (geometry only), so the grid can go under the bars.
  const laid: WallRowLayout[] = [];
  const groupHeads: [number, string][] = [];
  let y = top;
  for (const kernel of kernels) {
    groupHeads.push([y + 15, KERNEL_TITLES[kernel] ?? `${kernel} kernel`]);
    y += GROUP_HEAD;
    for (const entry of series) {
      const row = rows.find((candidate) => candidate.kernel === kernel && candidate.init === entry.init);
      if (!row) continue;
      const barY = y + (ROW - BAR) / 2;
      const ok = row.runs > 0 && !Number.isNaN(row.medianMs);
      const bar = { x: LEFT, y: barY, width: ok ? row.medianMs * scale : 0, height: BAR };
      const whisker = ok ? { x: x(row.minMs), y: barY + BAR / 2 - CAP, width: (row.maxMs - row.minMs) * scale, height: CAP * 2 } : null;
      const end = ok ? Math.max(bar.x + bar.width, whisker!.x + whisker!.width) : LEFT;
      const labelText = labelFor(row, busyboxOf(kernel));
      const baseline = barY + BAR / 2 + FONT_SIZE * 0.36;
      const label = textBox(labelText, end + LABEL_GAP, baseline, FONT_SIZE);
      const name = textBox(entry.label, LEFT - 8, baseline, FONT_SIZE, "end");
      laid.push({ row, series: entry, bar, whisker, label, labelText, name });
      y += ROW;
    }
    y += GROUP_GAP;
  }
  const plotBottom = y - GROUP_GAP + 4;
  const plot = { x: LEFT, y: top, width: right - LEFT, height: plotBottom - top };

  for (const tick of axisTicks) {
    canvas.add(line(x(tick), top, x(tick), plotBottom, tick === 0 ? "#888" : "#e2e2e2"));
    canvas.text(x(tick), plotBottom + 15, String(tick), { "text-anchor": "middle", "font-size": 11, fill: "#444" });
  }
  canvas.add(line(LEFT, plotBottom, right, plotBottom, "#888"));
  canvas.text(LEFT + (right - LEFT) / 2, plotBottom + 32, "ms from QEMU's launch to the agent's first line (host wall clock)", { "text-anchor": "middle", "font-size": 11, fill: "#444" });
  for (const [baseline, title] of groupHeads) canvas.text(10, baseline, title, { "font-weight": "bold", "font-size": 13 });
  for (const entry of laid) {
    const baseline = entry.name.y + FONT_SIZE * 0.76;
    canvas.text(entry.name.x + entry.name.width, baseline, entry.series.label, { "text-anchor": "end" });
    if (entry.bar.width > 0) canvas.add(rect(entry.bar, entry.series.colour));
    if (entry.whisker) {
      const middle = entry.whisker.y + CAP;
      const left = entry.whisker.x;
      const rightEnd = entry.whisker.x + entry.whisker.width;
      canvas.add(
        line(left, middle, rightEnd, middle, "#222", { "stroke-width": 1.2 }),
        line(left, middle - CAP, left, middle + CAP, "#222", { "stroke-width": 1.2 }),
        line(rightEnd, middle - CAP, rightEnd, middle + CAP, "#222", { "stroke-width": 1.2 }),
      );
    }
    canvas.text(entry.label.x, baseline, entry.labelText, entry.row.runs > 0 ? {} : { fill: "#b00020" });
  }
  const height = plotBottom + 44;
  return { width: WIDTH, height, plot, rows: laid, texts: canvas.texts, svg: document(WIDTH, height, canvas.body, heading.title) };
}

export function wallChart(rows: readonly WallRow[], heading: { title: string; subtitle: string }): string {
  return layoutWall(rows, heading).svg;
}
