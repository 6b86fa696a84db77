// The memory step's threads: OpenHCL's parallelize_mem_op (openhcl/underhill_mem lib.rs) runs each share of
// the work on its own OS thread; burrow runs them as Bun Workers, at most one per online vCPU
// (more threads than CPUs only queue on the same CPUs). Lanes are dealt round-robin over the
// threads; all threads run to the end and the first failure, in lane order, is thrown, as
// parallelize_mem_op returns the first error after joining. One thread, or no Worker entrypoint in the binary:
// the lanes run on the main thread, on their own fds all the same.
import { describeError } from "../errors";
import { log } from "../log";
import { runLane, type LaneRequest, type LaneResult } from "./lanes";
import { addStats, newOpStats, type MemJob, type OpStats } from "./ops";

export interface ParallelRun {
  cpus: number;
  /** Threads the lanes ran on (1: the main thread). */
  threads: number;
  lanes: number;
  jobs: number;
  /** Milliseconds each thread spent on its share. */
  threadMs: number[];
}

/** Online CPUs (the kernel's view, sched_getaffinity). */
export const onlineCpus = (): number => Math.max(1, navigator.hardwareConcurrency || 1);

/** Where the lane thread's code is: an extra entrypoint of the compiled binary, or the source file. */
function laneWorkerUrl(): string {
  return Bun.isStandaloneExecutable ? "/$bunfs/root/memory/lane-worker.js" : new URL("./lane-worker.ts", import.meta.url).href;
}

/** Run `lanes` (jobs for `request`'s isolation) on up to `cpus` threads; their counts go into `stats`. */
export async function runParallel(request: Omit<LaneRequest, "jobs">, lanes: readonly MemJob[][], stats: OpStats, cpus = onlineCpus()): Promise<ParallelRun> {
  const shares = dealShares(lanes, cpus);
  const threads = shares.length;
  const results = threads === 1 ? [runLane({ ...request, jobs: shares[0]! })] : await Promise.all(shares.map((jobs) => inThread({ ...request, jobs })));
  for (const result of results) addStats(stats, result.stats);
  const failed = results.find((result) => result.error !== null);
  if (failed) throw new Error(failed.error!);
  return { cpus, threads, lanes: lanes.filter((lane) => lane.length > 0).length, jobs: shares.reduce((sum, share) => sum + share.length, 0), threadMs: results.map((result) => result.ms) };
}

/** The non-empty lanes dealt round-robin over min(lanes, cpus) threads (at least one share). */
export function dealShares<T>(lanes: readonly T[][], cpus: number): T[][] {
  const busy = lanes.filter((lane) => lane.length > 0);
  const shares: T[][] = Array.from({ length: Math.max(1, Math.min(busy.length, cpus)) }, () => []);
  busy.forEach((lane, index) => shares[index % shares.length]!.push(...lane));
  return shares;
}

function inThread(request: LaneRequest): Promise<LaneResult> {
  return new Promise((resolve) => {
    const onMainThread = (why: string) => {
      log.warn(`memory: ${why}; running the lane on the main thread`);
      resolve(runLane(request));
    };
    let worker: Worker;
    try {
      worker = new Worker(laneWorkerUrl());
    } catch (error) {
      onMainThread(`cannot start a lane thread: ${describeError(error)}`);
      return;
    }
    let started = false;
    worker.onmessage = (event: MessageEvent) => {
      const message = event.data as LaneResult | { type: "ready" };
      if ("type" in message) {
        started = true;
        worker.postMessage(request);
        return;
      }
      worker.terminate();
      resolve(message);
    };
    worker.onerror = (event: ErrorEvent) => {
      worker.terminate();
      if (!started) onMainThread(`lane thread unavailable (${event.message})`);
      else resolve({ stats: newOpStats(), error: `lane thread failed: ${event.message}`, ms: 0 });
    };
  });
}
