// The worker (openvmm_hcl): the environment it inherits and its launch. burrow stays its parent:
// the reaper tracks it and bootParavisor hands its exit code on.
import type { Subprocess } from "bun";
import type { Config } from "../../config/config";
import { isRuntimeVariable } from "../../config/environment";
import { describeError } from "../../errors";
import { log } from "../../log";
import * as sys from "../../sys";
import { paravisorWorkerArgv, type ParavisorOptions } from "./options";
import type { Reaper } from "./reaper";

const NOFILE_LIMIT = 0x100000n;

/** What the launch needs from the paravisor context. */
export interface WorkerLaunch {
  runtime: { config: Pick<Config, "worker"> };
  options: Pick<ParavisorOptions, "workerArgs">;
  /** The environment burrow was given. */
  env: Record<string, string | undefined>;
  /** KEY=VALUE pairs on top of it (setup scripts, then KERNEL_BOOT_TIME). */
  workerEnv: [string, string][];
  reaper: Pick<Reaper, "track">;
}

/** The environment we were given, minus what steers the runtime or the loader, or burrow itself. */
export function workerBaseEnv(env: Record<string, string | undefined> = process.env): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined || isRuntimeVariable(key) || key.startsWith("BURROW_")) continue;
    result[key] = value;
  }
  return result;
}

/** Start the worker; `handoffFds` (the memory step's) become its fds 3, 4, … in order. */
export function spawnWorker(context: WorkerLaunch, handoffFds: readonly number[] = []): Subprocess {
  // Large VMs need many fds; the worker inherits this.
  sys.prlimit(sys.Rlimit.NOFILE, { soft: NOFILE_LIMIT, hard: NOFILE_LIMIT });
  const env = workerBaseEnv(context.env);
  for (const [key, value] of context.workerEnv) env[key] = value;
  const argv = paravisorWorkerArgv(context.runtime.config.worker, context.options.workerArgs);
  log.info(`running ${argv.map((arg) => (/^[\w./=:-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ")}`);
  let child: Subprocess;
  try {
    // stdin/stdout are /dev/null and stderr is ttyprintk, as for init itself.
    // Bun.spawn closes every other fd in the child, CLOEXEC or not: hand-off fds go through stdio.
    child = Bun.spawn(argv, { env, stdio: ["inherit", "inherit", "inherit", ...handoffFds] });
  } catch (error) {
    throw new Error(`worker ${context.runtime.config.worker} failed to start: ${describeError(error)}`);
  }
  context.reaper.track(child.pid);
  log.info(`worker started: pid ${child.pid}`);
  return child;
}
