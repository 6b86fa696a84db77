// PID 1 runtime: early mounts, configuration, logging, the mode's plan, and the fallback.
// Nothing may escape from here: PID 1 exiting (or throwing out of main) panics the kernel.
import { readFileSync, writeFileSync } from "node:fs";
import { fromProcCmdline } from "./config/cmdline";
import { parseConfig, readOnFail } from "./config/config";
import { describeError } from "./errors";
import { configureLogging, log, setLogLevel } from "./log";
import * as sys from "./sys";
import { configureEnding, failBoot, failBootOn } from "./boot/ending";
import { ensureMount, mountedAt } from "./boot/mounts";
import type { BootReport, InitRuntime } from "./boot/plan";
import { BURROW_VERSION } from "./boot/version";

export async function runInit(): Promise<void> {
  // One TinyCC compile for every libc trampoline (clock_gettime's too) instead of one per symbol.
  bindLibc();
  const startNs = sys.clockNs(sys.Clock.BOOTTIME);
  const now = () => sys.boottimeMs();
  installLastResortHandlers();
  configureLogging({ console: true, kmsg: false, uptime: true }, now);
  mountProcAndDev();

  const cmdline = readCmdline();
  // The fallback policy first, on its own: whatever happens from here ends the way the user asked.
  configureEnding({ onfail: readOnFail(cmdline) });
  const config = parseConfig(cmdline);
  setLogLevel(config.log);
  allowKmsgWrites();
  configureLogging({ kmsg: true, facility: config.mode === "paravisor" ? 2 : 1 });

  const kernelRelease = safe(() => sys.uname().release, "unknown");
  const report: BootReport = { mode: config.mode, kernel: kernelRelease, startedMs: Number(startNs) / 1e6, steps: [] };
  const runtime: InitRuntime = { config, report, now, startNs, kernelRelease };
  configureEnding({ onfail: config.onfail, runId: config.runId, onexit: config.mode === "paravisor" ? config.onexit : null }, report);
  log.info(`burrow ${BURROW_VERSION} starting as PID 1: mode ${config.mode}, kernel ${kernelRelease}, uptime ${(Number(startNs) / 1e9).toFixed(3)} s`);
  for (const problem of config.problems) log.warn(`command line: ${problem.message}`);

  try {
    if (config.mode === "paravisor") {
      const { bootParavisor } = await import("./modes/paravisor/boot");
      await bootParavisor(runtime);
    } else {
      const { bootMicrovm } = await import("./modes/microvm/boot");
      await bootMicrovm(runtime);
    }
  } catch (error) {
    await failBootOn(error);
  }
}

/** Nothing is logged yet: a failure here only means each symbol binds on its first use instead. */
function bindLibc(): void {
  try {
    sys.prebind(sys.LIBC_SYMBOLS);
  } catch {
    // The lazy path names the symbol and the error when it is really needed.
  }
}

/**
 * /proc is needed to read the command line; the preload library has usually mounted it (and
 * /dev) already, before Bun's main ran. Presence is all that matters here: each mode's mount
 * step sets the flags it wants.
 */
function mountProcAndDev(): void {
  for (const [source, target, fstype, flags] of [
    ["proc", "/proc", "proc", sys.MountFlags.NOSUID | sys.MountFlags.NODEV | sys.MountFlags.NOEXEC],
    ["devtmpfs", "/dev", "devtmpfs", sys.MountFlags.NOSUID],
  ] as const) {
    try {
      if (mountedAt(target)?.fstype !== fstype) ensureMount(source, target, fstype, flags, fstype === "devtmpfs" ? "mode=0755" : null);
    } catch (error) {
      log.error(`early mount of ${target} failed: ${describeError(error)}`);
    }
  }
}

/** Bytes, not text: the kernel splits its command line on bytes (0xA0 is a space to it). */
function readCmdline(): Uint8Array {
  try {
    return fromProcCmdline(new Uint8Array(readFileSync("/proc/cmdline")));
  } catch (error) {
    log.error(`cannot read /proc/cmdline (${describeError(error)}); using defaults`);
    return new Uint8Array();
  }
}

function installLastResortHandlers(): void {
  const handler = (error: unknown) => void failBoot(`uncaught error in PID 1: ${describeError(error)}`);
  process.on("uncaughtException", handler);
  process.on("unhandledRejection", handler);
}

/** Userspace /dev/kmsg writes are rate-limited (10 per 5 s) by default; an init's lines must all land. */
function allowKmsgWrites(): void {
  try {
    writeFileSync("/proc/sys/kernel/printk_devkmsg", "on\n");
  } catch {
    // Locked by printk.devkmsg= on the command line: the user chose; keep going.
  }
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback; // for values the boot can go on without (the kernel's release name)
  }
}
