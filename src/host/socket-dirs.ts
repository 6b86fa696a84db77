// A run's temporary socket directory (QEMU's control and QMP sockets), named after the process
// that made it — its pid and start time — so that one left by a run killed with SIGKILL (which
// removes nothing) is removed by the next run on the host, once its maker is gone. A directory
// whose maker still runs, or another user's, is never touched.
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processRuns, processStartTicks } from "./vm-registry";

export type SocketDirKind = "control" | "snapshot" | "restore";

const NAME = /^burrow-(?:control|snapshot|restore)-(\d+)\.(\d+)-[A-Za-z0-9]{6}$/;

/** The process that made a socket directory, read from its name; null for any other name. */
export function socketDirOwner(name: string): { pid: number; startTicks: number } | null {
  const match = NAME.exec(name);
  return match ? { pid: Number(match[1]), startTicks: Number(match[2]) } : null;
}

/** Whether that process still runs (a start time of 0: not known when the directory was made). */
const makerRuns = (owner: { pid: number; startTicks: number }) => processRuns(owner.pid, owner.startTicks || null);

/** Removes this user's socket directories under `base` whose maker is gone; returns their names. */
export function sweepSocketDirs(base = tmpdir(), runs: (owner: { pid: number; startTicks: number }) => boolean = makerRuns): string[] {
  const uid = process.getuid?.() ?? 0;
  const removed: string[] = [];
  for (const name of readdirSync(base)) {
    const owner = socketDirOwner(name);
    if (owner === null || runs(owner)) continue;
    try {
      if (statSync(join(base, name)).uid !== uid) continue;
      rmSync(join(base, name), { recursive: true, force: true });
      removed.push(name);
    } catch {
      // Gone already (another run swept it), or not ours to remove.
    }
  }
  return removed;
}

/** A new socket directory for this run, after the leftovers of runs that were killed are swept. */
export function makeSocketDir(kind: SocketDirKind, base = tmpdir()): string {
  sweepSocketDirs(base);
  return mkdtempSync(join(base, `burrow-${kind}-${process.pid}.${processStartTicks(process.pid) ?? 0}-`));
}
