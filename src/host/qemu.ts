// `burrow run`: boot a kernel + initramfs in QEMU, stream the guest console, and turn how the
// guest ended into an exit status the host can act on.
import { existsSync, readFileSync } from "node:fs";
import { splitWords } from "../config/cmdline";

export type Machine = "microvm" | "q35";
export type Accel = "tcg" | "kvm";

export interface PortSpec { name: string; file: string | null }

export interface RunOptions {
  kernel: string;
  initrd: string | null;
  disks: string[];
  ports: PortSpec[];
  mem: string;
  smp: number;
  machine: Machine;
  accel: Accel;
  append: string;
  timeoutSeconds: number;
  qemu?: string;
  /** Extra raw QEMU arguments (tests use them for odd devices). */
  extraArgs?: string[];
}

export class RunError extends Error {}

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
    return "";
  }
}

/** Kernel parameters every burrow boot wants unless the user set them; init arguments stay last. */
export function kernelCommandLine(append: string, machine: Machine, tscKhz: number | null = null): string {
  const words = splitWords(append);
  const dashes = words.indexOf("--");
  const kernelWords = dashes < 0 ? words : words.slice(0, dashes);
  const has = (key: string) => kernelWords.some((word) => word === key || word.startsWith(`${key}=`));
  const defaults: string[] = [];
  if (!has("console")) defaults.push("console=ttyS0");
  // A panic must end QEMU (-no-reboot) rather than hang: the host reads the reason.
  if (!has("panic")) defaults.push("panic=-1");
  if (machine === "microvm" && !has("reboot")) defaults.push("reboot=t");
  if (tscKhz && !has("tsc_early_khz")) defaults.push(`tsc_early_khz=${tscKhz}`);
  // The same TSC is then trustworthy: keep the clocksource watchdog from demoting it to jiffies.
  if (tscKhz && !has("tsc")) defaults.push("tsc=reliable");
  return [...defaults, ...kernelWords, ...(dashes < 0 ? [] : words.slice(dashes))].join(" ");
}

export function qemuArgs(options: RunOptions): string[] {
  const pci = options.machine === "q35";
  const bus = (device: string) => `${device}-${pci ? "pci" : "device"}`;
  const args = [
    options.qemu ?? "qemu-system-x86_64",
    "-machine", options.machine === "microvm" ? "microvm,rtc=on" : "q35",
    "-accel", options.accel,
    "-cpu", options.accel === "kvm" ? "host" : "max",
    "-m", options.mem,
    "-smp", String(options.smp),
    "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
    "-chardev", "stdio,id=console,signal=off",
    "-serial", "chardev:console",
    "-kernel", options.kernel,
    "-append", kernelCommandLine(options.append, options.machine, options.accel === "tcg" ? hostTscKhz() : null),
  ];
  if (options.initrd) args.push("-initrd", options.initrd);
  options.disks.forEach((disk, index) => {
    args.push("-drive", `id=disk${index},file=${disk},format=raw,if=none`, "-device", `${bus("virtio-blk")},drive=disk${index}`);
  });
  if (options.ports.length > 0) {
    args.push("-device", `${bus("virtio-serial")},id=vser0`);
    options.ports.forEach((port, index) => {
      args.push("-chardev", port.file ? `file,id=port${index},path=${port.file}` : `null,id=port${index}`);
      args.push("-device", `virtserialport,bus=vser0.0,chardev=port${index},name=${port.name}`);
    });
  }
  args.push(...(options.extraArgs ?? []));
  return args;
}

/** "NAME" or "NAME=FILE". */
export function parsePortSpec(spec: string): PortSpec {
  const equals = spec.indexOf("=");
  const name = equals < 0 ? spec : spec.slice(0, equals);
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new RunError(`bad port name ${JSON.stringify(name)} in --port ${spec} (letters, digits, . _ -)`);
  return { name, file: equals < 0 ? null : spec.slice(equals + 1) };
}

export type Outcome = "poweroff" | "exit-status" | "init-exited" | "panic" | "timeout" | "qemu-failed";

export interface RunResult {
  outcome: Outcome;
  /** What `burrow run` exits with. */
  exitCode: number;
  reason: string;
  output: string;
  wallMs: number;
}

const EXIT_MARKER = /burrow: guest exit status (\d+)/;
const INIT_EXIT = /Attempted to kill init! exitcode=0x([0-9a-f]+)/;
const PANIC = /Kernel panic - not syncing: ([^\r\n]*)/;

/** Classify a finished run from the console text and QEMU's own status. */
export function classify(output: string, qemuStatus: number | null, timedOut: boolean, timeoutSeconds: number): Omit<RunResult, "output" | "wallMs"> {
  const marker = EXIT_MARKER.exec(output);
  const initExit = INIT_EXIT.exec(output);
  const panic = PANIC.exec(output);
  if (timedOut) {
    return { outcome: "timeout", exitCode: 124, reason: `guest did not finish within ${timeoutSeconds} s${panic ? ` (kernel panic: ${panic[1]})` : ""}` };
  }
  if (initExit) {
    // An init that exits hands its status to the kernel (wait status, exit code in bits 8-15).
    const waitStatus = parseInt(initExit[1]!, 16);
    const code = waitStatus & 0x7f ? 128 + (waitStatus & 0x7f) : (waitStatus >> 8) & 0xff;
    return { outcome: "init-exited", exitCode: code, reason: `init exited with status ${code}` };
  }
  if (panic) return { outcome: "panic", exitCode: 125, reason: `kernel panic: ${panic[1]!.trim()}` };
  if (qemuStatus !== 0) return { outcome: "qemu-failed", exitCode: 126, reason: `qemu exited with status ${qemuStatus}` };
  if (marker) {
    const code = Number(marker[1]);
    return { outcome: "exit-status", exitCode: code, reason: code === 0 ? "guest powered off" : `guest reported exit status ${code}` };
  }
  return { outcome: "poweroff", exitCode: 0, reason: "guest powered off" };
}

export function checkRunInputs(options: RunOptions): void {
  const missing: string[] = [];
  if (!existsSync(options.kernel)) missing.push(`kernel ${options.kernel}`);
  if (options.initrd && !existsSync(options.initrd)) missing.push(`initrd ${options.initrd}`);
  for (const disk of options.disks) if (!existsSync(disk)) missing.push(`disk ${disk}`);
  if (missing.length) throw new RunError(`not found: ${missing.join(", ")}`);
  if (!(options.timeoutSeconds > 0)) throw new RunError(`--timeout must be a positive number of seconds`);
  if (!(options.smp >= 1)) throw new RunError(`--smp must be at least 1`);
}

/** Boot, stream the console to `onOutput`, and classify the end. */
export async function runVm(options: RunOptions, onOutput: (text: string) => void = () => {}): Promise<RunResult> {
  checkRunInputs(options);
  const args = qemuArgs(options);
  const started = performance.now();
  let child;
  try {
    child = Bun.spawn(args, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (error) {
    throw new RunError(`cannot start ${args[0]}: ${(error as Error).message} (install qemu-system-x86: \`just deps\`)`);
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, options.timeoutSeconds * 1000);
  let output = "";
  const decoder = new TextDecoder();
  const pump = async (stream: ReadableStream<Uint8Array>, stderr: boolean) => {
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      if (!stderr) output += text;
      else output += text.split("\n").map((line) => (line ? `[qemu] ${line}` : line)).join("\n");
      onOutput(text);
    }
  };
  await Promise.all([pump(child.stdout, false), pump(child.stderr, true), child.exited]);
  clearTimeout(timer);
  const verdict = classify(output, child.exitCode, timedOut, options.timeoutSeconds);
  return { ...verdict, output, wallMs: performance.now() - started };
}
