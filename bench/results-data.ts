// What the bench pictures are drawn from, read back from bench/results/: the raw samples
// (NAME.json, written by bench/run.ts since the pictures were redone) or, for older results, the
// markdown table's medians and ranges; and one boot's report with the console's times around it
// (NAME-boot.json). Parsing only: no files are read here.
import type { BootTimeline } from "./charts/timeline";
import type { WallRow } from "./charts/wall";

/** One boot, as bench/run.ts samples it (NaN is null in JSON; `restore`: the restore's own timings). */
export interface SampleData { initMs: number | null; wallToAgentMs: number; memAvailableKiB: number; stepsMs: number | null; restore?: object }
export interface RowData { kernel: string; init: string; imageBytes: number; samples: SampleData[]; failures: string[] }
/** NAME.json: the bench's rows with every sample. */
export interface ResultsData { date: string; description: string; rows: RowData[] }
/** NAME-boot.json: one boot's report and the console times around it. */
export interface BootData extends BootTimeline { date: string; description: string }

export const median = (xs: readonly number[]): number => {
  if (!xs.length) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

export function wallRowsFromData(data: ResultsData): WallRow[] {
  return data.rows.map((row) => {
    const wall = row.samples.map((sample) => sample.wallToAgentMs);
    return {
      kernel: row.kernel, init: row.init, runs: wall.length, failures: row.failures.length,
      medianMs: median(wall), minMs: wall.length ? Math.min(...wall) : NaN, maxMs: wall.length ? Math.max(...wall) : NaN,
    };
  });
}

/**
 * The bench's markdown (any of its table layouts so far): the "QEMU wall to agent" column's
 * "median (min–max)" per row, and the header's date and description lines.
 */
export function parseResultsMarkdown(markdown: string): { date: string; description: string; rows: WallRow[] } {
  const lines = markdown.split("\n");
  const date = /—\s*(\S+)\s*$/.exec(lines[0] ?? "")?.[1] ?? "";
  const description = lines.find((line, index) => index > 0 && line.trim() && !line.startsWith("|") && !line.startsWith("#"))?.trim() ?? "";
  const header = lines.find((line) => line.startsWith("| kernel |"));
  if (!header) throw new Error("no bench table (a line starting `| kernel |`)");
  const cells = (line: string) => line.split("|").slice(1, -1).map((cell) => cell.trim());
  const columns = cells(header);
  const wallColumn = columns.findIndex((column) => /QEMU wall to agent/.test(column));
  const runsColumn = columns.indexOf("runs");
  if (wallColumn < 0) throw new Error("the bench table has no `QEMU wall to agent` column");
  const rows: WallRow[] = [];
  for (const line of lines.slice(lines.indexOf(header) + 2)) {
    if (!line.startsWith("|")) break;
    const row = cells(line);
    const [done, total] = (row[runsColumn] ?? "0/0").split("/").map(Number) as [number, number];
    const wall = /^(\d+(?:\.\d+)?) \((\d+(?:\.\d+)?)–(\d+(?:\.\d+)?)\)$/.exec(row[wallColumn] ?? "");
    rows.push({
      kernel: row[0]!, init: row[1]!, runs: wall ? done : 0, failures: (total ?? 0) - (done ?? 0),
      medianMs: wall ? Number(wall[1]) : NaN, minMs: wall ? Number(wall[2]) : NaN, maxMs: wall ? Number(wall[3]) : NaN,
    });
  }
  return { date, description, rows };
}

/**
 * A boot's console (burrow run's output, printk.time=1) to the timeline's data: the demo agent
 * prints the boot report as `agent: boot-report {json}`; the kernel's "Run /init" and the agent's
 * start line give the times around burrow. Null without a boot report.
 */
export function bootFromConsole(output: string): BootTimeline | null {
  const reportLine = /agent: boot-report (\{.*\})\r?$/m.exec(output);
  if (!reportLine) return null;
  const report = JSON.parse(reportLine[1]!) as BootTimeline["report"];
  const runInit = /\[\s*([\d.]+)\] Run \/init as init process/.exec(output);
  const agentStart = /agent: start uptime=([\d.]+)/.exec(output);
  return {
    report,
    ...(runInit ? { runInitMs: Number(runInit[1]) * 1000 } : {}),
    ...(agentStart ? { agentStartMs: Number(agentStart[1]) * 1000 } : {}),
  };
}
