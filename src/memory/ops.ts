// underhill_mem's boot-time operations on lower-VTL memory, over the MemoryOps calls: VTL2
// protections (not isolated), accept + initial lower-VTL protections (isolated), shared-pool
// visibility. The bulk work is planned here as jobs split as underhill_mem init.rs splits it
// (apply_vtl2_protections: 2 GiB protection units round-robin over the VPs; init's accept loop
// before openvmm PR #4250: 2 MiB-aligned accept chunks over max(1, VPs − 1) lanes plus the
// unaligned edges); parallel.ts runs the lanes on vCPU threads, each on its own fds (lanes.ts).
// The plan depends on the description only, never on how many threads run it, so the calls made
// are the same whatever the vCPU count.
import { describeError } from "../errors";
import type { MemoryOps } from "./devices";
import { acceptPagesCall, gpnListCall, gpnRange, setVpRegister, type CallStats } from "./hv";
import { HvCall, HvRegister, HostVisibility, InputVtl, MapFlags, vsmPartitionConfig, sevRmpAdjust, TDX_VTL0_ALL, TdxLeaf, TdxStatus, tdxCode, tdxPageRcx } from "./hv-abi";
import type { Isolation } from "./partition";
import {
  alignedSubranges, fmt, hex, isAligned, len, overlappingRanges, PAGE, pageCount, planAccept, spread, subtractRanges, TWO_GB,
  TWO_MB, type Range,
} from "./ranges";

export interface OpStats extends CallStats {
  ioctls: Record<string, number>;
  tdcallLeaves: Record<string, number>;
  pagesAccepted: number;
  pagesProtected: number;
  pagesShared: number;
  pagesZeroed: number;
}

export const newOpStats = (): OpStats => ({ calls: {}, timeouts: 0, ioctls: {}, tdcallLeaves: {}, pagesAccepted: 0, pagesProtected: 0, pagesShared: 0, pagesZeroed: 0 });
const bump = (record: Record<string, number>, key: string, by = 1) => (record[key] = (record[key] ?? 0) + by);

/** Add a lane's counts to the step's. */
export function addStats(into: OpStats, from: OpStats): void {
  for (const key of ["calls", "ioctls", "tdcallLeaves"] as const) for (const [name, count] of Object.entries(from[key])) bump(into[key], name, count);
  into.timeouts += from.timeouts;
  into.pagesAccepted += from.pagesAccepted;
  into.pagesProtected += from.pagesProtected;
  into.pagesShared += from.pagesShared;
  into.pagesZeroed += from.pagesZeroed;
}

/**
 * One piece of the parallel work (what OpenHCL's parallelize_mem_op, openhcl/underhill_mem lib.rs, hands each thread a share of):
 * VTL2 protections for a unit, accepting a range (plus its initial VTL0 protections where accept
 * does not grant them), or VTL0 access for boot-loader-accepted RAM on hardware isolation.
 */
export type MemJob = { op: "protect-vtl2" | "accept" | "grant-vtl0"; range: Range };

/** 2 GiB: "large enough for kernel large pages, small enough for parallelism". */
const VTL2_PROTECTION_UNIT = TWO_GB;

export interface ProtectionPlan {
  units: Range[];
  /** units dealt round-robin over the VPs (one lane per VP). */
  lanes: Range[][];
  /** The lanes as jobs (parallel.ts runs them). */
  jobs: MemJob[][];
  /** The VsmPartitionConfig value written before the protections (null until written). */
  vsmPartitionConfig: bigint | null;
}

export function planVtl2Protections(vtl2Ram: readonly Range[], vpCount: number): ProtectionPlan {
  const units = vtl2Ram.flatMap((r) => alignedSubranges(r, VTL2_PROTECTION_UNIT));
  const lanes = spread(units, vpCount);
  return { units, lanes, jobs: lanes.map((lane) => lane.map((range) => ({ op: "protect-vtl2" as const, range }))), vsmPartitionConfig: null };
}

/**
 * HvRegisterVsmPartitionConfig for VTL2, written before any ModifyVtlProtectionMask: current OpenHCL
 * kernels no longer write it in mshv_vtl_init, and without it the hypervisor answers 0x000C with
 * AccessDenied at element 0 (OHCL-Linux-Kernel issue #45; openvmm PR #862,
 * openhcl/virt_mshv_vtl/src/lib.rs set_vtl2_vsm_partition_config → hcl set_partition_vtl2_register).
 * Returns the value written.
 */
export function configureVsmPartition(ops: Pick<MemoryOps, "hypercall">, isolated: boolean, hardwareIsolated: boolean, stats: OpStats): bigint {
  const value = vsmPartitionConfig(isolated, hardwareIsolated);
  try {
    setVpRegister(ops.hypercall, InputVtl.VTL2, HvRegister.VsmPartitionConfig, value, "SetVpRegisters(VsmPartitionConfig)", stats);
  } catch (error) {
    throw new Error(`failed to write VTL2 VsmPartitionConfig 0x${value.toString(16)}: ${describeError(error)}`);
  }
  return value;
}

/**
 * Not isolated: lower VTLs get no access to one unit of VTL2 RAM (ModifyVtlProtectionMask NONE,
 * current VTL). VsmPartitionConfig must be written first (configureVsmPartition).
 */
function protectVtl2Unit(ops: Pick<MemoryOps, "hypercall">, unit: Range, stats: OpStats): void {
  try {
    gpnListCall(ops.hypercall, HvCall.ModifyVtlProtectionMask, MapFlags.NONE, InputVtl.CURRENT, gpnRange(unit.start, unit.end), "ModifyVtlProtectionMask", stats);
  } catch (error) {
    throw new Error(`failed to apply VTL2 protections for ${fmt(unit)}: ${describeError(error)}`);
  }
  stats.pagesProtected += pageCount(unit);
}

/** Run `jobs` in order over `ops` (one lane's share, or all of them in a unit test). */
export function runJobs(isolation: Isolation, hardwareIsolated: boolean, ops: MemoryOps, jobs: readonly MemJob[], stats: OpStats): void {
  const acceptor = jobs.some((job) => job.op !== "protect-vtl2") ? acceptorFor(isolation, ops, stats) : null;
  for (const job of jobs) {
    if (job.op === "protect-vtl2") protectVtl2Unit(ops, job.range, stats);
    else if (job.op === "grant-vtl0") acceptor!.applyInitialLowerVtlProtections(job.range);
    else {
      acceptor!.accept(job.range);
      if (hardwareIsolated && !acceptor!.acceptGrantsVtl0) acceptor!.applyInitialLowerVtlProtections(job.range);
    }
  }
}

// ---- per-isolation acceptor ---------------------------------------------------------------

export interface Acceptor {
  accept(r: Range): void;
  /** Hardware isolation: give VTL0 full access to pages accepted VTL2-only. */
  applyInitialLowerVtlProtections(r: Range): void;
  /** Does accept() already leave VTL0 with full access? (TDX: ACCEPT is followed by ATTR.WR.) */
  acceptGrantsVtl0: boolean;
  makeShared(r: Range): void;
}

export function acceptorFor(isolation: Isolation, ops: MemoryOps, stats: OpStats): Acceptor {
  const makeShared = (r: Range) => {
    gpnListCall(ops.hypercall, HvCall.ModifySparseGpaPageHostVisibility, HostVisibility.SHARED, 0, gpnRange(r.start, r.end), "ModifySparseGpaPageHostVisibility(SHARED)", stats);
    stats.pagesShared += pageCount(r);
  };
  switch (isolation) {
    case "vbs":
      return {
        accept(r) {
          acceptPagesCall(ops.hypercall, r.start, r.end, stats);
          stats.pagesAccepted += pageCount(r);
        },
        applyInitialLowerVtlProtections() {
          // VBS: set by the accept call itself.
        },
        acceptGrantsVtl0: true,
        makeShared,
      };
    case "snp":
      return {
        accept(r) {
          bump(stats.ioctls, "pvalidate");
          const code = ops.pvalidate(r.start / PAGE, pageCount(r), true);
          if (code !== 0) throw new Error(`PVALIDATE of ${fmt(r)} failed: ISA code ${code}`);
          stats.pagesAccepted += pageCount(r);
        },
        applyInitialLowerVtlProtections(r) {
          bump(stats.ioctls, "rmpadjust");
          const value = sevRmpAdjust(0, MapFlags.ALL);
          const code = ops.rmpadjust(r.start / PAGE, pageCount(r), value);
          if (code !== 0) throw new Error(`RMPADJUST(VTL0 ${hex(value)}) of ${fmt(r)} failed: ISA code ${code}`);
        },
        acceptGrantsVtl0: false,
        makeShared,
      };
    case "tdx":
      return {
        accept(r) {
          tdxWalk(ops, r, stats, true);
          stats.pagesAccepted += pageCount(r);
        },
        applyInitialLowerVtlProtections(r) {
          tdxWalk(ops, r, stats, false);
        },
        acceptGrantsVtl0: true,
        makeShared,
      };
    default:
      throw new Error(`no acceptor for isolation ${isolation}`);
  }
}

function tdcall(ops: MemoryOps, stats: OpStats, leaf: bigint, rcx: bigint, rdx = 0n, r8 = 0n) {
  bump(stats.tdcallLeaves, String(leaf));
  bump(stats.ioctls, "tdcall");
  return ops.tdcall({ rax: leaf, rcx, rdx, r8, r9: 0n });
}

/**
 * for_each_tdcall_page: aligned sub-ranges of at most 2 MiB; a whole aligned 2 MiB page is tried
 * at level 1 first and redone as 4 KiB pages on PAGE_SIZE_MISMATCH. `accept`: ACCEPT then ATTR.WR
 * (VTL0 full access) at the same level; otherwise only ATTR.WR.
 */
export function tdxWalk(ops: MemoryOps, r: Range, stats: OpStats, accept: boolean): void {
  const one = (gpa: number, level: 0 | 1): boolean => {
    const rcx = tdxPageRcx(gpa, level);
    if (accept) {
      const result = tdcall(ops, stats, TdxLeaf.MEM_PAGE_ACCEPT, rcx);
      const code = tdxCode(result.rax);
      if (code === TdxStatus.PAGE_SIZE_MISMATCH && level === 1) return false;
      if (code === TdxStatus.PAGE_ALREADY_ACCEPTED) throw new Error(`TDG.MEM.PAGE.ACCEPT of ${hex(gpa)} (level ${level}): page already accepted`);
      if (code !== TdxStatus.SUCCESS) throw new Error(`TDG.MEM.PAGE.ACCEPT of ${hex(gpa)} (level ${level}) failed: ${hex(result.rax)}`);
    }
    const result = tdcall(ops, stats, TdxLeaf.MEM_PAGE_ATTR_WR, rcx, TDX_VTL0_ALL.rdx, TDX_VTL0_ALL.r8);
    const code = tdxCode(result.rax);
    if (code === TdxStatus.PAGE_SIZE_MISMATCH && level === 1 && !accept) return false;
    if (code !== TdxStatus.SUCCESS) throw new Error(`TDG.MEM.PAGE.ATTR.WR of ${hex(gpa)} (level ${level}) failed: ${hex(result.rax)}`);
    return true;
  };
  for (const sub of alignedSubranges(r, TWO_MB)) {
    if (len(sub) === TWO_MB && isAligned(sub.start, TWO_MB) && one(sub.start, 1)) continue;
    for (let gpa = sub.start; gpa < sub.end; gpa += PAGE) one(gpa, 0);
  }
}

export interface AcceptReport {
  /** RAM the boot loader had not accepted (what we accepted), underhill_mem init.rs's validated_ranges. */
  validated: Range[];
  /** RAM the boot loader had accepted (hardware isolation: given VTL0 access). */
  preAccepted: Range[];
  alignedChunks: number;
  edgeRanges: number;
  workers: number;
}

/**
 * Isolated boot, planned: accepting the RAM the boot loader left — 2 MiB-aligned chunks and the
 * unaligned edges, dealt over max(1, VPs − 1) lanes — and, on hardware isolation, VTL0 access for
 * what it accepted, split the same way (underhill_mem init.rs runs both through parallelize_mem_op).
 */
export function planAcceptJobs(ram: readonly Range[], accepted: readonly Range[], vpCount: number, hardwareIsolated: boolean): { report: AcceptReport; lanes: MemJob[][] } {
  const preAccepted = overlappingRanges(ram, accepted);
  const validated = subtractRanges(ram, accepted);
  const plan = planAccept(validated, vpCount);
  const workers = Math.max(1, vpCount - 1);
  const grants = hardwareIsolated ? planAccept(preAccepted, vpCount) : { aligned: [], edges: [] };
  const jobs: MemJob[] = [
    ...[...plan.aligned, ...plan.edges].map((range) => ({ op: "accept" as const, range })),
    ...[...grants.aligned, ...grants.edges].map((range) => ({ op: "grant-vtl0" as const, range })),
  ];
  return { report: { validated, preAccepted, alignedChunks: plan.aligned.length, edgeRanges: plan.edges.length, workers }, lanes: spread(jobs, workers) };
}

/** Make the shared pool host-visible (VBS accepts the pages first). */
export function shareSharedPool(acceptor: Acceptor, isolation: Isolation, pool: readonly Range[]): void {
  for (const r of pool) {
    try {
      if (isolation === "vbs") acceptor.accept(r);
      acceptor.makeShared(r);
    } catch (error) {
      throw new Error(`unable to make shared pool ${fmt(r)} host-visible: ${describeError(error)}`);
    }
  }
}
