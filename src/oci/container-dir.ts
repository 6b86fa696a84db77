// A container's directory under --root: its record (state.json), the holder's and the VM's sockets,
// the bundle share the guest reads its mounts from, the console log. The record is written whole
// and renamed into place, so a reader never sees half of one; whether the holder still lives is
// checked against its start time, so a recycled pid never passes for it.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { processRuns } from "../host/vm-registry";

export type ContainerStatus = "creating" | "created" | "running" | "paused" | "stopped";

/** The runtime spec's state version burrow-oci reports. */
export const OCI_VERSION = "1.0.2";

export interface ContainerRecord {
  id: string;
  bundle: string;
  annotations: Record<string, string>;
  /** ISO 8601, when create began. */
  created: string;
  status: ContainerStatus;
  /** The holder: the pid in --pid-file, the container's process on the host (0: not started yet). */
  holderPid: number;
  holderStartTicks: number | null;
  qemuPid: number;
  /** The workload's exit status once it ended (128+N for a signal). */
  exitStatus: number | null;
  /** Why create failed, for the create command to say. */
  error: string | null;
}

export interface ContainerPaths {
  dir: string;
  /** The directory of its sockets: `dir` itself unless that makes their paths too long. */
  sockets: string;
  record: string;
  /** The holder's own socket: start, kill, pause, resume. Short names: sun_path holds 108 bytes. */
  holderSocket: string;
  /** The VM's control channel (a ControlMux), for exec. */
  controlSocket: string;
  /** QEMU's end of the guest's control port (the holder's ControlMux connects to it): here, so it goes with the container. */
  vmPortSocket: string;
  qmpSocket: string;
  /** Shared read-only with the guest: mounts.json and the copied files. */
  bundleShare: string;
  /** The run plan create hands the holder. */
  plan: string;
  consoleLog: string;
  /** The holder's own log when the engine gave no --log. */
  holderLog: string;
}

/** sun_path holds 108 bytes with its NUL; Docker's root and a 64-hex id leave little of it. */
const MAX_SOCKET_PATH = 107;

/**
 * Where the container's sockets live: its directory while their paths fit in sun_path, else a
 * short directory of its own named by a hash of that directory (found again from the same root
 * and id, removed with the container).
 */
export function socketDir(dir: string): string {
  if (Buffer.byteLength(join(dir, "h.sock")) <= MAX_SOCKET_PATH) return dir;
  return join(tmpdir(), `burrow-oci.${createHash("sha256").update(dir).digest("hex").slice(0, 16)}`);
}

export function containerPaths(root: string, id: string): ContainerPaths {
  const dir = resolve(root, id);
  const sockets = socketDir(dir);
  return {
    dir,
    sockets,
    record: join(dir, "state.json"),
    holderSocket: join(sockets, "h.sock"),
    controlSocket: join(sockets, "c.sock"),
    vmPortSocket: join(sockets, "v.sock"),
    qmpSocket: join(sockets, "q.sock"),
    bundleShare: join(dir, "bundle"),
    plan: join(dir, "plan.json"),
    consoleLog: join(dir, "console.log"),
    holderLog: join(dir, "holder.log"),
  };
}

export class NoSuchContainerError extends Error {
  constructor(id: string) {
    // Podman and containerd read "does not exist" as the container being gone.
    super(`container ${id} does not exist`);
  }
}

/** Makes the container's directory; an id in use is refused. */
export function makeContainerDir(root: string, id: string): ContainerPaths {
  mkdirSync(root, { recursive: true, mode: 0o711 });
  const paths = containerPaths(root, id);
  try {
    mkdirSync(paths.dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") throw new Error(`container ${id} already exists`);
    throw new Error(`cannot make ${paths.dir}: ${(error as Error).message}`);
  }
  if (paths.sockets !== paths.dir) mkdirSync(paths.sockets, { recursive: true, mode: 0o700 });
  return paths;
}

export function writeRecord(paths: ContainerPaths, record: ContainerRecord): void {
  const temporary = `${paths.record}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  renameSync(temporary, paths.record);
}

/** The record, or null when the directory or its record is gone (a delete in between). */
export function readRecord(paths: ContainerPaths): ContainerRecord | null {
  let text: string;
  try {
    text = readFileSync(paths.record, "utf8");
  } catch {
    return null;
  }
  try {
    const record = JSON.parse(text) as ContainerRecord;
    return typeof record === "object" && record !== null && typeof record.id === "string" ? record : null;
  } catch {
    return null;
  }
}

export function loadRecord(root: string, id: string): { paths: ContainerPaths; record: ContainerRecord } {
  const paths = containerPaths(root, id);
  const record = readRecord(paths);
  if (record === null) throw new NoSuchContainerError(id);
  return { paths, record };
}

/** Updates the record in place (read, change, write); a vanished record stays vanished. */
export function updateRecord(paths: ContainerPaths, change: Partial<ContainerRecord>): ContainerRecord | null {
  const record = readRecord(paths);
  if (record === null) return null;
  const next = { ...record, ...change };
  writeRecord(paths, next);
  return next;
}

export function holderAlive(record: ContainerRecord): boolean {
  return record.holderPid > 0 && processRuns(record.holderPid, record.holderStartTicks);
}

/** The status as the engines must see it: a holder that is gone means the container stopped. */
export function effectiveStatus(record: ContainerRecord): ContainerStatus {
  if (record.status === "stopped") return "stopped";
  if (record.status === "creating" && record.holderPid === 0) return "creating";
  return holderAlive(record) ? record.status : "stopped";
}

export function removeContainerDir(paths: ContainerPaths): void {
  if (paths.sockets !== paths.dir) rmSync(paths.sockets, { recursive: true, force: true });
  rmSync(paths.dir, { recursive: true, force: true });
}

export function newRecord(id: string, bundle: string, annotations: Record<string, string>): ContainerRecord {
  return { id, bundle, annotations, created: new Date().toISOString(), status: "creating", holderPid: 0, holderStartTicks: null, qemuPid: 0, exitStatus: null, error: null };
}
