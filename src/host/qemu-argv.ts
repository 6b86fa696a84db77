// QEMU's command line for a run: the machine, the devices built from the user's values (disks,
// ports, the NIC, the control port) and the kernel's command line burrow adds its defaults to.
import { readFileSync, statSync } from "node:fs";
import { splitAppend, wordKey } from "../config/cmdline";
import { CONTROL_PORT } from "../control/wire";
import { ARCH_INFO, hostArch, type Arch } from "../arch";
import { checkMachine, checkSmp, checkTcgTbSizeUnder, hostForwardRule, parseMem, qemuOptionValue } from "./options";
import type { Machine, PortSpec, RunOptions, SerialDisk, Share, TapNic } from "./run-options";
import { parseMac } from "../config/nic";
import { SHARE_TAG } from "../oci/guest-plan";

export type { PortSpec, SerialDisk } from "./run-options";

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

/** The fd QEMU reads a saved state from: the first after stdin, stdout and stderr. */
const INCOMING_FD = 3;

/** Where QEMU takes a saved state from (-incoming, or QMP migrate-incoming when deferred). */
export function incomingUri(): string {
  return `fd:${INCOMING_FD}`;
}

const RAM_BACKEND_ID = "ram0";

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
  args.push(...shareArgs(options.shares ?? [], bus));
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
  if (options.net && "tap" in options.net) args.push(...tapNicArgs(options.net.tap, bus));
  else if (options.net) {
    const rules = options.net.forwards.map((forward) => `,${hostForwardRule(forward)}`).join("");
    args.push("-netdev", `user,id=net0${rules}`, "-device", `${bus("virtio-net")},netdev=net0`);
  }
  if (options.qmpSocket) args.push("-qmp", `unix:${qemuOptionValue(options.qmpSocket, "QMP socket path")},server=on,wait=off`);
  if (options.incomingFile) args.push("-incoming", options.incomingDeferred ? "defer" : incomingUri());
  if (options.sandbox) args.push("-sandbox", SANDBOX);
  args.push(...(options.extraArgs ?? []));
  return args;
}

/**
 * QEMU's seccomp filter. Checked with QEMU 7.2 serving 9p shares (the container boot test runs
 * under it): the local 9p backend creates files as QEMU's own user and chowns them after
 * (passthrough), never setfsuid, so elevateprivileges=deny holds; its worker threads are
 * clone(CLONE_THREAD), which spawn=deny allows. A snapshot save migrates through exec:cat
 * (src/host/snapshot.ts), a spawn the filter refuses: not for a run that saves one.
 */
export const SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/**
 * `-fsdev local` + a virtio-9p device per share. security_model=passthrough: the guest's owners
 * and modes are the files' own on the host (a container's root and volumes need its uids), and
 * QEMU's local backend walks every path component with O_NOFOLLOW under the share's root, so a
 * symlink the guest plants is stored as a symlink, never followed out of the share.
 */
export function shareArgs(shares: readonly Share[], bus: (device: string) => string): string[] {
  const args: string[] = [];
  const seen = new Set<string>();
  shares.forEach((share, index) => {
    if (!SHARE_TAG.test(share.tag)) throw new Error(`bad share tag ${JSON.stringify(share.tag)} (1 to 31 of A-Z a-z 0-9 . _ -)`);
    if (seen.has(share.tag)) throw new Error(`two shares are tagged ${share.tag}`);
    seen.add(share.tag);
    const path = qemuOptionValue(share.path, `share ${share.tag} path`);
    args.push("-fsdev", `local,id=fs${index},path=${path},security_model=passthrough${share.readOnly ? ",readonly=on" : ""}`);
    args.push("-device", `${bus("virtio-9p")},fsdev=fs${index},mount_tag=${share.tag}`);
  });
  return args;
}

/** A Linux interface name (IFNAMSIZ holds 15 and the NUL); this set never needs QEMU escaping. */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * A virtio-net NIC on an existing tap device, with the MAC given (a container's: its veth's).
 * script=no, downscript=no: QEMU runs no helper (the seccomp filter forbids one anyway); the tap's
 * maker sets it up and removes it. QEMU asks the tap for vnet headers when it has them, so the
 * guest's checksum and segmentation offloads pass through.
 */
export function tapNicArgs(tap: TapNic, bus: (device: string) => string): string[] {
  if (!IFNAME.test(tap.ifname)) throw new Error(`bad tap device name ${JSON.stringify(tap.ifname)} (1 to 15 of A-Z a-z 0-9 . _ -)`);
  const mac = parseMac(tap.mac);
  if (typeof mac !== "string") throw new Error(`bad MAC address ${JSON.stringify(tap.mac)} for the NIC: ${mac.problem}`);
  return ["-netdev", `tap,id=net0,ifname=${tap.ifname},script=no,downscript=no`, "-device", `${bus("virtio-net")},netdev=net0,mac=${mac}`];
}

/** `-accel`, with TCG's translation buffer when one is sized. */
function accelArg(options: RunOptions): string {
  if (options.tcgTbSizeMiB === undefined) return options.accel;
  checkTcgTbSizeUnder(options.accel, options.tcgTbSizeMiB);
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

/**
 * The emulated CPU: every feature QEMU can emulate ("max"). On arm64 with the IMPDEF pointer
 * authentication algorithm: QEMU's default QARMA5 costs hundreds of host instructions per PAC
 * instruction, and Debian's kernel, glibc and busybox sign every function's return address
 * (measured: busybox echo 1.46 s after burrow's exec on QARMA5).
 */
export function tcgCpu(arch: Arch): string {
  return arch === "arm64" ? "max,pauth-impdef=on" : "max";
}
