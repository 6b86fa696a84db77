// zram swap: size from burrow.zram (default 50% of MemTotal), first compressor the kernel accepts,
// our own swap header, swapon with a priority, and the vm tunings that suit swap on compressed RAM.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { readOptionalText } from "../../boot/optional-text";
import type { Config, ZramSetting } from "../../config/config";
import { describeError } from "../../errors";
import { log } from "../../log";
import * as sys from "../../sys";
import { memTotalBytes } from "./meminfo";
import { encodeSwapHeader, SWAP_PAGE_SIZE } from "./swapheader";
import { formatUuid, randomUuidV4 } from "./uuid";

const ZRAM_LABEL = "burrow-zram";

/** The disk size in bytes (whole pages), or a reason naming the value when it is unusable. */
export function zramDiskSize(setting: ZramSetting, memTotal: number): { bytes: number } | { problem: string } | null {
  const page = (bytes: number) => Math.floor(bytes / SWAP_PAGE_SIZE) * SWAP_PAGE_SIZE;
  switch (setting.kind) {
    case "off":
      return null;
    case "percent":
      return { bytes: page((memTotal * setting.percent) / 100) };
    case "bytes":
      if (setting.bytes > memTotal) return { problem: `burrow.zram=${formatBytes(setting.bytes)}: more than the guest's RAM (MemTotal ${formatBytes(memTotal)})` };
      return { bytes: page(setting.bytes) };
  }
}

function formatBytes(bytes: number): string {
  return bytes % 2 ** 20 === 0 ? `${bytes / 2 ** 20}M` : `${bytes}`;
}

/** "lzo [lzo-rle] lz4" → the names (selected one without brackets). */
export function parseCompAlgorithms(text: string): { available: string[]; selected: string | null } {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const selected = words.find((word) => word.startsWith("["))?.slice(1, -1) ?? null;
  return { available: words.map((word) => word.replace(/^\[|\]$/g, "")), selected };
}

export interface ZramOutcome { device: string; bytes: number; algorithm: string; priority: number; uuid: string }

export function setupZram(config: Config, sysBlock = "/sys/block/zram0", device = "/dev/zram0"): ZramOutcome | null {
  const memTotal = memTotalBytes();
  if (memTotal === null) throw new Error("no MemTotal in /proc/meminfo; continuing without swap");
  const size = zramDiskSize(config.zram, memTotal);
  if (size === null) return null;
  if ("problem" in size) throw new Error(`${size.problem}; continuing without swap`);
  if (!existsSync(sysBlock)) throw new Error(`${sysBlock} does not exist (zram module not loaded?); continuing without swap`);
  if (Number(readFileSync(`${sysBlock}/disksize`, "utf8").trim()) !== 0) throw new Error(`${device} is already initialised; left as it is`);

  const algorithm = chooseAlgorithm(config.zramAlgorithms, `${sysBlock}/comp_algorithm`);
  writeFileSync(`${sysBlock}/disksize`, `${size.bytes}\n`);
  const uuid = randomUuidV4();
  const fd = sys.open(device, sys.OpenFlags.WRONLY | sys.OpenFlags.CLOEXEC);
  try {
    sys.writeAll(fd, encodeSwapHeader({ bytes: size.bytes, uuid, label: ZRAM_LABEL }));
  } finally {
    sys.close(fd);
  }
  const priority = config.zramPriority & sys.SwapFlags.PRIO_MASK;
  sys.swapon(device, sys.SwapFlags.PREFER | priority);
  const outcome = { device, bytes: size.bytes, algorithm, priority, uuid: formatUuid(uuid) };
  const share = config.zram.kind === "percent" ? `${config.zram.percent}% of` : "of";
  log.info(`zram: ${device} ${(size.bytes / 2 ** 20).toFixed(1)} MiB (${size.bytes} bytes, ${share} MemTotal ${Math.round(memTotal / 2 ** 20)} MiB), ${algorithm}, swap priority ${priority}, label ${ZRAM_LABEL}, uuid ${outcome.uuid}`);
  return outcome;
}

/** Write each candidate until the kernel takes one; its refusal (EINVAL, ENOENT) means "not available", an unreadable list none offered. */
function chooseAlgorithm(candidates: string[], path: string): string {
  const offered = parseCompAlgorithms(readOptionalText(path) ?? "").available;
  const refused: string[] = [];
  for (const name of candidates) {
    try {
      writeFileSync(path, `${name}\n`);
      if (parseCompAlgorithms(readOptionalText(path) ?? "").selected === name) return name;
      refused.push(`${name}: not selected`);
    } catch (error) {
      refused.push(`${name}: ${(error as NodeJS.ErrnoException).code ?? describeError(error)}`);
    }
  }
  throw new Error(`no compressor accepted (${refused.join(", ")}; kernel offers ${offered.join(" ") || "none"}); continuing without swap`);
}

const VM_TUNINGS = (config: Config): [string, number][] => [
  // Reading one page at a time from compressed RAM: readahead only decompresses pages nobody asked for.
  ["page-cluster", 0],
  ["swappiness", config.swappiness],
  // Boosted watermarks make kswapd reclaim extra memory after fragmentation events; with swap in RAM that is pure churn.
  ["watermark_boost_factor", 0],
];

export function applyVmTunings(config: Config): void {
  const applied: string[] = [];
  for (const [name, value] of VM_TUNINGS(config)) {
    writeFileSync(`/proc/sys/vm/${name}`, `${value}\n`);
    applied.push(`vm.${name}=${value}`);
  }
  log.info(`zram: ${applied.join(" ")}`);
}
