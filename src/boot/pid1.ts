// PID 1 runtime: early mounts, configuration, logging, the mode's plan, and the fallback.
// Nothing may escape from here: PID 1 exiting (or throwing out of main) panics the kernel.
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { parseConfig, type Config, type OnFail } from "../config/config";
import { closeLogging, configureLogging, log, setLogLevel } from "../log";
import * as sys from "../sys";
import { BootFailure, describeError, type BootReport } from "./plan";
import { ensureMount, mountedAt } from "./mounts";
import { BURROW_VERSION } from "./version";

export interface InitRuntime {
  config: Config;
  report: BootReport;
  /** CLOCK_BOOTTIME ms. */
  now: () => number;
  /** CLOCK_BOOTTIME ns when burrow started (exported as KERNEL_BOOT_TIME). */
  startNs: bigint;
  kernelRelease: string;
}

/** The line `burrow run` reads to pass a guest's exit status on to the host. */
export const EXIT_STATUS_MARKER = "burrow: guest exit status";

let finishing = false;

export async function runInit(): Promise<void> {
  const startNs = sys.clockNs(sys.Clock.BOOTTIME);
  const now = () => sys.boottimeMs();
  installLastResortHandlers();
  configureLogging({ console: true, kmsg: false, uptime: true }, now);

  // /proc is needed to read the command line; the preload library has usually mounted it
  // (and /dev) already, before Bun's main ran. Presence is all that matters here: each mode's
  // mount step sets the flags it wants.
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

  let cmdline = "";
  try {
    cmdline = readFileSync("/proc/cmdline", "utf8");
  } catch (error) {
    log.error(`cannot read /proc/cmdline (${describeError(error)}); using defaults`);
  }
  const config = parseConfig(cmdline);
  setLogLevel(config.log);
  allowKmsgWrites();
  configureLogging({ kmsg: true, facility: config.mode === "paravisor" ? 2 : 1 });

  const kernelRelease = safe(() => sys.uname().release, "unknown");
  const report: BootReport = { mode: config.mode, kernel: kernelRelease, startedMs: Number(startNs) / 1e6, steps: [] };
  const runtime: InitRuntime = { config, report, now, startNs, kernelRelease };
  fallbackPolicy = config.onfail;
  log.info(`burrow ${BURROW_VERSION} starting as PID 1: mode ${config.mode}, kernel ${kernelRelease}, uptime ${(Number(startNs) / 1e9).toFixed(3)} s`);
  for (const problem of config.problems) {
    if (!problem.key.startsWith("burrow.zram")) log.warn(`command line: ${problem.message}`);
  }

  try {
    if (config.mode === "paravisor") {
      const { bootParavisor } = await import("../modes/paravisor/boot");
      await bootParavisor(runtime);
    } else {
      const { bootMicrovm } = await import("../modes/microvm/boot");
      await bootMicrovm(runtime);
    }
  } catch (error) {
    const step = error instanceof BootFailure ? "" : "unexpected error: ";
    log.error(`boot failed: ${step}${describeError(error)}`);
    writeReport(report);
    await takeFallback(config.onfail, 1);
  }
}



let fallbackPolicy: OnFail = "poweroff";

function installLastResortHandlers(): void {
  const handler = (error: unknown) => {
    if (finishing) return;
    log.error(`uncaught error in PID 1: ${describeError(error)}`);
    void takeFallback(fallbackPolicy, 1);
  };
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

export function writeReport(report: BootReport, path = "/run/burrow/boot.json"): void {
  try {
    mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    writeFileSync(path, JSON.stringify(report, null, 2) + "\n");
  } catch (error) {
    log.warn(`cannot write boot report ${path}: ${describeError(error)}`);
  }
}

let fallbackRoot: string | null = null;

/** A mounted (not yet switched to) root whose /bin/sh the shell fallback should prefer; null for "/". */
export function setFallbackRoot(path: string | null): void {
  fallbackRoot = path;
}

function enterFallbackRoot(): void {
  if (fallbackRoot === null || !existsSync(`${fallbackRoot}/bin/sh`)) return;
  try {
    sys.chroot(fallbackRoot);
    sys.chdir("/");
    log.info(`fallback shell from ${fallbackRoot}`);
  } catch (error) {
    log.warn(`cannot enter ${fallbackRoot} for the shell: ${describeError(error)}`);
  }
}

/** End the VM: power off, halt, or drop to a shell, after saying why. Never returns. */
export async function takeFallback(policy: OnFail, status: number): Promise<never> {
  if (policy === "shell") {
    enterFallbackRoot();
    for (const shell of ["/bin/sh", "/bin/busybox"]) {
      if (!existsSync(shell)) continue;
      log.warn(`dropping to ${shell} (burrow.onfail=shell)`);
      try {
        prepareForExec();
        sys.execve(shell, shell.endsWith("busybox") ? [shell, "sh"] : [shell], ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=linux"]);
      } catch (error) {
        log.error(`cannot start ${shell}: ${describeError(error)}`);
      }
    }
    log.error("no shell available; powering off");
    policy = "poweroff";
  }
  return endVm(policy === "halt" ? "halt" : "poweroff", status);
}

/** sync and power off/halt/reboot. Prints the exit-status marker first so the host learns the status. */
export async function endVm(how: "poweroff" | "halt" | "reboot", status: number): Promise<never> {
  finishing = true;
  log.info(`${how === "poweroff" ? "powering off" : how === "halt" ? "halting" : "rebooting"}`);
  announceExitStatus(status);
  sys.sync();
  const command = how === "halt" ? sys.RebootCmd.HALT : how === "reboot" ? sys.RebootCmd.RESTART : sys.RebootCmd.POWER_OFF;
  try {
    sys.reboot(command);
  } catch (error) {
    log.error(`reboot(${how}) failed: ${describeError(error)}`);
  }
  // Not PID 1 (e.g. a namespace test) or reboot refused: never return into a dead boot.
  if (process.pid !== 1) process.exit(status);
  for (;;) await Bun.sleep(3_600_000);
}

/**
 * The marker goes to /dev/console, not fd 2: stderr may be ttyprintk (paravisor) or another
 * device the host does not read, and the host needs this line to pass the status on.
 */
function announceExitStatus(status: number): void {
  const line = `${EXIT_STATUS_MARKER} ${status}\n`;
  try {
    const fd = openSync("/dev/console", constants.O_WRONLY | constants.O_NOCTTY);
    try {
      writeSync(fd, line);
    } finally {
      closeSync(fd);
    }
  } catch {
    try {
      writeSync(2, line);
    } catch {}
  }
}

/** Reset what must not leak into an exec'd program: ignored signals, blocked masks, our kmsg fd. */
export function prepareForExec(): void {
  closeLogging();
  for (const signal of [sys.Signals.SIGPIPE, sys.Signals.SIGXFSZ]) {
    try {
      sys.resetSignal(signal);
    } catch {}
  }
  try {
    sys.unblockAllSignals();
  } catch {}
}

function safe<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}
