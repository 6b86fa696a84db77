// The paravisor's "memory" step: what underhill_mem's init does, before the worker starts.
//   1. read and validate the partition description (burrow.partition=PATH) — nothing is touched
//      before it is known to be good;
//   2. make sure /dev/mshv exists (load the simulator module synchronously if it is in the image);
//   3. not isolated: VTL2 protections; isolated: accept VTL0 RAM, initial lower-VTL protections,
//      shared pool host-visible;
//   4. map lower-VTL memory from /dev/mshv_vtl_low (+ bitmaps; SNP: zero what was accepted);
//   5. hand off: /run/burrow/memory.json and inheritable fds for the worker.
//
// Parallelism: the work is split exactly as the seed splits it (2 GiB protection units dealt
// round-robin over the VPs; 2 MiB-aligned accept chunks over max(1, VPs − 1) workers plus the
// unaligned edges) and the plan is recorded, but the pieces run as sequential batches on this
// thread. Why: every call is a synchronous ioctl; a Bun Worker per VP needs an extra
// `bun build --compile` entrypoint (the build has none for this, and the module loader already
// falls back without one); the simulator serialises all state changes behind one mutex, and TCG
// guests have one or two vCPUs, so threads would buy nothing measurable here. On real hardware
// the kernel does PVALIDATE/TDCALL work per CPU, and a per-lane Worker executor can replace the
// sequential loop without changing the plan.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import type { Config } from "../config/config";
import { log } from "../log";
import * as sys from "../sys";
import { createVtl, DEV_HVCALL, DEV_MSHV, DEV_VTL_LOW, hypercallOn, inheritable, openDevice, openHvcall, pvalidateOn, rmpadjustOn, tdcallOn, type MemoryOps, type OpenFd } from "./devices";
import { HvCall } from "./hv";
import { addBitmap, buildMapping, summarize, vaOf, type GuestMapping } from "./mapping";
import {
  acceptorFor, acceptVtl0, applyVtl2Protections, newOpStats, planVtl2Protections, shareSharedPool, type AcceptReport, type OpStats,
  type ProtectionPlan,
} from "./ops";
import { isHardwareIsolated, isIsolated, loadPartition, type Partition } from "./partition";
import { fmt, hex, len, type Range } from "./ranges";
import { ensureMshvDevices, ISOLATION_CODE, type SimulatorLoad } from "./simulator";

export const MEMORY_REPORT = "/run/burrow/memory.json";
/** The first fd number the worker sees the hand-off fds at (after stdin, stdout, stderr). */
export const WORKER_FIRST_FD = 3;

export interface MemoryState {
  partition: Partition;
  mappings: GuestMapping[];
  fds: OpenFd[];
  stats: OpStats;
  phasesMs: Record<string, number>;
  report: Record<string, unknown>;
}

let current: MemoryState | null = null;

/**
 * The fds the worker must inherit, in order. Spawn it with
 *   Bun.spawn(argv, { stdio: ["inherit", "inherit", "inherit", ...memoryHandoffFds()], env })
 * and it sees them at fd 3, 4, … (memory.json lists each one's `workerFd`). Bun.spawn closes every
 * other fd in the child, FD_CLOEXEC or not, so the stdio entries are the only way through.
 */
export function memoryHandoffFds(): number[] {
  return current ? current.fds.map((entry) => entry.fd) : [];
}

export function memoryState(): MemoryState | null {
  return current;
}

const MARKER_BYTES = 64;

export function selfTestMarker(isolation: string, gpa: number): Buffer {
  return Buffer.from(`burrow-memory-selftest isolation=${isolation} gpa=${hex(gpa)} `.padEnd(MARKER_BYTES, "."), "ascii");
}

/** Run the memory step for `config.partition`. Throws (one clear message) on any failure. */
export async function initMemory(config: Pick<Config, "partition" | "moduleParams">, reportPath = MEMORY_REPORT): Promise<MemoryState> {
  if (!config.partition) throw new Error("no partition description (burrow.partition=PATH)");
  const started = performance.now();
  const phasesMs: Record<string, number> = {};
  let mark = started;
  const phase = (name: string) => {
    const now = performance.now();
    phasesMs[name] = Math.round((now - mark) * 10) / 10;
    mark = now;
  };

  const partition = loadPartition(config.partition);
  phase("validate");
  const sim = ensureMshvDevices(config, partition);
  checkSimulatorIsolation(partition);
  phase("devices");

  const stats = newOpStats();
  const fds: OpenFd[] = [];
  const hw = isHardwareIsolated(partition);
  const keep = (name: string, path: string, fd: number, note: string) => fds.push({ name, path, fd, note });
  const mshv = openDevice(DEV_MSHV);
  keep("mshv", DEV_MSHV, mshv, "CHECK_EXTENSION / CREATE_VTL");
  const vtl = createVtl(mshv);
  keep("mshv_vtl", "anon_inode:mshv_vtl", vtl, hw ? "the acceptor's VTL fd: PVALIDATE/RMPADJUST (SNP), TDCALL (TDX), ADD_VTL0_MEMORY" : "ADD_VTL0_MEMORY (registration)");

  let protection: ProtectionPlan | null = null;
  let accept: AcceptReport | null = null;
  if (!isIsolated(partition)) {
    protection = planVtl2Protections(partition.vtl2Ram, partition.vpCount);
    const hvcall = openHvcall([HvCall.ModifyVtlProtectionMask]);
    try {
      applyVtl2Protections({ hypercall: hypercallOn(hvcall) } as MemoryOps, protection, stats);
    } finally {
      sys.close(hvcall);
    }
    phase("vtl2-protections");
  } else {
    const codes = [HvCall.AcceptGpaPages, HvCall.ModifySparseGpaPageHostVisibility, HvCall.ModifyVtlProtectionMask];
    const hvcall = openHvcall(codes);
    keep("hvcall", DEV_HVCALL, hvcall, `the acceptor's hypercall fd, allowed ${codes.map((code) => hex(code)).join(", ")} (setup is done; it cannot be set up again)`);
    const ops: MemoryOps = { hypercall: hypercallOn(hvcall), pvalidate: pvalidateOn(vtl), rmpadjust: rmpadjustOn(vtl), tdcall: tdcallOn(vtl) };
    const acceptor = acceptorFor(partition.isolation, ops, stats);
    accept = acceptVtl0(acceptor, partition.ram, partition.accepted, partition.vpCount, hw);
    phase("accept");
    shareSharedPool(acceptor, partition.isolation, partition.sharedPool);
    phase("shared-pool");
  }

  const low = openDevice(DEV_VTL_LOW);
  keep("vtl_low", DEV_VTL_LOW, low, "mmap of lower-VTL memory: file offset = GPA (| 1<<63 for the shared alias)");
  const mappings: GuestMapping[] = [];
  if (hw) {
    const vtom = partition.vtom!;
    const priv = buildMapping(low, "vtl0-private", partition.ram, 0, false, null);
    addBitmap(priv, "valid", true);
    if (partition.maxVtl >= 1) for (const name of ["read", "write", "kernelExecute", "userExecute"]) addBitmap(priv, name, true);
    mappings.push(priv);
    const shared = buildMapping(low, "shared", partition.completeLayout, partition.isolation === "snp" ? vtom : 0, true, vtom);
    const valid = addBitmap(shared, "valid", false);
    for (const r of partition.sharedPool) valid.update(r, true);
    mappings.push(shared);
    phase("map");
    if (partition.isolation === "snp") {
      zeroThrough(priv, accept!.validated, stats);
      phase("zero");
    }
  } else {
    const alias = partition.vtl0AliasMap;
    mappings.push(buildMapping(low, "vtl0", partition.ram, alias ?? 0, false, alias ?? 0));
    if (partition.maxVtl >= 1) {
      if (alias === null) {
        // Only reachable on aarch64 (validation refuses it on x86_64), as the seed: warn, no VTL1.
        log.warn("memory: cannot safely support VTL 1 without using the alias map; Guest VSM not supported");
      } else {
        mappings.push(buildMapping(low, "vtl1", partition.ram, 0, false, 0));
      }
    }
    phase("map");
  }

  let selfTest: Record<string, unknown> | null = null;
  if (partition.selfTest) {
    selfTest = runSelfTest(partition, mappings);
    phase("self-test");
  }

  fds.forEach((entry) => inheritable(entry.fd));
  const totalMs = Math.round((performance.now() - started) * 10) / 10;
  const report = {
    version: 1,
    partition: config.partition,
    isolation: partition.isolation,
    vpCount: partition.vpCount,
    maxVtl: partition.maxVtl,
    vtom: partition.vtom === null ? null : hex(partition.vtom),
    vtl0AliasMap: partition.vtl0AliasMap === null ? null : hex(partition.vtl0AliasMap),
    simulator: sim,
    protections: protection && {
      units: protection.units.length,
      maxUnitBytes: Math.max(0, ...protection.units.map(len)),
      lanes: protection.lanes.map((lane) => lane.map(fmt)),
    },
    accept: accept && {
      validated: accept.validated.map(fmt),
      preAccepted: accept.preAccepted.map(fmt),
      alignedChunks: accept.alignedChunks,
      edgeRanges: accept.edgeRanges,
      workers: accept.workers,
    },
    sharedPool: partition.sharedPool.map(fmt),
    mappings: mappings.map((m) => ({
      kind: m.kind,
      va: hex(m.reservation.base),
      reserved: hex(m.reservation.size),
      alignment: hex(m.reservation.align),
      fileOffsetBase: hex(m.fileOffsetBase),
      shared: m.shared,
      flags: "PROT_READ|PROT_WRITE, MAP_SHARED|MAP_FIXED",
      dmaBase: m.dmaBase === null ? null : hex(m.dmaBase),
      ranges: m.ranges.map(fmt),
      bitmaps: Object.fromEntries(Object.entries(m.bitmaps).map(([name, bitmap]) => [name, summarize(bitmap, m.ranges)])),
    })),
    fds: fds.map((entry, index) => ({ ...entry, workerFd: WORKER_FIRST_FD + index })),
    stats,
    selfTest,
    phasesMs,
    totalMs,
  };
  mkdirSync(reportPath.slice(0, reportPath.lastIndexOf("/")), { recursive: true });
  writeFileSync(reportPath, JSON.stringify(report, null, 2) + "\n");

  log.info(
    `memory: ${partition.isolation} partition ready in ${totalMs} ms: ` +
      (protection ? `VTL2 protections over ${protection.units.length} unit(s), ${stats.pagesProtected} pages; ` : "") +
      (accept ? `accepted ${stats.pagesAccepted} pages (${accept.alignedChunks} 2M chunks + ${accept.edgeRanges} edges, ${accept.workers} worker lanes); shared ${stats.pagesShared} pages; ` : "") +
      `hypercalls ${JSON.stringify(stats.calls)} timeouts ${stats.timeouts} ioctls ${JSON.stringify(stats.ioctls)}; ` +
      `mappings ${mappings.map((m) => `${m.kind}@${hex(m.reservation.base)}`).join(" ")}; fds ${fds.map((entry) => `${entry.name}=${entry.fd}`).join(" ")}; ${reportPath}`,
  );
  current = { partition, mappings, fds, stats, phasesMs, report };
  return current;
}

/** The simulator's isolation knob must agree with the description (it stands in for CPUID 0x4000000C). */
function checkSimulatorIsolation(partition: Partition): void {
  let text: string;
  try {
    text = readFileSync("/sys/module/mshv_sim/parameters/isolation", "utf8").trim();
  } catch {
    return; // not the simulator
  }
  if (Number(text) !== ISOLATION_CODE[partition.isolation]) {
    throw new Error(`the partition says isolation ${partition.isolation} (${ISOLATION_CODE[partition.isolation]}) but the mshv simulator runs with isolation=${text}`);
  }
}

/** SNP: zero newly accepted private memory through the mapping, by read()ing /dev/zero into it. */
function zeroThrough(mapping: GuestMapping, ranges: readonly Range[], stats: OpStats): void {
  const zero = sys.open("/dev/zero", sys.OpenFlags.RDONLY | sys.OpenFlags.CLOEXEC);
  try {
    for (const r of ranges) {
      for (let gpa = r.start; gpa < r.end; ) {
        const n = Math.min(r.end - gpa, 1 << 30);
        let done: number;
        try {
          done = sys.readToAddress(zero, vaOf(mapping, gpa), n);
        } catch (error) {
          throw new Error(`zeroing ${fmt(r)} through the ${mapping.kind} mapping failed near ${hex(gpa)}: ${(error as Error).message}`);
        }
        if (done <= 0) throw new Error(`zeroing ${fmt(r)}: short read at ${hex(gpa)}`);
        gpa += done;
        stats.pagesZeroed += done / 4096;
      }
    }
  } finally {
    sys.close(zero);
  }
}

/** Write a marker at the self-test GPA through its mapping and read it back (SIGBUS-safe copies). */
function runSelfTest(partition: Partition, mappings: GuestMapping[]): Record<string, unknown> {
  const { gpa, mapping: which } = partition.selfTest!;
  const kind = which === "shared" ? "shared" : which === "vtl1" ? "vtl1" : isHardwareIsolated(partition) ? "vtl0-private" : "vtl0";
  const mapping = mappings.find((m) => m.kind === kind);
  if (!mapping) throw new Error(`self-test: no ${kind} mapping`);
  const marker = selfTestMarker(partition.isolation, gpa);
  const va = vaOf(mapping, gpa);
  const dir = "/run/burrow";
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/selftest.in`, marker);
  const input = sys.open(`${dir}/selftest.in`, sys.OpenFlags.RDONLY | sys.OpenFlags.CLOEXEC);
  try {
    if (sys.readToAddress(input, va, MARKER_BYTES) !== MARKER_BYTES) throw new Error("short copy");
  } catch (error) {
    throw new Error(`self-test: writing the marker at GPA ${hex(gpa)} through the ${kind} mapping failed: ${(error as Error).message}`);
  } finally {
    sys.close(input);
  }
  const output = sys.open(`${dir}/selftest.out`, sys.OpenFlags.WRONLY | sys.OpenFlags.CREAT | sys.OpenFlags.TRUNC | sys.OpenFlags.CLOEXEC);
  try {
    sys.writeFromAddress(output, va, MARKER_BYTES);
  } finally {
    sys.close(output);
  }
  const back = readFileSync(`${dir}/selftest.out`);
  if (!back.equals(marker)) throw new Error(`self-test: read back ${JSON.stringify(back.toString("latin1"))} at GPA ${hex(gpa)}, wrote ${JSON.stringify(marker.toString())}`);
  log.info(`memory: self-test marker written at GPA ${hex(gpa)} through the ${kind} mapping (va ${hex(va)}) and read back`);
  return { gpa: hex(gpa), mapping: kind, va: hex(va), marker: marker.toString("ascii") };
}
