// Logging through consola with one reporter: one line per record on the console (fd 2) and,
// as PID 1, one write() per record to /dev/kmsg in syslog form "<pri>burrow: message".
// consola/core: the logger without the fancy reporters, prompts and boxes (a third of the code PID 1 loads).
import { createConsola, type ConsolaInstance, type LogObject } from "consola/core";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import type { LogLevelName } from "./config/config";
import { describeError } from "./errors";
import { OpenFlags } from "./sys/constants";

/** consola's numeric levels for our level names. */
export const CONSOLA_LEVEL: Record<LogLevelName, number> = { error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

/** Kernel log levels for a consola level: error→ERR(3), warn→WARNING(4), info→NOTICE(5), debug→INFO(6), trace→DEBUG(7). */
function kmsgSeverity(consolaLevel: number): number {
  if (consolaLevel <= 0) return 3;
  if (consolaLevel <= 1) return 4;
  if (consolaLevel <= 3) return 5;
  if (consolaLevel === 4) return 6;
  return 7;
}

const KMSG_MAX_RECORD = 1000;

/** One /dev/kmsg record: "<facility*8+severity>tag: message\n", capped below the 1 KiB record limit. */
export function formatKmsgRecord(facility: number, consolaLevel: number, tag: string, message: string): string {
  const prefix = `<${facility * 8 + kmsgSeverity(consolaLevel)}>${tag}: `;
  const body = message.replace(/\n/g, " | ");
  const room = KMSG_MAX_RECORD - Buffer.byteLength(prefix) - 1;
  const clipped = Buffer.byteLength(body) > room ? Buffer.from(body).subarray(0, room - 3).toString() + "..." : body;
  return `${prefix}${clipped}\n`;
}

const LABEL: Record<number, string> = { 0: "error: ", 1: "warning: ", 4: "debug: ", 5: "trace: " };

export interface LogSinks {
  /** Write records to fd 2 (the console). */
  console: boolean;
  /** Write records to /dev/kmsg. */
  kmsg: boolean;
  /** syslog facility for kmsg records (1 = user; the paravisor uses 2 like underhill_init). */
  facility: number;
  /** Prefix console lines with seconds since boot. */
  uptime: boolean;
}

let kmsgFd: number | null = null;
/** The kernel prints kmsg records below this severity on the console itself (console_loglevel). */
let kernelConsoleLevel = 0;
let sinks: LogSinks = { console: true, kmsg: false, facility: 1, uptime: false };

/**
 * A record's arguments as one line. Bun.inspect is native: node:util's inspect is a large JS module
 * the runtime compiles on first import, measured 30–80 ms of PID 1's start under TCG.
 */
export function formatLogArgs(args: unknown[]): string {
  return args.map((arg) => (typeof arg === "string" ? arg : arg instanceof Error ? arg.message : Bun.inspect(arg, { depth: 4, compact: true }).replace(/\n\s*/g, " "))).join(" ");
}

function uptimeStamp(): string {
  return `[${processUptime().toFixed(3).padStart(8)}] `;
}

let boottimeReader: (() => number) | null = null;
function processUptime(): number {
  return boottimeReader ? boottimeReader() / 1000 : performance.now() / 1000;
}

const reporter = {
  log(record: LogObject) {
    const message = formatLogArgs(record.args);
    const tag = record.tag ? `burrow/${record.tag}` : "burrow";
    const severity = kmsgSeverity(record.level);
    const kernelEchoes = sinks.kmsg && kmsgFd !== null && severity < kernelConsoleLevel;
    if (sinks.console && !kernelEchoes) {
      const line = `${sinks.uptime ? uptimeStamp() : ""}${tag}: ${LABEL[record.level] ?? ""}${message}\n`;
      try {
        writeSync(2, line);
      } catch {
        // The console went away; the kmsg copy below still records it.
      }
    }
    if (sinks.kmsg && kmsgFd !== null) {
      try {
        writeSync(kmsgFd, formatKmsgRecord(sinks.facility, record.level, tag, message));
      } catch {
        // kmsg write errors are ignored, as in underhill_init: logging must never fail boot.
      }
    }
  },
};

export const log: ConsolaInstance = createConsola({ level: CONSOLA_LEVEL.info, reporters: [reporter], throttle: 0 });

export function setLogLevel(level: LogLevelName): void {
  log.level = CONSOLA_LEVEL[level];
}

/** Route logging; opens /dev/kmsg when asked (and keeps going without it if it cannot). */
export function configureLogging(next: Partial<LogSinks>, boottimeMs?: () => number): void {
  sinks = { ...sinks, ...next };
  if (boottimeMs) boottimeReader = boottimeMs;
  if (sinks.kmsg && kmsgFd === null) {
    try {
      kmsgFd = openSync("/dev/kmsg", OpenFlags.WRONLY | OpenFlags.CLOEXEC);
    } catch (error) {
      sinks.kmsg = false;
      log.warn(`cannot open /dev/kmsg: ${describeError(error)}`);
    }
  }
  if (sinks.kmsg && kmsgFd !== null) {
    // One copy per line on the console: when the kernel echoes a record, we do not write it too.
    try {
      kernelConsoleLevel = Number(readFileSync("/proc/sys/kernel/printk", "utf8").trim().split(/\s+/)[0]) || 0;
    } catch {
      kernelConsoleLevel = 0;
    }
  }
  if (!sinks.kmsg && kmsgFd !== null) {
    closeSync(kmsgFd);
    kmsgFd = null;
  }
}

/** Whether records currently reach /dev/kmsg (the sink is on and the device is open). */
export function kmsgActive(): boolean {
  return sinks.kmsg && kmsgFd !== null;
}

/**
 * How the resident supervisor should log to keep burrow's lines as they were: its facility, and
 * the kmsg severity from which it writes the console itself (the kernel echoes the more urgent
 * ones); 0 when the console sink is off.
 */
export function supervisorLogSettings(): { facility: number; consoleLevel: number } {
  const consoleLevel = !sinks.console ? 0 : kmsgActive() ? Math.max(kernelConsoleLevel, 1) : 1;
  return { facility: sinks.facility, consoleLevel };
}

/** Close the kmsg descriptor (before exec: no fd may leak into the agent). */
export function closeLogging(): void {
  if (kmsgFd !== null) {
    try {
      closeSync(kmsgFd);
    } catch {
      // Already closed: nothing can leak.
    }
    kmsgFd = null;
  }
  sinks.kmsg = false;
}
