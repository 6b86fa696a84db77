// One lane share of the memory step's parallel work, on its own fds: what each thread of OpenHCL's
// parallelize_mem_op does (openhcl/underhill_mem lib.rs), where the UAPI allows separate fds — a
// /dev/mshv_hvcall fd set up for just the codes the jobs use (setup works once per fd), and for
// SNP/TDX a VTL fd of its own (MSHV_CREATE_VTL). Runs in a Bun Worker (lane-worker.ts) or, without
// one, on the main thread; it never logs (the main thread owns kmsg) and closes what it opened.
import { describeError } from "../errors";
import * as sys from "../sys";
import { createVtl, DEV_MSHV, hypercallOn, openDevice, openHvcall, pvalidateOn, rmpadjustOn, tdcallOn, type MemoryOps } from "./devices";
import { HvCall } from "./hv-abi";
import { newOpStats, runJobs, type MemJob, type OpStats } from "./ops";
import type { Isolation } from "./partition";

export interface LaneRequest {
  isolation: Isolation;
  hardwareIsolated: boolean;
  jobs: MemJob[];
}

export interface LaneResult {
  stats: OpStats;
  /** The first failure (the lane stops there), or null. */
  error: string | null;
  ms: number;
}

/** Open what `request`'s jobs need; every fd opened is pushed onto `fds` (closed by the caller). */
function openLaneOps(request: LaneRequest, fds: number[]): MemoryOps {
  const ops = {} as MemoryOps;
  const accepting = request.jobs.some((job) => job.op !== "protect-vtl2");
  const codes: number[] = [];
  if (request.jobs.some((job) => job.op === "protect-vtl2")) codes.push(HvCall.ModifyVtlProtectionMask);
  if (accepting && request.isolation === "vbs") codes.push(HvCall.AcceptGpaPages);
  if (codes.length) {
    const hvcall = openHvcall(codes);
    fds.push(hvcall);
    ops.hypercall = hypercallOn(hvcall);
  }
  if (accepting && request.hardwareIsolated) {
    const mshv = openDevice(DEV_MSHV);
    fds.push(mshv);
    const vtl = createVtl(mshv);
    fds.push(vtl);
    ops.pvalidate = pvalidateOn(vtl);
    ops.rmpadjust = rmpadjustOn(vtl);
    ops.tdcall = tdcallOn(vtl);
  }
  return ops;
}

export function runLane(request: LaneRequest): LaneResult {
  const started = performance.now();
  const stats = newOpStats();
  const fds: number[] = [];
  let error: string | null = null;
  try {
    runJobs(request.isolation, request.hardwareIsolated, openLaneOps(request, fds), request.jobs, stats);
  } catch (caught) {
    error = describeError(caught);
  } finally {
    for (const fd of fds.reverse()) sys.close(fd);
  }
  return { stats, error, ms: Math.round((performance.now() - started) * 10) / 10 };
}
