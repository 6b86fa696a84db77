// The VM's size from the container's limits: its RAM is the memory limit minus what the VMM
// itself holds on the host (the cgroup's limit covers QEMU and the holder too), never below the
// floor; the workload's own memory limit in the guest is that RAM less what the guest's kernel and
// burrow hold; its vCPUs are the CPU quota rounded up, at most the cpuset's CPUs and the host's.
// Pure: the caller passes the host's CPU count.
import { type CpuRequest, DEFAULT_CFS_PERIOD_US, type HostResources, parseCpuList } from "./cgroup-resources";

const MIB = 1 << 20;
/** The guest's RAM when config.json sets no limit: what a small service needs beside burrow's own. */
export const DEFAULT_GUEST_MIB = 256;
/**
 * The least RAM a container VM gets. Measured with the micro kernel under TCG: a busybox container
 * (9p root, bundle share, control port) boots and runs at 38 MiB, the floor `burrow run` refuses
 * below for a supervised guest (src/host/mem-floor.ts), but has 5 MiB free at 40; at 64 the
 * workload's own limit (workloadMemoryBytes) leaves it 25 MiB.
 */
export const GUEST_FLOOR_MIB = 64;
/**
 * What the guest holds besides the workload, fixed part: measured idle at 40, 64 and 176 MiB of
 * RAM, MemTotal − MemFree was 24 MiB (13 MiB of it slab) with a 2 MiB workload, and RAM − MemTotal
 * (the kernel's image and reservations) 10 MiB + 1/64 of the RAM (its page structs); 4 MiB more
 * keeps free memory above the kernel's watermarks when the workload is at its limit.
 */
const GUEST_OWN_MIB = 38;
/**
 * TCG's translation buffer for a VM under a memory limit. QEMU's default maps 1 GiB and keeps
 * what it fills (a cold boot of a busybox container filled 78 MiB of it), so under a limit the
 * buffer must be bounded or a busy guest's translations alone could exceed the limit; a full
 * buffer is flushed and retranslated, a cost in time only.
 */
export const LIMITED_TB_MIB = 32;
/**
 * What the VMM holds on the host beside the guest's RAM, charged to the container's cgroup.
 * Measured (docs/oci/README.md, "Resources"): containers under a 2 GiB limit in their own memory
 * cgroup (v1, this host), cold booted, after a workload that filled the translation buffer and
 * pushed 64 MiB through 9p: the cgroup's memory.usage_in_bytes less the RSS of QEMU's guest-RAM
 * mapping (/proc/QEMU/smaps) was 60.4 MiB with 1 vCPU and 63.5 MiB with 2, peak within 0.6 MiB
 * of it — QEMU's own anonymous memory (the 32 MiB buffer, heap, thread stacks, device state),
 * the holder's heap (~7 MiB) and ~2 MiB of kernel memory; file pages (the executables, the
 * kernel image) are page cache the kernel can reclaim. 80 leaves ~16 MiB of it for growth.
 */
export const VMM_OVERHEAD_MIB = 80;

export interface VmSize {
  memMiB: number;
  cpus: number;
  /** The translation buffer's bound (MiB) under a memory limit; null: QEMU's default. */
  tcgTbSizeMiB: number | null;
}

/** The guest's RAM for a memory limit (bytes, "max" or none), with a note when the floor overrides it. */
export function guestMemoryMiB(limit: number | "max" | null, notes: string[]): number {
  if (limit === null || limit === "max") return DEFAULT_GUEST_MIB;
  const limitMiB = Math.floor(limit / MIB);
  const room = limitMiB - VMM_OVERHEAD_MIB;
  if (room >= GUEST_FLOOR_MIB) return room;
  notes.push(`linux.resources.memory.limit ${limitMiB} MiB leaves ${Math.max(room, 0)} MiB for the guest after the VMM's ${VMM_OVERHEAD_MIB} MiB; the VM gets ${GUEST_FLOOR_MIB} MiB, the floor for a container VM, and the host cgroup's limit stays ${limitMiB} MiB (a guest that uses all its RAM may have QEMU killed by the host's OOM killer)`);
  return GUEST_FLOOR_MIB;
}

/**
 * The workload's memory.max in the guest under a memory limit: the guest's RAM less what its kernel
 * and burrow hold. Its group (no swap, OOM-killed whole) then reaches its limit while the guest still
 * has free memory, so an allocation past it ends in the group's OOM kill at once; at the guest's
 * own exhaustion instead, the kernel reclaims the 9p page cache it runs from for minutes under TCG
 * before it kills anything.
 */
export function workloadMemoryBytes(limit: number): number {
  const guest = guestMemoryMiB(limit, []);
  return (guest - GUEST_OWN_MIB - Math.ceil(guest / 64)) * MIB;
}

/** vCPUs: ceil(quota/period), at most the cpuset's CPUs and the host's, at least 1; 1 without a CPU limit. */
export function guestCpus(cpu: CpuRequest, hostCpus: number, notes: string[]): number {
  const limits: { cpus: number; why: string }[] = [];
  if (typeof cpu.quota === "number") {
    const period = cpu.period ?? DEFAULT_CFS_PERIOD_US;
    limits.push({ cpus: Math.ceil(cpu.quota / period), why: `linux.resources.cpu.quota ${cpu.quota} per period ${period}` });
  }
  const cpuset = cpu.cpus === null ? null : parseCpuList(cpu.cpus);
  if (cpuset !== null) limits.push({ cpus: cpuset.length, why: `linux.resources.cpu.cpus ${cpu.cpus}` });
  if (limits.length === 0) return 1;
  const asked = Math.max(1, Math.min(...limits.map((limit) => limit.cpus)));
  if (asked <= hostCpus) return asked;
  notes.push(`${limits.map((limit) => limit.why).join(" and ")} asks for ${asked} CPUs; the host has ${hostCpus}: the VM gets ${hostCpus} vCPUs`);
  return Math.max(1, hostCpus);
}

export function vmSize(resources: HostResources, hostCpus: number, notes: string[]): VmSize {
  const limited = typeof resources.memoryLimit === "number";
  return { memMiB: guestMemoryMiB(resources.memoryLimit, notes), cpus: guestCpus(resources.cpu, hostCpus, notes), tcgTbSizeMiB: limited ? LIMITED_TB_MIB : null };
}
