// The guest architectures the host tools build for and boot (`burrow image --arch`, `burrow run
// --arch`): where Debian keeps each one's libraries, its compiler, its QEMU and its console.
// Pure data, no FFI: the guest-side system tables are src/sys/constants.ts.

export type Arch = "x86_64" | "arm64";

export const ARCHES: readonly Arch[] = ["x86_64", "arm64"];

export interface ArchInfo {
  /** Debian's name (dpkg --print-architecture). */
  debian: "amd64" | "arm64";
  /** The multiarch directory under /lib and /usr/lib. */
  multiarch: string;
  /** ELF e_machine of its binaries. */
  elfMachine: number;
  /** C compilers that target it, the native one first when this host is one. */
  compilers: readonly string[];
  qemu: string;
  /** Debian package holding `qemu`. */
  qemuPackage: string;
  /** Where the kernel's console goes on the machine `burrow run` gives it. */
  console: string;
}

export const ARCH_INFO: Record<Arch, ArchInfo> = {
  x86_64: {
    debian: "amd64", multiarch: "x86_64-linux-gnu", elfMachine: 62, compilers: ["x86_64-linux-gnu-gcc"],
    qemu: "qemu-system-x86_64", qemuPackage: "qemu-system-x86", console: "ttyS0",
  },
  arm64: {
    debian: "arm64", multiarch: "aarch64-linux-gnu", elfMachine: 183, compilers: ["aarch64-linux-gnu-gcc"],
    qemu: "qemu-system-aarch64", qemuPackage: "qemu-system-arm", console: "ttyAMA0",
  },
};

/** Node's name for an architecture (process.arch) as burrow spells it; null for one burrow has no tables for. */
export function archOfNode(nodeArch: string): Arch | null {
  return nodeArch === "x64" ? "x86_64" : nodeArch === "arm64" ? "arm64" : null;
}

/** The architecture this process runs on (the default guest architecture). */
export function hostArch(): Arch {
  return archOfNode(process.arch) ?? "x86_64";
}

const ALIASES: Record<string, Arch> = { x86_64: "x86_64", amd64: "x86_64", x64: "x86_64", arm64: "arm64", aarch64: "arm64" };

/** `--arch`: x86_64 (amd64, x64) or arm64 (aarch64). */
export function parseArch(text: string): Arch {
  const arch = Object.hasOwn(ALIASES, text) ? ALIASES[text] : undefined;
  if (!arch) throw new Error(`--arch must be x86_64 (amd64) or arm64 (aarch64), got ${JSON.stringify(text)}`);
  return arch;
}

/** The ELF e_machine of a 64-bit little-endian binary, or null when it is not one. */
export function elfMachine(bytes: Uint8Array): number | null {
  if (bytes.length < 20 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c || bytes[3] !== 0x46) return null;
  return bytes[18]! | (bytes[19]! << 8);
}

/** The architecture of an ELF binary, or null for another or none. */
export function archOfElf(bytes: Uint8Array): Arch | null {
  const machine = elfMachine(bytes);
  return ARCHES.find((arch) => ARCH_INFO[arch].elfMachine === machine) ?? null;
}
