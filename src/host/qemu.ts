// `burrow run`: boot a kernel + initramfs in QEMU, stream the guest console, and turn how the
// guest ended into an exit status the host can act on.
import { getRandomValues } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { exitStatusPattern, EXIT_STATUS_MARKER, RUN_ID_PATTERN } from "../exit-marker";
import { splitAppend, wordKey } from "../config/cmdline";
import { parseConfig } from "../config/config";
import { describeError } from "../errors";
import { ControlClient } from "../control/client";
import { ControlMux } from "../control/mux";
import { CONTROL_PORT } from "../control/wire";
import { checkMachine, checkSmp, checkTcgTbSize, checkTimeout, hostForwardRule, parseMem, qemuOptionValue, type PortForward } from "./options";
import { ARCH_INFO, hostArch, type Arch } from "../arch";
import { hostStopWaitMs } from "../stop-port";

/** microvm and q35 are x86_64 machines, virt the arm64 one (checkMachine pairs them). */
export type Machine = "microvm" | "q35" | "virt";
export type Accel = "tcg" | "kvm";

export interface PortSpec { name: string; file: string | null }

export interface SpawnedVm {
  pid: number;
  kill(signal?: NodeJS.Signals): void;
  exited: Promise<number>;
  control: Promise<ControlMux> | null;
}

export interface SerialDisk { serial: string; file: string }

/** virtio-blk serials hold 20 bytes (VIRTIO_BLK_ID_BYTES); this set never needs QEMU escaping. */
const SERIAL_NAME = /^[A-Za-z0-9._-]{1,20}$/;

/**
 * `--serial-disk NAME=PATH`: NAME cannot contain "=", so the first "=" ends it and PATH is the
 * rest verbatim (it may hold "=" and ","). A separate option, so `--disk PATH` never changes meaning.
 */
export function parseSerialDisk(spec: string): SerialDisk {
  const equals = spec.indexOf("=");
  const serial = equals < 0 ? "" : spec.slice(0, equals);
  if (!SERIAL_NAME.test(serial) || equals === spec.length - 1) throw new Error(`--serial-disk needs NAME=PATH (NAME: 1 to 20 of A-Z a-z 0-9 . _ -), got ${JSON.stringify(spec)}`);
  return { serial, file: spec.slice(equals + 1) };
}

export interface RunOptions {
  /** The guest architecture (default this host's): which QEMU, and its console. */
  arch?: Arch;
  kernel: string;
  initrd: string | null;
  disks: string[];
  /** Of `disks`, the ones the guest may only read (readonly=on: the device itself refuses writes). */
  readOnlyDisks?: readonly string[];
  /** Disks the guest finds by virtio serial (root=SERIAL=NAME), attached after `disks`. */
  serialDisks?: SerialDisk[];
  ports: PortSpec[];
  mem: string;
  smp: number;
  machine: Machine;
  accel: Accel;
  /**
   * TCG's translation buffer in MiB (QEMU's tb-size; 7.2's default is 1 GiB of mapping, of which
   * a guest's boot dirties tens of MiB). Host tuning only, not device state: a restore may pick its own.
   */
  tcgTbSizeMiB?: number;
  append: string;
  timeoutSeconds: number;
  qemu?: string;
  /**
   * One virtio-net NIC on QEMU's user network (DHCP and DNS from QEMU, outbound through the
   * host), with host ports forwarded into the guest; the guest gets burrow.net=1. Absent: no NIC.
   */
  net?: { forwards: PortForward[] };
  /** Extra raw QEMU arguments (tests use them for odd devices). */
  extraArgs?: string[];
  /** This run's id (burrow.runid=); runVm draws a random one when absent. */
  runId?: string;
  /**
   * Put the serial console on a unix socket (QEMU the server) instead of stdio, for driving a
   * guest shell. QEMU waits for the first client before it starts the guest, so nothing printed
   * is lost; the console then goes to that client, not to the run's output, and the verdict rests
   * on QEMU's exit status.
   */
  consoleSocket?: string;
  /** Aborting kills QEMU (a caller that gave up on the guest). */
  signal?: AbortSignal;
  /** Open every disk with snapshot=on: guest writes go to a throw-away overlay, never to the file. */
  snapshotDisks?: boolean;
  /**
   * A unix socket (QEMU the server) behind the virtio-serial port burrow.control, the guest
   * supervisor's control channel. runVm makes one itself for a supervised guest (the default);
   * either way runVm owns its one connection (a ControlMux, handed to onSpawn).
   */
  controlSocket?: string;
  /** The caller connects to controlSocket itself (a test sending what a real host never would): runVm does not. */
  rawControl?: boolean;
  /** A unix socket for QMP (QEMU the server). */
  qmpSocket?: string;
  /**
   * Start from a saved state in this file instead of booting. QEMU reads it from an fd we open
   * (-incoming fd:3): no shell and cat in between, and no pipe to copy through (measured ~40 ms
   * less to a loaded 64 MiB guest than exec:cat).
   */
  incomingFile?: string;
  /**
   * Take the saved state only when the driver says so over QMP (migrate-incoming fd:3), after it
   * set what both sides of the migration must agree on (x-ignore-shared for a mapped RAM file).
   */
  incomingDeferred?: boolean;
  /**
   * The guest's RAM in this file instead of anonymous memory: shared (MAP_SHARED: the guest's
   * writes reach the file, as a save needs) or private (MAP_PRIVATE: pages come from the file as
   * the guest touches them, its writes stay in this QEMU, the file is never written).
   */
  ramFile?: { path: string; shared: boolean };
  /**
   * Called once QEMU runs, for callers that drive it (QMP, the control channel) while the console
   * streams. `control` settles once the guest's supervisor answered on the control port (null: the
   * guest has none); it rejects when QEMU ends first.
   */
  onSpawn?: (qemu: SpawnedVm) => void;
}

/**
 * The host's TSC frequency in kHz when the host knows it exactly (tsc_known_freq). Under TCG the
 * guest's TSC is the host's; a microvm guest has no HPET or PM timer to calibrate against, and a
 * PIT calibration on a busy host can fail and hang the boot, so we tell the guest the rate.
 */
export function hostTscKhz(cpuinfo = readCpuinfo()): number | null {
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? "";
  const mhz = /^cpu MHz\s*:\s*([\d.]+)$/m.exec(cpuinfo)?.[1];
  if (!mhz || !/\btsc_known_freq\b/.test(flags) || !/\bconstant_tsc\b/.test(flags)) return null;
  return Math.round(Number(mhz) * 1000);
}

function readCpuinfo(): string {
  try {
    return readFileSync("/proc/cpuinfo", "utf8");
  } catch {
    return ""; // no cpuinfo: no TSC frequency to pass on
  }
}

const RUN_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A fresh run id: 24 letters/digits from the system CSPRNG (~143 bits), matching RUN_ID_PATTERN. */
export function newRunId(length = 24): string {
  let id = "";
  while (id.length < length) {
    for (const byte of getRandomValues(new Uint8Array(length))) {
      // 248 = 4 × 62: dropping the rest keeps every character equally likely.
      if (byte < 248 && id.length < length) id += RUN_ID_ALPHABET[byte % 62];
    }
  }
  return id;
}

/** The fd QEMU reads a saved state from: the first after stdin, stdout and stderr. */
const INCOMING_FD = 3;

/** Where QEMU takes a saved state from (-incoming, or QMP migrate-incoming when deferred). */
export function incomingUri(): string {
  return `fd:${INCOMING_FD}`;
}

const RAM_BACKEND_ID = "ram0";

function openIncoming(path: string): number {
  try {
    return openSync(path, "r");
  } catch (error) {
    throw new Error(`cannot open the saved state ${path}: ${describeError(error)}`);
  }
}

/** Kernel parameters every burrow boot wants unless the user set them; init arguments stay last. */
export function kernelCommandLine(append: string, machine: Machine, tscKhz: number | null = null, runId: string | null = null, net = false): string {
  const { kernelWords, initWords } = splitAppend(append);
  const has = (key: string) => kernelWords.some((word) => wordKey(word) === key);
  const defaults: string[] = [];
  // virt's UART is a PL011 (ttyAMA0); the x86 machines have a 16550 (ttyS0).
  if (!has("console")) defaults.push(`console=${machine === "virt" ? ARCH_INFO.arm64.console : ARCH_INFO.x86_64.console}`);
  // A panic must end QEMU (-no-reboot) rather than hang: the host reads the reason.
  if (!has("panic")) defaults.push("panic=-1");
  if (machine === "microvm" && !has("reboot")) defaults.push("reboot=t");
  if (tscKhz && !has("tsc_early_khz")) defaults.push(`tsc_early_khz=${tscKhz}`);
  // The same TSC is then trustworthy: keep the clocksource watchdog from demoting it to jiffies.
  if (tscKhz && !has("tsc")) defaults.push("tsc=reliable");
  // A NIC was asked for: burrow then loads virtio_net (Debian's kernel) and reports the interface.
  if (net && !has("burrow.net") && !has("init.net")) defaults.push("burrow.net=1");
  // The run id goes last among the kernel's words, never after "--" (init would get it as an argument).
  const id = runId ? [`burrow.runid=${runId}`] : [];
  return [...defaults, ...kernelWords, ...id, ...initWords].join(" ");
}

/** How QEMU opens a disk: by driver name, never by guessing a protocol (nbd:, json:, …) from the path. */
function diskDriver(path: string): "file" | "host_device" {
  try {
    return statSync(path).isBlockDevice() ? "host_device" : "file";
  } catch {
    return "file"; // missing: checkRunInputs refuses it before QEMU starts
  }
}

export function qemuArgs(options: RunOptions): string[] {
  const arch = options.arch ?? hostArch();
  checkMachine(arch, options.machine);
  // virt has a PCIe host bridge (Debian's arm64 kernel: pci-host-generic built in, virtio_pci a module).
  const pci = options.machine === "q35" || options.machine === "virt";
  const bus = (device: string) => `${device}-${pci ? "pci" : "device"}`;
  checkSmp(options.smp);
  const args = [
    options.qemu ?? ARCH_INFO[arch].qemu,
    "-machine", `${options.machine === "microvm" ? "microvm,rtc=on" : options.machine}${options.ramFile ? `,memory-backend=${RAM_BACKEND_ID}` : ""}`,
    "-accel", accelArg(options),
    "-cpu", options.accel === "kvm" ? "host" : tcgCpu(arch),
    "-m", parseMem(options.mem),
    "-smp", String(options.smp),
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    "-chardev", options.consoleSocket
      ? `socket,id=console,path=${qemuOptionValue(options.consoleSocket, "console socket path")},server=on,wait=on`
      : "stdio,id=console,signal=off",
    "-serial", "chardev:console",
    // -kernel, -initrd and -append are taken whole (no option-list parsing): no escaping.
    "-kernel", options.kernel,
    // The TSC hint is x86's; an arm64 guest reads its timer frequency from CNTFRQ.
    "-append", kernelCommandLine(options.append, options.machine, options.accel === "tcg" && arch === "x86_64" ? hostTscKhz() : null, options.runId ?? null, options.net !== undefined),
  ];
  if (options.initrd) args.push("-initrd", options.initrd);
  if (options.ramFile) {
    // Only a file backend is safe to mark shared with QEMU 7.2's x-ignore-shared (every share=on
    // block is skipped, whatever backs it). Neither prealloc (it would copy every page of a
    // private mapping) nor discard-data (it would punch the saved RAM out of the file on exit).
    const path = qemuOptionValue(options.ramFile.path, "RAM file path");
    args.push("-object", `memory-backend-file,id=${RAM_BACKEND_ID},size=${parseMem(options.mem)},mem-path=${path},share=${options.ramFile.shared ? "on" : "off"}`);
  }
  const disks: { file: string; serial: string | null }[] = [...options.disks.map((file) => ({ file, serial: null })), ...(options.serialDisks ?? [])];
  disks.forEach((disk, index) => {
    const file = qemuOptionValue(disk.file, `disk path ${JSON.stringify(disk.file)}`);
    // file.filename (not file=): QEMU would read "nbd:…" or "json:{…}" in file= as a protocol.
    const snapshot = options.snapshotDisks ? ",snapshot=on" : "";
    const readOnly = options.readOnlyDisks?.includes(disk.file) ? ",readonly=on" : "";
    const serial = disk.serial === null ? "" : `,serial=${qemuOptionValue(disk.serial, `disk serial ${JSON.stringify(disk.serial)}`)}`;
    args.push("-drive", `id=disk${index},if=none,format=raw${snapshot}${readOnly},file.driver=${diskDriver(disk.file)},file.filename=${file}`, "-device", `${bus("virtio-blk")},drive=disk${index}${serial}`);
  });
  if (options.ports.length > 0 || options.controlSocket) {
    args.push("-device", `${bus("virtio-serial")},id=vser0`);
    options.ports.forEach((port, index) => {
      checkPortName(port.name, port.name);
      const path = port.file === null ? null : qemuOptionValue(port.file, `port ${port.name} file`);
      args.push("-chardev", path !== null ? `file,id=port${index},path=${path}` : `null,id=port${index}`);
      args.push("-device", `virtserialport,bus=vser0.0,chardev=port${index},name=${port.name}`);
    });
    if (options.controlSocket) {
      // The control port comes last, so a saved VM and its restores agree on the device order.
      args.push("-chardev", `socket,id=control,path=${qemuOptionValue(options.controlSocket, "control socket path")},server=on,wait=off`);
      args.push("-device", `virtserialport,bus=vser0.0,chardev=control,name=${CONTROL_PORT}`);
    }
  }
  if (options.net) {
    const rules = options.net.forwards.map((forward) => `,${hostForwardRule(forward)}`).join("");
    args.push("-netdev", `user,id=net0${rules}`, "-device", `${bus("virtio-net")},netdev=net0`);
  }
  if (options.qmpSocket) args.push("-qmp", `unix:${qemuOptionValue(options.qmpSocket, "QMP socket path")},server=on,wait=off`);
  if (options.incomingFile) args.push("-incoming", options.incomingDeferred ? "defer" : incomingUri());
  args.push(...(options.extraArgs ?? []));
  return args;
}

/** `-accel`: KVM has no translation buffer, so a size asked for under it is a mistake, said once. */
function accelArg(options: RunOptions): string {
  if (options.tcgTbSizeMiB === undefined) return options.accel;
  if (options.accel !== "tcg") throw new Error(`--tcg-tb-size sizes TCG's translation buffer, but this VM runs under ${options.accel}`);
  checkTcgTbSize(options.tcgTbSizeMiB);
  return `tcg,tb-size=${options.tcgTbSizeMiB}`;
}

function checkPortName(name: string, spec: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`bad port name ${JSON.stringify(name)} in --port ${spec} (letters, digits, . _ -)`);
}

/** "NAME" or "NAME=FILE". */
export function parsePortSpec(spec: string): PortSpec {
  const equals = spec.indexOf("=");
  const name = equals < 0 ? spec : spec.slice(0, equals);
  checkPortName(name, spec);
  return { name, file: equals < 0 ? null : spec.slice(equals + 1) };
}

export type Outcome = "poweroff" | "exit-status" | "halted" | "init-exited" | "panic" | "timeout" | "qemu-failed" | "stopped";

export interface RunResult {
  outcome: Outcome;
  /** What `burrow run` exits with. */
  exitCode: number;
  reason: string;
  output: string;
  wallMs: number;
  /** The id this run put on the kernel command line. */
  runId: string;
}

/** How the run ended, besides the console text. */
export interface RunEnd {
  qemuStatus: number | null;
  timedOut: boolean;
  timeoutSeconds: number;
  /** Only marker lines carrying this id count; null: none do. */
  runId: string | null;
  /** The signal to `burrow run` that stopped the guest (the first, if several came), or null. */
  stoppedBy: NodeJS.Signals | null;
  /** The signal that ended QEMU (its status is then null), or null. */
  qemuSignal?: NodeJS.Signals | null;
  /** QEMU's last line on stderr: why it gave up, when it did. */
  qemuLastWords?: string | null;
}

/** `burrow run`'s exit code for a halted guest that reported no status. */
export const HALTED_EXIT_CODE = 3;
/** `burrow run`'s exit code when QEMU itself failed: it would not start, crashed or was killed. */
export const QEMU_FAILED_EXIT_CODE = 126;

/** QEMU's end in one line: its status or the signal that killed it, and its own last words. */
export function qemuFailure(end: Pick<RunEnd, "qemuStatus" | "qemuSignal" | "qemuLastWords">): string {
  const how = end.qemuStatus === null ? `qemu was killed by ${end.qemuSignal ?? "a signal"}` : `qemu exited with status ${end.qemuStatus}`;
  return end.qemuLastWords ? `${how}: ${end.qemuLastWords}` : how;
}

const INIT_EXIT = /Attempted to kill init! exitcode=0x([0-9a-f]+)/;
const PANIC = /Kernel panic - not syncing: ([^\r\n]*)/;
/** The OOM killer's panics (nothing left to kill; panic_on_oom): their words do not say "out of memory" plainly. */
const OOM_PANIC = /^(System is deadlocked on memory|Out of memory)/;

/** A panic's reason, saying so when the guest ran out of memory. */
export function panicReason(message: string): string {
  return `kernel panic: ${message}${OOM_PANIC.test(message) ? " (the guest ran out of memory)" : ""}`;
}
/** The kernel's own line for reboot(HALT), alone on its line (after an optional printk time). */
const HALTED = /^(?:\[\s*\d+\.\d+\] )?reboot: System halted\r?$/m;

/** The status from the LAST marker line carrying this run's id (an earlier one may be replayed text). */
function trustedExitStatus(output: string, runId: string | null): number | null {
  if (!runId || !RUN_ID_PATTERN.test(runId)) return null;
  let status: number | null = null;
  for (const match of output.matchAll(exitStatusPattern(runId))) status = Number(match[1]);
  // Only 0-255 can come from burrow; clamp rather than let 256 wrap to a success.
  return status === null ? null : Math.min(status, 255);
}

/** Classify a finished run from the console text and QEMU's own status. */
export function classify(output: string, end: RunEnd): Omit<RunResult, "output" | "wallMs" | "runId"> {
  const status = trustedExitStatus(output, end.runId);
  // Before the timeout: a timeout can only fire after the signal, while the guest was stopping.
  if (end.stoppedBy !== null) return stoppedVerdict(output, status, end.stoppedBy);
  const initExit = INIT_EXIT.exec(output);
  const panic = PANIC.exec(output);
  if (end.timedOut) {
    return { outcome: "timeout", exitCode: 124, reason: `guest did not finish within ${end.timeoutSeconds} s${panic ? ` (kernel panic: ${panic[1]})` : ""}` };
  }
  if (HALTED.test(output)) {
    return status === null
      ? { outcome: "halted", exitCode: HALTED_EXIT_CODE, reason: `guest halted without reporting an exit status` }
      : { outcome: "halted", exitCode: status, reason: `guest halted with exit status ${status}` };
  }
  if (initExit) {
    // An init that exits hands its status to the kernel (wait status, exit code in bits 8-15).
    const waitStatus = parseInt(initExit[1]!, 16);
    const code = waitStatus & 0x7f ? 128 + (waitStatus & 0x7f) : (waitStatus >> 8) & 0xff;
    return { outcome: "init-exited", exitCode: code, reason: `init exited with status ${code}` };
  }
  if (panic) return { outcome: "panic", exitCode: 125, reason: panicReason(panic[1]!.trim()) };
  if (end.qemuStatus !== 0) return { outcome: "qemu-failed", exitCode: QEMU_FAILED_EXIT_CODE, reason: qemuFailure(end) };
  if (status !== null) {
    return { outcome: "exit-status", exitCode: status, reason: status === 0 ? "guest powered off" : `guest reported exit status ${status}` };
  }
  // Say so when a marker without this run's id was ignored: a guest burrow too old to echo the id, or forged text.
  const ignored = output.includes(EXIT_STATUS_MARKER) ? ` (ignored "${EXIT_STATUS_MARKER}" lines without this run's id)` : "";
  return { outcome: "poweroff", exitCode: 0, reason: `guest powered off${ignored}` };
}

/**
 * A run a signal ended. The guest's own status when its supervisor reported one on the way down
 * (its orderly stop ran); otherwise the shell's convention for a program killed by the signal.
 */
function stoppedVerdict(output: string, status: number | null, signal: NodeJS.Signals): Omit<RunResult, "output" | "wallMs" | "runId"> {
  const by = `stopped by ${signal}`;
  if (status !== null) return { outcome: HALTED.test(output) ? "halted" : "exit-status", exitCode: status, reason: `guest reported exit status ${status} (${by})` };
  const panic = PANIC.exec(output);
  return { outcome: "stopped", exitCode: 128 + signalNumber(signal), reason: `${by}${panic ? ` (kernel panic: ${panic[1]!.trim()})` : ""}` };
}

function signalNumber(signal: NodeJS.Signals): number {
  const number = constants.signals[signal];
  if (number === undefined) throw new Error(`unknown signal ${signal}`);
  return number;
}

export function checkRunInputs(options: RunOptions): void {
  const missing: string[] = [];
  if (!existsSync(options.kernel)) missing.push(`kernel ${options.kernel}`);
  if (options.initrd && !existsSync(options.initrd)) missing.push(`initrd ${options.initrd}`);
  for (const disk of [...options.disks, ...(options.serialDisks ?? []).map((entry) => entry.file)]) if (!existsSync(disk)) missing.push(`disk ${disk}`);
  if (missing.length) throw new Error(`not found: ${missing.join(", ")}`);
  checkTimeout(options.timeoutSeconds);
  checkSmp(options.smp);
  checkMachine(options.arch ?? hostArch(), options.machine);
  parseMem(options.mem);
  if (options.runId !== undefined && !RUN_ID_PATTERN.test(options.runId)) throw new Error(`bad run id ${JSON.stringify(options.runId)} (8 to 64 letters and digits)`);
  // The id must come from this run alone, or a guest could be told which marker to forge.
  if (splitAppend(options.append).kernelWords.some((word) => word.startsWith("burrow.runid="))) throw new Error(`burrow.runid= is set by burrow run itself; remove it from --append`);
}

/**
 * How long the host gives a guest to stop after it asked it to, or null: the guest keeps no stop
 * port (only the resident supervisor, burrow.supervise=1, reads one).
 */
export function guestStopWaitMs(append: string): number | null {
  const config = parseConfig(append);
  return config.supervise ? hostStopWaitMs(config.stopTimeoutMs) : null;
}

/**
 * The argv that starts QEMU: under setpriv --pdeathsig SIGKILL when the host has setpriv, so the
 * kernel kills QEMU once burrow run is gone, however it died (SIGKILL included). setpriv execs
 * QEMU: the same pid, and the inherited fds (the saved state on fd 3) reach QEMU unchanged. The
 * death signal follows the thread that forked, not the process: Bun forks on the JS main thread
 * (strace: vfork from the thread whose id is the pid), which lasts as long as burrow run.
 */
export function spawnArgv(qemuArgv: readonly string[], setpriv: string | null): string[] {
  return setpriv === null ? [...qemuArgv] : [setpriv, "--pdeathsig", "SIGKILL", "--", ...qemuArgv];
}

function spawnQemu(args: string[], arch: Arch, incoming: number | null) {
  const setpriv = Bun.which("setpriv");
  const cannotStart = (why: string) => new Error(`cannot start ${args[0]}: ${why} (install ${ARCH_INFO[arch].qemuPackage}: \`${arch === "x86_64" ? "" : `ARCH=${arch} `}just deps\`)`);
  // Through setpriv a missing QEMU would only show as setpriv's exit status: look first.
  if (setpriv !== null && Bun.which(args[0]!) === null) throw cannotStart("not found or not executable");
  try {
    // detached (a session of its own): a terminal's Ctrl-C or hangup reaches burrow run alone,
    // which stops the guest in order; QEMU would quit on them at once. Only with setpriv, which
    // makes the kernel kill it with us: a detached QEMU outlives a kill of our process group.
    return Bun.spawn(spawnArgv(args, setpriv), { stdio: ["ignore", "pipe", "pipe", ...(incoming === null ? [] : [incoming])], detached: setpriv !== null });
  } catch (error) {
    throw cannotStart(describeError(error));
  }
}

/** Boot, stream the console to `onOutput`, and classify the end. */
export async function runVm(options: RunOptions, onOutput: (text: string) => void = () => {}): Promise<RunResult> {
  const runId = options.runId ?? newRunId();
  checkRunInputs({ ...options, runId });
  const stopWaitMs = guestStopWaitMs(options.append);
  // A supervised guest serves the control channel: its port is always there (the save and its restores agree on it).
  const socketDir = options.controlSocket === undefined && stopWaitMs !== null ? mkdtempSync(join(tmpdir(), "burrow-control-")) : null;
  const controlSocket = options.controlSocket ?? (socketDir === null ? undefined : join(socketDir, "control"));
  let mux: ControlMux | null = null;
  try {
    const args = qemuArgs({ ...options, runId, controlSocket });
    const started = performance.now();
    const incoming = options.incomingFile ? openIncoming(options.incomingFile) : null;
    let child;
    try {
      child = spawnQemu(args, options.arch ?? hostArch(), incoming);
    } finally {
      // QEMU has its own copy now (or never started).
      if (incoming !== null) closeSync(incoming);
    }
    const control = controlSocket === undefined || options.rawControl ? null : connectControl(controlSocket, child, options.timeoutSeconds);
    void control?.then((connected) => (mux = connected), () => {});
    const signals = watchStopSignals(child, control === null || stopWaitMs === null ? null : { control, waitMs: stopWaitMs });
    let streamed: Streamed;
    try {
      streamed = await streamRun(child, options, onOutput, control);
    } finally {
      signals.dispose();
    }
    const { output, timedOut, lastStderrLine } = streamed;
    const qemuSignal = (child.signalCode as NodeJS.Signals | null) ?? null;
    const verdict = classify(output, { qemuStatus: child.exitCode, qemuSignal, qemuLastWords: lastStderrLine, timedOut, timeoutSeconds: options.timeoutSeconds, runId, stoppedBy: signals.stoppedBy });
    return { ...verdict, output, wallMs: performance.now() - started, runId };
  } finally {
    (mux as ControlMux | null)?.close("the VM ended");
    if (socketDir !== null) rmSync(socketDir, { recursive: true, force: true });
  }
}

/**
 * The one connection to the guest's control port, made as soon as QEMU runs: QEMU keeps what the
 * host writes until the guest's supervisor opens the port, so the handshake waits as long as the
 * boot does (bounded by the run's timeout), and gives up the moment QEMU ends.
 */
function connectControl(path: string, child: { exited: Promise<number> }, timeoutSeconds: number): Promise<ControlMux> {
  const gone = new AbortController();
  void child.exited.then(() => gone.abort(), () => gone.abort());
  const connecting = ControlMux.connect(path, { timeoutMs: CONTROL_CONNECT_TIMEOUT_MS, signal: gone.signal, helloTimeoutMs: timeoutSeconds * 1000 });
  // Whoever needs the channel awaits it; a run that never does must not see an unhandled rejection.
  connecting.catch(() => {});
  return connecting;
}

type QemuProcess = ReturnType<typeof spawnQemu>;

interface Streamed {
  output: string;
  timedOut: boolean;
  /** Without the "[qemu] " prefix and QEMU's own "qemu-system-x86_64: " (the line names QEMU). */
  lastStderrLine: string | null;
}

const QEMU_PREFIX = /^qemu-system-[\w-]+: /;

/** The console kept for the verdict and RunResult.output: its last 8–16 MiB (a boot's log is far less). */
const CONSOLE_KEEP_CHARS = 8 * 2 ** 20;

/**
 * QEMU's last message from its stderr, on one line: the last line with its program-name prefix
 * (which the verdict replaces with "qemu") and the lines that continue it ("Is another process
 * using the image?" follows a lock error); without a prefixed line, the last line.
 */
export function qemuLastWords(stderr: string): string | null {
  const lines = stderr.split("\n").map((line) => line.trim()).filter((line) => line !== "");
  let start = lines.length - 1;
  while (start > 0 && !QEMU_PREFIX.test(lines[start]!)) start--;
  if (!QEMU_PREFIX.test(lines[start] ?? "")) start = lines.length - 1;
  const words = lines.slice(start).map((line) => line.replace(QEMU_PREFIX, "")).join(" ");
  return words === "" ? null : words;
}

/** Stream QEMU's output until it exits, enforcing the run's timeout, the caller's abort and a halted guest's end. */
async function streamRun(child: QemuProcess, options: RunOptions, onOutput: (text: string) => void, control: Promise<ControlMux> | null): Promise<Streamed> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, options.timeoutSeconds * 1000);
  options.onSpawn?.({ pid: child.pid, kill: (signal = "SIGKILL") => child.kill(signal), exited: child.exited, control });
  const abort = () => child.kill("SIGKILL");
  options.signal?.addEventListener("abort", abort, { once: true });
  if (options.signal?.aborted) abort();
  let halting: ReturnType<typeof setTimeout> | null = null;
  let output = "";
  let stderrText = "";
  let scanned = 0;
  const decoder = new TextDecoder();
  const errDecoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>, stderr: boolean) => {
    for await (const chunk of stream) {
      const text = (stderr ? errDecoder : decoder).decode(chunk, { stream: true });
      if (!stderr) output += text;
      else {
        output += text.split("\n").map((line) => (line ? `[qemu] ${line}` : line)).join("\n");
        // Bounded: only the last lines can hold the reason.
        stderrText = (stderrText + text).slice(-8192);
      }
      // Bounded too: a guest may print without end, and the verdict's lines come last.
      if (output.length > 2 * CONSOLE_KEEP_CHARS) {
        const dropped = output.length - CONSOLE_KEEP_CHARS;
        output = output.slice(dropped);
        scanned = Math.max(0, scanned - dropped);
      }
      onOutput(text);
      // A halted guest leaves QEMU running until the timeout: stop it once the kernel says so.
      // Only complete lines are scanned, each once (a line may arrive split across chunks).
      const lastNewline = output.lastIndexOf("\n");
      if (!halting && lastNewline >= scanned) {
        const lines = output.slice(scanned, lastNewline + 1);
        scanned = lastNewline + 1;
        if (HALTED.test(lines)) {
          child.kill("SIGTERM");
          halting = setTimeout(() => child.kill("SIGKILL"), 5000);
        }
      }
    }
  };
  try {
    await Promise.all([pump(child.stdout, false), pump(child.stderr, true), child.exited]);
  } finally {
    clearTimeout(timer);
    if (halting) clearTimeout(halting);
    options.signal?.removeEventListener("abort", abort);
  }
  return { output, timedOut, lastStderrLine: qemuLastWords(stderrText) };
}

/** The signals `burrow run` turns into a stop of the guest: a terminal's Ctrl-C, a service manager's stop, a hangup. */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** After SIGTERM, how long QEMU has before SIGKILL (QEMU quits at once on SIGTERM; this bounds a wedged one). */
const QEMU_TERM_GRACE_MS = 1000;

/** QEMU makes its sockets before the guest runs; as long as QMP's connect waits for QEMU to make its socket. */
const CONTROL_CONNECT_TIMEOUT_MS = 10_000;

interface StopPlan {
  /** The guest's control channel (its supervisor answers STOP with the orderly stop). */
  control: Promise<ControlMux>;
  /** How long the guest has to power off after the request, before QEMU is killed. */
  waitMs: number;
}

interface SignalWatch {
  /** The first signal that came, or null. */
  readonly stoppedBy: NodeJS.Signals | null;
  /** Remove the handlers, cancel pending kills, drop the stop port connection. */
  dispose(): void;
}

/**
 * While QEMU runs, SIGINT, SIGTERM and SIGHUP stop the guest instead of killing burrow run: in
 * order through the control channel when the guest has one (QEMU killed if it is not gone in
 * time), otherwise by stopping QEMU at once. A second signal kills QEMU at once.
 */
function watchStopSignals(child: { kill(signal?: NodeJS.Signals): void }, port: StopPlan | null): SignalWatch {
  let stoppedBy: NodeJS.Signals | null = null;
  let disposed = false;
  const timers: ReturnType<typeof setTimeout>[] = [];
  let client: ControlClient | null = null;
  const requestStop = async (plan: StopPlan) => {
    // The handshake waits while the guest boots: QEMU holds what we write until the supervisor opens the port.
    client = await ControlClient.over((await plan.control).local());
    if (!disposed) await client.stop();
  };
  const killSoon = () => {
    child.kill("SIGTERM");
    timers.push(setTimeout(() => child.kill("SIGKILL"), QEMU_TERM_GRACE_MS));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stoppedBy !== null) return child.kill("SIGKILL");
    stoppedBy = signal;
    if (port === null) return killSoon();
    process.stderr.write(`burrow run: ${signal}: asking the guest to stop (up to ${Math.ceil(port.waitMs / 1000)} s)\n`);
    timers.push(setTimeout(() => child.kill("SIGKILL"), port.waitMs));
    requestStop(port).catch((error: unknown) => {
      if (disposed) return; // the run ended meanwhile: QEMU is gone
      process.stderr.write(`burrow run: ${describeError(error)}; stopping QEMU\n`);
      killSoon();
    });
  };
  const listeners = STOP_SIGNALS.map((signal) => [signal, () => onSignal(signal)] as const);
  for (const [signal, listener] of listeners) process.on(signal, listener);
  return {
    get stoppedBy() {
      return stoppedBy;
    },
    dispose() {
      disposed = true;
      for (const [signal, listener] of listeners) process.off(signal, listener);
      for (const timer of timers) clearTimeout(timer);
      (client as ControlClient | null)?.close();
    },
  };
}

/**
 * The emulated CPU: every feature QEMU can emulate ("max"). On arm64 with the IMPDEF pointer
 * authentication algorithm: QEMU's default QARMA5 costs hundreds of host instructions per PAC
 * instruction, and Debian's kernel, glibc and busybox sign every function's return address
 * (measured: busybox echo 1.46 s after burrow's exec on QARMA5).
 */
export function tcgCpu(arch: Arch): string {
  return arch === "arm64" ? "max,pauth-impdef=on" : "max";
}
