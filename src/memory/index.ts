// The paravisor's "memory" step: what underhill_mem's init does, before the worker starts.
//   1. read and validate the partition description (burrow.partition=PATH) — nothing is touched
//      before it is known to be good;
//   2. make sure /dev/mshv exists (load the simulator module synchronously if it is in the image);
//   3. not isolated: VTL2's VsmPartitionConfig (HvCallSetVpRegisters), then VTL2 protections;
//      isolated: accept VTL0 RAM, initial lower-VTL protections, shared pool host-visible;
//   4. map lower-VTL memory from /dev/mshv_vtl_low (+ bitmaps, file-backed under
//      /run/burrow/bitmaps), with kernel registration (MSHV_VTL_ADD_VTL0_MEMORY) where underhill_mem
//      has a registrar (SNP: all of VTL0 now, then zero what was accepted; none/VBS: lazily);
//   5. hand off: /run/burrow/memory.json and inheritable fds (mshv devices, then the bitmaps),
//      which the returned MemoryState carries to the worker step.
//
// Parallelism: the bulk work — VTL2 protections, or accepting VTL0 RAM with its initial
// protections — is planned exactly as underhill_mem init.rs splits it (apply_vtl2_protections:
// 2 GiB protection units dealt round-robin over the VPs; init's accept loop before openvmm
// PR #4250: 2 MiB-aligned accept chunks over max(1, VPs − 1) lanes plus the unaligned edges) and
// the lanes run on Bun Worker threads, one per online vCPU at most, each on its own
// hypercall/VTL fds (parallel.ts, lanes.ts). The plan comes from the description alone, so
// the calls made do not depend on the vCPU count; memory.json records how the threads ran.
import type { Config } from "../config/config";
import { log } from "../log";
import * as sys from "../sys";
import { addVtl0MemoryOn, createVtl, DEV_HVCALL, DEV_MSHV, DEV_VTL_LOW, hypercallOn, inheritable, openDevice, openHvcall, pvalidateOn, rmpadjustOn, tdcallOn, type MemoryOps, type OpenFd } from "./devices";
import { HvCall } from "./hv-abi";
import { addBitmap, buildMapping, zeroThrough, type GuestMapping } from "./mapping";
import {
  acceptorFor, configureVsmPartition, newOpStats, planAcceptJobs, planVtl2Protections, shareSharedPool, type Acceptor, type AcceptReport, type OpStats,
  type ProtectionPlan,
} from "./ops";
import { runParallel, type ParallelRun } from "./parallel";
import { isHardwareIsolated, isIsolated, loadPartition, type Partition } from "./partition";
import { hex, PAGE } from "./ranges";
import { MemoryRegistrar } from "./registrar";
import { buildMemoryReport, MEMORY_REPORT, summaryLine, writeMemoryReport, type MemoryOutcome, type MemoryReport } from "./report";
import { runSelfTest, type SelfTestResult } from "./self-test";
import { checkSimulatorIsolation, ensureMshvDevices } from "./simulator";

export interface MemoryState {
  partition: Partition;
  mappings: GuestMapping[];
  /**
   * The fds the worker inherits, in order: spawned with them after stdin, stdout and stderr, it
   * sees them at fd 3, 4, … (memory.json lists each one's `workerFd`).
   */
  fds: OpenFd[];
  stats: OpStats;
  phasesMs: Record<string, number>;
  report: MemoryReport;
}

/** Run the memory step for `config.partition`. Throws (one clear message) on any failure. */
export async function initMemory(config: Pick<Config, "partition" | "moduleParams">, reportPath = MEMORY_REPORT): Promise<MemoryState> {
  if (!config.partition) throw new Error("no partition description (burrow.partition=PATH)");
  const clock = phaseClock();

  const partition = loadPartition(config.partition);
  clock.end("validate");
  const simulator = ensureMshvDevices(config, partition);
  checkSimulatorIsolation(partition);
  clock.end("devices");

  const stats = newOpStats();
  const fds: OpenFd[] = [];
  const vtl = openVtl(partition, fds);
  let protection: ProtectionPlan | null = null;
  let accept: AcceptReport | null = null;
  const parallel: Record<string, ParallelRun> = {};
  const request = { isolation: partition.isolation, hardwareIsolated: isHardwareIsolated(partition) };
  if (!isIsolated(partition)) {
    protection = planVtl2Protections(partition.vtl2Ram, partition.vpCount);
    protection.vsmPartitionConfig = configureVsm(stats);
    parallel["vtl2-protections"] = await runParallel(request, protection.jobs, stats);
    clock.end("vtl2-protections");
  } else {
    const acceptor = openAcceptor(partition, vtl, fds, stats);
    const planned = planAcceptJobs(partition.ram, partition.accepted, partition.vpCount, isHardwareIsolated(partition));
    accept = planned.report;
    parallel.accept = await runParallel(request, planned.lanes, stats);
    clock.end("accept");
    shareSharedPool(acceptor, partition.isolation, partition.sharedPool);
    clock.end("shared-pool");
  }

  const low = openDevice(DEV_VTL_LOW);
  fds.push({ name: "vtl_low", path: DEV_VTL_LOW, fd: low, note: "mmap of lower-VTL memory: file offset = GPA (| 1<<63 for the shared alias)" });
  const bitmapDir = `${reportPath.slice(0, reportPath.lastIndexOf("/"))}/bitmaps`;
  const mappings = isHardwareIsolated(partition) ? mapHardwareIsolated(partition, low, bitmapDir) : mapLowerVtls(partition, low);
  // Kernel registration as underhill_mem init.rs sets it up: VTL0 and VTL1 lazily when not
  // hardware-isolated (the mapping's physical base added), SNP's private VTL0 mapping eagerly (below),
  // TDX and every shared mapping never (openvmm PR #1080). burrow registers through the VTL fd it hands on.
  const addVtl0Memory = addVtl0MemoryOn(vtl);
  for (const mapping of mappings) {
    const registered = mapping.kind === "vtl0" || mapping.kind === "vtl1" || (mapping.kind === "vtl0-private" && partition.isolation === "snp");
    if (registered) mapping.registrar = new MemoryRegistrar(countingAdd(addVtl0Memory, stats), mapping.ranges, Number(mapping.fileOffsetBase), false);
  }
  // The bitmaps go to the worker too, as files mapped MAP_SHARED: it sees what burrow changes later.
  for (const mapping of mappings) {
    for (const [name, bitmap] of Object.entries(mapping.bitmaps)) {
      if (bitmap.fd === null) continue;
      fds.push({ name: "bitmap", path: bitmap.path!, fd: bitmap.fd, note: `${mapping.kind} ${name} bitmap: bit (gpn % 8) of byte (gpn / 8), 1 = accessible; shared with burrow (MAP_SHARED)` });
    }
  }
  clock.end("map");
  if (partition.isolation === "snp") {
    const privateMapping = mappings.find((m) => m.kind === "vtl0-private")!;
    // "so the kernel can create PUD-sized backing for aligned 1-GB ranges" (underhill_mem init.rs): all of VTL0, before zeroing.
    privateMapping.registrar!.registerAll();
    clock.end("register");
    stats.pagesZeroed += zeroThrough(privateMapping, accept!.validated) / PAGE;
    clock.end("zero");
  }

  let selfTest: SelfTestResult | null = null;
  if (partition.selfTest) {
    selfTest = runSelfTest(partition, mappings);
    clock.end("self-test");
  }

  fds.forEach((entry) => inheritable(entry.fd));
  const outcome: MemoryOutcome = {
    descriptionPath: config.partition, partition, simulator, protection, accept, parallel, mappings, fds, stats, selfTest, phasesMs: clock.phasesMs, totalMs: clock.totalMs(),
  };
  const report = buildMemoryReport(outcome);
  writeMemoryReport(reportPath, report);
  log.info(summaryLine(outcome, reportPath));
  return { partition, mappings, fds, stats, phasesMs: clock.phasesMs, report };
}

function countingAdd(add: (startPfn: number, lastPfn: number, shared: boolean) => void, stats: OpStats) {
  return (startPfn: number, lastPfn: number, shared: boolean): void => {
    stats.ioctls.add_vtl0_memory = (stats.ioctls.add_vtl0_memory ?? 0) + 1;
    add(startPfn, lastPfn, shared);
  };
}

/** Milliseconds (to 0.1) per phase, each phase ending where the next begins. */
function phaseClock() {
  const started = performance.now();
  let mark = started;
  const phasesMs: Record<string, number> = {};
  const tenths = (ms: number) => Math.round(ms * 10) / 10;
  return {
    phasesMs,
    end(name: string): void {
      const now = performance.now();
      phasesMs[name] = tenths(now - mark);
      mark = now;
    },
    totalMs: (): number => tenths(performance.now() - started),
  };
}

/** /dev/mshv and the VTL created on it; both go to the worker. Returns the VTL fd. */
function openVtl(partition: Partition, fds: OpenFd[]): number {
  const mshv = openDevice(DEV_MSHV);
  fds.push({ name: "mshv", path: DEV_MSHV, fd: mshv, note: "CHECK_EXTENSION / CREATE_VTL" });
  const vtl = createVtl(mshv);
  const note = isHardwareIsolated(partition) ? "the acceptor's VTL fd: PVALIDATE/RMPADJUST (SNP), TDCALL (TDX), ADD_VTL0_MEMORY" : "ADD_VTL0_MEMORY (registration)";
  fds.push({ name: "mshv_vtl", path: "anon_inode:mshv_vtl", fd: vtl, note });
  return vtl;
}

/**
 * Not isolated: VsmPartitionConfig before any VTL2 protection (openvmm PR #862), written through a
 * hypercall fd used once and closed; the protections follow on the lanes' own fds, as
 * apply_vtl2_protections opens its own (underhill_mem init.rs). Returns the value written.
 */
function configureVsm(stats: OpStats): bigint {
  const hvcall = openHvcall([HvCall.SetVpRegisters]);
  try {
    return configureVsmPartition({ hypercall: hypercallOn(hvcall) }, false, false, stats);
  } finally {
    sys.close(hvcall);
  }
}

/** Isolated: the acceptor over a hypercall fd that stays open for the worker (setup works once per fd). */
function openAcceptor(partition: Partition, vtl: number, fds: OpenFd[], stats: OpStats): Acceptor {
  const codes = [HvCall.AcceptGpaPages, HvCall.ModifySparseGpaPageHostVisibility, HvCall.ModifyVtlProtectionMask];
  const hvcall = openHvcall(codes);
  fds.push({ name: "hvcall", path: DEV_HVCALL, fd: hvcall, note: `the acceptor's hypercall fd, allowed ${codes.map((code) => hex(code)).join(", ")} (setup is done; it cannot be set up again)` });
  const ops: MemoryOps = { hypercall: hypercallOn(hvcall), pvalidate: pvalidateOn(vtl), rmpadjust: rmpadjustOn(vtl), tdcall: tdcallOn(vtl) };
  return acceptorFor(partition.isolation, ops, stats);
}

/** SNP/TDX: the private view of VTL0 RAM (all valid) and the shared view of the whole layout (only the pool valid). */
function mapHardwareIsolated(partition: Partition, low: number, bitmapDir: string): GuestMapping[] {
  const vtom = partition.vtom!;
  const priv = buildMapping(low, "vtl0-private", partition.ram, 0, false, null);
  addBitmap(priv, "valid", true, bitmapDir);
  if (partition.maxVtl >= 1) for (const name of ["read", "write", "kernelExecute", "userExecute"]) addBitmap(priv, name, true, bitmapDir);
  const shared = buildMapping(low, "shared", partition.completeLayout, partition.isolation === "snp" ? vtom : 0, true, vtom);
  const valid = addBitmap(shared, "valid", false, bitmapDir);
  for (const r of partition.sharedPool) valid.update(r, true);
  return [priv, shared];
}

/** Not hardware-isolated: VTL0 through the alias map when there is one, and VTL1 beside it. */
function mapLowerVtls(partition: Partition, low: number): GuestMapping[] {
  const alias = partition.vtl0AliasMap;
  const mappings = [buildMapping(low, "vtl0", partition.ram, alias ?? 0, false, alias ?? 0)];
  if (partition.maxVtl >= 1) {
    if (alias === null) {
      // Only reachable on aarch64 (validation refuses it on x86_64), as underhill_mem init.rs: warn, no VTL1.
      log.warn("memory: cannot safely support VTL 1 without using the alias map; Guest VSM not supported");
    } else {
      mappings.push(buildMapping(low, "vtl1", partition.ram, 0, false, 0));
    }
  }
  return mappings;
}
