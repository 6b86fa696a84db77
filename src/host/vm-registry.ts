// The state directory of named VMs (`burrow run --name`): ROOT/NAME/ holds vm.json (who owns the VM,
// its state), control.sock (the control mux's socket) and console.log. The directory is the name's
// lock: mkdir takes it atomically, and it is as live as the `burrow run` process that owns it.
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export type VmState = "starting" | "running";

export interface VmRecord {
  name: string;
  /** The `burrow run` process that owns the VM (and removes the directory when it ends). */
  ownerPid: number;
  /** The owner's start time (/proc/PID/stat, clock ticks since boot): a reused pid is not the owner. */
  ownerStartTicks: number | null;
  qemuPid: number | null;
  /** ISO 8601. */
  startedAt: string;
  state: VmState;
  /** The snapshot directory a restored VM came from, else null. */
  snapshot: string | null;
}

export interface VmPaths {
  dir: string;
  record: string;
  controlSocket: string;
  consoleLog: string;
}

/** What `burrow ps` shows of a directory: a stale one's owner is gone. */
export interface VmListing {
  name: string;
  paths: VmPaths;
  record: VmRecord | null;
  state: VmState | "stale";
}

export const VM_NAME_RULE = "1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit";
const VM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** A directory without vm.json younger than this is being registered, not stale (mkdir, then the write). */
const REGISTERING_GRACE_MS = 10_000;

/** ROOT: $BURROW_STATE_DIR, else /run/burrow for root, else $XDG_RUNTIME_DIR/burrow, else /tmp/burrow-<uid>. */
export function stateRoot(env: Record<string, string | undefined> = process.env, uid = process.getuid?.() ?? 0): string {
  if (env.BURROW_STATE_DIR) return env.BURROW_STATE_DIR;
  if (uid === 0) return "/run/burrow";
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, "burrow");
  return `/tmp/burrow-${uid}`;
}

export function checkVmName(name: string): string {
  if (!VM_NAME.test(name)) throw new Error(`bad VM name ${JSON.stringify(name)} (${VM_NAME_RULE})`);
  return name;
}

export function vmPaths(name: string, root = stateRoot()): VmPaths {
  const dir = join(root, checkVmName(name));
  return { dir, record: join(dir, "vm.json"), controlSocket: join(dir, "control.sock"), consoleLog: join(dir, "console.log") };
}

/** A process's state letter and start time (clock ticks since boot) from /proc/PID/stat, or null when it is gone. */
function procStat(pid: number): { state: string; startTicks: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "", startTicks: Number(fields[19]) };
  } catch {
    return null;
  }
}

export function processStartTicks(pid: number): number | null {
  const ticks = procStat(pid)?.startTicks;
  return ticks !== undefined && Number.isFinite(ticks) ? ticks : null;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists, under another user.
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  // A zombie (killed, not yet reaped by whoever inherited it) runs no more.
  return procStat(pid)?.state !== "Z";
}

/** `pid` still runs and, when its start time is known, is the process that started then (not a reused pid). */
export function processRuns(pid: number, startTicks: number | null): boolean {
  return processAlive(pid) && (startTicks === null || processStartTicks(pid) === startTicks);
}

/** The owner still runs: its pid is alive and, when recorded, started when it did (not a reused pid). */
export function ownerAlive(record: VmRecord): boolean {
  if (!processAlive(record.ownerPid)) return false;
  if (record.ownerStartTicks === null) return true;
  const ticks = processStartTicks(record.ownerPid);
  return ticks === null || ticks === record.ownerStartTicks;
}

/** vm.json, or null when there is none (yet) or it cannot be read as one. */
export function readVmRecord(path: string): VmRecord | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return null;
  }
  const record = parsed as Partial<VmRecord>;
  if (typeof record !== "object" || record === null || typeof record.name !== "string" || !Number.isInteger(record.ownerPid)) return null;
  if (record.state !== "starting" && record.state !== "running") return null;
  return {
    name: record.name,
    ownerPid: record.ownerPid!,
    ownerStartTicks: Number.isInteger(record.ownerStartTicks) ? record.ownerStartTicks! : null,
    qemuPid: Number.isInteger(record.qemuPid) ? record.qemuPid! : null,
    startedAt: typeof record.startedAt === "string" ? record.startedAt : new Date(0).toISOString(),
    state: record.state,
    snapshot: typeof record.snapshot === "string" ? record.snapshot : null,
  };
}

/** Written beside and renamed over: a reader sees the old record or the new one, never half of one. */
export function writeVmRecord(path: string, record: VmRecord): void {
  const partial = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.partial`;
  try {
    writeFileSync(partial, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
    renameSync(partial, path);
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  }
}

type DirectoryVerdict = { kind: "live"; record: VmRecord } | { kind: "registering" } | { kind: "stale"; record: VmRecord | null } | { kind: "absent" };

function judge(paths: VmPaths): DirectoryVerdict {
  const record = readVmRecord(paths.record);
  if (record) return ownerAlive(record) ? { kind: "live", record } : { kind: "stale", record };
  let ageMs: number;
  try {
    ageMs = Date.now() - statSync(paths.dir).mtimeMs;
  } catch {
    return { kind: "absent" };
  }
  return ageMs < REGISTERING_GRACE_MS ? { kind: "registering" } : { kind: "stale", record: null };
}

function staleOwner(record: VmRecord | null): string {
  return record ? `its burrow run (pid ${record.ownerPid}) is gone` : "it has no vm.json";
}

/**
 * Removes a stale directory. It is first renamed aside, so two processes reclaiming the same name
 * never remove each other's fresh directory: the one that lost the rename finds nothing to remove.
 * Returns false when the directory turned out live after all (put back).
 */
function removeStale(name: string, paths: VmPaths, root: string, expected: VmRecord | null): boolean {
  const aside = join(root, `.stale-${name}-${randomBytes(6).toString("hex")}`);
  try {
    renameSync(paths.dir, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw new Error(`cannot remove the stale state directory ${paths.dir}: ${(error as Error).message}`);
  }
  const moved = readVmRecord(join(aside, "vm.json"));
  const same = moved === null ? expected === null : expected !== null && moved.ownerPid === expected.ownerPid && moved.startedAt === expected.startedAt;
  if (!same && moved !== null && ownerAlive(moved)) {
    // A registration won the name between our look and the rename: its directory goes back.
    renameSync(aside, paths.dir);
    return false;
  }
  rmSync(aside, { recursive: true, force: true });
  return true;
}

export interface RegisterOptions {
  snapshot?: string | null;
  root?: string;
  /** One line when a stale directory is removed to take the name. */
  log?: (line: string) => void;
}

/** The name, held by this process until unregister(). */
export class VmRegistration {
  private current: VmRecord;
  private released = false;

  constructor(readonly paths: VmPaths, record: VmRecord) {
    this.current = record;
  }

  get record(): VmRecord {
    return this.current;
  }

  update(change: Partial<Pick<VmRecord, "qemuPid" | "state">>): void {
    if (this.released) return;
    this.current = { ...this.current, ...change };
    writeVmRecord(this.paths.record, this.current);
  }

  /** Removes the directory, if it is still this process's. */
  unregister(): void {
    if (this.released) return;
    this.released = true;
    const onDisk = readVmRecord(this.paths.record);
    if (onDisk !== null && onDisk.ownerPid !== this.current.ownerPid) return;
    rmSync(this.paths.dir, { recursive: true, force: true });
  }
}

/** Takes NAME: refused in one line when a live VM holds it; a stale directory is removed (one line) and the name taken. */
export function registerVm(name: string, options: RegisterOptions = {}): VmRegistration {
  const root = options.root ?? stateRoot();
  const paths = vmPaths(name, root);
  // sun_path holds 108 bytes with its NUL: a longer path would only fail once QEMU runs.
  if (Buffer.byteLength(paths.controlSocket) > 107) throw new Error(`the control socket path ${paths.controlSocket} is longer than a unix socket allows (107 bytes); set BURROW_STATE_DIR to a shorter directory`);
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new Error(`cannot make the VM state directory ${root}: ${(error as Error).message}`);
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      mkdirSync(paths.dir, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw new Error(`cannot make ${paths.dir}: ${(error as Error).message}`);
      const verdict = judge(paths);
      if (verdict.kind === "live") throw new Error(`a VM named ${name} is running (burrow run pid ${verdict.record.ownerPid})`);
      if (verdict.kind === "registering") throw new Error(`a VM named ${name} is being started by another burrow run`);
      if (verdict.kind === "stale" && removeStale(name, paths, root, verdict.record)) {
        options.log?.(`removed the stale state directory of VM ${name} (${staleOwner(verdict.record)})`);
      }
      continue;
    }
    const record: VmRecord = {
      name,
      ownerPid: process.pid,
      ownerStartTicks: processStartTicks(process.pid),
      qemuPid: null,
      startedAt: new Date().toISOString(),
      state: "starting",
      snapshot: options.snapshot ?? null,
    };
    try {
      writeVmRecord(paths.record, record);
    } catch (error) {
      rmSync(paths.dir, { recursive: true, force: true });
      throw new Error(`cannot write ${paths.record}: ${(error as Error).message}`);
    }
    return new VmRegistration(paths, record);
  }
  throw new Error(`cannot take the name ${name}: other burrow runs keep taking it`);
}

/** A live VM by name for the verbs (exec, cp, stop…); one line when there is none or it has ended (its stale directory removed). */
export function lookupVm(name: string, root = stateRoot()): { paths: VmPaths; record: VmRecord } {
  const paths = vmPaths(name, root);
  const verdict = judge(paths);
  switch (verdict.kind) {
    case "live":
      return { paths, record: verdict.record };
    case "absent":
      throw new Error(`no VM named ${name} (burrow ps lists them)`);
    case "registering":
      throw new Error(`VM ${name} is starting: it has no state yet`);
    case "stale": {
      const removed = removeStale(name, paths, root, verdict.record);
      if (!removed) return lookupVm(name, root);
      throw new Error(`VM ${name} has ended: ${staleOwner(verdict.record)}; removed its stale state directory`);
    }
  }
}

/** Every VM directory under ROOT, by name (stale ones too: ps shows them, the verbs remove them). */
export function listVms(root = stateRoot()): VmListing[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new Error(`cannot list ${root}: ${(error as Error).message}`);
  }
  const listings: VmListing[] = [];
  for (const name of names.filter((entry) => VM_NAME.test(entry)).sort()) {
    const paths = vmPaths(name, root);
    const verdict = judge(paths);
    if (verdict.kind === "absent") continue;
    if (verdict.kind === "live") listings.push({ name, paths, record: verdict.record, state: verdict.record.state });
    else if (verdict.kind === "registering") listings.push({ name, paths, record: null, state: "starting" });
    else listings.push({ name, paths, record: verdict.record, state: "stale" });
  }
  return listings;
}
