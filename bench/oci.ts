// `just bench-oci`: burrow-oci (each container a microVM) against runc under Podman, and the read
// throughput of the share a container's root comes over, side by side in one run:
// - `podman run --rm --network none IMAGE true` wall time, interleaved: burrow-oci as it starts a
//   container by default (a template VM restored), burrow-oci booting it cold, and runc;
// - spawn → the container's first stdout line (`… echo ready`), the same three;
// - in a guest booted as burrow-oci boots one (dist/oci's kernel and boot disk, microvm, TCG):
//   many small files (find + cat) and one large file (dd) read from virtio-9p mounted as the
//   container's root is (cache=loose) and as a volume is (cache=mmap), from virtio-fs (QEMU 7.2's
//   virtiofsd, cache=auto and cache=always), and the same files on the VM's own ext4 disk; guest
//   caches dropped first (cold), then the same read again at once (warm).
// Writes bench/results/oci.md (the tables) and bench/results/oci.json (every raw sample).
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ControlClient } from "../src/control/client";
import type { ControlMux } from "../src/control/mux";
import { withBootDisk } from "../src/host/boot-disk";
import { runVm, type RunResult } from "../src/host/qemu";
import { ninePMountData } from "../src/modes/microvm/shares";
import { requireArtifacts, ROOTFS } from "../test/helpers/artifacts";
import { buildTestImage, TEST_IMAGE } from "../test/helpers/oci-image";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    // The small-file tree: this many files of 1–8 KiB, 10 to a directory, 10 directories to a parent.
    files: { type: "string", default: "5000" },
    "large-mib": { type: "string", default: "256" },
    // Enough for the large file to stay in the guest's page cache for the warm read.
    mem: { type: "string", default: "1G" },
    only: { type: "string", default: "podman,shares" },
  },
});
const runs = Number(values.runs);
const fileCount = Number(values.files);
const largeMiB = Number(values["large-mib"]);
const guestMem = values.mem!;
const only = new Set(values.only!.split(","));
if (!(runs >= 1 && fileCount >= 1 && largeMiB >= 1)) throw new Error("--runs, --files and --large-mib must be positive numbers");

const BURROW_OCI = join(ROOT, "dist/burrow-oci");
const OCI_KERNEL = join(ROOT, "dist/oci/vmlinuz");
const OCI_BOOT_DISK = join(ROOT, "dist/oci/boot.ext4");
const VIRTIOFSD = "/usr/lib/qemu/virtiofsd";
const RUNC = Bun.which("runc");
const PODMAN = Bun.which("podman");
/** runc on this host cannot set podman's default rlimits (EPERM on RLIMIT_NPROC): every runtime gets these. */
const ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];
const PODMAN_TIMEOUT_MS = 300_000;
const GUEST_TIMEOUT_MS = 900_000;
/** Where the guest mounts each kind (its root is a fresh copy of the demo root disk). */
const MOUNT_BASE = "/mnt/bench";

const log = (line: string) => console.error(`bench: ${line}`);
const median = (xs: number[]) => {
  const sorted = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const mibps = (bytes: number, ms: number) => bytes / 2 ** 20 / (ms / 1000);
/** The last lines of a process's stderr, for a one-line error. */
const lastLines = (what: string) => what.trim().split("\n").slice(-3).join(" / ");
/** `promise`, or `onTimeout()`'s after `ms`; the timer is cleared either way (a pending one would keep the process alive). */
async function within<T>(promise: Promise<T>, ms: number, onTimeout: () => T | Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), ms)));
  try {
    const first = await Promise.race([promise, late]);
    return first === "late" ? await onTimeout() : (first as T);
  } finally {
    clearTimeout(timer);
  }
}

// ---- clean-up on every path ------------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), "burrow-bench-oci-"));
/** Every QEMU run this process started and has not seen end: aborted and awaited on any way out. */
const liveVms = new Map<AbortController, Promise<unknown>>();
/** Every child process (podman, virtiofsd) still running: killed by its pid on any way out. */
const liveChildren = new Set<ReturnType<typeof Bun.spawn>>();
/** virtiofsd's lock files (/run/virtiofsd/<socket path, / as .>.pid), which it leaves behind. */
const virtiofsdLocks = new Set<string>();
let podmanStore: string[] | null = null;

function track<T>(abort: AbortController, run: Promise<T>): Promise<T> {
  liveVms.set(abort, run);
  void run.finally(() => liveVms.delete(abort)).catch(() => {});
  return run;
}

function spawnTracked(argv: string[]): ReturnType<typeof Bun.spawn<"ignore", "pipe", "pipe">> {
  const child = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  liveChildren.add(child);
  void child.exited.finally(() => liveChildren.delete(child));
  return child;
}

/** Mounts left under the work directory (a podman run killed mid-way keeps its /dev/shm tmpfs). */
function mountsUnder(dir: string): string[] {
  const lines = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
  return lines.map((line) => line.split(" ")[4] ?? "").filter((point) => point === dir || point.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}

let cleaned = false;
async function cleanUp(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  for (const abort of liveVms.keys()) abort.abort();
  for (const child of liveChildren) child.kill("SIGKILL");
  await within(Promise.allSettled([...liveVms.values(), ...[...liveChildren].map((child) => child.exited)]), 15_000, () => []);
  if (podmanStore) {
    // A container a killed run left (burrow-oci's holder and QEMU with it): removed through podman.
    Bun.spawnSync([PODMAN!, ...podmanStore, "rm", "--all", "--force", "--time", "0"], { stdout: "ignore", stderr: "ignore" });
  }
  for (const point of mountsUnder(work)) Bun.spawnSync(["umount", "--lazy", point], { stdout: "ignore", stderr: "ignore" });
  rmSync(work, { recursive: true, force: true });
  for (const lock of virtiofsdLocks) rmSync(lock, { force: true });
  if (virtiofsdLocks.size > 0) {
    try {
      rmdirSync("/run/virtiofsd"); // only when empty: another virtiofsd's lock keeps it
    } catch {}
  }
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void cleanUp().finally(() => process.exit(130));
  });
}

// ---- 1 and 2: podman run with each runtime ----------------------------------------------------------

/**
 * burrow-oci as it starts a container by default (restoring a template VM saved by the first
 * create that fits; src/oci/template.ts), burrow-oci booting every container cold
 * (BURROW_OCI_TEMPLATE=0), and runc.
 */
const RUNTIMES = ["burrow-oci", "burrow-oci-cold", "runc"] as const;
type Runtime = (typeof RUNTIMES)[number];
const RUNTIME_TITLES: Record<Runtime, string> = { "burrow-oci": "burrow-oci (template restore, its default)", "burrow-oci-cold": "burrow-oci, BURROW_OCI_TEMPLATE=0 (cold boot)", runc: "runc" };

interface PodmanSamples { trueMs: number[]; firstLineMs: number[]; echoWallMs: number[]; firstRunMs: number }
const podman = Object.fromEntries(RUNTIMES.map((runtime): [Runtime, PodmanSamples] => [runtime, { trueMs: [], firstLineMs: [], echoWallMs: [], firstRunMs: NaN }])) as Record<Runtime, PodmanSamples>;

/**
 * Each runtime through a one-line sh wrapper in the work directory (the same exec for all three).
 * Podman passes a runtime no --root, so burrow-oci's wrappers give it one here: its containers'
 * state and its templates stay in this run's directory, never in /run/burrow-oci.
 */
function writeRuntimeWrappers(dir: string): Record<Runtime, string> {
  mkdirSync(dir, { recursive: true });
  const stateRoot = join(dir, "burrow-oci-root");
  const scripts: Record<Runtime, string> = {
    "burrow-oci": `exec '${BURROW_OCI}' --root '${stateRoot}' "$@"`,
    "burrow-oci-cold": `BURROW_OCI_TEMPLATE=0 exec '${BURROW_OCI}' --root '${stateRoot}' "$@"`,
    runc: `exec '${RUNC}' "$@"`,
  };
  const paths = {} as Record<Runtime, string>;
  for (const runtime of RUNTIMES) {
    paths[runtime] = join(dir, runtime);
    writeFileSync(paths[runtime], `#!/bin/sh\n${scripts[runtime]}\n`, { mode: 0o755 });
  }
  return paths;
}
let runtimePaths: Record<Runtime, string> | null = null;

function podmanRunArgv(runtime: Runtime, command: string[]): string[] {
  return [PODMAN!, ...podmanStore!, "--runtime", runtimePaths![runtime], "run", "--rm", "--network", "none", ...ULIMITS, TEST_IMAGE, ...command];
}

/**
 * One `podman run`: its wall time (spawn → exit) and, when `line` is given, spawn → that line on
 * its stdout. A non-zero exit or a run past PODMAN_TIMEOUT_MS throws with its last stderr lines.
 */
async function podmanRun(runtime: Runtime, command: string[], line: string | null): Promise<{ wallMs: number; lineMs: number }> {
  const started = performance.now();
  const child = spawnTracked(podmanRunArgv(runtime, command));
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

function podmanOnce(argv: string[], what: string): string {
  const result = Bun.spawnSync([PODMAN!, ...podmanStore!, ...argv], { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`podman ${what}: exit ${result.exitCode}: ${lastLines(result.stderr.toString())}`);
  return result.stdout.toString();
}

async function measurePodman(): Promise<void> {
  const store = join(work, "podman");
  podmanStore = ["--root", join(store, "root"), "--runroot", join(store, "runroot"), "--tmpdir", join(store, "tmp"), "--storage-driver", "vfs"];
  const archive = await buildTestImage(join(work, "image.tar"));
  podmanOnce(["load", "--quiet", "--input", archive], "load");
  runtimePaths = writeRuntimeWrappers(join(work, "runtimes"));
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
  const left = podmanOnce(["ps", "--all", "--quiet"], "ps").trim();
  if (left) throw new Error(`containers left after --rm runs: ${left.split("\n").join(" ")}`);
}

// ---- 3: the share's read throughput in the guest ---------------------------------------------------

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

interface Guest { client: ControlClient; ended: Promise<RunResult>; abort: AbortController; output: () => string }

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
  const abort = new AbortController();
  let output = "";
  let control: Promise<ControlMux> | null = null;
  const ended = track(abort, runVm({ ...options, signal: abort.signal, onSpawn: (vm) => (control = vm.control) }, (chunk) => (output = (output + chunk).slice(-65536))));
  try {
    const gone = ended.then((result) => Promise.reject(new Error(`the ${boot} guest ended before it answered: ${result.reason}\n${output.slice(-3000)}`)));
    gone.catch(() => {});
    while (control === null) await Promise.race([Bun.sleep(10), gone]);
    const mux = await Promise.race([control as Promise<ControlMux>, gone]);
    const client = await ControlClient.over(mux.local());
    return { client, ended, abort, output: () => output };
  } catch (error) {
    abort.abort();
    await ended.catch(() => {});
    throw error;
  }
}

async function stopGuest(guest: Guest): Promise<void> {
  try {
    await within(guest.client.stop().catch(() => {}), 10_000, () => {});
    await within(guest.ended, 30_000, () => null);
  } finally {
    guest.abort.abort();
    await guest.ended.catch(() => {});
  }
}

/** A shell command in the guest; a non-zero exit or one past GUEST_TIMEOUT_MS throws with the console's tail. */
async function guestSh(guest: Guest, script: string): Promise<{ stdout: string; stderr: string; hostMs: number }> {
  const started = performance.now();
  const result = await within(guest.client.exec(["/bin/sh", "-c", script]), GUEST_TIMEOUT_MS, () => {
    throw new Error(`guest: ${script}: no answer in ${GUEST_TIMEOUT_MS / 1000} s\n${guest.output().slice(-3000)}`);
  });
  const hostMs = performance.now() - started;
  const stdout = text(result.stdout);
  const stderr = text(result.stderr);
  if (result.exitCode !== 0) throw new Error(`guest: ${script}: exit ${result.exitCode}: ${lastLines(stderr)}\n${guest.output().slice(-3000)}`);
  return { stdout, stderr, hostMs };
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

async function measureShares(): Promise<Tree> {
  const tree = makeTree();
  log(`shares: ${fileCount} files, ${(tree.smallBytes / 2 ** 20).toFixed(1)} MiB, and a ${largeMiB} MiB file; ext4 image ${tree.image}`);
  const boots = Object.keys(BOOTS) as BootName[];
  for (let run = 1; run <= runs; run++) {
    for (const boot of run % 2 ? boots : [...boots].reverse()) await measureBoot(boot, tree, run);
  }
  return tree;
}

// ---- the tables ---------------------------------------------------------------------------------

const range = (xs: number[], digits = 0) => (xs.length ? `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})` : "—");
const verdict = (ok: boolean) => (ok ? "met" : "**not met**");

function podmanTable(): string[] {
  const row = (what: string, pick: (samples: PodmanSamples) => number[]) => {
    const ratio = (runtime: Runtime) => (median(pick(podman[runtime])) / median(pick(podman.runc))).toFixed(1);
    return `| ${what} | ${RUNTIMES.map((runtime) => `${range(pick(podman[runtime]))} ms`).join(" | ")} | ${ratio("burrow-oci")}× / ${ratio("burrow-oci-cold")}× |`;
  };
  return [
    `| measurement (wall time on the host) | ${RUNTIMES.map((runtime) => RUNTIME_TITLES[runtime]).join(" | ")} | burrow-oci ÷ runc (template / cold) |`,
    `|---|${RUNTIMES.map(() => "---").join("|")}|---|`,
    row("`podman run --rm --network none IMAGE true`: spawn → exit", (samples) => samples.trueMs),
    row("`podman run --rm --network none IMAGE echo ready`: spawn → the line `ready` on podman's stdout", (samples) => samples.firstLineMs),
    row("the same `echo ready` run: spawn → exit", (samples) => samples.echoWallMs),
    `| each runtime's first \`… true\` of the bench, once, before the runs above (burrow-oci's builds its template) | ${RUNTIMES.map((runtime) => `${podman[runtime].firstRunMs.toFixed(0)} ms`).join(" | ")} | — |`,
  ];
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

function sharesTable(tree: Tree): string[] {
  const bytes = (test: Test) => (test.startsWith("small") ? tree.smallBytes : tree.largeBytes);
  const cell = (column: Column, test: Test) => {
    const xs = shareSamples[column][test];
    return xs.length ? `${range(xs)} ms, ${mibps(bytes(test), median(xs)).toFixed(1)} MiB/s` : "—";
  };
  const smallWhat = `${fileCount} files of 1–8 KiB (${(tree.smallBytes / 2 ** 20).toFixed(1)} MiB, ${fileCount / 10} directories): \`find DIR -type f -exec cat {} + > /dev/null\``;
  const largeWhat = `one ${largeMiB} MiB file: \`dd if=FILE of=/dev/null bs=1M\``;
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
    const disk = shareSamples[`ext4@${boot}`].smallCold;
    const ratios = shareSamples[column].smallCold.map((ms, index) => disk[index]! / ms);
    if (!ratios.length) return "—";
    return `${(median(ratios) * 100).toFixed(0)} % (${(Math.min(...ratios) * 100).toFixed(0)}–${(Math.max(...ratios) * 100).toFixed(0)}): ${verdict(median(ratios) >= 0.5)}`;
  };
  return [
    `| measurement (guest clock) | ${COLUMNS.map((column) => `${COLUMN_TITLES[column]} [${column.split("@")[1]} VM]`).join(" | ")} |`,
    `|---|${COLUMNS.map(() => "---").join("|")}|`,
    ...rows.map(([what, test]) => `| ${what} | ${COLUMNS.map((column) => cell(column, test)).join(" | ")} |`),
    `| goal: small files cold at ≥ 50 % of the same VM's ext4 disk (throughput; median of the per-run ratios) | ${COLUMNS.map(goal).join(" | ")} |`,
  ];
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

function markdown(tree: Tree | null, commandLine: string, load: string): string {
  const lines = [
    "# burrow-oci: Podman against runc, and the container root's share in the guest",
    "",
    `${new Date().toISOString()} — \`${commandLine}\`. ${navigator.hardwareConcurrency} host CPUs (1-minute load average ${load}), QEMU TCG (no KVM). ${versions()}.`,
    "",
  ];
  if (only.has("podman")) {
    lines.push(
      "## podman run",
      "",
      `${runs} runs of each, the three interleaved (the order turned each run), after one first run of each; medians (min–max). Podman on a throw-away store (\`--root/--runroot/--tmpdir\` in a temporary directory, \`--storage-driver vfs\`), the image ${TEST_IMAGE} (test/helpers/oci-image.ts: Debian's busybox-static), every runtime with \`${ULIMITS.join(" ")}\` (runc here cannot set podman's default RLIMIT_NPROC) and through a one-line sh wrapper (\`exec RUNTIME "$@"\`; burrow-oci's add \`--root DIR\` in the run's directory, as Podman passes none, so its state and templates never touch /run/burrow-oci). burrow-oci runs each container as a microVM (dist/oci's micro kernel and boot disk, QEMU TCG, 1 vCPU, 256 MiB, the root over virtio-9p): by default restored from a template VM its first fitting create saved (src/oci/template.ts); with BURROW_OCI_TEMPLATE=0 booted cold.`,
      "",
      ...podmanTable(),
      "",
    );
  }
  if (only.has("shares") && tree) {
    lines.push(
      "## the share's read throughput in the guest",
      "",
      `${runs} runs; each run boots two VMs (their order swapped each run) from dist/oci's kernel and boot disk as burrow-oci does (microvm, 1 vCPU, ${guestMem} so the large file stays cached for the warm read, a copy of dist/rootfs.ext4 as the guest's root), the same host directory exported to both and the same files as an ext4 image (mke2fs -d, 4 KiB blocks) attached read-only as a virtio-blk disk:`,
      `- **oci VM**: the devices burrow-oci gives a container (QEMU's legacy virtio-mmio, \`-sandbox on,…\`): 9p mounted with the data burrow's guest uses for a container's root (\`${ninePMountData("root")}\`) and, on a second virtio-9p device, for a volume (\`${ninePMountData("volume")}\`; one 9p channel serves one mount); both \`-fsdev local,security_model=passthrough,readonly=on\`.`,
      `- **vhost VM**: what virtio-fs needs: \`-global virtio-mmio.force-legacy=false\` (virtiofsd refuses a legacy device), the RAM a shared memfd (\`-object memory-backend-memfd,share=on -numa node,memdev=mem\`), \`-device vhost-user-fs-device\` on QEMU 7.2's virtiofsd (the C one; \`-o source=DIR -o cache=auto\` — its default: the guest's page cache of a file is dropped at each open — and a second daemon with \`-o cache=always\`, which keeps it as 9p's cache=loose does; sandbox=namespace), each mounted \`-t virtiofs -o ro\`; 9p cache=loose again, to show what the virtio 1.0 transport alone changes.`,
      "",
      "Every mount is checked first (file count, total bytes, the large file's size; dd's block count on every large read). **Cold**: `sync; echo 3 > /proc/sys/vm/drop_caches` in the guest right before the read — the guest's page, dentry and inode caches are empty; the host's page cache holds every file and the ext4 image throughout (all read once on the host before the first boot), so each kind reads from host RAM and what differs is the transport. **Warm**: the same read again at once, nothing dropped (9p cache=mmap keeps no page cache, so its warm read goes to the host again). The kinds take turns within a VM (the order turned each run). Times are the guest's clock (busybox `adjtimex` before and after; two readings back to back differ by " + `${range(timerOverheadMs, 1)} ms); the host's view of each read (the exec's round trip included) is in oci.json. MiB/s: the bytes read over the median time. Medians (min–max).`,
      "",
      ...sharesTable(tree),
      "",
    );
  }
  return lines.join("\n");
}

// ---- main ---------------------------------------------------------------------------------------

const commandLine = `RUNS=${runs} npx just bench-oci`;
/** Other work on the host skews TCG timings: the 1-minute load average when the bench starts and ends goes in the header. */
const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ")[0]!;
const loadAtStart = loadAverage();
let tree: Tree | null = null;
try {
  if (only.has("podman")) {
    if (!PODMAN || !RUNC) throw new Error(`bench-oci needs podman and runc on the host (apt-get install podman runc): ${PODMAN ? "" : "no podman "}${RUNC ? "" : "no runc"}`);
    requireArtifacts(BURROW_OCI, OCI_KERNEL, OCI_BOOT_DISK);
    await measurePodman();
  }
  if (only.has("shares")) {
    requireArtifacts(OCI_KERNEL, OCI_BOOT_DISK, ROOTFS, VIRTIOFSD);
    tree = await measureShares();
  }
} finally {
  await cleanUp();
}

const table = markdown(tree, commandLine, `${loadAtStart} at the start, ${loadAverage()} at the end`);
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(join(ROOT, "bench/results/oci.md"), table);
writeFileSync(join(ROOT, "bench/results/oci.json"), JSON.stringify({
  date: new Date().toISOString(), commandLine, runs, fileCount, largeMiB, guestMem, loadAverage: { start: loadAtStart, end: loadAverage() },
  smallBytes: tree?.smallBytes ?? null, podman, shares: { guestClockMs: shareSamples, hostMs: hostSamples, timerOverheadMs }, boots: BOOTS,
}, null, 2) + "\n");
process.stdout.write(table);
