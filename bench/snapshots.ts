// `just bench-snapshots`: the mapped snapshot form (the RAM a file every restore maps copy-on-write)
// against the copy form (the RAM inside the migration stream), side by side in one run:
// - save time and size, and restore launch → the agent's first line, interleaved, on the micro
//   kernel and on Debian's;
// - 1, 4 and 16 clones of one snapshot at once: time to agent and host memory (PSS per QEMU; of
//   it the guest RAM's mapping, file pages plus their copy-on-write copies, and TCG's translation
//   buffer), with TCG's default buffer and smaller ones, huge pages on and off; and what a host
//   must allow for them (commit charge, descriptors, threads, mappings);
// - where DIR lives: a disk with the RAM file in the page cache or evicted from it, or a tmpfs;
// - a guest that touched ~64 MiB against one that touched ~1 GiB (its initramfs held 1 GiB of
//   random data, freed by switch_root but still written RAM): restore time of each form.
// Writes bench/results/snapshots.md.
import { cpSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { spawnSync } from "bun";
import { restoreSnapshot, saveSnapshot } from "../src/host/snapshot";
import type { SnapshotForm } from "../src/host/snapshot-manifest";
import { runVm, type RunOptions } from "../src/host/qemu";
import { prctl } from "../src/sys";
import { BURROW, INITRAMFS, INITRAMFS_DEBIAN, KERNEL, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../test/helpers/artifacts";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({ options: { runs: { type: "string", default: "5" }, clones: { type: "string", default: "1,4,16" }, only: { type: "string", default: "forms,clones,dir,touched,warm" } } });
const runs = Number(values.runs);
const cloneCounts = values.clones!.split(",").map(Number);
/** Which parts to run: forms (save and restore of each form), clones, dir, touched, warm. */
const only = new Set(values.only!.split(","));
requireArtifacts(BURROW, KERNEL_MICRO, INITRAMFS, KERNEL, INITRAMFS_DEBIAN, ROOTFS);
const KERNELS = { micro: { kernel: KERNEL_MICRO, initrd: INITRAMFS }, debian: { kernel: KERNEL, initrd: INITRAMFS_DEBIAN } } as const;
type KernelName = keyof typeof KERNELS;

const work = mkdtempSync(join(tmpdir(), "burrow-bench-snapshots-"));
const disk = join(work, "root.ext4");
copyFileSync(ROOTFS, disk);
const AGENT_UP = "bench: up";
const options = (initrd: string, mem: string, kernel = KERNEL_MICRO): RunOptions => ({
  kernel, initrd, disks: [disk], ports: [], mem, smp: 1, machine: "microvm", accel: "tcg",
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

interface Memory { pssKiB: number; ramPssKiB: number; tbPssKiB: number; mappings: number }

/**
 * PSS of a QEMU; of it the mapping holding the guest's RAM (the file's, or the anonymous one of
 * the guest's size) and TCG's translation buffer (the one anonymous mapping that is writable and
 * executable); and its count of mappings (against vm.max_map_count).
 */
function memoryOf(pid: number, memBytes: number): Memory {
  const smaps = readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n");
  const memory: Memory = { pssKiB: 0, ramPssKiB: 0, tbPssKiB: 0, mappings: 0 };
  let kind: "ram" | "tb" | "other" = "other";
  for (const line of smaps) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      memory.mappings++;
      const size = parseInt(header[2]!, 16) - parseInt(header[1]!, 16);
      const anonymous = header[4] === "";
      kind = header[4]!.endsWith("/ram") || (anonymous && size === memBytes) ? "ram" : anonymous && header[3] === "rwxp" ? "tb" : "other";
      continue;
    }
    const pss = /^Pss:\s+(\d+) kB/.exec(line);
    if (!pss) continue;
    memory.pssKiB += Number(pss[1]);
    if (kind === "ram") memory.ramPssKiB += Number(pss[1]);
    if (kind === "tb") memory.tbPssKiB += Number(pss[1]);
  }
  return memory;
}

/** A /proc/meminfo field in KiB. */
function meminfoKiB(field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync("/proc/meminfo", "utf8"));
  return match ? Number(match[1]) : NaN;
}

const openFds = (pid: number | "self") => readdirSync(`/proc/${pid}/fd`).length;
const threadsOf = (pid: number) => Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);

const lines: string[] = [];
/** Written after every part, so a part that fails keeps the ones before it. */
function writeResults(): string {
  const header = [
    "# Snapshots: mapped RAM file against the RAM in the stream",
    "",
    `${new Date().toISOString().slice(0, 10)}. QEMU TCG, -machine microvm, the micro kernel and its initramfs (\`just test-images\`) unless said (the forms also on Debian's kernel with its initramfs), 512 MiB unless said. \`npx just bench-snapshots\` (RUNS=${runs}).`,
    "",
  ];
  const text = [...header, ...lines].join("\n") + "\n";
  writeFileSync(join(ROOT, "bench/results/snapshots.md"), text);
  return text;
}

const PR_SET_THP_DISABLE = 41;

try {
  // The micro kernel's snapshots serve every part; Debian's only the forms.
  const dirs = (kernel: KernelName, form: SnapshotForm) => join(work, `${kernel}-${form}`);
  const kernels: KernelName[] = only.has("forms") ? ["micro", "debian"] : ["micro"];
  if (only.has("forms") || only.has("clones") || only.has("dir")) {
    lines.push("| kernel | form | save (VM paused) | state file | RAM file written | sealing |", "|---|---|---|---|---|---|");
    for (const kernel of kernels) {
      for (const form of ["mapped", "copy"] as const) {
        const { kernel: image, initrd } = KERNELS[kernel];
        const { manifest } = await saveSnapshot(options(initrd, "512M", image), dirs(kernel, form), () => {}, { form });
        log(`saved ${kernel} ${form}: ${manifest.saveMs} ms, state ${mib(manifest.saved.state.size)} MiB`);
        lines.push(`| ${kernel} | ${form} | ${manifest.saveMs} ms | ${mib(manifest.saved.state.size)} MiB | ${form === "mapped" ? `${mib(manifest.ramAllocatedBytes)} of 512 MiB` : "—"} | ${manifest.sealMs} ms |`);
      }
    }
  }

  writeResults();
  if (only.has("forms")) {
    const toAgent: Record<string, number[]> = {};
    for (let run = 0; run < runs; run++) {
      for (const kernel of kernels) {
        for (const form of ["mapped", "copy"] as const) {
          const clone = await startClone(dirs(kernel, form));
          await clone.stop();
          (toAgent[`${kernel} ${form}`] ??= []).push(clone.ms);
          log(`run ${run + 1} ${kernel} ${form}: launch → agent ${clone.ms.toFixed(0)} ms`);
        }
      }
    }
    lines.push("", `Restore, launch → agent's first line (${runs} interleaved runs, median [min–max]):`, "", "| kernel | form | launch → agent | mapped ÷ copy |", "|---|---|---|---|");
    for (const kernel of kernels) {
      for (const form of ["mapped", "copy"] as const) {
        const samples = toAgent[`${kernel} ${form}`]!;
        const ratio = form === "mapped" ? `${(median(samples) / median(toAgent[`${kernel} copy`]!)).toFixed(2)}× (goal ≤ 0.7×)` : "";
        lines.push(`| ${kernel} | ${form} | ${median(samples).toFixed(0)} ms [${Math.min(...samples).toFixed(0)}–${Math.max(...samples).toFixed(0)}] | ${ratio} |`);
      }
    }
  }

  writeResults();
  if (only.has("clones")) {
    // TCG's buffer: QEMU 7.2 maps 1 GiB and the guest dirties what it translates; a smaller one
    // is flushed and refilled when full. Huge pages off: PR_SET_THP_DISABLE on this process,
    // which every QEMU started meanwhile inherits (as transparent_hugepage=never would do).
    const variants = [
      { form: "mapped", tb: undefined, thp: true },
      { form: "mapped", tb: 16, thp: true },
      { form: "mapped", tb: 8, thp: true },
      { form: "mapped", tb: 8, thp: false },
      { form: "copy", tb: undefined, thp: true },
    ] as const;
    lines.push(
      "", "Clones of one 512 MiB snapshot at once (micro kernel), each kept alive at its agent; per QEMU (mean): PSS, and of it the guest RAM's mapping and TCG's translation buffer; what the host must allow per clone: commit charge (Committed_AS), descriptors and threads of each QEMU, descriptors of the process that started them, mappings:", "",
      "| form | TCG buffer | huge pages | clones | launch → agent (median / max) | PSS per QEMU | guest RAM part | TCG buffer part | commit per clone | fds / threads per QEMU | caller fds per clone | mappings |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|",
    );
    for (const count of cloneCounts) {
      for (const { form, tb, thp } of variants) {
        const committedBefore = meminfoKiB("Committed_AS");
        const fdsBefore = openFds("self");
        if (!thp) prctl(PR_SET_THP_DISABLE, 1);
        const clones = await Promise.all(Array.from({ length: count }, () => startClone(dirs("micro", form), tb)));
        if (!thp) prctl(PR_SET_THP_DISABLE, 0);
        await Bun.sleep(1000);
        const memory = clones.map((clone) => memoryOf(clone.pid, 512 * 2 ** 20));
        const commitMiB = (meminfoKiB("Committed_AS") - committedBefore) / count / 1024;
        const callerFds = (openFds("self") - fdsBefore) / count;
        const fds = clones.map((clone) => openFds(clone.pid));
        const threads = clones.map((clone) => threadsOf(clone.pid));
        await Promise.all(clones.map((clone) => clone.stop()));
        const times = clones.map((clone) => clone.ms);
        const mean = (pick: (m: Memory) => number) => memory.reduce((sum, m) => sum + pick(m), 0) / count;
        const [pss, ram, tbPart] = [mean((m) => m.pssKiB) / 1024, mean((m) => m.ramPssKiB) / 1024, mean((m) => m.tbPssKiB) / 1024];
        const row = [form, tb ? `${tb} MiB` : "default (1 GiB)", thp ? "madvise" : "off", count, `${median(times).toFixed(0)} / ${Math.max(...times).toFixed(0)} ms`, `${pss.toFixed(1)} MiB`, `${ram.toFixed(1)} MiB`, `${tbPart.toFixed(1)} MiB`, `${commitMiB.toFixed(0)} MiB`, `${Math.max(...fds)} / ${Math.max(...threads)}`, callerFds.toFixed(1), mean((m) => m.mappings).toFixed(0)];
        log(`clones: ${row.join(" | ")}`);
        lines.push(`| ${row.join(" | ")} |`);
      }
    }
  }

  writeResults();
  if (only.has("dir")) {
    // The same mapped snapshot on this disk, its RAM file in the page cache (as after a save or an
    // earlier restore) or evicted from it (flushed, then dropped with fadvise DONTNEED through dd's
    // nocache: only this file's pages), and a copy on a tmpfs.
    const onDisk = dirs("micro", "mapped");
    const shm = existsSync("/dev/shm") ? mkdtempSync("/dev/shm/burrow-bench-snapshots-") : null;
    try {
      const places: [string, string, boolean][] = [["disk, RAM file cached", onDisk, false], ["disk, RAM file evicted", onDisk, true]];
      if (shm) {
        cpSync(onDisk, join(shm, "snap"), { recursive: true });
        places.push(["tmpfs (/dev/shm)", join(shm, "snap"), false]);
        await (await startClone(join(shm, "snap"))).stop(); // the copy's first restore hashes it in full
      }
      const cachedMiB = (dir: string) => Number(spawnSync(["fincore", "--bytes", "--noheadings", "--output", "RES", join(dir, "ram")]).stdout.toString().trim()) / 2 ** 20;
      const samples: Record<string, number[]> = {};
      const cached: Record<string, number[]> = {};
      for (let run = 0; run < runs; run++) {
        for (const [name, dir, evict] of places) {
          if (evict) {
            spawnSync(["sync", join(dir, "ram")]);
            spawnSync(["dd", `if=${join(dir, "ram")}`, "iflag=nocache", "count=0", "status=none"]);
          }
          (cached[name] ??= []).push(cachedMiB(dir));
          const clone = await startClone(dir);
          await clone.stop();
          (samples[name] ??= []).push(clone.ms);
          log(`run ${run + 1} ${name}: ${clone.ms.toFixed(0)} ms (${cached[name]!.at(-1)!.toFixed(0)} MiB of the RAM file cached before)`);
        }
      }
      lines.push("", "Where DIR lives: one mapped snapshot (micro kernel), launch → agent (median [min–max]) and how much of its RAM file was in the page cache before each restore (fincore):", "", "| DIR | RAM file cached before | launch → agent |", "|---|---|---|");
      for (const [name] of places) lines.push(`| ${name} | ${median(cached[name]!).toFixed(0)} MiB | ${median(samples[name]!).toFixed(0)} ms [${Math.min(...samples[name]!).toFixed(0)}–${Math.max(...samples[name]!).toFixed(0)}] |`);
    } finally {
      if (shm) rmSync(shm, { recursive: true, force: true });
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


