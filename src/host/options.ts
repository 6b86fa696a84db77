// `burrow run`'s user-supplied values, checked and quoted before they reach QEMU's command line.
// QEMU parses `-drive`, `-chardev` and `-device` values as `key=value,key=value`: a comma in a
// path would end the value and start a new option (`x.raw,snapshot=on` injects `snapshot=on`),
// so every value built from user input goes through qemuOptionValue.
import { splitAppend } from "../config/cmdline";
import { formatSize, NOT_A_SIZE, parseSize } from "../config/size";

/** QEMU's own escaping inside an option list: a literal comma is written as two. */
export function qemuOptionValue(value: string, what: string): string {
  if (value === "") throw new Error(`${what} is empty`);
  // argv strings cannot carry NUL; refuse it here rather than let the spawn fail obscurely.
  if (value.includes("\0")) throw new Error(`${what} contains a NUL byte`);
  return value.replaceAll(",", ",,");
}

/** The QEMU machines each guest architecture boots on (microvm and q35 exist only in qemu-system-x86_64). */
export const MACHINES_BY_ARCH = { x86_64: ["microvm", "q35"], arm64: ["virt"] } as const;

/** `--machine` against `--arch`: one line naming both when they do not go together. */
export function checkMachine(arch: keyof typeof MACHINES_BY_ARCH, machine: string): void {
  const machines: readonly string[] = MACHINES_BY_ARCH[arch];
  if (!machines.includes(machine)) throw new Error(`--machine ${machine} is not an ${arch} machine (${arch}: ${machines.join(", ")})`);
}

/** The machine `burrow run` picks when none is named: the first of the architecture's. */
export function defaultMachine(arch: keyof typeof MACHINES_BY_ARCH): (typeof MACHINES_BY_ARCH)[typeof arch][number] {
  return MACHINES_BY_ARCH[arch][0];
}

/**
 * What `burrow run` boots when --kernel or --initrd is not given: the micro kernel `just
 * kernel-micro` builds (KERNEL=debian: build/kernel/vmlinuz, build/kernel-arm64/vmlinuz) and the
 * initramfs `KERNEL=debian just image` writes, under dist/arm64/ for arm64.
 */
export const DEFAULT_BOOT_FILES = {
  x86_64: { kernel: "build/kernel-micro/vmlinuz", initrd: "dist/initramfs.img" },
  arm64: { kernel: "build/kernel-micro-arm64/vmlinuz", initrd: "dist/arm64/initramfs.img" },
} as const satisfies Record<keyof typeof MACHINES_BY_ARCH, { kernel: string; initrd: string }>;

/** What `burrow run` and the TypeScript API (src/api/boot.ts) use when a value is not given: one home, so they agree. */
export const RUN_DEFAULTS = { mem: "512M", smp: 1, accel: "tcg", timeoutSeconds: 120, append: "" } as const;

/** Past ~24.8 days setTimeout overflows and fires at once; a week is more than any boot needs. */
export const MAX_TIMEOUT_SECONDS = 7 * 24 * 3600;

/** `--timeout`: decimal seconds, positive, at most a week. */
export function parseTimeout(value: string): number {
  const seconds = /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : NaN;
  checkTimeout(seconds, value);
  return seconds;
}

export function checkTimeout(seconds: number, shown: string | number = seconds): void {
  if (!(Number.isFinite(seconds) && seconds > 0 && seconds <= MAX_TIMEOUT_SECONDS)) {
    throw new Error(`--timeout must be a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS} (7 days), got ${JSON.stringify(String(shown))}`);
  }
}

/** Plain digits, at most four of them (no sign, exponent or suffix), or NaN for the caller's check to refuse. */
function wholeNumber(value: string): number {
  return /^\d{1,4}$/.test(value.trim()) ? Number(value) : NaN;
}

/** QEMU's x86 machines take at most 288 vCPUs; more is a typo, not a plan. */
const MAX_SMP = 288;

/** `--smp`: a plain vCPU count (QEMU's -smp also takes `sockets=…,maxcpus=…`, which we do not pass through). */
export function parseSmp(value: string): number {
  const count = wholeNumber(value);
  checkSmp(count, value);
  return count;
}

export function checkSmp(count: number, shown: string | number = count): void {
  if (!(Number.isInteger(count) && count >= 1 && count <= MAX_SMP)) {
    throw new Error(`--smp must be a whole number of vCPUs from 1 to ${MAX_SMP}, got ${JSON.stringify(String(shown))}`);
  }
}

/** QEMU 7.2 takes a TCG translation buffer of up to 2 GiB on 64-bit hosts (and clamps more). */
const MAX_TB_SIZE_MIB = 2048;

/**
 * `--tcg-tb-size`: TCG's translation buffer in whole MiB. QEMU's default maps 1 GiB per VM; a
 * guest dirties what it translates, so a clone holds up to this much of it, and the whole mapping
 * counts against the host's commit limit.
 */
export function parseTcgTbSize(value: string): number {
  const mib = wholeNumber(value);
  checkTcgTbSize(mib, value);
  return mib;
}

export function checkTcgTbSize(mib: number, shown: string | number = mib): void {
  if (!(Number.isInteger(mib) && mib >= 1 && mib <= MAX_TB_SIZE_MIB)) {
    throw new Error(`--tcg-tb-size must be a whole number of MiB from 1 to ${MAX_TB_SIZE_MIB}, got ${JSON.stringify(String(shown))}`);
  }
}

/** A translation buffer for this accelerator: KVM has none, so a size asked for under it is a mistake, said once. */
export function checkTcgTbSizeUnder(accel: string, mib: number): void {
  if (accel !== "tcg") throw new Error(`--tcg-tb-size sizes TCG's translation buffer, but this VM runs under ${accel}`);
  checkTcgTbSize(mib);
}

const MIN_MEM = 2 ** 20;
const MAX_MEM = 4 * 2 ** 40;
/** QEMU rounds -m up to a multiple of 8 KiB (7.2: 1025K gives 1032K of RAM). */
const QEMU_RAM_ALIGN = 8 * 2 ** 10;

/**
 * `--mem`: a size in the one grammar (src/config/size.ts) where bare digits are MiB, as QEMU's -m
 * reads them, from 1 MiB to 4 TiB. Returned as QEMU's -m takes it, in the grammar's own spelling
 * (`1536M`); anything else (QEMU's -m also takes `size=…,maxmem=…`) is refused.
 */
export function parseMem(value: string): string {
  return formatSize(memBytes(value));
}

/**
 * `--mem` in bytes (checked as parseMem checks it): what a RAM file's size must be. Rounded up to
 * QEMU's 8 KiB as QEMU rounds it, so the RAM file matches the guest's RAM.
 */
export function memBytes(value: string): number {
  const size = parseSize(value, "M");
  if (!("bytes" in size && size.bytes >= MIN_MEM && size.bytes <= MAX_MEM)) {
    const why = "problem" in size && size.problem !== NOT_A_SIZE ? `: ${size.problem}` : "";
    throw new Error(`--mem must be a size like 512M or 2G (K/M/G/T; no suffix: MiB) from 1M to 4T, got ${JSON.stringify(value)}${why}`);
  }
  return Math.ceil(size.bytes / QEMU_RAM_ALIGN) * QEMU_RAM_ALIGN;
}

/** A host port forwarded to a guest port through QEMU's user network (slirp). */
export interface PortForward { protocol: "tcp" | "udp"; hostPort: number; guestPort: number }

function checkPortNumber(text: string, spec: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) throw new Error(`--forward needs [tcp:|udp:]HOSTPORT:GUESTPORT with ports 1 to 65535, got ${JSON.stringify(spec)}`);
  return port;
}

/**
 * `--forward [tcp:|udp:]HOSTPORT:GUESTPORT`. The host side listens on 127.0.0.1 only: a sandbox
 * port is for this host, and exposing it wider is a decision for a firewall, not a default.
 */
export function parseForward(spec: string): PortForward {
  const parts = spec.split(":");
  const protocol = parts.length === 3 ? parts.shift()! : "tcp";
  if (parts.length !== 2 || (protocol !== "tcp" && protocol !== "udp")) {
    throw new Error(`--forward needs [tcp:|udp:]HOSTPORT:GUESTPORT, got ${JSON.stringify(spec)}`);
  }
  return { protocol, hostPort: checkPortNumber(parts[0]!, spec), guestPort: checkPortNumber(parts[1]!, spec) };
}

/** QEMU's -netdev user hostfwd rule for one forward (numbers only: nothing to escape). */
export function hostForwardRule(forward: PortForward): string {
  return `hostfwd=${forward.protocol}:127.0.0.1:${forward.hostPort}-:${forward.guestPort}`;
}

/**
 * `burrow run … -- ARGS`: the agent's arguments, put after the command line's own `--` words (a
 * line without any gets one). The kernel splits its line at spaces outside double quotes and has
 * no escapes, so an argument with a space is quoted and one with a double quote cannot be said.
 */
export function withInitArgs(append: string, args: readonly string[]): string {
  if (args.length === 0) return append;
  const quoted = args.map((arg) => {
    if (arg.includes('"') || arg.includes("\0")) throw new Error(`argument ${JSON.stringify(arg)} after --: the kernel command line cannot carry a double quote or NUL (it has no escapes)`);
    return arg === "" || /\s/.test(arg) ? `"${arg}"` : arg;
  });
  const { kernelWords, initWords } = splitAppend(append);
  return [...kernelWords, ...(initWords.length > 0 ? initWords : ["--"]), ...quoted].join(" ");
}
