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
import { runVm, type RunOptions } from "../src/host/qemu";
import { BURROW, INITRAMFS, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../test/helpers/artifacts";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({ options: { runs: { type: "string", default: "5" }, clones: { type: "string", default: "1,4,16" }, "tb-size": { type: "string", default: "32" }, only: { type: "string", default: "forms,clones,touched,warm" } } });
const runs = Number(values.runs);
const cloneCounts = values.clones!.split(",").map(Number);
const smallTb = Number(values["tb-size"]);
/** Which parts to run: forms (save and restore of each form), clones, touched, warm. */
const only = new Set(values.only!.split(","));
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

/** `line` at the start of a line of `text` (a restored guest's first output has nothing before it). */
function atLineStart(text: string, line: string): boolean {
  return text.startsWith(line) || text.includes(`\n${line}`);
}

interface Clone { ms: number; pid: number; stop: () => Promise<void> }

/** One restore, until its agent's first line; it keeps running until stop(). */
async function startClone(dir: string, tbSize?: number, upLine = AGENT_UP): Promise<Clone> {
  const controller = new AbortController();
  let pid = 0;
  let seen = "";
  let upAt = 0;
  const started = performance.now();
  const done = restoreSnapshot(dir, { timeoutSeconds: 600, signal: controller.signal, onQemu: (p) => (pid = p), ...(tbSize ? { tcgTbSizeMiB: tbSize } : {}) }, (text) => {
    seen += text;
    // At a line's start: the kernel echoes its command line, which names the line too.
    if (!upAt && atLineStart(seen, upLine)) upAt = performance.now();
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
/** Written after every part, so a part that fails keeps the ones before it. */
function writeResults(): string {
  const header = [
    "# Snapshots: mapped RAM file against the RAM in the stream",
    "",
    `${new Date().toISOString().slice(0, 10)}. QEMU TCG, -machine microvm, the micro kernel and initramfs (\`just test-images\`), 512 MiB unless said. \`npx just bench-snapshots\` (RUNS=${runs}).`,
    "",
  ];
  const text = [...header, ...lines].join("\n") + "\n";
  writeFileSync(join(ROOT, "bench/results/snapshots.md"), text);
  return text;
}

try {
  const dirs: Record<SnapshotForm, string> = { mapped: join(work, "mapped"), copy: join(work, "copy") };
  if (only.has("forms") || only.has("clones")) {
    lines.push("| form | save (VM paused) | state file | RAM file written | sealing |", "|---|---|---|---|---|");
    for (const form of ["mapped", "copy"] as const) {
      const { manifest } = await saveSnapshot(options(INITRAMFS, "512M"), dirs[form], () => {}, { form });
      log(`saved ${form}: ${manifest.saveMs} ms, state ${mib(manifest.saved.state.size)} MiB`);
      lines.push(`| ${form} | ${manifest.saveMs} ms | ${mib(manifest.saved.state.size)} MiB | ${form === "mapped" ? `${mib(manifest.ramAllocatedBytes)} of 512 MiB` : "—"} | ${manifest.sealMs} ms |`);
    }
  }

  writeResults();
  if (only.has("forms")) {
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
  }

  writeResults();
  if (only.has("clones")) {
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
  }

  writeResults();
  if (only.has("touched")) {
    // Warm snapshots of a 3 GiB guest whose workload filled a tmpfs with N MiB (256 MiB of random
    // data copied: every page non-zero) before asking for the snapshot.
    const touchedDirs: Record<string, string> = {};
    for (const [name, copies] of [["64 MiB", 0], ["1 GiB", 4]] as const) {
      const fill = copies === 0
        ? "dd if=/dev/urandom of=/tmp/b/0 bs=1M count=64"
        : "dd if=/dev/urandom of=/tmp/b/0 bs=1M count=256; for n in 1 2 3; do cp /tmp/b/0 /tmp/b/$n; done";
      const workload = `mkdir -p /tmp/b; mount -t tmpfs -o size=1200M b /tmp/b; ${fill}; echo READY=1 >&$BURROW_NOTIFY_FD; read -r msg <&$BURROW_NOTIFY_FD; echo ${AGENT_UP}; exec sleep 900`;
      for (const form of ["mapped", "copy"] as const) {
        const dir = join(work, `touched-${copies}-${form}`);
        const { manifest } = await saveSnapshot({ ...options(INITRAMFS, "3G"), append: `burrow.supervise=1 burrow.agent=/bin/sh -- -c "${workload}"` }, dir, () => {}, { form, warm: true });
        touchedDirs[`${name}|${form}`] = dir;
        log(`saved touched ${name} ${form}: state ${mib(manifest.saved.state.size)} MiB, RAM file written ${mib(manifest.ramAllocatedBytes)} MiB, saved in ${manifest.saveMs} ms`);
      }
    }
    const touched: Record<string, number[]> = {};
    for (let run = 0; run < runs; run++) {
      for (const key of Object.keys(touchedDirs)) {
        const clone = await startClone(touchedDirs[key]!);
        await clone.stop();
        (touched[key] ??= []).push(clone.ms);
        log(`run ${run + 1} touched ${key}: ${clone.ms.toFixed(0)} ms`);
      }
    }
    lines.push("", "Warm snapshots of a 3 GiB guest whose workload had written ~64 MiB or over 1 GiB into a tmpfs, launch → the workload's first line after the resume (median):", "", "| guest touched | form | launch → workload |", "|---|---|---|");
    for (const key of Object.keys(touchedDirs)) lines.push(`| ${key.split("|")[0]} | ${key.split("|")[1]} | ${median(touched[key]!).toFixed(0)} ms |`);
    const spread = median(touched["1 GiB|mapped"]!) / median(touched["64 MiB|mapped"]!);
    lines.push("", `mapped, 1 GiB ÷ 64 MiB: ${spread.toFixed(2)}× (goal within 15 %)`);
  }

  writeResults();
  if (only.has("warm")) {
    // A workload that spends seconds warming up (a stand-in for an interpreter importing its
    // modules), then answers. Cold boot, the snapshot point (the warm-up runs after each restore),
    // and a warm snapshot (taken after the warm-up).
    const warmUp = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done";
    const answer = "bench: answer";
    const pointAppend = `burrow.agent=/bin/sh -- -c "${warmUp}; echo ${answer}; exec sleep 900"`;
    const warmAppend = `burrow.supervise=1 burrow.agent=/bin/sh -- -c "${warmUp}; echo READY=1 >&$BURROW_NOTIFY_FD; read -r msg <&$BURROW_NOTIFY_FD; echo ${answer}; exec sleep 900"`;
    const pointDir = join(work, "warm-point");
    const warmDir = join(work, "warm-warm");
    await saveSnapshot({ ...options(INITRAMFS, "512M"), append: pointAppend }, pointDir);
    await saveSnapshot({ ...options(INITRAMFS, "512M"), append: warmAppend }, warmDir, () => {}, { warm: true });
    const firstAnswer: Record<string, number[]> = { "cold boot": [], "snapshot point": [], "warm snapshot": [] };
    for (let run = 0; run < runs; run++) {
      const controller = new AbortController();
      let seen = "";
      let at = 0;
      const started = performance.now();
      // snapshot=on: the cold boot must not touch the disk the snapshots were saved against.
      const cold = runVm({ ...options(INITRAMFS, "512M"), append: pointAppend, snapshotDisks: true, signal: controller.signal }, (text) => {
        seen += text;
        if (!at && atLineStart(seen, answer)) {
          at = performance.now();
          controller.abort();
        }
      });
      await cold;
      if (!at) throw new Error(`the cold boot never answered:\n${seen.slice(-2000)}`);
      firstAnswer["cold boot"]!.push(at - started);
      for (const [key, dir] of [["snapshot point", pointDir], ["warm snapshot", warmDir]] as const) {
        const clone = await startClone(dir, undefined, answer);
        await clone.stop();
        firstAnswer[key]!.push(clone.ms);
      }
      log(`run ${run + 1} first answer: cold ${firstAnswer["cold boot"]!.at(-1)!.toFixed(0)}, point ${firstAnswer["snapshot point"]!.at(-1)!.toFixed(0)}, warm ${firstAnswer["warm snapshot"]!.at(-1)!.toFixed(0)} ms`);
    }
    lines.push("", "A workload that warms up for seconds (a shell counting to 300000, standing in for an interpreter importing its modules), launch → its first answer (median):", "", "| start | launch → first answer |", "|---|---|");
    for (const [key, samples] of Object.entries(firstAnswer)) lines.push(`| ${key} | ${median(samples).toFixed(0)} ms |`);
    lines.push("", `warm snapshot ÷ cold boot: ${(median(firstAnswer["warm snapshot"]!) / median(firstAnswer["cold boot"]!)).toFixed(2)} (goal ≤ 0.2)`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(writeResults());


