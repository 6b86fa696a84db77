// boot(): `burrow run` as a function. The same options, defaults and checks as the CLI (they live
// in src/host/options.ts, run-plan.ts's bootRun and runVm), the VM handed out once its
// supervisor answers on the control channel.
import { hostArch, parseArch } from "../arch";
import { describeError } from "../errors";
import { parseForward, parseMem, RUN_DEFAULTS, withInitArgs } from "../host/options";
import { type Accel, type Machine, type RunOptions, runVm } from "../host/qemu";
import { parsePortSpec, parseSerialDisk } from "../host/qemu-argv";
import { guestStopWaitMs } from "../host/run-checks";
import { bootRun } from "../host/run-plan";
import { BootError } from "./errors";
import { launch } from "./launch";
import type { Vm } from "./vm";

export interface BootOptions {
  /** x86_64 (amd64) or arm64 (aarch64); default this host's. */
  arch?: string;
  /** Default the micro kernel of the architecture (DEFAULT_BOOT_FILES). */
  kernel?: string;
  /** Default dist/initramfs.img (arm64: dist/arm64/initramfs.img); null: none. */
  initrd?: string | null;
  /** burrow's ext4 boot disk instead of the initrd; root= becomes burrow.root=, default the first disk. */
  bootDisk?: string;
  disks?: string[];
  /** "NAME=PATH", as --serial-disk. */
  serialDisks?: string[];
  /** "NAME" or "NAME=FILE", as --port. */
  ports?: string[];
  /** Default 512M. */
  mem?: string;
  /** Default 1. */
  smp?: number;
  /** Default microvm (x86_64) or virt (arm64). */
  machine?: Machine;
  /** Default tcg. */
  accel?: Accel;
  tcgTbSizeMiB?: number;
  /** The kernel command line (burrow.* keys; `--` then the agent's own words). */
  append?: string;
  /** The agent's arguments, after the command line's `--` words (as `burrow run … -- ARGS`). */
  args?: string[];
  /** A virtio-net NIC on QEMU's user network. */
  net?: boolean;
  /** "[tcp:|udp:]HOSTPORT:GUESTPORT" on 127.0.0.1 (implies net), as --forward. */
  forwards?: string[];
  /** The VM's whole life, not only its boot: QEMU is killed after it. Default 120, at most 7 days. */
  timeoutSeconds?: number;
  /** The serial console as it comes. */
  onOutput?: (text: string) => void;
  /** Aborting kills QEMU: boot() then rejects, or the running VM ends. */
  signal?: AbortSignal;
}

/** The run `burrow run` would make of these options; throws one line on a bad value. */
export function bootRunOptions(options: BootOptions): RunOptions {
  return bootRun({
    arch: options.arch === undefined ? hostArch() : parseArch(options.arch),
    ...(options.kernel === undefined ? {} : { kernel: options.kernel }),
    ...(options.initrd === undefined ? {} : { initrd: options.initrd }),
    ...(options.bootDisk === undefined ? {} : { bootDisk: options.bootDisk }),
    disks: options.disks ?? [],
    serialDisks: (options.serialDisks ?? []).map(parseSerialDisk),
    ports: (options.ports ?? []).map(parsePortSpec),
    mem: parseMem(options.mem ?? RUN_DEFAULTS.mem),
    smp: options.smp ?? RUN_DEFAULTS.smp,
    ...(options.machine === undefined ? {} : { machine: options.machine }),
    accel: options.accel ?? RUN_DEFAULTS.accel,
    ...(options.tcgTbSizeMiB === undefined ? {} : { tcgTbSizeMiB: options.tcgTbSizeMiB }),
    append: withInitArgs(options.append ?? RUN_DEFAULTS.append, options.args ?? []),
    net: options.net === true,
    forwards: (options.forwards ?? []).map(parseForward),
    timeoutSeconds: options.timeoutSeconds ?? RUN_DEFAULTS.timeoutSeconds,
  });
}

/**
 * Boots a VM; resolves once its supervisor answered on the control channel. Rejects with one
 * BootError when an option is bad (before QEMU starts) or the VM ends or fails first (QEMU gone).
 */
export async function boot(options: BootOptions = {}): Promise<Vm> {
  let run: RunOptions;
  let stopWaitMs: number | null;
  try {
    run = bootRunOptions(options);
    stopWaitMs = guestStopWaitMs(run.append);
  } catch (error) {
    throw new BootError(`boot: ${describeError(error)}`);
  }
  if (stopWaitMs === null) throw new BootError("boot: the API drives the guest's supervisor, which burrow.supervise=0 (or paravisor mode) leaves out");
  return launch({
    what: "boot",
    stopWaitMs,
    awaitResume: false,
    signal: options.signal,
    start: (hooks) => runVm({
      ...run,
      signal: hooks.signal,
      onSpawn: (qemu) => {
        hooks.spawned(qemu.pid);
        hooks.control(qemu.control);
      },
    }, options.onOutput),
  });
}
