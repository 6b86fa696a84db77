// `burrow run --snapshot-save DIR` and `--snapshot-restore DIR`: boot once up to burrow's snapshot
// point, save the paused VM through QMP; restore it as often as wanted (also at once), each restore
// getting fresh host entropy, the host's clock and its own arguments over the control port.
//
// DIR holds manifest.json (what was booted, with each file's identity) and memory (QEMU's
// migration stream). Disks are always opened with snapshot=on, so neither the save nor any
// restore writes them: every restore starts from the disk state the saved memory expects.
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ARCHES, hostArch, type Arch } from "../arch";
import { splitAppend, wordKey } from "../config/cmdline";
import { encodeResume, parseReady, parseResumed } from "../snapshot/protocol";
import { describeError } from "../errors";
import { QmpClient } from "./qmp";
import { LineSocket } from "./line-socket";
import { newRunId, runVm, type PortSpec, type RunOptions, type RunResult } from "./qemu";

export const MANIFEST = "manifest.json";
export const MEMORY = "memory";
const MANIFEST_VERSION = 1;
/** Host entropy per restore: the guest credits it and reseeds its CRNG from it. */
const RESUME_ENTROPY_BYTES = 64;
const HEAD_BYTES = 1 << 20;

/** What makes a file the same file at restore time, cheaply (a full hash of a 110 MB initramfs costs ~0.3 s). */
export interface FileIdentity {
  path: string;
  size: number;
  mtimeMs: number;
  /** sha256 of the first and the last MiB. */
  head: string;
  tail: string;
}

export interface SnapshotManifest {
  burrowSnapshot: number;
  qemu: string;
  savedAt: string;
  /** What the save booted (paths absolute); extraArgs: the restore needs the same devices. */
  options: Pick<RunOptions, "kernel" | "initrd" | "disks" | "readOnlyDisks" | "ports" | "mem" | "smp" | "machine" | "accel" | "append"> & {
    runId: string;
    extraArgs: string[];
    /** The guest architecture: which QEMU restores it (absent in manifests from before arm64 snapshots: x86_64). */
    arch?: Arch;
  };
  files: { kernel: FileIdentity; initrd: FileIdentity | null; disks: FileIdentity[] };
  /** Full sha256 of kernel and initrd, for the record (restores compare identities). */
  sha256: { kernel: string; initrd: string | null };
  memoryBytes: number;
  readyAfterMs: number;
  saveMs: number;
}

function sha256(data: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

function readRange(fd: number, offset: number, length: number): Uint8Array {
  const buffer = new Uint8Array(length);
  const count = readSync(fd, buffer, 0, length, offset);
  return buffer.subarray(0, count);
}

export function fileIdentity(path: string): FileIdentity {
  const absolute = resolve(path);
  const info = statSync(absolute);
  const fd = openSync(absolute, "r");
  try {
    const head = readRange(fd, 0, Math.min(HEAD_BYTES, info.size));
    const tail = readRange(fd, Math.max(0, info.size - HEAD_BYTES), Math.min(HEAD_BYTES, info.size));
    return { path: absolute, size: info.size, mtimeMs: info.mtimeMs, head: sha256(head), tail: sha256(tail) };
  } finally {
    closeSync(fd);
  }
}

/** The first difference between a saved identity and the file now, or null. */
export function identityChange(saved: FileIdentity): string | null {
  let now: FileIdentity;
  try {
    now = fileIdentity(saved.path);
  } catch (error) {
    return `${saved.path} is gone (${(error as NodeJS.ErrnoException).code ?? "unreadable"})`;
  }
  if (now.size !== saved.size) return `${saved.path} changed size (${saved.size} → ${now.size} bytes)`;
  if (now.mtimeMs !== saved.mtimeMs) return `${saved.path} was modified after the save`;
  if (now.head !== saved.head || now.tail !== saved.tail) return `${saved.path} has different contents`;
  return null;
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

/** Refuse to turn a directory that is not ours into a snapshot (we only ever write our two files). */
function prepareSnapshotDir(dir: string): void {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true });
    return;
  }
  if (!statSync(dir).isDirectory()) throw new Error(`--snapshot-save ${dir}: not a directory`);
  const foreign = readdirSync(dir).filter((name) => name !== MANIFEST && name !== MEMORY);
  if (foreign.length > 0) throw new Error(`--snapshot-save ${dir}: the directory holds other files (${foreign.slice(0, 3).join(", ")}); give an empty or new directory`);
}

export interface SaveResult {
  manifest: SnapshotManifest;
  run: RunResult;
}

/**
 * Boot with burrow.snapshot=1 (and the root read-only, unless the command line says rw: the saved
 * memory must agree with the disks every restore sees), wait for "ready", stop the VM and save it.
 */
export async function saveSnapshot(options: RunOptions, dir: string, onOutput: (text: string) => void = () => {}): Promise<SaveResult> {
  prepareSnapshotDir(dir);
  const sockets = mkdtempSync(join(tmpdir(), "burrow-snapshot-"));
  const controlSocket = join(sockets, "control");
  const qmpSocket = join(sockets, "qmp");
  const runId = options.runId ?? newRunId();
  // Not init_on_free=1, though it shrinks the saved memory (285 → 175 MiB): every restore then
  // zeroes Bun's ~110 MB as the agent's exec frees it, 1.3 s under TCG (measured, bench/run.ts).
  const append = withKernelWords(options.append, ["burrow.snapshot=1", "ro"]);
  const memoryPath = join(resolve(dir), MEMORY);
  const partial = `${memoryPath}.partial`;
  let driven: Promise<{ qemu: string; readyAfterMs: number; saveMs: number }> | null = null;
  const started = performance.now();
  try {
    const run = await runVm({ ...options, append, runId, snapshotDisks: true, controlSocket, qmpSocket, onSpawn: (qemu) => {
      driven = (async () => {
        try {
          const qmp = await QmpClient.connect(qmpSocket);
          const control = await LineSocket.connect(controlSocket, 10_000);
          for (;;) {
            const line = await control.nextLine();
            if (line === null) throw new Error("the guest never announced its snapshot point (control port closed)");
            if (parseReady(line).ok) break;
          }
          const readyAfterMs = performance.now() - started;
          const saveStarted = performance.now();
          await qmp.execute("stop");
          await qmp.execute("migrate", { uri: `exec:cat > ${shellQuote(partial)}` });
          const status = await qmp.waitFor<{ status?: string; "error-desc"?: string }>("query-migrate", (value) => value.status === "completed" || value.status === "failed", 600_000, 10);
          if (status.status !== "completed") throw new Error(`saving the VM failed: ${status["error-desc"] ?? status.status}`);
          renameSync(partial, memoryPath);
          const saveMs = performance.now() - saveStarted;
          const version = qmp.greeting?.version.qemu;
          // QEMU may close the socket before it answers quit; it is ending either way.
          await qmp.execute("quit").catch(() => {});
          control.close();
          qmp.close();
          return { qemu: version ? `${version.major}.${version.minor}.${version.micro}` : "unknown", readyAfterMs, saveMs };
        } catch (error) {
          qemu.kill();
          throw error;
        }
      })();
    } }, onOutput);
    if (!driven) throw new Error(`QEMU did not start: ${run.reason}`);
    const saved = await (driven as Promise<{ qemu: string; readyAfterMs: number; saveMs: number }>).catch((error: unknown) => {
      throw new Error(`${describeError(error)} (guest: ${run.reason})`);
    });
    const manifest: SnapshotManifest = {
      burrowSnapshot: MANIFEST_VERSION,
      qemu: saved.qemu,
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
      memoryBytes: statSync(memoryPath).size,
      readyAfterMs: Math.round(saved.readyAfterMs),
      saveMs: Math.round(saved.saveMs),
    };
    writeFileSync(join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + "\n");
    return { manifest, run };
  } finally {
    rmSync(partial, { force: true });
    rmSync(sockets, { recursive: true, force: true });
  }
}

export function readManifest(dir: string): SnapshotManifest {
  const path = join(dir, MANIFEST);
  let manifest: SnapshotManifest;
  try {
    manifest = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new Error(`--snapshot-restore ${dir}: no readable ${MANIFEST} (${(error as NodeJS.ErrnoException).code ?? describeError(error)})`);
  }
  if (manifest?.burrowSnapshot !== MANIFEST_VERSION) throw new Error(`--snapshot-restore ${dir}: ${MANIFEST} is not a burrow snapshot manifest of version ${MANIFEST_VERSION}`);
  if (!existsSync(join(dir, MEMORY))) throw new Error(`--snapshot-restore ${dir}: no saved memory (${MEMORY})`);
  return manifest;
}

/** The saved guest's architecture; a manifest without one predates arm64 snapshots (x86_64). */
export function savedArch(manifest: SnapshotManifest, dir: string): Arch {
  const arch: unknown = manifest.options.arch ?? "x86_64";
  if (!ARCHES.includes(arch as Arch)) throw new Error(`--snapshot-restore ${dir}: ${MANIFEST} names an unknown architecture ${JSON.stringify(arch)} (${ARCHES.join(" or ")})`);
  return arch as Arch;
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

export interface RestoreOptions {
  /** Port files for this instance, by the saved port names (the set of ports cannot change). */
  ports?: PortSpec[];
  /** The agent's arguments (null: the saved command line's). */
  args?: string[] | null;
  env?: [string, string][];
  instance?: string;
  timeoutSeconds: number;
  signal?: AbortSignal;
}

export interface RestoreTimings {
  /** From launch: QMP up, saved RAM loaded, VM continued, the guest's "resumed" (the agent's exec follows). */
  qmpMs: number;
  loadedMs: number;
  continuedMs: number;
  resumedMs: number;
}

export interface RestoreResult extends RunResult {
  instance: string;
  timings: RestoreTimings | null;
}

export async function restoreSnapshot(dir: string, restore: RestoreOptions, onOutput: (text: string) => void = () => {}): Promise<RestoreResult> {
  const manifest = readManifest(dir);
  const problem = restoreProblem(manifest);
  if (problem) throw new Error(`cannot restore ${dir}: ${problem}`);
  const saved = manifest.options;
  const arch = savedArch(manifest, dir);
  const ports = saved.ports.map((port) => restore.ports?.find((entry) => entry.name === port.name) ?? port);
  const unknown = (restore.ports ?? []).filter((port) => !saved.ports.some((entry) => entry.name === port.name));
  if (unknown.length > 0) throw new Error(`cannot restore ${dir}: port ${unknown[0]!.name} was not in the saved VM (ports: ${saved.ports.map((port) => port.name).join(", ") || "none"})`);
  const instance = restore.instance ?? `i${newRunId(12)}`;
  const sockets = mkdtempSync(join(tmpdir(), "burrow-restore-"));
  const controlSocket = join(sockets, "control");
  const qmpSocket = join(sockets, "qmp");
  const started = performance.now();
  let driven: Promise<RestoreTimings> | null = null;
  try {
    const run = await runVm({
      arch,
      kernel: saved.kernel,
      initrd: saved.initrd,
      disks: saved.disks,
      readOnlyDisks: saved.readOnlyDisks ?? [],
      ports,
      mem: saved.mem,
      smp: saved.smp,
      machine: saved.machine,
      accel: saved.accel,
      // The saved command line: a guest saved with burrow.supervise=1 gets its stop port again
      // (runVm adds it from the command line), after the control port as at the save.
      append: saved.append,
      runId: saved.runId,
      extraArgs: saved.extraArgs,
      timeoutSeconds: restore.timeoutSeconds,
      signal: restore.signal,
      snapshotDisks: true,
      controlSocket,
      qmpSocket,
      incomingFile: join(dir, MEMORY),
      onSpawn: (qemu) => {
        driven = (async () => {
          try {
            const qmp = await QmpClient.connect(qmpSocket);
            const qmpMs = performance.now() - started;
            const control = await LineSocket.connect(controlSocket, 10_000);
            // Queued in the socket until the guest reads it after "cont".
            control.write(encodeResume({ instance, entropy: new Uint8Array(randomBytes(RESUME_ENTROPY_BYTES)), realtimeNs: BigInt(Date.now()) * 1_000_000n, args: restore.args ?? null, env: restore.env ?? [] }));
            const status = await qmp.waitFor<{ status: string }>("query-status", (value) => value.status !== "inmigrate", 120_000, 2);
            const loadedMs = performance.now() - started;
            if (status.status !== "running") await qmp.execute("cont");
            const continuedMs = performance.now() - started;
            let resumedMs = -1;
            for (;;) {
              const line = await control.nextLine();
              if (line === null) throw new Error("the control port closed before the guest resumed");
              if (parseResumed(line).ok) {
                resumedMs = performance.now() - started;
                break;
              }
            }
            qmp.close();
            control.close();
            return { qmpMs, loadedMs, continuedMs, resumedMs };
          } catch (error) {
            qemu.kill();
            throw error;
          }
        })();
      },
    }, onOutput);
    let driverError: unknown = null;
    const timings = driven ? await (driven as Promise<RestoreTimings>).catch((error: unknown) => ((driverError = error), null)) : null;
    if (driverError) throw new Error(`restore of ${dir} failed: ${describeError(driverError)} (guest: ${run.reason})`);
    return { ...run, instance, timings };
  } finally {
    rmSync(sockets, { recursive: true, force: true });
  }
}
