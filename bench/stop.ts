// `just bench-stop`: how long a graceful stop takes, from the host's request to QEMU's exit. A
// supervised guest (burrow.supervise=1) whose workload exits at once on SIGTERM is booted; once it
// runs, `burrow run` gets SIGINT (Ctrl-C), asks the guest over the stop port, and the supervisor
// stops the workload, tears down and powers off. Writes bench/results/stop.md.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { BURROW, INITRAMFS, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../test/helpers/artifacts";
import { startCliRun } from "../test/helpers/cli-run";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({ options: { runs: { type: "string", default: "5" } } });
const runs = Number(values.runs);
requireArtifacts(BURROW, KERNEL_MICRO, INITRAMFS, ROOTFS);

const work = mkdtempSync(join(tmpdir(), "burrow-bench-stop-"));
const stopMs: number[] = [];
const guestMs: number[] = [];
try {
  for (let run = 0; run < runs; run++) {
    const disk = join(work, "root.ext4");
    copyFileSync(ROOTFS, disk);
    const append = 'burrow.supervise=1 burrow.agent=/bin/sh -- -c "echo bench: ready; exec sleep 1000"';
    const cli = startCliRun(["--kernel", KERNEL_MICRO, "--initrd", INITRAMFS, "--disk", disk, "--append", append]);
    await cli.waitFor(/^bench: ready/m);
    const { code, ms: elapsed, output } = await cli.stop("SIGINT");
    // The guest's own account: from the stop request's line to the power-off line (printk times).
    const times = (pattern: RegExp) => Number(new RegExp(`\\[\\s*(\\d+\\.\\d+)\\] ${pattern.source}`).exec(output)?.[1] ?? NaN);
    const inGuest = (times(/burrow: stop \(the host's stop request\)/) - times(/reboot: Power down/)) * -1000;
    stopMs.push(elapsed);
    guestMs.push(inGuest);
    console.error(`bench: stop run ${run + 1}: request -> QEMU exit ${elapsed.toFixed(0)} ms (in the guest: stop line -> power-off ${inGuest.toFixed(0)} ms), exit ${code}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const median = (xs: number[]) => {
  const sorted = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const lines = [
  `# graceful stop of a supervised guest — ${new Date().toISOString()}`,
  "",
  `${runs} boots; micro kernel, QEMU TCG, -machine microvm, 512M; a workload that exits on SIGTERM; medians (min–max).`,
  "",
  "| from | to | ms |",
  "|---|---|---|",
  `| SIGINT to \`burrow run\` | QEMU exited (burrow run returned) | ${median(stopMs).toFixed(0)} (${Math.min(...stopMs).toFixed(0)}–${Math.max(...stopMs).toFixed(0)}) |`,
  `| the supervisor's stop line | the kernel's power-off line (guest clock) | ${median(guestMs).toFixed(0)} |`,
  "",
];
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(join(ROOT, "bench/results/stop.md"), lines.join("\n"));
console.log(lines.join("\n"));
