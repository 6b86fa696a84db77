// The verbs that act on a container that exists: start, state, kill, delete, pause, resume, ps —
// each through the container's record and its holder's socket, each failure one line.
import { constants } from "node:os";
import { BURROW_VERSION } from "../boot/version";
import { askHolder, type HolderRequest } from "./holder-link";
import { type ContainerPaths, type ContainerRecord, effectiveStatus, holderAlive, loadRecord, OCI_VERSION, removeContainerDir } from "./container-dir";
import { processAlive, processRuns } from "../host/vm-registry";
import { UsageError } from "./command-line";
import { tearDownLeftMirror } from "./network";
import { readCgroupRecord, removeCgroup } from "./cgroups";

/** How long delete waits for a killed holder (and its QEMU) to be gone. */
const GONE_WAIT_MS = 10_000;

async function ask(paths: ContainerPaths, id: string, request: HolderRequest): Promise<void> {
  const reply = await askHolder(paths.holderSocket, request);
  if (!reply.ok) throw new Error(`container ${id}: ${reply.error}`);
}

export async function startContainer(root: string, id: string): Promise<void> {
  const { paths, record } = loadRecord(root, id);
  const status = effectiveStatus(record);
  if (status !== "created") throw new Error(`cannot start container ${id}: it is ${status}, not created`);
  await ask(paths, id, { op: "start" });
}

/** The runtime spec's state, as runc prints it. */
export function stateOf(record: ContainerRecord): Record<string, unknown> {
  const status = effectiveStatus(record);
  return {
    ociVersion: OCI_VERSION,
    id: record.id,
    // The spec's states: a container still booting is "creating"; the pid is the holder's while it lives.
    status,
    pid: status === "stopped" ? 0 : record.holderPid,
    bundle: record.bundle,
    rootfs: "",
    created: record.created,
    owner: "",
    annotations: record.annotations,
  };
}

export function containerState(root: string, id: string): string {
  return `${JSON.stringify(stateOf(loadRecord(root, id).record), null, 2)}\n`;
}

/** SIGTERM, TERM, 15 — runc's spellings. */
export function parseSignal(text: string | undefined): number {
  if (text === undefined) return constants.signals.SIGTERM;
  if (/^\d+$/.test(text)) {
    const number = Number(text);
    if (number >= 1 && number <= 64) return number;
  }
  const name = text.toUpperCase().startsWith("SIG") ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
  const number = (constants.signals as Record<string, number>)[name];
  if (number === undefined) throw new UsageError(`unknown signal ${JSON.stringify(text.slice(0, 20))}`);
  return number;
}

export async function killContainer(root: string, id: string, signal: number): Promise<void> {
  const { paths, record } = loadRecord(root, id);
  const status = effectiveStatus(record);
  if (status === "stopped") throw new Error(`container ${id} is not running`);
  const reply = await askHolder(paths.holderSocket, { op: "kill", signal });
  if (reply.ok) return;
  // A holder that cannot answer still dies with SIGKILL, and its QEMU with it (pdeathsig).
  if (signal === constants.signals.SIGKILL && holderAlive(record)) return void process.kill(record.holderPid, "SIGKILL");
  throw new Error(`container ${id}: ${reply.error}`);
}

async function waitGone(pid: number, ticks: number | null): Promise<boolean> {
  const deadline = performance.now() + GONE_WAIT_MS;
  while (performance.now() < deadline) {
    if (!processRuns(pid, ticks)) return true;
    await Bun.sleep(20);
  }
  return false;
}

export async function deleteContainer(root: string, id: string, force: boolean): Promise<void> {
  const { paths, record } = loadRecord(root, id);
  const status = effectiveStatus(record);
  if (status !== "stopped" && !force) throw new Error(`cannot delete container ${id}: it is ${status} (stop it first, or delete --force)`);
  if (holderAlive(record)) {
    process.kill(record.holderPid, "SIGKILL");
    if (!(await waitGone(record.holderPid, record.holderStartTicks))) throw new Error(`container ${id}: its holder (pid ${record.holderPid}) did not go after SIGKILL`);
  }
  // QEMU dies with its holder (pdeathsig); should it not have, it goes here.
  if (record.qemuPid > 0 && processAlive(record.qemuPid)) {
    try {
      process.kill(record.qemuPid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
    await waitGone(record.qemuPid, null);
  }
  // A holder killed with SIGKILL left its tap and mirror in the engine's namespace: best effort, the namespace's end removes them anyway.
  tearDownLeftMirror(paths.dir);
  // The cgroup create made, now that its processes are gone; one that will not go keeps the container for another delete.
  const left = await removeCgroup(readCgroupRecord(paths.dir));
  if (left.length > 0) throw new Error(`container ${id}: ${left.join("; ")}`);
  removeContainerDir(paths);
}

export async function pauseContainer(root: string, id: string, pause: boolean): Promise<void> {
  const { paths, record } = loadRecord(root, id);
  const status = effectiveStatus(record);
  if (pause && status !== "running") throw new Error(`cannot pause container ${id}: it is ${status}`);
  if (!pause && status !== "paused") throw new Error(`cannot resume container ${id}: it is ${status}, not paused`);
  await ask(paths, id, { op: pause ? "pause" : "resume" });
}

/** The container's processes on the host: its holder (the guest's own are the VM's business). */
export function containerPs(root: string, id: string, format: string | undefined): string {
  const { record } = loadRecord(root, id);
  const pids = effectiveStatus(record) === "stopped" ? [] : [record.holderPid];
  if (format === "json") return `${JSON.stringify(pids)}\n`;
  if (format !== undefined && format !== "table") throw new UsageError(`ps --format: expected table or json, got ${JSON.stringify(format.slice(0, 20))}`);
  return `PID\n${pids.map((pid) => `${pid}\n`).join("")}`;
}

/** runc features: what this runtime accepts, for engines that ask. */
export function features(): string {
  return `${JSON.stringify(
    {
      ociVersionMin: "1.0.0",
      ociVersionMax: OCI_VERSION,
      hooks: [],
      mountOptions: ["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "relatime", "norelatime", "strictatime", "nostrictatime", "noatime", "atime", "nodiratime", "diratime", "bind", "rbind", "private", "rprivate", "slave", "rslave", "shared", "rshared"],
      // The VM's host processes join linux.cgroupsPath on v1, v2 and hybrid hosts; --systemd-cgroup's path is made as plain
      // directories, no systemd unit is started, so the systemd driver is not claimed.
      linux: { namespaces: [], capabilities: [], cgroup: { v1: true, v2: true, systemd: false, systemdUser: false }, seccomp: { enabled: false }, apparmor: { enabled: false }, selinux: { enabled: false } },
      annotations: { "org.burrow.version": BURROW_VERSION, "org.burrow.isolation": "microvm" },
    },
    null,
    2,
  )}\n`;
}
