// PID 1 reaps every orphan, but must not take the status of a child Bun.spawn is waiting for
// (Bun reaps those itself through their pidfds; stealing one makes `exited` reject with ECHILD).
// So: peek with waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT); a zombie that is not ours to reap is
// waitpid'ed by pid; one of Bun's stays for Bun. Runs on SIGCHLD only: every exit of a child
// raises one (a signal that arrives while reap() runs is delivered again afterwards), so an idle
// VTL2 PID 1 wakes for nothing.
import { readdirSync, readFileSync } from "node:fs";
import { log } from "../../log";
import * as sys from "../../sys";
import { describeError } from "../../errors";

const PEEK = sys.Wait.WEXITED | sys.Wait.WNOHANG | sys.Wait.WNOWAIT;

export class Reaper {
  /** Children Bun.spawn owns: never reaped here. */
  private readonly spawned = new Set<number>();
  private started = false;
  private readonly onSignal = () => this.reap();
  reaped = 0;

  start(): void {
    if (this.started) return;
    this.started = true;
    process.on("SIGCHLD", this.onSignal);
    // Orphans that died before the handler was installed.
    this.reap();
  }

  stop(): void {
    this.started = false;
    process.off("SIGCHLD", this.onSignal);
  }

  /** Call right after Bun.spawn returns (same turn: the reaper cannot run in between). */
  track(pid: number): void {
    this.spawned.add(pid);
  }

  untrack(pid: number): void {
    this.spawned.delete(pid);
  }

  /** Reap every orphan zombie now; returns how many. */
  reap(): number {
    let count = 0;
    try {
      for (;;) {
        const child = sys.waitidAny(PEEK);
        if (!child) break;
        if (this.spawned.has(child.pid)) {
          // waitid(P_ALL) keeps returning Bun's zombie until Bun collects it; look past it.
          count += this.reapByScan();
          break;
        }
        if (!sys.waitpid(child.pid, sys.Wait.WNOHANG)) break;
        count++;
        log.trace(`reaped orphan ${child.pid}`);
      }
    } catch (error) {
      log.debug(`reaper: ${describeError(error)}`);
    }
    this.reaped += count;
    return count;
  }

  /** Zombie children of ours, found in /proc, minus Bun's. */
  private reapByScan(): number {
    let count = 0;
    const self = process.pid;
    for (const entry of safeReaddir("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      if (this.spawned.has(pid)) continue;
      const stat = parseStat(entry);
      if (!stat || stat.state !== "Z" || stat.ppid !== self) continue;
      if (sys.waitpid(pid, sys.Wait.WNOHANG)) count++;
    }
    return count;
  }
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return []; // no /proc: no zombies to find
  }
}

/** /proc/<pid>/stat: "pid (comm) S ppid …"; comm may hold spaces and parentheses. */
export function parseStat(pid: string): { state: string; ppid: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null; // the process is gone
  }
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: rest[0] ?? "", ppid: Number(rest[1]) };
}
