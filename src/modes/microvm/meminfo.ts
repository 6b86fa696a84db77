// The guest's RAM as the kernel reports it: what zram and /tmp are sized from.
import { readFileSync } from "node:fs";

/** MemTotal in bytes; null when the text has none. */
export function memTotalBytes(meminfo: string = readFileSync("/proc/meminfo", "utf8")): number | null {
  const match = /^MemTotal:\s+(\d+)\s*kB/m.exec(meminfo);
  return match ? Number(match[1]) * 1024 : null;
}
