// A holder that waits: once its container runs, the holder (the pid Podman records) spends its
// life in epoll_wait, yet keeps mapped every page of burrow's executable that setting the
// container up touched — ~27 MiB of its ~38 MiB PSS, code and read-only data it will not run
// again. Those pages are dropped from its page tables (madvise MADV_DONTNEED); they stay in the
// page cache, shared with every other burrow process, and fault back in, minor faults, when the
// holder next needs them (a signal to forward, output to copy). Only read-only mappings with no
// private copy are dropped: MADV_DONTNEED on a page the process wrote would lose the write.
import { readFileSync, realpathSync } from "node:fs";
import * as sys from "../sys";

export interface Mapping {
  start: number;
  end: number;
  perms: string;
  path: string;
  rssKiB: number;
  anonymousKiB: number;
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) [0-9a-f]+ \S+ \d+\s*(.*)$/;
const FIELD = /^(\w+):\s+(\d+) kB$/;

/** /proc/PID/smaps as mappings with the two fields that decide whether one may be dropped. */
export function parseSmaps(text: string): Mapping[] {
  const mappings: Mapping[] = [];
  let current: Mapping | null = null;
  for (const line of text.split("\n")) {
    const header = HEADER.exec(line);
    if (header) {
      current = { start: parseInt(header[1]!, 16), end: parseInt(header[2]!, 16), perms: header[3]!, path: header[4]!, rssKiB: 0, anonymousKiB: 0 };
      mappings.push(current);
      continue;
    }
    const field = current && FIELD.exec(line);
    if (!field) continue;
    if (field[1] === "Rss") current!.rssKiB = Number(field[2]);
    else if (field[1] === "Anonymous") current!.anonymousKiB = Number(field[2]);
  }
  return mappings;
}

/** The executable's mappings whose resident pages are all clean copies of the file: readable, not writable, nothing private. */
export function droppableMappings(mappings: readonly Mapping[], executable: string): Mapping[] {
  return mappings.filter((mapping) => mapping.path === executable && mapping.perms[1] === "-" && mapping.anonymousKiB === 0 && mapping.rssKiB > 0);
}

/** Drops this process's resident pages of its own executable where that loses nothing; the KiB dropped. */
export function dropIdleExecutablePages(): number {
  const executable = realpathSync("/proc/self/exe");
  const droppable = droppableMappings(parseSmaps(readFileSync("/proc/self/smaps", "utf8")), executable);
  for (const mapping of droppable) sys.madvise(mapping.start, mapping.end - mapping.start, sys.Madvise.DONTNEED);
  return droppable.reduce((sum, mapping) => sum + mapping.rssKiB, 0);
}
