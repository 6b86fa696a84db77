// `just bench-draw`: redraw the bench pictures from saved results, without booting anything.
//   bun bench/draw.ts                      bench/results/latest.svg (from latest.json, else latest.md)
//                                          and latest-boot.svg (from latest-boot.json)
//   bun bench/draw.ts bench/results/X.md   X.svg from a saved table (or X.json)
//   bun bench/draw.ts --boot-log FILE      first turn a boot's console (burrow run's output with
//                                          the demo agent, printk.time=1) into latest-boot.json
// bench/run.ts draws the same pictures at the end of a run (wallPicture, bootPicture).
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { timelineChart } from "./charts/timeline";
import { wallChart, type WallRow } from "./charts/wall";
import { bootFromConsole, parseResultsMarkdown, wallRowsFromData, type BootData, type ResultsData } from "./results-data";

const RESULTS = resolve(import.meta.dir, "results");

export function wallPicture(rows: WallRow[], date: string, description: string): string {
  const floor = rows.some((row) => row.init.startsWith("bun-hello")) ? " Bun's floor: bench/bun-hello.ts, an init that only reports, compiled as burrow is." : "";
  return wallChart(rows, {
    title: "Launch to guest agent: QEMU wall time per kernel, ms (shorter is better)",
    subtitle: `${date ? `${date.slice(0, 10)}. ` : ""}Bar: median; whisker: min–max. ${description}${floor}`,
  });
}

export function bootPicture(boot: BootData): string {
  return timelineChart(boot, {
    title: "One boot, step by step (burrow's boot report, /run/burrow/boot.json)",
    subtitle: `${boot.date ? `${boot.date.slice(0, 10)}. ` : ""}${boot.description}`,
  });
}

/** X.json (raw samples) when there is one, else X.md: the picture for X.svg. */
function drawResults(path: string): string {
  const stem = path.replace(/\.(md|json)$/, "");
  const out = `${stem}.svg`;
  if (existsSync(`${stem}.json`)) {
    const data = JSON.parse(readFileSync(`${stem}.json`, "utf8")) as ResultsData;
    writeFileSync(out, wallPicture(wallRowsFromData(data), data.date, data.description));
  } else {
    const table = parseResultsMarkdown(readFileSync(`${stem}.md`, "utf8"));
    writeFileSync(out, wallPicture(table.rows, table.date, table.description));
  }
  return out;
}

function drawBoot(path: string): string {
  const out = path.replace(/\.json$/, ".svg");
  writeFileSync(out, bootPicture(JSON.parse(readFileSync(path, "utf8")) as BootData));
  return out;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { "boot-log": { type: "string" }, "boot-description": { type: "string" } },
  });
  const bootJson = join(RESULTS, "latest-boot.json");
  if (values["boot-log"]) {
    const boot = bootFromConsole(readFileSync(values["boot-log"], "utf8"));
    if (!boot) throw new Error(`${values["boot-log"]}: no "agent: boot-report" line (the demo agent prints it)`);
    const data: BootData = { date: new Date().toISOString(), description: values["boot-description"] ?? `from ${basename(values["boot-log"])}`, ...boot };
    writeFileSync(bootJson, JSON.stringify(data, null, 2) + "\n");
    console.log(`wrote ${bootJson}`);
  }
  const targets = positionals.length ? positionals : [join(RESULTS, "latest.md")];
  for (const target of targets) {
    if (/-boot\.json$/.test(target)) console.log(`wrote ${drawBoot(resolve(target))}`);
    else console.log(`wrote ${drawResults(resolve(target))}`);
  }
  if (!positionals.length && existsSync(bootJson)) console.log(`wrote ${drawBoot(bootJson)}`);
}
