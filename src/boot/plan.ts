// Boot plans: a mode is an ordered list of named steps. Each step is a small function with a
// declared failure policy; the runner times every step (CLOCK_BOOTTIME) into the boot report.
import type { Config } from "../config/config";
import { describeError } from "../errors";
import { log } from "../log";

export type FailurePolicy = "fatal" | "warn";
export type StepStatus = "ok" | "failed" | "skipped";

export interface Step<Context> {
  name: string;
  policy: FailurePolicy;
  /** When present and false, the step is recorded as skipped. */
  when?: (context: Context) => boolean;
  run: (context: Context) => void | Promise<void>;
}

export interface StepRecord {
  name: string;
  policy: FailurePolicy;
  startMs: number;
  endMs: number;
  status: StepStatus;
  error?: string;
}

export interface BootReport {
  mode: string;
  kernel: string;
  /** CLOCK_BOOTTIME ms when burrow's code started running. */
  startedMs: number;
  steps: StepRecord[];
  /** paravisor: burrow's own footprint once the worker runs (kB from /proc/self/status), before the hand-off. */
  resident?: { rssKiB: number; anonKiB: number; fileKiB: number; shmemKiB: number; threads: number };
  /** paravisor: PID 1 handed to the supervisor (CLOCK_BOOTTIME ms); `freed`: burrow's executable, removed from the initramfs. */
  handoff?: { supervisor: string; worker: number; freed: string | null; atMs: number };
}

/** What every mode's plan gets from PID 1's start. */
export interface InitRuntime {
  config: Config;
  report: BootReport;
  /** CLOCK_BOOTTIME ms. */
  now: () => number;
  /** CLOCK_BOOTTIME ns when burrow started (exported as KERNEL_BOOT_TIME). */
  startNs: bigint;
  kernelRelease: string;
}

/** A fatal step failure: the caller takes the configured fallback. */
export class BootFailure extends Error {
  readonly step: string;
  constructor(step: string, cause: unknown) {
    super(`${step}: ${describeError(cause)}`);
    this.name = "BootFailure";
    this.step = step;
  }
}

export async function runPlan<Context>(
  plan: readonly Step<Context>[],
  context: Context,
  report: BootReport,
  now: () => number,
): Promise<void> {
  for (const step of plan) {
    const startMs = now();
    if (step.when && !step.when(context)) {
      report.steps.push({ name: step.name, policy: step.policy, startMs, endMs: startMs, status: "skipped" });
      log.debug(`step ${step.name}: skipped`);
      continue;
    }
    const record: StepRecord = { name: step.name, policy: step.policy, startMs, endMs: startMs, status: "ok" };
    report.steps.push(record);
    try {
      await step.run(context);
      record.endMs = now();
      log.debug(`step ${step.name}: ok in ${(record.endMs - startMs).toFixed(1)} ms`);
    } catch (error) {
      record.endMs = now();
      record.status = "failed";
      record.error = describeError(error);
      if (step.policy === "fatal") throw new BootFailure(step.name, error);
      log.warn(`${step.name}: ${record.error}`);
    }
  }
}
