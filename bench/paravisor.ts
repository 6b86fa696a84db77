// `just bench-paravisor`: what the paravisor PID 1 costs the VM while its worker runs (issue 14),
// seen from the worker: MemAvailable under the smallest busybox init, burrow from an initramfs
// and burrow from a read-only boot disk; PID 1's RSS, threads and wake-ups over an idle 3 s.
// Runs interleaved on the micro kernel; writes bench/results/paravisor.md.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { KERNEL_MICRO, requireArtifacts, BURROW } from "../test/helpers/artifacts";
import { ParavisorCostImages, PARAVISOR_VARIANTS, type Pid1Cost, type ParavisorVariant } from "../test/helpers/paravisor-cost";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({ options: { runs: { type: "string", default: "3" }, mem: { type: "string", default: "512M" } } });
const runs = Number(values.runs);
requireArtifacts(KERNEL_MICRO, BURROW);

const images = new ParavisorCostImages();
const samples = new Map<ParavisorVariant, Pid1Cost[]>(PARAVISOR_VARIANTS.map((variant) => [variant, []]));
try {
  for (let run = 0; run < runs; run++) {
    for (const variant of PARAVISOR_VARIANTS) {
      const { cost, result } = await images.run(variant, KERNEL_MICRO, values.mem);
      if (!cost) {
        console.error(`bench: ${variant} run ${run + 1}: no report (${result.reason})`);
        continue;
      }
      samples.get(variant)!.push(cost);
      console.error(`bench: ${variant} run ${run + 1}: MemAvailable ${cost.memAvailableKiB} KiB, RSS ${cost.rssKiB} KiB, ${cost.threads} threads, ${cost.wakeups3s} wake-ups/3 s`);
    }
  }
} finally {
  images.close();
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const of = (variant: ParavisorVariant, key: keyof Pid1Cost) => median(samples.get(variant)!.map((cost) => cost[key]));
const reference = of("reference", "memAvailableKiB");
const lines = [
  `# paravisor PID 1 while the worker runs — ${new Date().toISOString()}`,
  "",
  `${runs} boots each, interleaved; micro kernel, QEMU TCG, -machine microvm, ${values.mem}; medians.`,
  "",
  "| PID 1 | MemAvailable seen by the worker, KiB | cost vs reference, MiB | PID 1 RSS KiB (anon / file / shmem) | threads | wake-ups per s, idle | runs |",
  "|---|---|---|---|---|---|---|",
  ...PARAVISOR_VARIANTS.map((variant) => {
    const available = of(variant, "memAvailableKiB");
    return `| ${variant} | ${available.toFixed(0)} | ${((reference - available) / 1024).toFixed(1)} | ${of(variant, "rssKiB").toFixed(0)} (${of(variant, "anonKiB").toFixed(0)} / ${of(variant, "fileKiB").toFixed(0)} / ${of(variant, "shmemKiB").toFixed(0)}) | ${of(variant, "threads").toFixed(0)} | ${(of(variant, "wakeups3s") / 3).toFixed(1)} | ${samples.get(variant)!.length}/${runs} |`;
  }),
  "",
];
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(join(ROOT, "bench/results/paravisor.md"), lines.join("\n"));
console.log(lines.join("\n"));
