// `just bench`: burrow against a busybox shell-script init doing the same steps, on the same
// kernel, disk, ports, memory and QEMU command line; N boots each, interleaved A B A B.
// Reports the init phase (kernel "Run /init" → agent start, both read from the guest clock),
// QEMU wall time to the agent, MemAvailable seen by the agent, and the image size. The restore
// row boots burrow once to its snapshot point, saves it, then times restores (launch → agent).
// Writes bench/results/latest.md (the table), latest.json (every sample), latest.svg (wall time
// to the agent per kernel), latest-boot.json and .svg (one cold boot's steps); `just bench-draw`
// redraws the pictures from the saved files.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { buildImage, type Compression } from "../src/image/build";
import { withBootDisk } from "../src/host/boot-disk";
import { runVm, type RunOptions } from "../src/host/qemu";
import { restoreSnapshot, saveSnapshot, type RestoreTimings } from "../src/host/snapshot";
import { readManifest } from "../src/host/snapshot-manifest";
import type { BootTimeline } from "./charts/timeline";
import { bootPicture, wallPicture } from "./draw";
import { bootFromConsole, wallRowsFromData, type BootData, type ResultsData } from "./results-data";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    kernels: { type: "string", default: "debian,micro" },
    mem: { type: "string", default: "512M" },
    compress: { type: "string", default: "none" },
    variants: { type: "string", default: "burrow,busybox,burrow-disk,restore,bun-hello,bun-hello-disk" },
  },
});
const runs = Number(values.runs);
const kernels = values.kernels!.split(",").filter(Boolean);
const variantNames = values.variants!.split(",").filter(Boolean);

/**
 * initMs is NaN for restores: their guest clock still counts the boot that was saved. stepsMs:
 * burrow's own part (its first line → its exec line, printk times); NaN for other inits.
 */
interface Sample { initMs: number; wallToAgentMs: number; memAvailableKiB: number; stepsMs: number; restore?: RestoreTimings; boot?: BootTimeline }
/** A snapshot's saved bytes: its state file, and the blocks its RAM file holds (a hole is free). */
function savedBytes(dir: string): number {
  const manifest = readManifest(dir);
  return manifest.saved.state.size + manifest.ramAllocatedBytes;
}

interface Row { kernel: string; init: string; imageBytes: number; samples: Sample[]; failures: string[] }

const KERNELS: Record<string, { vmlinuz: string; kernelDir: string | null; arch?: "arm64" }> = {
  debian: { vmlinuz: join(ROOT, "build/kernel/vmlinuz"), kernelDir: join(ROOT, "build/kernel") },
  micro: { vmlinuz: join(ROOT, "build/kernel-micro/vmlinuz"), kernelDir: null },
  // Debian's arm64 kernel under qemu-system-aarch64 -machine virt (TCG): burrow cross-built
  // (dist/arm64/burrow), busybox from busybox-static:arm64 (`ARCH=arm64 just build rootfs kernel`).
  arm64: { vmlinuz: join(ROOT, "build/kernel-arm64/vmlinuz"), kernelDir: join(ROOT, "build/kernel-arm64"), arch: "arm64" },
  // The arm64 micro kernel (`just kernel-micro-arm64`): drivers built in, so the boot-disk rows too.
  "arm64-micro": { vmlinuz: join(ROOT, "build/kernel-micro-arm64/vmlinuz"), kernelDir: null, arch: "arm64" },
};
/** What an arm64 row boots: its own burrow, busybox and root disk. */
const ARM64 = { burrow: join(ROOT, "dist/arm64/burrow"), busybox: join(ROOT, "build/busybox-arm64/bin/busybox"), rootfs: join(ROOT, "dist/arm64/rootfs.ext4") };

const ROOTFS = join(ROOT, "dist/rootfs.ext4");
const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find(existsSync)!;
const work = mkdtempSync(join(tmpdir(), "burrow-bench-"));

/** Boot-disk variants need virtio-blk and ext4 built into the kernel: only kernels without modules. */
function variantsFor(kernel: string): string[] {
  // arm64: no arm64 bun-hello build yet.
  const ours = KERNELS[kernel]!.arch === "arm64" ? variantNames.filter((variant) => !variant.startsWith("bun-hello")) : variantNames;
  return ours.filter((variant) => !variant.endsWith("-disk") || KERNELS[kernel]!.kernelDir === null);
}

/** bench/bun-hello.ts compiled as burrow is (bytecode, ESM), once per bench run. */
let helloBinary: string | null = null;
function bunHello(): string {
  if (helloBinary) return helloBinary;
  const out = join(work, "bun-hello");
  const built = Bun.spawnSync([process.execPath, "build", join(ROOT, "bench/bun-hello.ts"), "--compile", "--bytecode", "--format=esm", "--minify-syntax", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "--outfile", out], { stdout: "pipe", stderr: "pipe" });
  if (built.exitCode !== 0) throw new Error(`cannot compile bench/bun-hello.ts: ${built.stderr.toString()}`);
  return (helloBinary = out);
}

async function images(kernel: string): Promise<Record<string, string>> {
  const { kernelDir } = KERNELS[kernel]!;
  const built: Record<string, string> = {};
  for (const variant of variantsFor(kernel)) {
    const out = join(work, `${kernel}-${variant}.img`);
    const common = { out, kernelDir, modules: [], add: [] as [string, string][], compress: values.compress as Compression, mtime: 0 };
    const arch = KERNELS[kernel]!.arch;
    const burrow = arch === "arm64" ? { arch, binary: ARM64.burrow } : { binary: join(ROOT, "dist/burrow") };
    const busybox = arch === "arm64" ? { arch, binary: ARM64.busybox } : { binary: BUSYBOX };
    if (variant === "burrow") await buildImage({ ...common, ...burrow });
    else if (variant === "burrow-disk") {
      // No initramfs: the kernel mounts a read-only ext4 disk holding burrow and runs it from there.
      await buildImage({ ...common, ...burrow, format: "ext4" });
    }
    else if (variant === "bun-hello") await buildImage({ ...common, binary: bunHello() });
    else if (variant === "bun-hello-disk") await buildImage({ ...common, binary: bunHello(), format: "ext4" });
    else if (variant === "busybox") await buildImage({ ...common, ...busybox, binaryPath: "/bin/busybox", add: [[join(ROOT, "bench/busybox-init.sh"), "/init"]] });
    else if (variant === "restore") {
      // burrow booted once to its snapshot point and saved: from the boot disk where the kernel
      // can mount it (the smallest saved memory: Bun's pages are page cache, not a 110 MB ramfs
      // copy; measured 69 vs 254 MiB on the micro kernel), else from the burrow row's initramfs.
      const fromDisk = kernelDir === null;
      await buildImage({ ...common, ...burrow, ...(fromDisk ? { format: "ext4" as const } : {}) });
      const snapshot = join(work, `${kernel}-snapshot`);
      const { manifest } = await saveSnapshot(vmOptions(kernel, out, fromDisk), snapshot);
      console.error(`bench: ${kernel}/restore saved in ${manifest.saveMs} ms (${manifest.form}), state ${(manifest.saved.state.size / 2 ** 20).toFixed(1)} MiB, RAM file ${(manifest.ramAllocatedBytes / 2 ** 20).toFixed(1)} MiB written`);
      built[variant] = snapshot;
      continue;
    }
    else throw new Error(`unknown variant ${variant}`);
    built[variant] = out;
  }
  return built;
}

function vmOptions(kernel: string, image: string, fromDisk: boolean): RunOptions {
  const options: RunOptions = {
    kernel: KERNELS[kernel]!.vmlinuz, initrd: image, disks: [KERNELS[kernel]!.arch === "arm64" ? ARM64.rootfs : ROOTFS],
    ports: [{ name: "bench.port", file: null }], mem: values.mem!, smp: 1, accel: "tcg",
    ...(KERNELS[kernel]!.arch === "arm64" ? { arch: "arm64" as const, machine: "virt" as const } : { machine: "microvm" as const }),
    // printk.time=1: the init phase starts at the kernel's timestamp of "Run /init".
    // burrow.supervise=0: burrow execs the agent as PID 1, as the busybox init does (the same
    // steps); supervise mode, the default, adds the supervisor's exec and the agent's fork.
    append: "printk.time=1 burrow.supervise=0", timeoutSeconds: 120,
    snapshotDisks: true,
  };
  return fromDisk ? withBootDisk(options, image) : options;
}

async function bootOnce(kernel: string, image: string, variant: string): Promise<Sample> {
  let agentSeenMs = 0;
  let seen = "";
  const started = performance.now();
  const onOutput = (text: string) => {
    if (agentSeenMs) return;
    seen = (seen + text).slice(-4096);
    if (seen.includes("agent: start")) agentSeenMs = performance.now() - started;
  };
  const restore = variant === "restore" ? await restoreSnapshot(image, { timeoutSeconds: 120 }, onOutput) : null;
  const result = restore ?? await runVm(vmOptions(kernel, image, variant.endsWith("-disk")), onOutput);
  const runInit = /\[\s*([\d.]+)\] Run \/init as init process/.exec(result.output);
  const agentStart = /agent: start uptime=([\d.]+)/.exec(result.output);
  const memAvailable = /agent: meminfo MemAvailable=(\d+)/.exec(result.output);
  if ((!runInit && !restore) || !agentStart || !memAvailable) {
    throw new Error(`boot did not reach the agent (${result.reason}): ${result.output.split("\n").slice(-8).join(" | ")}`);
  }
  const initMs = runInit ? (Number(agentStart[1]) - Number(runInit[1])) * 1000 : NaN;
  const firstLine = /\[\s*([\d.]+)\] burrow: burrow \S+ starting as PID 1/.exec(result.output);
  const execLine = /\[\s*([\d.]+)\] burrow: (?:exec|supervise) /.exec(result.output);
  const stepsMs = firstLine && execLine && !restore ? (Number(execLine[1]) - Number(firstLine[1])) * 1000 : NaN;
  // Cold burrow boots: the boot report the agent prints, for the timeline picture.
  const boot = !restore && variant.startsWith("burrow") ? bootFromConsole(result.output) : null;
  return { initMs, wallToAgentMs: agentSeenMs, memAvailableKiB: Number(memAvailable[1]), stepsMs, ...(restore?.timings ? { restore: restore.timings } : {}), ...(boot ? { boot } : {}) };
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const range = (xs: number[], digits = 0) => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;

const rows: Row[] = [];
for (const kernel of kernels) {
  if (!existsSync(KERNELS[kernel]!.vmlinuz)) {
    console.error(`bench: ${kernel} kernel missing (${KERNELS[kernel]!.vmlinuz}); build it with \`just kernel${kernel === "micro" ? "-micro" : ""}\``);
    process.exitCode = 1;
    continue;
  }
  const built = await images(kernel);
  const byInit = new Map<string, Row>();
  for (const variant of variantsFor(kernel)) {
    // A restore's "image" is what its save wrote: the device state and the RAM file's written blocks.
    const imageBytes = variant === "restore" ? savedBytes(built[variant]!) : statSync(built[variant]!).size;
    const row: Row = { kernel, init: variant, imageBytes, samples: [], failures: [] };
    byInit.set(variant, row);
    rows.push(row);
  }
  for (let run = 0; run < runs; run++) {
    for (const variant of variantsFor(kernel)) {
      const row = byInit.get(variant)!;
      try {
        const sample = await bootOnce(kernel, built[variant]!, variant);
        row.samples.push(sample);
        console.error(`bench: ${kernel}/${variant} run ${run + 1}: init ${sample.initMs.toFixed(0)} ms, wall to agent ${sample.wallToAgentMs.toFixed(0)} ms, MemAvailable ${sample.memAvailableKiB} KiB`);
      } catch (error) {
        row.failures.push((error as Error).message);
        console.error(`bench: ${kernel}/${variant} run ${run + 1} failed: ${(error as Error).message}`);
      }
    }
  }
}

function table(): string {
  const lines = [
    `| kernel | init | init phase ms, median (min–max) | burrow's steps ms (first line → exec), median | QEMU wall to agent ms, median (min–max) | MemAvailable KiB, median | image MiB | runs |`,
    `|---|---|---|---|---|---|---|---|`,
  ];
  for (const row of rows) {
    const init = row.samples.map((s) => s.initMs).filter((ms) => !Number.isNaN(ms));
    const steps = row.samples.map((s) => s.stepsMs).filter((ms) => !Number.isNaN(ms));
    const wall = row.samples.map((s) => s.wallToAgentMs);
    const mem = row.samples.map((s) => s.memAvailableKiB);
    const ok = row.samples.length > 0;
    lines.push(`| ${row.kernel} | ${row.init} | ${init.length ? `${median(init).toFixed(0)} (${range(init)})` : "–"} | ${steps.length ? median(steps).toFixed(0) : "–"} | ${ok ? `${median(wall).toFixed(0)} (${range(wall)})` : "–"} | ${ok ? median(mem).toFixed(0) : "–"} | ${(row.imageBytes / 2 ** 20).toFixed(1)} | ${row.samples.length}/${row.samples.length + row.failures.length} |`);
  }
  const ratios: string[] = [];
  const wall = (row: Row | undefined) => (row?.samples.length ? median(row.samples.map((s) => s.wallToAgentMs)) : NaN);
  for (const kernel of kernels) {
    // The cold burrow to compare with: its fastest layout on this kernel (initramfs or boot disk).
    const burrow = rows.filter((r) => r.kernel === kernel && r.init.startsWith("burrow") && r.samples.length).sort((a, b) => wall(a) - wall(b))[0];
    const busybox = rows.find((r) => r.kernel === kernel && r.init === "busybox");
    if (burrow && busybox?.samples.length) {
      const initRatio = median(burrow.samples.map((s) => s.initMs)) / median(busybox.samples.map((s) => s.initMs));
      const steps = median(burrow.samples.map((s) => s.stepsMs));
      const memDelta = median(burrow.samples.map((s) => s.memAvailableKiB)) - median(busybox.samples.map((s) => s.memAvailableKiB));
      ratios.push(`- ${kernel}: fastest burrow cold (${burrow.init}): wall to agent ${(wall(burrow) / wall(busybox)).toFixed(2)}× busybox's (goal ≤ 1.3×), init phase ${initRatio.toFixed(2)}×; burrow's steps ${steps.toFixed(0)} ms (goal ≤ 200); MemAvailable burrow − busybox = ${memDelta} KiB`);
    }
    const initPhase = (row: Row) => median(row.samples.map((s) => s.initMs));
    const hello = rows.filter((r) => r.kernel === kernel && r.init.startsWith("bun-hello") && r.samples.length).sort((a, b) => initPhase(a) - initPhase(b))[0];
    if (hello && burrow) {
      ratios.push(`- ${kernel}: Bun's own start (${hello.init}, an init that only reports): init phase ${initPhase(hello).toFixed(0)} ms, ${((initPhase(hello) / initPhase(burrow)) * 100).toFixed(0)}% of ${burrow.init}'s${busybox?.samples.length ? `, ${(initPhase(hello) / initPhase(busybox)).toFixed(2)}× busybox's whole init phase` : ""}`);
    }
    const restore = rows.find((r) => r.kernel === kernel && r.init === "restore");
    if (restore?.samples.length) {
      const parts = restore.samples.map((s) => s.restore!).filter(Boolean);
      const part = (key: "qmpMs" | "loadedMs" | "resumedMs") => median(parts.map((t) => t[key])).toFixed(0);
      ratios.push(`- ${kernel}: restore to agent ${wall(restore).toFixed(0)} ms (goal ≤ 500) = busybox cold ÷ ${(wall(busybox) / wall(restore)).toFixed(1)} (goal ≥ 3), fastest burrow cold ÷ ${(wall(burrow) / wall(restore)).toFixed(1)} (goal ≥ 6); made of QMP up ${part("qmpMs")} ms, RAM loaded ${part("loadedMs")} ms, guest resumed ${part("resumedMs")} ms (medians, from launch)`);
    }
  }
  return lines.join("\n") + (ratios.length ? `\n\n${ratios.join("\n")}` : "") + "\n";
}

/**
 * The boot the timeline shows: the micro kernel's (else the first kernel's) fastest cold burrow
 * layout, its run with the median wall time.
 */
function timelineBoot(): { row: Row; sample: Sample } | null {
  const wall = (row: Row) => median(row.samples.map((s) => s.wallToAgentMs));
  const kernel = kernels.includes("micro") ? "micro" : kernels[0];
  const row = rows.filter((r) => r.kernel === kernel && r.init.startsWith("burrow") && r.samples.some((s) => s.boot)).sort((a, b) => wall(a) - wall(b))[0];
  if (!row) return null;
  const withBoot = row.samples.filter((s) => s.boot).sort((a, b) => a.wallToAgentMs - b.wallToAgentMs);
  return { row, sample: withBoot[Math.floor((withBoot.length - 1) / 2)]! };
}

const date = new Date().toISOString();
const description = `${runs} boots per init, interleaved; QEMU TCG, -machine microvm${kernels.includes("arm64") ? " (arm64: qemu-system-aarch64 -machine virt -cpu max,pauth-impdef=on)" : ""}, ${values.mem} RAM, image compression ${values.compress}.`;
const report = `# burrow vs busybox init — ${date}\n\n${description}\n\n${table()}`;
const data: ResultsData = { date, description, rows: rows.map((row) => ({ ...row, samples: row.samples.map(({ boot: _boot, ...sample }) => sample) })) };
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(join(ROOT, "bench/results/latest.md"), report);
writeFileSync(join(ROOT, "bench/results/latest.json"), JSON.stringify(data, null, 2) + "\n");
writeFileSync(join(ROOT, "bench/results/latest.svg"), wallPicture(wallRowsFromData(data), date, description));
const shown = timelineBoot();
if (shown) {
  const layout = shown.row.init === "burrow-disk" ? "boot disk" : "initramfs";
  const boot: BootData = { date, description: `${shown.row.kernel} kernel, ${layout}: the bench's run with the median wall time (${shown.sample.wallToAgentMs.toFixed(0)} ms to the agent). ${description}`, ...shown.sample.boot! };
  writeFileSync(join(ROOT, "bench/results/latest-boot.json"), JSON.stringify(boot, null, 2) + "\n");
  writeFileSync(join(ROOT, "bench/results/latest-boot.svg"), bootPicture(boot));
}
console.log(report);
rmSync(work, { recursive: true, force: true });
