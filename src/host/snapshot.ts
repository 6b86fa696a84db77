// `burrow run --snapshot-save DIR` and `--snapshot-restore DIR`: boot once up to burrow's snapshot
// point, save the paused VM through QMP; restore it as often as wanted (also at once), each restore
// getting fresh host entropy, the host's clock and its own arguments over the control port.
//
// DIR holds manifest.json (what was booted, with each file's identity), state (QEMU's migration
// stream: device state) and ram (the guest's RAM). The save maps ram MAP_SHARED and leaves it out
// of the stream (x-ignore-shared); every restore maps it MAP_PRIVATE, so pages come in as the
// guest touches them, clones share the page cache, and no restore ever writes the file. The copy
// form (--snapshot-copy) puts the RAM into the stream instead, as burrow did before, to compare.
// Disks are always opened with snapshot=on, so neither the save nor any restore writes them:
// every restore starts from the disk state the saved memory expects.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { totalmem } from "node:os";
import { join, resolve } from "node:path";
import { hostArch } from "../arch";
import { splitAppend, wordKey } from "../config/cmdline";
import { describeError, ExitStatusError } from "../errors";
import { parseConfig } from "../config/config";
import { ControlClient } from "../control/client";
import type { ControlMux } from "../control/mux";
import { encodePointResume, encodeWarmResume } from "../snapshot/protocol";
import { QmpClient } from "./qmp";
import { memBytes, type PortForward } from "./options";
import { runVm, type RunOptions, type RunResult, type SpawnedVm } from "./qemu";
import { makeSocketDir } from "./socket-dirs";
import { incomingUri, type PortSpec } from "./qemu-argv";
import { newRunId } from "./run-id";
import { QEMU_FAILED_EXIT_CODE } from "./verdict";
import { startDriver, type DriverEnd } from "./qemu-driver";
import { checkSealed, fileIdentity, identityChange, sealFile, sha256, VERIFIED } from "./snapshot-files";
import { MANIFEST, MANIFEST_VERSION, RAM, readManifest, STATE, type SnapshotForm, type SnapshotManifest } from "./snapshot-manifest";

/** Host entropy per restore: the guest credits it and reseeds its CRNG from it. */
const RESUME_ENTROPY_BYTES = 64;
/** The RAM file of manifests of version 1 (refused): a save may reuse their directory. */
const LEGACY_MEMORY = "memory";
const PARTIAL = ".partial";
/** QEMU's migration capability that leaves shared RAM blocks (our file) out of the stream. */
const IGNORE_SHARED = [{ capability: "x-ignore-shared", state: true }];

/** A client of the VM's control channel (runVm owns the one connection; the snapshot drivers borrow it). */
async function controlOf(qemu: SpawnedVm): Promise<ControlClient> {
  if (qemu.control === null) throw new Error("the VM has no control port");
  return ControlClient.over((await qemu.control).local());
}

/** Single quotes for the shell QEMU runs an exec: migration URI with. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Add kernel words before "--" unless a word with the same key is there. */
export function withKernelWords(append: string, words: string[]): string {
  const { kernelWords, initWords } = splitAppend(append);
  const added = words.filter((word) => !kernelWords.some((existing) => wordKey(existing) === wordKey(word) || (wordKey(word) === "ro" && existing === "rw")));
  return [...kernelWords, ...added, ...initWords].join(" ");
}

/** What a save writes into DIR, finished or not; anything else means the directory is not ours. */
function isOurs(name: string): boolean {
  const known = [MANIFEST, STATE, RAM, VERIFIED, LEGACY_MEMORY];
  return known.includes(name) || (name.endsWith(PARTIAL) && known.some((base) => name.startsWith(`${base}.`)));
}

/**
 * Make DIR ready for a save: refuse a directory that is not ours; the old manifest goes first, so
 * a save that dies half-way leaves nothing a restore accepts, then leftovers of an interrupted save.
 * The old state and RAM file are replaced by rename at the end: clones still mapping the old RAM
 * file keep its inode, which nothing writes.
 */
function prepareSnapshotDir(dir: string): void {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true });
    return;
  }
  if (!statSync(dir).isDirectory()) throw new Error(`--snapshot-save ${dir}: not a directory`);
  const names = readdirSync(dir);
  const foreign = names.filter((name) => !isOurs(name));
  if (foreign.length > 0) throw new Error(`--snapshot-save ${dir}: the directory holds other files (${foreign.slice(0, 3).join(", ")}); give an empty or new directory`);
  rmSync(join(dir, MANIFEST), { force: true });
  for (const name of names) if (name.endsWith(PARTIAL) || name === VERIFIED || name === LEGACY_MEMORY) rmSync(join(dir, name), { force: true });
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

/**
 * A RAM file QEMU cannot detect as too big: it maps a sparse file of any size, and the guest then
 * crawls or dies of SIGBUS once its pages find no memory or no disk. Refuse it before QEMU starts.
 */
export function ramFileProblem(dir: string, mem: string, hostBytes = totalmem(), freeBytes = freeSpace(dir)): string | null {
  const bytes = memBytes(mem);
  if (bytes > hostBytes) return `--mem ${mem} is more than this host's memory (${gib(hostBytes)})`;
  if (bytes > freeBytes) return `the guest's RAM file needs up to ${gib(bytes)} in ${dir}, which has ${gib(freeBytes)} free (a tmpfs must hold all of the guest's RAM)`;
  return null;
}

function freeSpace(dir: string): number {
  const info = statfsSync(dir);
  return info.bavail * info.bsize;
}

/** The line and status for a save or restore whose driver failed: QEMU's own reason when it ended first. */
function driverFailure(what: string, end: Extract<DriverEnd<unknown>, { ok: false }>, run: RunResult): ExitStatusError {
  if (end.cause === "qemu" && run.outcome === "qemu-failed") return new ExitStatusError(`${what}: ${run.reason}`, QEMU_FAILED_EXIT_CODE);
  const guest = end.cause === "qemu" ? ` (guest: ${run.reason})` : "";
  return new ExitStatusError(`${what}: ${describeError(end.error)}${guest}`, end.cause === "qemu" && run.exitCode !== 0 ? run.exitCode : 1);
}

export interface SaveResult {
  manifest: SnapshotManifest;
  run: RunResult;
}

interface Saved {
  qemu: string;
  readyAfterMs: number;
  saveMs: number;
}

/**
 * Boot with burrow.snapshot=1 (and the root read-only, unless the command line says rw: the saved
 * memory must agree with the disks every restore sees), wait for "ready", stop the VM and save it.
 */
export interface SaveOptions {
  /** mapped (default): the RAM a file restores map; copy: the RAM in the stream. */
  form?: SnapshotForm;
  /** Save when the running workload asks (burrow.snapshot=warm, supervise mode), not at the snapshot point before it. */
  warm?: boolean;
}

export async function saveSnapshot(options: RunOptions, dir: string, onOutput: (text: string) => void = () => {}, save: SaveOptions = {}): Promise<SaveResult> {
  const form = save.form ?? "mapped";
  const warm = save.warm ?? false;
  if (warm && !parseConfig(options.append).supervise) throw new Error(`--snapshot-save ${dir}: a warm snapshot needs burrow.supervise=1 in --append (the resident supervisor takes it when the workload asks)`);
  prepareSnapshotDir(dir);
  const tooBig = form === "mapped" ? ramFileProblem(dir, options.mem) : null;
  if (tooBig) throw new Error(`--snapshot-save ${dir}: ${tooBig}`);
  const absolute = resolve(dir);
  const sockets = makeSocketDir("snapshot");
  const controlSocket = join(sockets, "control");
  const qmpSocket = join(sockets, "qmp");
  const runId = options.runId ?? newRunId();
  // Not init_on_free=1, though it shrinks the saved memory (285 → 175 MiB): every restore then
  // zeroes Bun's ~110 MB as the agent's exec frees it, 1.3 s under TCG (measured, bench/run.ts).
  const append = withKernelWords(options.append, [warm ? "burrow.snapshot=warm" : "burrow.snapshot=1", "ro"]);
  const statePartial = join(absolute, STATE + PARTIAL);
  const ramPartial = join(absolute, RAM + PARTIAL);
  let driven: Promise<DriverEnd<Saved>> | null = null;
  const started = performance.now();
  try {
    const run = await runVm({
      ...options,
      append,
      runId,
      snapshotDisks: true,
      controlSocket,
      qmpSocket,
      ...(form === "mapped" ? { ramFile: { path: ramPartial, shared: true } } : {}),
      onSpawn: (qemu) => {
        driven = startDriver(qemu, async (qemuGone) => {
          const qmp = await QmpClient.connect(qmpSocket, 10_000, qemuGone);
          const control = await controlOf(qemu);
          await control.nextReady();
          const readyAfterMs = performance.now() - started;
          const saveStarted = performance.now();
          await qmp.execute("stop");
          if (form === "mapped") await qmp.execute("migrate-set-capabilities", { capabilities: IGNORE_SHARED });
          await qmp.execute("migrate", { uri: `exec:cat > ${shellQuote(statePartial)}` });
          const status = await qmp.waitFor<{ status?: string; "error-desc"?: string }>("query-migrate", (value) => value.status === "completed" || value.status === "failed", 600_000, 2);
          if (status.status !== "completed") throw new Error(`saving the VM failed: ${status["error-desc"] ?? status.status}`);
          const saveMs = performance.now() - saveStarted;
          const version = qmp.greeting?.version.qemu;
          // QEMU may close the socket before it answers quit; it is ending either way.
          await qmp.execute("quit").catch(() => {});
          control.close();
          qmp.close();
          return { qemu: version ? `${version.major}.${version.minor}.${version.micro}` : "unknown", readyAfterMs, saveMs };
        });
      },
    }, onOutput);
    if (!driven) throw new ExitStatusError(`--snapshot-save ${dir}: QEMU did not start: ${run.reason}`, QEMU_FAILED_EXIT_CODE);
    const end = await (driven as Promise<DriverEnd<Saved>>);
    if (!end.ok) throw driverFailure(`--snapshot-save ${dir}`, end, run);
    // QEMU has exited: nothing maps the RAM file shared any more, so it can be sealed.
    renameSync(statePartial, join(absolute, STATE));
    if (form === "mapped") renameSync(ramPartial, join(absolute, RAM));
    const sealStarted = performance.now();
    const saved = { state: sealFile(absolute, STATE), ram: form === "mapped" ? sealFile(absolute, RAM) : null };
    const sealMs = performance.now() - sealStarted;
    const manifest: SnapshotManifest = {
      burrowSnapshot: MANIFEST_VERSION,
      form,
      warm,
      qemu: end.value.qemu,
      savedAt: new Date().toISOString(),
      options: {
        kernel: resolve(options.kernel),
        initrd: options.initrd ? resolve(options.initrd) : null,
        disks: options.disks.map((disk) => resolve(disk)),
        // The read-only flag is device state the restore must match (virtio-blk's RO feature).
        readOnlyDisks: (options.readOnlyDisks ?? []).map((disk) => resolve(disk)),
        ports: options.ports.map((port) => ({ name: port.name, file: port.file ? resolve(port.file) : null })),
        mem: options.mem,
        smp: options.smp,
        machine: options.machine,
        accel: options.accel,
        arch: options.arch ?? hostArch(),
        append,
        runId,
        extraArgs: options.extraArgs ?? [],
        net: options.net !== undefined,
      },
      files: {
        kernel: fileIdentity(options.kernel),
        initrd: options.initrd ? fileIdentity(options.initrd) : null,
        disks: options.disks.map(fileIdentity),
      },
      sha256: {
        kernel: sha256(readFileSync(options.kernel)),
        initrd: options.initrd ? sha256(readFileSync(options.initrd)) : null,
      },
      saved,
      ramAllocatedBytes: saved.ram ? statSync(join(absolute, RAM)).blocks * 512 : 0,
      readyAfterMs: Math.round(end.value.readyAfterMs),
      saveMs: Math.round(end.value.saveMs),
      sealMs: Math.round(sealMs),
    };
    // Last, and whole or not at all: only a finished save has a manifest.
    writeFileSync(join(absolute, MANIFEST + PARTIAL), JSON.stringify(manifest, null, 2) + "\n");
    renameSync(join(absolute, MANIFEST + PARTIAL), join(absolute, MANIFEST));
    return { manifest, run };
  } finally {
    rmSync(statePartial, { force: true });
    rmSync(ramPartial, { force: true });
    rmSync(sockets, { recursive: true, force: true });
  }
}

/** Why a restore must not run, or null: every file the saved memory depends on is as it was. */
export function restoreProblem(manifest: SnapshotManifest): string | null {
  const files = [manifest.files.kernel, ...(manifest.files.initrd ? [manifest.files.initrd] : []), ...manifest.files.disks];
  for (const identity of files) {
    const change = identityChange(identity);
    if (change) return `${change}; the snapshot no longer matches it (save again)`;
  }
  return null;
}

/** The saved files as the save wrote them, or why not; whether any had to be hashed in full. */
export function savedFilesProblem(dir: string, manifest: SnapshotManifest): { problem: string | null; hashed: boolean } {
  let hashed = false;
  for (const sealed of [manifest.saved.state, ...(manifest.saved.ram ? [manifest.saved.ram] : [])]) {
    const check = checkSealed(dir, sealed);
    hashed ||= check.hashed;
    if (check.problem) return { problem: `${check.problem}; the snapshot is damaged (save again)`, hashed };
  }
  return { problem: null, hashed };
}

export interface RestoreOptions {
  /** Port files for this instance, by the saved port names (the set of ports cannot change). */
  ports?: PortSpec[];
  /** The agent's arguments (null: the saved command line's). */
  args?: string[] | null;
  env?: [string, string][];
  instance?: string;
  timeoutSeconds: number;
  signal?: AbortSignal;
  /** TCG's translation buffer for this restore (RunOptions.tcgTbSizeMiB). */
  tcgTbSizeMiB?: number;
  /** QEMU's pid once it runs (what a host measures, PSS for one, or stops by hand). */
  onQemu?: (pid: number) => void;
  /** The restored VM's control channel, once QEMU runs (runVm owns it until the VM ends). */
  onControl?: (control: Promise<ControlMux>) => void;
  /** The guest applied the resume message (RESUMED): the clone runs as its own instance from here. */
  onResumed?: (instance: string) => void;
  /** Host ports forwarded into this clone (its NIC was saved: --net at the save). */
  forwards?: PortForward[];
}

export interface RestoreTimings {
  /** Checking the saved files before launch (a full hash only when one is not the file last verified). */
  checkMs: number;
  hashed: boolean;
  /** From launch: QMP up, saved state loaded, VM continued, the guest's "resumed" (the agent's exec follows). */
  qmpMs: number;
  loadedMs: number;
  continuedMs: number;
  resumedMs: number;
}

export interface RestoreResult extends RunResult {
  instance: string;
  form: SnapshotForm;
  timings: RestoreTimings | null;
}

export async function restoreSnapshot(dir: string, restore: RestoreOptions, onOutput: (text: string) => void = () => {}): Promise<RestoreResult> {
  const checkStarted = performance.now();
  const manifest = readManifest(dir);
  const absolute = resolve(dir);
  const inputs = restoreProblem(manifest);
  if (inputs) throw new Error(`cannot restore ${dir}: ${inputs}`);
  const { problem, hashed } = savedFilesProblem(absolute, manifest);
  if (problem) throw new Error(`cannot restore ${dir}: ${problem}`);
  const checkMs = performance.now() - checkStarted;
  const saved = manifest.options;
  const ports = saved.ports.map((port) => restore.ports?.find((entry) => entry.name === port.name) ?? port);
  const unknown = (restore.ports ?? []).filter((port) => !saved.ports.some((entry) => entry.name === port.name));
  if (unknown.length > 0) throw new Error(`cannot restore ${dir}: port ${unknown[0]!.name} was not in the saved VM (ports: ${saved.ports.map((port) => port.name).join(", ") || "none"})`);
  if ((restore.forwards ?? []).length > 0 && !saved.net) throw new Error(`cannot restore ${dir}: --forward needs the NIC the save had (save with --net)`);
  const instance = restore.instance ?? `i${newRunId(12)}`;
  // Both go to the resident supervisor: at the snapshot point, or in a warm snapshot on to the running workload.
  const encode = manifest.warm ? encodeWarmResume : encodePointResume;
  const resumeMessage = () => encode({ instance, entropy: new Uint8Array(randomBytes(RESUME_ENTROPY_BYTES)), realtimeNs: BigInt(Date.now()) * 1_000_000n, args: restore.args ?? null, env: restore.env ?? [] });
  // Encoded once before QEMU starts: what the supervisor would refuse, or a message too long for it, is one line here.
  try {
    resumeMessage();
  } catch (error) {
    throw new Error(`cannot restore ${dir}: ${(error as Error).message}`);
  }
  const mapped = manifest.form === "mapped";
  const sockets = makeSocketDir("restore");
  const controlSocket = join(sockets, "control");
  const qmpSocket = join(sockets, "qmp");
  const started = performance.now();
  let driven: Promise<DriverEnd<Omit<RestoreTimings, "checkMs" | "hashed">>> | null = null;
  try {
    const run = await runVm({
      arch: saved.arch,
      kernel: saved.kernel,
      initrd: saved.initrd,
      disks: saved.disks,
      readOnlyDisks: saved.readOnlyDisks,
      ports,
      mem: saved.mem,
      smp: saved.smp,
      machine: saved.machine,
      accel: saved.accel,
      ...(restore.tcgTbSizeMiB === undefined ? {} : { tcgTbSizeMiB: restore.tcgTbSizeMiB }),
      // The saved command line: a guest saved with burrow.supervise=1 gets its stop port again
      // (runVm adds it from the command line), after the control port as at the save.
      append: saved.append,
      runId: saved.runId,
      extraArgs: saved.extraArgs,
      // Every clone its own user network: its own forwards, the saved guest's address.
      ...(saved.net ? { net: { forwards: restore.forwards ?? [] } } : {}),
      timeoutSeconds: restore.timeoutSeconds,
      signal: restore.signal,
      snapshotDisks: true,
      controlSocket,
      qmpSocket,
      incomingFile: join(absolute, STATE),
      // The capability must be set on both sides before the stream is read: hence deferred.
      ...(mapped ? { ramFile: { path: join(absolute, RAM), shared: false }, incomingDeferred: true } : {}),
      onSpawn: (qemu) => {
        restore.onQemu?.(qemu.pid);
        if (qemu.control) restore.onControl?.(qemu.control);
        driven = startDriver(qemu, async (qemuGone) => {
          const qmp = await QmpClient.connect(qmpSocket, 10_000, qemuGone);
          const qmpMs = performance.now() - started;
          if (mapped) {
            await qmp.execute("migrate-set-capabilities", { capabilities: IGNORE_SHARED });
            await qmp.execute("migrate-incoming", { uri: incomingUri() });
          }
          const status = await qmp.waitFor<{ status: string }>("query-status", (value) => value.status !== "inmigrate", 120_000, 2);
          const loadedMs = performance.now() - started;
          if (status.status !== "running") await qmp.execute("cont");
          const continuedMs = performance.now() - started;
          // The guest answers the channel once it runs; fresh entropy and the clock of now.
          const control = await controlOf(qemu);
          await control.resume(resumeMessage());
          const resumedMs = performance.now() - started;
          restore.onResumed?.(instance);
          qmp.close();
          control.close();
          return { qmpMs, loadedMs, continuedMs, resumedMs };
        });
      },
    }, onOutput);
    if (!driven) throw new ExitStatusError(`cannot restore ${dir}: QEMU did not start: ${run.reason}`, QEMU_FAILED_EXIT_CODE);
    const end = await (driven as Promise<DriverEnd<Omit<RestoreTimings, "checkMs" | "hashed">>>);
    if (!end.ok) throw driverFailure(`restore of ${dir} failed`, end, run);
    return { ...run, instance, form: manifest.form, timings: { checkMs, hashed, ...end.value } };
  } finally {
    rmSync(sockets, { recursive: true, force: true });
  }
}
