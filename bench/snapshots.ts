// `just bench-snapshots`: the mapped snapshot form (the RAM a file every restore maps copy-on-write)
// against the copy form (the RAM inside the migration stream), side by side in one run:
// - save time and size;
// - restore launch → the agent's first line, interleaved;
// - 1, 4 and 16 clones of one snapshot at once: time to agent and host memory (PSS per QEMU, and
//   of it the guest RAM's mapping: file pages plus their copy-on-write copies), with TCG's default
//   translation buffer and a small one;
// - a guest that touched ~64 MiB against one that touched ~1 GiB (its initramfs held 1 GiB of
//   random data, freed by switch_root but still written RAM): restore time of each form.
// Writes bench/results/snapshots.md.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { restoreSnapshot, saveSnapshot } from "../src/host/snapshot";
import type { SnapshotForm } from "../src/host/snapshot-manifest";
import type { RunOptions } from "../src/host/qemu";
import { BURROW, INITRAMFS, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../test/helpers/artifacts";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({ options: { runs: { type: "string", default: "5" }, clones: { type: "string", default: "1,4,16" }, "tb-size": { type: "string", default: "32" }, touched: { type: "boolean", default: true } } });
const runs = Number(values.runs);
const cloneCounts = values.clones!.split(",").map(Number);
const smallTb = Number(values["tb-size"]);
requireArtifacts(BURROW, KERNEL_MICRO, INITRAMFS, ROOTFS);

const work = mkdtempSync(join(tmpdir(), "burrow-bench-snapshots-"));
const disk = join(work, "root.ext4");
copyFileSync(ROOTFS, disk);
const AGENT_UP = "bench: up";
const options = (initrd: string, mem: string): RunOptions => ({
  kernel: KERNEL_MICRO, initrd, disks: [disk], ports: [], mem, smp: 1, machine: "microvm", accel: "tcg",
  append: `burrow.agent=/bin/sh -- -c "echo ${AGENT_UP}; exec sleep 900"`, timeoutSeconds: 600,
});

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)]! : NaN;
};
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const log = (line: string) => console.error(`bench: ${line}`);

interface Clone { ms: number; pid: number; stop: () => Promise<void> }

/** One restore, until its agent's first line; it keeps running until stop(). */
async function startClone(dir: string, tbSize?: number): Promise<Clone> {
  const controller = new AbortController();
  let pid = 0;
  let seen = "";
  let upAt = 0;
  const started = performance.now();
  const done = restoreSnapshot(dir, { timeoutSeconds: 600, signal: controller.signal, onQemu: (p) => (pid = p), ...(tbSize ? { tcgTbSizeMiB: tbSize } : {}) }, (text) => {
    seen += text;
    if (!upAt && seen.includes(AGENT_UP)) upAt = performance.now();
  }).catch((error: unknown) => error);
  while (!upAt) {
    const settled = await Promise.race([done.then(() => true), Bun.sleep(10).then(() => false)]);
    if (settled && !upAt) throw new Error(`restore of ${dir} ended before its agent: ${String(await done)}\n${seen.slice(-2000)}`);
  }
  return { ms: upAt - started, pid, stop: async () => { controller.abort(); await done; } };
}

/** PSS of a QEMU, and of the mapping holding the guest's RAM (the file's VMA, or the anonymous one of the guest's size). */
function memoryOf(pid: number, memBytes: number): { pssKiB: number; ramPssKiB: number } {
  const smaps = readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n");
  let total = 0;
  let ram = 0;
  let inRam = false;
  for (const line of smaps) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      const size = parseInt(header[2]!, 16) - parseInt(header[1]!, 16);
      inRam = header[3]!.endsWith("/ram") || (header[3] === "" && size === memBytes);
      continue;
    }
    const pss = /^Pss:\s+(\d+) kB/.exec(line);
    if (pss) {
      total += Number(pss[1]);
      if (inRam) ram += Number(pss[1]);
    }
  }
  return { pssKiB: total, ramPssKiB: ram };
}

const lines: string[] = [];
try {
  const dirs: Record<SnapshotForm, string> = { mapped: join(work, "mapped"), copy: join(work, "copy") };
  lines.push("| form | save (VM paused) | state file | RAM file written | sealing |", "|---|---|---|---|---|");
  for (const form of ["mapped", "copy"] as const) {
    const { manifest } = await saveSnapshot(options(INITRAMFS, "512M"), dirs[form], () => {}, { form });
    log(`saved ${form}: ${manifest.saveMs} ms, state ${mib(manifest.saved.state.size)} MiB`);
    lines.push(`| ${form} | ${manifest.saveMs} ms | ${mib(manifest.saved.state.size)} MiB | ${form === "mapped" ? `${mib(manifest.ramAllocatedBytes)} of 512 MiB` : "—"} | ${manifest.sealMs} ms |`);
  }

  const toAgent: Record<SnapshotForm, number[]> = { mapped: [], copy: [] };
  for (let run = 0; run < runs; run++) {
    for (const form of ["mapped", "copy"] as const) {
      const clone = await startClone(dirs[form]);
      await clone.stop();
      toAgent[form].push(clone.ms);
      log(`run ${run + 1} ${form}: launch → agent ${clone.ms.toFixed(0)} ms`);
    }
  }
  const ratio = median(toAgent.mapped) / median(toAgent.copy);
  lines.push("", `Restore, launch → agent's first line (${runs} interleaved runs, median [min–max]):`, "", "| form | launch → agent |", "|---|---|");
  for (const form of ["mapped", "copy"] as const) lines.push(`| ${form} | ${median(toAgent[form]).toFixed(0)} ms [${Math.min(...toAgent[form]).toFixed(0)}–${Math.max(...toAgent[form]).toFixed(0)}] |`);
  lines.push("", `mapped ÷ copy: ${ratio.toFixed(2)}× (goal ≤ 0.7×)`);

  lines.push("", "Clones of one 512 MiB snapshot at once, each kept alive at its agent; PSS per QEMU (mean), and of it the guest RAM's mapping:", "", "| form | TCG buffer | clones | launch → agent (median / max) | PSS per QEMU | guest RAM part |", "|---|---|---|---|---|---|");
  for (const count of cloneCounts) {
    for (const [form, tb] of [["mapped", undefined], ["mapped", smallTb], ["copy", undefined]] as const) {
      const clones = await Promise.all(Array.from({ length: count }, () => startClone(dirs[form], tb)));
      await Bun.sleep(1000);
      const memory = clones.map((clone) => memoryOf(clone.pid, 512 * 2 ** 20));
      await Promise.all(clones.map((clone) => clone.stop()));
      const times = clones.map((clone) => clone.ms);
      const pss = memory.reduce((sum, m) => sum + m.pssKiB, 0) / count / 1024;
      const ram = memory.reduce((sum, m) => sum + m.ramPssKiB, 0) / count / 1024;
      log(`${count} × ${form} tb=${tb ?? "default"}: agent ${median(times).toFixed(0)}/${Math.max(...times).toFixed(0)} ms, PSS ${pss.toFixed(1)} MiB (RAM ${ram.toFixed(1)})`);
      lines.push(`| ${form} | ${tb ? `${tb} MiB` : "default"} | ${count} | ${median(times).toFixed(0)} / ${Math.max(...times).toFixed(0)} ms | ${pss.toFixed(1)} MiB | ${ram.toFixed(1)} MiB |`);
    }
  }

  if (values.touched) {
    // The big guest: 1 GiB of random data in its initramfs, unpacked into RAM at boot.
    const big = join(work, "big.bin");
    Bun.spawnSync(["dd", "if=/dev/urandom", `of=${big}`, "bs=1M", "count=1024", "status=none"]);
    const bigImage = join(work, "big.img");
    const built = Bun.spawnSync([BURROW, "image", "--kernel-dir", "none", "--add", `${big}:/ballast.bin`, "--out", bigImage], { stderr: "pipe" });
    if (built.exitCode !== 0) throw new Error(`burrow image: ${built.stderr.toString()}`);
    rmSync(big);
    const touched: Record<string, number[]> = {};
    const touchedDirs: Record<string, string> = {};
    for (const [name, image] of [["64M", INITRAMFS], ["1G", bigImage]] as const) {
      for (const form of ["mapped", "copy"] as const) {
        const dir = join(work, `touched-${name}-${form}`);
        const { manifest } = await saveSnapshot(options(image, "3G"), dir, () => {}, { form });
        touchedDirs[`${name} ${form}`] = dir;
        log(`saved ${name} ${form}: state ${mib(manifest.saved.state.size)} MiB, RAM file written ${mib(manifest.ramAllocatedBytes)} MiB`);
      }
    }
    rmSync(bigImage);
    for (let run = 0; run < runs; run++) {
      for (const key of Object.keys(touchedDirs)) {
        const clone = await startClone(touchedDirs[key]!);
        await clone.stop();
        (touched[key] ??= []).push(clone.ms);
        log(`run ${run + 1} touched ${key}: ${clone.ms.toFixed(0)} ms`);
      }
    }
    lines.push("", "A 3 GiB guest that touched ~64 MiB against one that touched over 1 GiB (1 GiB of random data in its initramfs), launch → agent:", "", "| guest touched | form | launch → agent (median) |", "|---|---|---|");
    for (const key of Object.keys(touchedDirs)) lines.push(`| ${key.split(" ")[0]} | ${key.split(" ")[1]} | ${median(touched[key]!).toFixed(0)} ms |`);
    const spread = median(touched["1G mapped"]!) / median(touched["64M mapped"]!);
    lines.push("", `mapped, 1 GiB ÷ 64 MiB: ${spread.toFixed(2)}× (goal within 15 %)`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const header = [
  "# Snapshots: mapped RAM file against the RAM in the stream",
  "",
  `${new Date().toISOString().slice(0, 10)}. QEMU TCG, -machine microvm, the micro kernel and initramfs (\`just test-images\`), 512 MiB unless said. \`npx just bench-snapshots\` (RUNS=${runs}).`,
  "",
];
const text = [...header, ...lines].join("\n") + "\n";
writeFileSync(join(ROOT, "bench/results/snapshots.md"), text);
process.stdout.write(text);
