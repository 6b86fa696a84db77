// `just bench-oci`: burrow-oci (each container a microVM) against runc under Podman, side by side
// in one run, in five parts (`--only` takes a comma-separated list of their names):
// - podman: `podman run --rm --network none IMAGE true` wall time, interleaved: burrow-oci as it
//   starts a container by default (a template VM restored), burrow-oci booting it cold, and runc;
//   spawn → the container's first stdout line (`… echo ready`), the same three;
// - restore: dist/burrow-oci create + start without an engine, the template restore's phases from
//   the holder's log, from QEMU's spawn to the container's process started (bench/oci-restore.ts);
// - idle: an idle `podman run -d … sleep 3600` container's host PSS and RSS, the same three
//   (bench/oci-idle.ts);
// - net: a stream host → container and back, burrow-oci on Podman's bridge, the same guest on a
//   plain tap, and runc (bench/oci-net.ts);
// - shares: in a guest booted as burrow-oci boots one (dist/oci's kernel and boot disk, microvm,
//   TCG): many small files (find + cat) and one large file (dd) read from virtio-9p mounted as the
//   container's root is (cache=loose) and as a volume is (cache=mmap), from virtio-fs (QEMU 7.2's
//   virtiofsd, cache=auto and cache=always), and the same files on the VM's own ext4 disk; guest
//   caches dropped first (cold), then the same read again at once (warm).
// Writes bench/results/oci.md (the tables) and bench/results/oci.json (every raw sample). A part
// not run this time keeps its section from the previous oci.json (its own date, command and load
// said above its table), so one part can be measured again alone.
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { withBootDisk } from "../src/host/boot-disk";
import { ninePMountData } from "../src/modes/microvm/shares";
import { requireArtifacts, ROOTFS } from "../test/helpers/artifacts";
import {
  BURROW_OCI, checkNoContainersLeft, checkTemplate, cleanUp, type Guest, guestSh, lastLines, log, median, mibps, noTemplateNote, OCI_BOOT_DISK, OCI_KERNEL, onCleanUp, PODMAN,
  PODMAN_TIMEOUT_MS, podmanWith, range, ROOT, RUNC, RUNTIME_TITLES, RUNTIMES, type Runtime, setUpPodman, spawnTracked, startGuest, stopGuest, type TemplateCheck, TEST_IMAGE,
  ULIMITS, verdict, within, work,
} from "./oci-common";
import { type IdleData, idleSection, measureIdle } from "./oci-idle";
import { measureNet, type NetData, netSection } from "./oci-net";
import { measureRestore, type RestoreData, restoreSection } from "./oci-restore";

const PARTS = ["podman", "restore", "idle", "net", "shares"] as const;
type Part = (typeof PARTS)[number];
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    // The small-file tree: this many files of 1–8 KiB, 10 to a directory, 10 directories to a parent.
    files: { type: "string", default: "5000" },
    "large-mib": { type: "string", default: "256" },
    // Enough for the large file to stay in the guest's page cache for the warm read.
    mem: { type: "string", default: "1G" },
    // How long an idle container sits after `podman run -d` returned before its memory is read.
    "idle-seconds": { type: "string", default: "5" },
    // The network stream each way: 64 MiB lasted under a second into the plain-tap guest (~80 MiB/s under TCG).
    "net-mib": { type: "string", default: "128" },
    only: { type: "string", default: PARTS.join(",") },
  },
});
const runs = Number(values.runs);
const fileCount = Number(values.files);
const largeMiB = Number(values["large-mib"]);
const guestMem = values.mem!;
const idleSeconds = Number(values["idle-seconds"]);
const netMiB = Number(values["net-mib"]);
const onlyNames = values.only!.split(",").filter(Boolean);
const unknownPart = onlyNames.find((name) => !(PARTS as readonly string[]).includes(name));
if (unknownPart !== undefined) throw new Error(`--only: no part ${JSON.stringify(unknownPart)} (the parts: ${PARTS.join(", ")})`);
const only = new Set(onlyNames as Part[]);
if (!(runs >= 1 && fileCount >= 1 && largeMiB >= 1 && idleSeconds >= 0 && Number.isInteger(netMiB) && netMiB >= 1)) throw new Error("--runs, --files, --large-mib and --net-mib must be positive numbers, --idle-seconds not negative");

const VIRTIOFSD = "/usr/lib/qemu/virtiofsd";
/** Where the guest mounts each kind (its root is a fresh copy of the demo root disk). */
const MOUNT_BASE = "/mnt/bench";

/** virtiofsd's lock files (/run/virtiofsd/<socket path, / as .>.pid), which it leaves behind. */
const virtiofsdLocks = new Set<string>();
onCleanUp(() => {
  for (const lock of virtiofsdLocks) rmSync(lock, { force: true });
  if (virtiofsdLocks.size > 0) {
    try {
      rmdirSync("/run/virtiofsd"); // only when empty: another virtiofsd's lock keeps it
    } catch {}
  }
});

// ---- podman: podman run with each runtime ----------------------------------------------------------

interface PodmanSamples { trueMs: number[]; firstLineMs: number[]; echoWallMs: number[]; firstRunMs: number }
/** `template`: whether the default column restored one (absent in results older than the check). */
interface PodmanData { runs: number; samples: Record<Runtime, PodmanSamples>; template?: TemplateCheck }

/**
 * One `podman run`: its wall time (spawn → exit) and, when `line` is given, spawn → that line on
 * its stdout. A non-zero exit or a run past PODMAN_TIMEOUT_MS throws with its last stderr lines.
 */
async function podmanRun(runtime: Runtime, command: string[], line: string | null): Promise<{ wallMs: number; lineMs: number }> {
  const started = performance.now();
  const child = spawnTracked([...podmanWith(runtime), "run", "--rm", "--network", "none", ...ULIMITS, TEST_IMAGE, ...command]);
  let lineMs = NaN;
  let stdout = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of child.stdout) {
      stdout += decoder.decode(chunk, { stream: true });
      if (line !== null && Number.isNaN(lineMs) && stdout.split("\n").slice(0, -1).includes(line)) lineMs = performance.now() - started;
    }
  })();
  const stderr = new Response(child.stderr).text();
  const timer = setTimeout(() => child.kill("SIGKILL"), PODMAN_TIMEOUT_MS);
  const code = await child.exited;
  const wallMs = performance.now() - started;
  clearTimeout(timer);
  await reading;
  if (code !== 0) throw new Error(`podman run (${runtime}) ${command.join(" ")}: exit ${code}${child.signalCode ? ` (${child.signalCode}; ${PODMAN_TIMEOUT_MS / 1000} s)` : ""}: ${lastLines(await stderr)}`);
  if (line !== null && Number.isNaN(lineMs)) throw new Error(`podman run (${runtime}) ${command.join(" ")}: no line ${JSON.stringify(line)} on stdout, got ${JSON.stringify(stdout.slice(0, 200))}`);
  return { wallMs, lineMs };
}

async function measurePodman(): Promise<PodmanData> {
  const podman = Object.fromEntries(RUNTIMES.map((runtime): [Runtime, PodmanSamples] => [runtime, { trueMs: [], firstLineMs: [], echoWallMs: [], firstRunMs: NaN }])) as Record<Runtime, PodmanSamples>;
  // First runs, kept out of the medians: podman's store, the executables and burrow's boot disk
  // into the page cache, and burrow-oci's template built (its first fitting create saves it).
  for (const runtime of RUNTIMES) podman[runtime].firstRunMs = (await podmanRun(runtime, ["true"], null)).wallMs;
  log(`podman first runs: ${RUNTIMES.map((runtime) => `${runtime} ${podman[runtime].firstRunMs.toFixed(0)} ms`).join(", ")}`);
  for (let run = 1; run <= runs; run++) {
    // The order turned each run, so each runtime runs first, in the middle and last.
    const order = RUNTIMES.map((_, index) => RUNTIMES[(index + run - 1) % RUNTIMES.length]!);
    for (const runtime of order) {
      const plain = await podmanRun(runtime, ["true"], null);
      podman[runtime].trueMs.push(plain.wallMs);
    }
    for (const runtime of order) {
      const echo = await podmanRun(runtime, ["echo", "ready"], "ready");
      podman[runtime].firstLineMs.push(echo.lineMs);
      podman[runtime].echoWallMs.push(echo.wallMs);
    }
    log(`podman run ${run}: ${RUNTIMES.map((runtime) => `${runtime} true ${podman[runtime].trueMs.at(-1)!.toFixed(0)} ms, first line ${podman[runtime].firstLineMs.at(-1)!.toFixed(0)} ms`).join("; ")}`);
  }
  checkNoContainersLeft("--rm runs");
  return { runs, samples: podman, template: await checkTemplate() };
}

// ---- shares: the share's read throughput in the guest ------------------------------------------------

/** How the guest reaches the files. */
type KindName = "9p-loose" | "9p-mmap" | "virtiofs-auto" | "virtiofs-always" | "ext4";
/**
 * The two VMs each run boots: "oci" has the devices burrow-oci gives a container (QEMU's legacy
 * virtio-mmio, -sandbox); "vhost" switches virtio-mmio to virtio 1.0 (force-legacy=false), which
 * vhost-user-fs needs (virtiofsd refuses a legacy device), and backs the RAM with a shared memfd
 * (virtiofsd maps the guest's memory). Each has the ext4 disk, the reference its shares are taken
 * against.
 */
type BootName = "oci" | "vhost";
const BOOTS: Record<BootName, KindName[]> = { oci: ["9p-loose", "9p-mmap", "ext4"], vhost: ["virtiofs-auto", "virtiofs-always", "9p-loose", "ext4"] };
const TAGS = { loose: "bench9l", mmap: "bench9m" };
/**
 * One virtiofsd per cache mode (a daemon option): "auto" is its default (the guest's page cache is
 * dropped at each open, attributes trusted for 1 s); "always" keeps the page cache across opens,
 * as 9p's cache=loose does for a container's root.
 */
const VIRTIOFS = { "virtiofs-auto": { cache: "auto", tag: "benchvfsauto" }, "virtiofs-always": { cache: "always", tag: "benchvfsalways" } } as const;
type VirtiofsKind = keyof typeof VIRTIOFS;
const isVirtiofs = (kind: KindName): kind is VirtiofsKind => kind in VIRTIOFS;

function mountCommand(kind: KindName, dir: string): string {
  switch (kind) {
    // The data strings burrow's guest mounts a container's root (cache=loose) and its volumes (cache=mmap) with.
    case "9p-loose": return `mount -t 9p -o ro,${ninePMountData("root")} ${TAGS.loose} ${dir}`;
    case "9p-mmap": return `mount -t 9p -o ro,${ninePMountData("volume")} ${TAGS.mmap} ${dir}`;
    case "virtiofs-auto":
    case "virtiofs-always": return `mount -t virtiofs -o ro ${VIRTIOFS[kind].tag} ${dir}`;
    // vda: the boot disk, vdb: the guest's root, vdc: the files.
    case "ext4": return `mount -t ext4 -o ro /dev/vdc ${dir}`;
  }
}

type Test = "smallCold" | "smallWarm" | "largeCold" | "largeWarm";
const TESTS: Test[] = ["smallCold", "smallWarm", "largeCold", "largeWarm"];
/** Column key: kind@boot. */
type Column = `${KindName}@${BootName}`;
const COLUMNS: Column[] = (Object.entries(BOOTS) as [BootName, KindName[]][]).flatMap(([boot, kinds]) => kinds.map((kind) => `${kind}@${boot}` as Column));
const shareSamples = Object.fromEntries(COLUMNS.map((column) => [column, Object.fromEntries(TESTS.map((test) => [test, [] as number[]]))])) as Record<Column, Record<Test, number[]>>;
/** The same reads timed on the host around the exec (the channel's round trip included), for the JSON. */
const hostSamples = Object.fromEntries(COLUMNS.map((column) => [column, Object.fromEntries(TESTS.map((test) => [test, [] as number[]]))])) as Record<Column, Record<Test, number[]>>;
/** Two guest clock readings back to back: what the timing itself adds to each figure. */
const timerOverheadMs: number[] = [];

interface Tree { dir: string; smallBytes: number; largeBytes: number; image: string }

/** The files: `fileCount` small ones of 1–8 KiB random bytes under small/, and large.bin; then the same tree as an ext4 image. */
function makeTree(): Tree {
  const dir = join(work, "tree");
  let smallBytes = 0;
  for (let index = 0; index < fileCount; index++) {
    const parent = join(dir, "small", `d${String(Math.floor(index / 100)).padStart(3, "0")}`, `e${Math.floor(index / 10) % 10}`);
    if (index % 10 === 0) mkdirSync(parent, { recursive: true });
    const size = 1024 + Math.floor(Math.random() * 7169);
    writeFileSync(join(parent, `f${index % 10}`), randomBytes(size));
    smallBytes += size;
  }
  const largeBytes = largeMiB * 2 ** 20;
  const chunk = 2 ** 20;
  const large = openSync(join(dir, "large.bin"), "w");
  try {
    for (let at = 0; at < largeBytes; at += chunk) writeSync(large, randomBytes(chunk));
  } finally {
    closeSync(large);
  }
  // An ordinary 4 KiB-block ext4 (mke2fs would pick 1 KiB blocks for a small image), room to spare.
  const image = join(work, "files.ext4");
  const imageMiB = Math.ceil((largeBytes + fileCount * 8192 + smallBytes) / 2 ** 20 * 1.3) + 32;
  const mkfs = Bun.spawnSync(["mke2fs", "-q", "-t", "ext4", "-T", "default", "-b", "4096", "-d", dir, "-F", image, `${imageMiB}M`], { stdout: "pipe", stderr: "pipe" });
  if (mkfs.exitCode !== 0) throw new Error(`mke2fs -d ${dir}: exit ${mkfs.exitCode}: ${lastLines(mkfs.stderr.toString())}`);
  // Every backend then reads from the host's page cache: the transport is measured, not the host's disk.
  Bun.spawnSync(["sh", "-c", `find ${dir} -type f -exec cat {} + > /dev/null; cat ${image} > /dev/null`]);
  return { dir, smallBytes, largeBytes, image };
}

interface Virtiofsd { kind: VirtiofsKind; child: ReturnType<typeof Bun.spawn<"ignore", "pipe", "pipe">>; socket: string; log: () => string }

async function startVirtiofsd(kind: VirtiofsKind, tree: string, run: number): Promise<Virtiofsd> {
  const socket = join(work, `${kind}-${run}.sock`);
  virtiofsdLocks.add(`/run/virtiofsd/${socket.replaceAll("/", ".")}.pid`);
  // virtiofsd's defaults otherwise (sandbox=namespace, no xattr, readdirplus): the daemon as QEMU ships it.
  const child = spawnTracked([VIRTIOFSD, `--socket-path=${socket}`, "-o", `source=${tree}`, "-o", `cache=${VIRTIOFS[kind].cache}`]);
  let output = "";
  void (async () => {
    for await (const chunk of child.stderr) output = (output + new TextDecoder().decode(chunk)).slice(-8192);
  })();
  for (let waited = 0; !existsSync(socket); waited += 10) {
    if (child.exitCode !== null || waited > 10_000) throw new Error(`virtiofsd did not listen on ${socket}: ${lastLines(output)}`);
    await Bun.sleep(10);
  }
  return { kind, child, socket, log: () => output };
}

async function bootGuest(boot: BootName, tree: Tree, run: number, virtiofsds: Virtiofsd[]): Promise<Guest> {
  const disk = join(work, `root-${boot}-${run}.ext4`);
  copyFileSync(ROOTFS, disk);
  const kinds = BOOTS[boot];
  const shares = [
    ...(kinds.includes("9p-loose") ? [{ tag: TAGS.loose, path: tree.dir, readOnly: true }] : []),
    // A second device: one virtio-9p channel serves one mount at a time.
    ...(kinds.includes("9p-mmap") ? [{ tag: TAGS.mmap, path: tree.dir, readOnly: true }] : []),
  ];
  const vhost = virtiofsds.length === 0 ? [] : [
    "-global", "virtio-mmio.force-legacy=false",
    "-object", `memory-backend-memfd,id=mem,size=${guestMem},share=on`, "-numa", "node,memdev=mem",
    ...virtiofsds.flatMap((daemon, index) => ["-chardev", `socket,id=vfs${index},path=${daemon.socket}`, "-device", `vhost-user-fs-device,chardev=vfs${index},tag=${VIRTIOFS[daemon.kind].tag}`]),
  ];
  const options = withBootDisk({
    kernel: OCI_KERNEL, initrd: null, disks: [disk, tree.image], readOnlyDisks: [tree.image], ports: [], mem: guestMem, smp: 1, machine: "microvm", accel: "tcg",
    append: 'burrow.agent=/bin/sh -- -c "echo workload: up; exec sleep 100000"', timeoutSeconds: 3600,
    shares, sandbox: true, extraArgs: vhost,
  }, OCI_BOOT_DISK);
  return startGuest(options, boot);
}

/** busybox adjtimex's clock readings (busybox date has no %N), in ms. */
function clockReadings(output: string): number[] {
  return [...output.matchAll(/time\.tv_sec:\s+(\d+)\s+time\.tv_usec:\s+(\d+)/g)].map((match) => Number(match[1]) * 1000 + Number(match[2]) / 1000);
}

/** The guest-clock time of `command` (its own stdout to /dev/null), after dropping the guest's caches when `cold`. */
async function timeInGuest(guest: Guest, command: string, cold: boolean): Promise<{ ms: number; hostMs: number; stderr: string }> {
  const drop = cold ? "sync && echo 3 > /proc/sys/vm/drop_caches && " : "";
  const { stdout, stderr, hostMs } = await guestSh(guest, `${drop}adjtimex && ${command} > /dev/null && adjtimex`);
  const [before, after] = clockReadings(stdout);
  if (before === undefined || after === undefined) throw new Error(`guest: no adjtimex readings around ${command}: ${stdout.slice(0, 300)}`);
  return { ms: after - before, hostMs, stderr };
}

async function measureBoot(boot: BootName, tree: Tree, run: number): Promise<void> {
  const virtiofsds: Virtiofsd[] = [];
  try {
    for (const kind of BOOTS[boot].filter(isVirtiofs)) virtiofsds.push(await startVirtiofsd(kind, tree.dir, run));
    const guest = await bootGuest(boot, tree, run, virtiofsds);
    try {
      const kinds = BOOTS[boot];
      const dir = (kind: KindName) => `${MOUNT_BASE}/${kind}`;
      await guestSh(guest, kinds.map((kind) => `mkdir -p ${dir(kind)} && ${mountCommand(kind, dir(kind))}`).join(" && "));
      // Every mount holds every file whole before anything is timed.
      for (const kind of kinds) {
        const { stdout } = await guestSh(guest, `find ${dir(kind)}/small -type f | wc -l; find ${dir(kind)}/small -type f -exec cat {} + | wc -c; stat -c %s ${dir(kind)}/large.bin`);
        const [files, bytes, large] = stdout.trim().split(/\s+/).map(Number);
        if (files !== fileCount || bytes !== tree.smallBytes || large !== tree.largeBytes) {
          throw new Error(`${kind}@${boot}: the guest sees ${files} files of ${bytes} bytes and a large file of ${large}, not ${fileCount}, ${tree.smallBytes} and ${tree.largeBytes}`);
        }
      }
      const overhead = await guestSh(guest, "adjtimex && adjtimex");
      const [first, second] = clockReadings(overhead.stdout);
      timerOverheadMs.push(second! - first!);
      // Each read, kind by kind (the kinds' order turned each run): cold, then warm at once.
      const order = kinds.map((_, index) => kinds[(index + run) % kinds.length]!);
      const reads = [
        { cold: "smallCold", warm: "smallWarm", command: (kind: KindName) => `find ${dir(kind)}/small -type f -exec cat {} +` },
        { cold: "largeCold", warm: "largeWarm", command: (kind: KindName) => `dd if=${dir(kind)}/large.bin of=/dev/null bs=1M` },
      ] as const;
      for (const read of reads) {
        for (const kind of order) {
          const column: Column = `${kind}@${boot}`;
          for (const [test, cold] of [[read.cold, true], [read.warm, false]] as const) {
            const timed = await timeInGuest(guest, read.command(kind), cold);
            // dd's count: every 1 MiB block of the large file came in whole.
            if (test.startsWith("large") && !new RegExp(`^${largeMiB}\\+0 records in`, "m").test(timed.stderr)) throw new Error(`${column}: dd read ${JSON.stringify(timed.stderr.trim())}, not ${largeMiB} whole blocks`);
            shareSamples[column][test].push(timed.ms);
            hostSamples[column][test].push(timed.hostMs);
          }
        }
      }
      log(`shares run ${run} (${boot}): ${kinds.map((kind) => `${kind} small ${shareSamples[`${kind}@${boot}`].smallCold.at(-1)!.toFixed(0)}/${shareSamples[`${kind}@${boot}`].smallWarm.at(-1)!.toFixed(0)} ms, large ${shareSamples[`${kind}@${boot}`].largeCold.at(-1)!.toFixed(0)}/${shareSamples[`${kind}@${boot}`].largeWarm.at(-1)!.toFixed(0)} ms`).join("; ")} (cold/warm)`);
    } finally {
      await stopGuest(guest);
      rmSync(join(work, `root-${boot}-${run}.ext4`), { force: true });
    }
  } finally {
    for (const virtiofsd of virtiofsds) {
      // virtiofsd ends when QEMU hangs up; one that does not is killed.
      await within(virtiofsd.child.exited, 10_000, () => null);
      if (virtiofsd.child.exitCode === null) virtiofsd.child.kill("SIGKILL");
      await virtiofsd.child.exited;
      rmSync(virtiofsd.socket, { force: true });
    }
  }
}

interface SharesData {
  runs: number; fileCount: number; largeMiB: number; guestMem: string; smallBytes: number;
  guestClockMs: Record<Column, Record<Test, number[]>>; hostMs: Record<Column, Record<Test, number[]>>; timerOverheadMs: number[]; boots: Record<BootName, KindName[]>;
}

async function measureShares(): Promise<SharesData> {
  const tree = makeTree();
  log(`shares: ${fileCount} files, ${(tree.smallBytes / 2 ** 20).toFixed(1)} MiB, and a ${largeMiB} MiB file; ext4 image ${tree.image}`);
  const boots = Object.keys(BOOTS) as BootName[];
  for (let run = 1; run <= runs; run++) {
    for (const boot of run % 2 ? boots : [...boots].reverse()) await measureBoot(boot, tree, run);
  }
  return { runs, fileCount, largeMiB, guestMem, smallBytes: tree.smallBytes, guestClockMs: shareSamples, hostMs: hostSamples, timerOverheadMs, boots: BOOTS };
}


// ---- the sections ---------------------------------------------------------------------------------

interface Section { title: string; body: string[] }

function podmanSection(data: PodmanData): Section {
  const { samples } = data;
  const row = (what: string, pick: (samples: PodmanSamples) => number[]) => {
    const ratio = (runtime: Runtime) => (median(pick(samples[runtime])) / median(pick(samples.runc))).toFixed(1);
    return `| ${what} | ${RUNTIMES.map((runtime) => `${range(pick(samples[runtime]))} ms`).join(" | ")} | ${ratio("burrow-oci")}× / ${ratio("burrow-oci-cold")}× |`;
  };
  return {
    title: "podman run",
    body: [
      `${data.runs} runs of each, the three interleaved (the order turned each run), after one first run of each; medians (min–max). Podman on a throw-away store (\`--root/--runroot/--tmpdir\` in a temporary directory, \`--storage-driver vfs\`), the image ${TEST_IMAGE} (test/helpers/oci-image.ts: Debian's busybox-static), every runtime with \`${ULIMITS.join(" ")}\` (runc here cannot set podman's default RLIMIT_NPROC) and through a one-line sh wrapper (\`exec RUNTIME "$@"\`; burrow-oci's add \`--root DIR\` in the run's directory, as Podman passes none, so its state and templates never touch /run/burrow-oci). burrow-oci runs each container as a microVM (dist/oci's micro kernel and boot disk, QEMU TCG, 1 vCPU, 256 MiB, the root over virtio-9p): by default restored from a template VM its first fitting create saved (src/oci/template.ts); with BURROW_OCI_TEMPLATE=0 booted cold.`,
      "",
      `| measurement (wall time on the host) | ${RUNTIMES.map((runtime) => RUNTIME_TITLES[runtime]).join(" | ")} | burrow-oci ÷ runc (template / cold) |`,
      `|---|${RUNTIMES.map(() => "---").join("|")}|---|`,
      row("`podman run --rm --network none IMAGE true`: spawn → exit", (each) => each.trueMs),
      row("`podman run --rm --network none IMAGE echo ready`: spawn → the line `ready` on podman's stdout", (each) => each.firstLineMs),
      row("the same `echo ready` run: spawn → exit", (each) => each.echoWallMs),
      `| each runtime's first \`… true\` of the bench, once, before the runs above (burrow-oci's builds its template) | ${RUNTIMES.map((runtime) => `${samples[runtime].firstRunMs.toFixed(0)} ms`).join(" | ")} | — |`,
      ...(data.template && data.template.saved === 0 ? ["", noTemplateNote(data.template)] : []),
    ],
  };
}

const COLUMN_TITLES: Partial<Record<Column, string>> = {
  "9p-loose@oci": "9p cache=loose (container root)",
  "9p-mmap@oci": "9p cache=mmap (volume)",
  "ext4@oci": "ext4 disk",
  "virtiofs-auto@vhost": "virtio-fs cache=auto (virtiofsd's default)",
  "virtiofs-always@vhost": "virtio-fs cache=always",
  "9p-loose@vhost": "9p cache=loose",
  "ext4@vhost": "ext4 disk",
};

function sharesTable(data: SharesData): string[] {
  const columns: Column[] = (Object.entries(data.boots) as [BootName, KindName[]][]).flatMap(([boot, kinds]) => kinds.map((kind) => `${kind}@${boot}` as Column));
  const samples = data.guestClockMs;
  const bytes = (test: Test) => (test.startsWith("small") ? data.smallBytes : data.largeMiB * 2 ** 20);
  const cell = (column: Column, test: Test) => {
    const xs = samples[column][test];
    return xs.length ? `${range(xs)} ms, ${mibps(bytes(test), median(xs)).toFixed(1)} MiB/s` : "—";
  };
  const smallWhat = `${data.fileCount} files of 1–8 KiB (${(data.smallBytes / 2 ** 20).toFixed(1)} MiB, ${data.fileCount / 10} directories): \`find DIR -type f -exec cat {} + > /dev/null\``;
  const largeWhat = `one ${data.largeMiB} MiB file: \`dd if=FILE of=/dev/null bs=1M\``;
  const rows = [
    [`${smallWhat}, **cold** (guest caches dropped)`, "smallCold"],
    [`the same, **warm** (again at once)`, "smallWarm"],
    [`${largeWhat}, **cold**`, "largeCold"],
    [`the same, **warm**`, "largeWarm"],
  ] as const;
  // The goal: each share's small-file cold throughput against the ext4 disk of the same boot, paired per run.
  const goal = (column: Column) => {
    const boot = column.split("@")[1] as BootName;
    if (column.startsWith("ext4")) return "(the reference)";
    const disk = samples[`ext4@${boot}`].smallCold;
    const ratios = samples[column].smallCold.map((ms, index) => disk[index]! / ms);
    if (!ratios.length) return "—";
    return `${(median(ratios) * 100).toFixed(0)} % (${(Math.min(...ratios) * 100).toFixed(0)}–${(Math.max(...ratios) * 100).toFixed(0)}): ${verdict(median(ratios) >= 0.5)}`;
  };
  return [
    `| measurement (guest clock) | ${columns.map((column) => `${COLUMN_TITLES[column]} [${column.split("@")[1]} VM]`).join(" | ")} |`,
    `|---|${columns.map(() => "---").join("|")}|`,
    ...rows.map(([what, test]) => `| ${what} | ${columns.map((column) => cell(column, test)).join(" | ")} |`),
    `| goal: small files cold at ≥ 50 % of the same VM's ext4 disk (throughput; median of the per-run ratios) | ${columns.map(goal).join(" | ")} |`,
  ];
}

function sharesSection(data: SharesData): Section {
  return {
    title: "the share's read throughput in the guest",
    body: [
      `${data.runs} runs; each run boots two VMs (their order swapped each run) from dist/oci's kernel and boot disk as burrow-oci does (microvm, 1 vCPU, ${data.guestMem} so the large file stays cached for the warm read, a copy of dist/rootfs.ext4 as the guest's root), the same host directory exported to both and the same files as an ext4 image (mke2fs -d, 4 KiB blocks) attached read-only as a virtio-blk disk:`,
      `- **oci VM**: the devices burrow-oci gives a container (QEMU's legacy virtio-mmio, \`-sandbox on,…\`): 9p mounted with the data burrow's guest uses for a container's root (\`${ninePMountData("root")}\`) and, on a second virtio-9p device, for a volume (\`${ninePMountData("volume")}\`; one 9p channel serves one mount); both \`-fsdev local,security_model=passthrough,readonly=on\`.`,
      `- **vhost VM**: what virtio-fs needs: \`-global virtio-mmio.force-legacy=false\` (virtiofsd refuses a legacy device), the RAM a shared memfd (\`-object memory-backend-memfd,share=on -numa node,memdev=mem\`), \`-device vhost-user-fs-device\` on QEMU 7.2's virtiofsd (the C one; \`-o source=DIR -o cache=auto\` — its default: the guest's page cache of a file is dropped at each open — and a second daemon with \`-o cache=always\`, which keeps it as 9p's cache=loose does; sandbox=namespace), each mounted \`-t virtiofs -o ro\`; 9p cache=loose again, to show what the virtio 1.0 transport alone changes.`,
      "",
      "Every mount is checked first (file count, total bytes, the large file's size; dd's block count on every large read). **Cold**: `sync; echo 3 > /proc/sys/vm/drop_caches` in the guest right before the read — the guest's page, dentry and inode caches are empty; the host's page cache holds every file and the ext4 image throughout (all read once on the host before the first boot), so each kind reads from host RAM and what differs is the transport. **Warm**: the same read again at once, nothing dropped (9p cache=mmap keeps no page cache, so its warm read goes to the host again). The kinds take turns within a VM (the order turned each run). Times are the guest's clock (busybox `adjtimex` before and after; two readings back to back differ by " + `${range(data.timerOverheadMs, 1)} ms); the host's view of each read (the exec's round trip included) is in oci.json. MiB/s: the bytes read over the median time. Medians (min–max).`,
      "",
      ...sharesTable(data),
    ],
  };
}

function idleMarkdown(data: IdleData): Section {
  return { title: "idle container: host memory", body: idleSection(data) };
}

function netMarkdown(data: NetData): Section {
  return { title: "network throughput host ↔ container", body: netSection(data) };
}

function versions(): string {
  const first = (argv: string[]) => Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" }).stdout.toString().split("\n")[0]!.trim();
  return [
    PODMAN ? first([PODMAN, "--version"]) : null,
    RUNC ? first([RUNC, "--version"]) : null,
    first(["qemu-system-x86_64", "--version"]),
    existsSync(VIRTIOFSD) ? first([VIRTIOFSD, "--version"]) : null,
  ].filter(Boolean).join("; ");
}

// ---- the results: oci.json (every sample) and oci.md (the tables) ----------------------------------

interface PartRecord<T> { date: string; commandLine: string; loadAverage: { start: string; end: string }; data: T }
interface Parts { podman?: PartRecord<PodmanData>; restore?: PartRecord<RestoreData>; idle?: PartRecord<IdleData>; net?: PartRecord<NetData>; shares?: PartRecord<SharesData> }

const RESULTS_JSON = join(ROOT, "bench/results/oci.json");
const RESULTS_MD = join(ROOT, "bench/results/oci.md");

/**
 * The parts the previous oci.json holds, to keep those this run does not measure. A file written
 * before the bench had parts (podman and shares samples at its top level) is read as such; a part
 * with no samples in it (not run then) is left out.
 */
function previousParts(): Parts {
  let json: Record<string, any>;
  try {
    json = JSON.parse(readFileSync(RESULTS_JSON, "utf8"));
  } catch {
    return {};
  }
  if (json.parts) return json.parts as Parts;
  const meta = { date: json.date, commandLine: json.commandLine, loadAverage: json.loadAverage };
  const parts: Parts = {};
  if (json.podman && json.podman.runc?.trueMs?.length) parts.podman = { ...meta, data: { runs: json.runs, samples: json.podman } };
  if (json.shares && typeof json.smallBytes === "number") {
    parts.shares = {
      ...meta,
      data: { runs: json.runs, fileCount: json.fileCount, largeMiB: json.largeMiB, guestMem: json.guestMem, smallBytes: json.smallBytes, guestClockMs: json.shares.guestClockMs, hostMs: json.shares.hostMs, timerOverheadMs: json.shares.timerOverheadMs, boots: json.boots },
    };
  }
  return parts;
}

function markdown(parts: Parts, header: PartRecord<unknown>): string {
  const kept = PARTS.filter((part) => parts[part] && !only.has(part));
  const lines = [
    "# burrow-oci: Podman against runc (start time, idle memory, network), and the container root's share in the guest",
    "",
    `${header.date} — \`${header.commandLine}\`. ${navigator.hardwareConcurrency} host CPUs (1-minute load average ${header.loadAverage.start} at the start, ${header.loadAverage.end} at the end), QEMU TCG (no KVM). ${versions()}.`,
    "",
  ];
  if (kept.length) {
    lines.push(`This run measured ${[...only].join(", ")}; the other sections (${kept.join(", ")}) are kept from an earlier run, their samples read back from oci.json and their tables written again by the same code, each with its own date, command and load average.`, "");
  }
  const sections: [Part, (record: any) => Section][] = [
    ["podman", (record: PartRecord<PodmanData>) => podmanSection(record.data)],
    ["restore", (record: PartRecord<RestoreData>) => ({ title: "template restore → the container's process, phase by phase", body: restoreSection(record.data) })],
    ["idle", (record: PartRecord<IdleData>) => idleMarkdown(record.data)],
    ["net", (record: PartRecord<NetData>) => netMarkdown(record.data)],
    ["shares", (record: PartRecord<SharesData>) => sharesSection(record.data)],
  ];
  for (const [part, render] of sections) {
    const record = parts[part];
    if (!record) continue;
    const { title, body } = render(record);
    lines.push(`## ${title}`, "");
    if (!only.has(part)) lines.push(`*Kept from an earlier run (not measured this time): ${record.date} — \`${record.commandLine}\`, 1-minute load average ${record.loadAverage.start} at its start, ${record.loadAverage.end} at its end.*`, "");
    lines.push(...body, "");
  }
  return lines.join("\n");
}

// ---- main ---------------------------------------------------------------------------------------

/** A word for a shell command line, quoted when it needs to be. */
const shellWord = (word: string) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`);
const argv = process.argv.slice(2);
const commandLine = argv.length === 2 && argv[0] === "--runs" ? `RUNS=${runs} npx just bench-oci` : ["node_modules/.bin/bun", "bench/oci.ts", ...argv].map(shellWord).join(" ");
/** Other work on the host skews TCG timings: the 1-minute load average when the bench starts and ends goes in the header. */
const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0]!;
const loadAtStart = loadAverage();
const measured: { podman?: PodmanData; restore?: RestoreData; idle?: IdleData; net?: NetData; shares?: SharesData } = {};
try {
  if (only.has("podman") || only.has("idle") || only.has("net")) {
    if (!PODMAN || !RUNC) throw new Error(`bench-oci needs podman and runc on the host (apt-get install podman runc): ${PODMAN ? "" : "no podman "}${RUNC ? "" : "no runc"}`);
    requireArtifacts(BURROW_OCI, OCI_KERNEL, OCI_BOOT_DISK);
    await setUpPodman();
  }
  if (only.has("podman")) measured.podman = await measurePodman();
  if (only.has("restore")) {
    requireArtifacts(BURROW_OCI, OCI_KERNEL, OCI_BOOT_DISK);
    measured.restore = await measureRestore(runs);
  }
  // After the podman part burrow-oci's template exists; alone, the idle part builds it first.
  if (only.has("idle")) measured.idle = await measureIdle(runs, idleSeconds, !only.has("podman"));
  if (only.has("net")) measured.net = await measureNet(runs, netMiB);
  if (only.has("shares")) {
    requireArtifacts(OCI_KERNEL, OCI_BOOT_DISK, ROOTFS, VIRTIOFSD);
    measured.shares = await measureShares();
  }
} finally {
  await cleanUp();
}

const header: PartRecord<null> = { date: new Date().toISOString(), commandLine, loadAverage: { start: loadAtStart, end: loadAverage() }, data: null };
const previous = previousParts();
const parts: Parts = {};
for (const part of PARTS) {
  const fresh = measured[part];
  const record = fresh === undefined ? previous[part] : { ...header, data: fresh };
  if (record) (parts as Record<Part, unknown>)[part] = record;
}
const table = markdown(parts, header);
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(RESULTS_MD, table);
writeFileSync(RESULTS_JSON, JSON.stringify({ date: header.date, commandLine, measured: [...only], loadAverage: header.loadAverage, parts }, null, 2) + "\n");
process.stdout.write(table);
