// How the VM ends: the boot report on disk, the exit-status line for the host, the fallback after
// a fatal failure (shell, halt or power-off), and what an exec'd program must not inherit. One
// fatal path for every mode: failBoot.
import { closeSync, constants, existsSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import type { OnExit, OnFail } from "../config/config";
import { describeError } from "../errors";
import { closeLogging, log } from "../log";
import * as sys from "../sys";
import { exitStatusLine } from "../exit-marker";
import { EXEC_PATH_VAR } from "./paths";
import { BootFailure, type BootReport } from "./plan";

const REPORT_PATH = "/run/burrow/boot.json";

interface EndingSettings {
  onfail: OnFail;
  /** Paravisor: how a worker's exit (and by default a failed boot) ends the VM; null in microvm mode. */
  onexit: OnExit | null;
  runId: string | null;
}

let settings: EndingSettings = { onfail: "poweroff", onexit: null, runId: null };
let report: BootReport | null = null;
let fallbackRoot: string | null = null;
let finishing = false;

/** Called as soon as each piece is known: onfail first (read on its own), the rest after parsing. */
export function configureEnding(next: Partial<EndingSettings>, bootReport?: BootReport): void {
  settings = { ...settings, ...next };
  if (bootReport) report = bootReport;
}

export function isEnding(): boolean {
  return finishing;
}

export function writeReport(bootReport: BootReport, path = REPORT_PATH): void {
  try {
    mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    writeFileSync(path, JSON.stringify(bootReport, null, 2) + "\n");
  } catch (error) {
    log.warn(`cannot write boot report ${path}: ${describeError(error)}`);
  }
}

/** A mounted (not yet switched to) root whose /bin/sh the shell fallback should prefer; null for "/". */
export function setFallbackRoot(path: string | null): void {
  fallbackRoot = path;
}

/**
 * The one fatal path: say why in one line, keep the report, then the configured fallback. A
 * second failure while ending (an uncaught error from a dying step) changes nothing.
 */
export async function failBoot(message: string, status = 1): Promise<never> {
  if (finishing) return parkForever();
  finishing = true;
  log.error(message);
  if (report) writeReport(report);
  if (settings.onfail === "shell") startShell();
  if (settings.onfail === "halt") return endVm("halt", status);
  return finishRun(status);
}

/** A failed boot in one wording for every mode: "boot failed: <step>: <cause>", or an unexpected error as such. */
export function failBootOn(error: unknown): Promise<never> {
  return failBoot(`boot failed: ${error instanceof BootFailure ? error.message : `unexpected error: ${describeError(error)}`}`);
}

/**
 * End the VM with `status` the way burrow.onexit says (paravisor: exit hands init's status to the
 * kernel and so to the host; poweroff; reboot); microvm mode powers off.
 */
export async function finishRun(status: number): Promise<never> {
  finishing = true;
  if (settings.onexit === "exit") {
    log.info(`exiting with status ${status}`);
    process.exit(status);
  }
  return endVm(settings.onexit ?? "poweroff", status);
}

/** Try the shells in turn (exec never returns on success); on failure fall through to power-off. */
function startShell(): void {
  enterFallbackRoot();
  for (const shell of ["/bin/sh", "/bin/busybox"]) {
    if (!existsSync(shell)) continue;
    log.warn(`dropping to ${shell} (burrow.onfail=shell)`);
    try {
      prepareForExec();
      sys.execve(shell, shell.endsWith("busybox") ? [shell, "sh"] : [shell], [EXEC_PATH_VAR, "HOME=/root", "TERM=linux"]);
    } catch (error) {
      log.error(`cannot start ${shell}: ${describeError(error)}`);
    }
  }
  log.error("no shell available; powering off");
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

/** sync and power off/halt/reboot. Prints the exit-status line first so the host learns the status. */
async function endVm(how: "poweroff" | "halt" | "reboot", status: number): Promise<never> {
  finishing = true;
  log.info(`${how === "poweroff" ? "powering off" : how === "halt" ? "halting" : "rebooting"}`);
  announceExitStatus(status);
  sys.sync();
  // Only PID 1 may call reboot(): anywhere else (a CLI run, a test as root) it would end the host.
  // As PID 1 of a PID namespace the kernel kills us with a signal instead, which tests rely on.
  if (process.pid !== 1) process.exit(status);
  const command = how === "halt" ? sys.RebootCmd.HALT : how === "reboot" ? sys.RebootCmd.RESTART : sys.RebootCmd.POWER_OFF;
  try {
    sys.reboot(command);
  } catch (error) {
    log.error(`reboot(${how}) failed: ${describeError(error)}`);
  }
  // Halted, or reboot refused: never return into a dead boot.
  return parkForever();
}

async function parkForever(): Promise<never> {
  for (;;) await Bun.sleep(3_600_000);
}

/**
 * The line goes to /dev/console, not fd 2: stderr may be ttyprintk (paravisor) or another
 * device the host does not read, and the host needs this line to pass the status on.
 */
function announceExitStatus(status: number): void {
  const line = `${exitStatusLine(status, settings.runId)}\n`;
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
    } catch {
      // Neither the console nor stderr: the host sees the power-off without a status.
    }
  }
}

/** Reset what must not leak into an exec'd program: ignored signals, blocked masks, our kmsg fd. */
export function prepareForExec(): void {
  closeLogging();
  for (const signal of [sys.Signals.SIGPIPE, sys.Signals.SIGXFSZ]) {
    try {
      sys.resetSignal(signal);
    } catch {
      // Best effort: the program still runs, with that signal ignored as burrow had it.
    }
  }
  try {
    sys.unblockAllSignals();
  } catch {
    // Same: a blocked mask is inherited but nothing else is lost.
  }
}

/**
 * Mark every fd from 3 on close-on-exec except `keep` (handed on on purpose): the runtime's own
 * fds are not all O_CLOEXEC, and nothing of burrow's may reach the exec'd program.
 */
export function closeOnExecAllBut(keep: readonly number[] = []): void {
  try {
    sys.closeRangeCloexec(3);
  } catch {
    // Linux before 5.11: burrow's own fds are O_CLOEXEC; only the runtime's could leak.
  }
  for (const fd of keep) sys.fcntl(fd, sys.Fcntl.F_SETFD, 0);
}
