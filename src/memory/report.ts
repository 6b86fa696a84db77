// What the memory step did, for the worker and for people: /run/burrow/memory.json (addresses as
// hex strings, ranges as "[start, end)"), and the one log line that sums it up.
import { mkdirSync, writeFileSync } from "node:fs";
import type { OpenFd } from "./devices";
import { summarize, type GuestMapping } from "./mapping";
import type { AcceptReport, OpStats, ProtectionPlan } from "./ops";
import type { ParallelRun } from "./parallel";
import type { Partition } from "./partition";
import { fmt, hex, len } from "./ranges";
import type { SelfTestResult } from "./self-test";
import type { SimulatorLoad } from "./simulator";

export const MEMORY_REPORT = "/run/burrow/memory.json";
/**
 * The fd number the worker sees the first hand-off fd at: the worker is spawned with them right
 * after stdin, stdout and stderr, in order.
 */
const WORKER_FIRST_FD = 3;

/** Everything the memory step produced. */
export interface MemoryOutcome {
  /** The description's path (burrow.partition=PATH). */
  descriptionPath: string;
  partition: Partition;
  simulator: SimulatorLoad;
  /** Not isolated: the VTL2 protection units and their lanes. */
  protection: ProtectionPlan | null;
  /** Isolated: what was accepted and how the work was split. */
  accept: AcceptReport | null;
  /** How each parallel phase ran: threads, lanes, each thread's time. */
  parallel: Record<string, ParallelRun>;
  mappings: GuestMapping[];
  fds: OpenFd[];
  stats: OpStats;
  selfTest: SelfTestResult | null;
  phasesMs: Record<string, number>;
  totalMs: number;
}

export type MemoryReport = ReturnType<typeof buildMemoryReport>;

export function buildMemoryReport(outcome: MemoryOutcome) {
  const { partition, protection, accept, mappings, fds } = outcome;
  return {
    version: 1,
    partition: outcome.descriptionPath,
    isolation: partition.isolation,
    vpCount: partition.vpCount,
    maxVtl: partition.maxVtl,
    vtom: partition.vtom === null ? null : hex(partition.vtom),
    vtl0AliasMap: partition.vtl0AliasMap === null ? null : hex(partition.vtl0AliasMap),
    simulator: outcome.simulator,
    protections: protection && {
      vsmPartitionConfig: protection.vsmPartitionConfig === null ? null : hex(protection.vsmPartitionConfig),
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
    parallel: outcome.parallel,
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
      registration: m.registrar && { registered: m.registrar.registrations.map(fmt) },
      bitmaps: Object.fromEntries(Object.entries(m.bitmaps).map(([name, bitmap]) => {
        const handed = fds.findIndex((entry) => entry.fd === bitmap.fd);
        return [name, { ...summarize(bitmap, m.ranges), file: bitmap.path, bytes: bitmap.bytes.byteLength, workerFd: handed < 0 ? null : WORKER_FIRST_FD + handed }];
      })),
    })),
    fds: fds.map((entry, index) => ({ ...entry, workerFd: WORKER_FIRST_FD + index })),
    stats: outcome.stats,
    selfTest: outcome.selfTest,
    phasesMs: outcome.phasesMs,
    totalMs: outcome.totalMs,
  };
}

export function writeMemoryReport(path: string, report: MemoryReport): void {
  mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  writeFileSync(path, JSON.stringify(report, null, 2) + "\n");
}

/** The log line: what was done, how many calls it took, where things are, where the report is. */
export function summaryLine(outcome: MemoryOutcome, reportPath: string): string {
  const { partition, protection, accept, mappings, fds, stats } = outcome;
  return (
    `memory: ${partition.isolation} partition ready in ${outcome.totalMs} ms: ` +
    (protection ? `VTL2 protections over ${protection.units.length} unit(s), ${stats.pagesProtected} pages; ` : "") +
    (accept ? `accepted ${stats.pagesAccepted} pages (${accept.alignedChunks} 2M chunks + ${accept.edgeRanges} edges, ${accept.workers} worker lanes); shared ${stats.pagesShared} pages; ` : "") +
    Object.entries(outcome.parallel).map(([phase, run]) => `${phase} on ${run.threads} thread(s) of ${run.cpus} CPU(s) (${run.threadMs.join("/")} ms); `).join("") +
    `hypercalls ${JSON.stringify(stats.calls)} timeouts ${stats.timeouts} ioctls ${JSON.stringify(stats.ioctls)}; ` +
    `mappings ${mappings.map((m) => `${m.kind}@${hex(m.reservation.base)}`).join(" ")}; fds ${fds.map((entry) => `${entry.name}=${entry.fd}`).join(" ")}; ${reportPath}`
  );
}
