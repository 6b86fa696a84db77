// Paravisor (VTL2) boot: underhill_init's sequence as a plan of named, timed steps. burrow stays
// PID 1: it spawns the worker (openvmm_hcl), reaps orphans, and hands the worker's exit code on.
// The steps call out to setup-scripts.ts, worker.ts, system.ts, module-files.ts, module-load.ts, module-loader.ts and src/memory.
import type { Subprocess } from "bun";
import { existsSync } from "node:fs";
import { archOfNode } from "../../arch";
import { failBootOn, finishRun, isEnding, writeReport } from "../../boot/ending";
import { mountedAt, mountTable } from "../../boot/mounts";
import { readOptionalText } from "../../boot/optional-text";
import { EXEC_PATH_VAR, SUPERVISOR_PATH } from "../../boot/paths";
import { execSupervisor, openSupervisor, supervisorArgv } from "../../boot/supervisor";
import * as sys from "../../sys";
import { BootFailure, runPlan, type BootReport, type InitRuntime, type Step } from "../../boot/plan";
import { describeError } from "../../errors";
import { configureLogging, kmsgActive, log } from "../../log";
import type { MemoryState } from "../../memory";
import { readConfidentiality, type Confidentiality } from "./confidential";
import { listModules, MODULES_ROOT, type ModuleFile } from "./module-files";
import { loadWithDependencies } from "./module-load";
import { startBackgroundLoad } from "./module-loader";
import { parseParavisorArgs, type ParavisorOptions } from "./options";
import { Reaper } from "./reaper";
import { describeStatus, runSetupScript } from "./setup-scripts";
import {
  applyWrite, dumpStatFiles, NVME_VFIO_WRITE, PARAVISOR_MOUNTS, systemWrites, TTYPRINTK_HINT, useHostEntropy, wireStdio,
} from "./system";
import { spawnWorker } from "./worker";

interface ParavisorContext {
  runtime: InitRuntime;
  options: ParavisorOptions;
  env: Record<string, string | undefined>;
  confidentiality: Confidentiality;
  reaper: Reaper;
  /** KEY=VALUE pairs for the worker, in order (setup scripts, then KERNEL_BOOT_TIME). */
  workerEnv: [string, string][];
  /** Module files already loaded on the main thread (ttyprintk and its dependencies). */
  loadedEarly: Set<string>;
  /** Settles with the loader's error, or null, once the background load ends. */
  modulesSettled: Promise<Error | null> | null;
  /** What the memory step set up (null without a partition); its fds go to the worker. */
  memory: MemoryState | null;
  worker: Subprocess | null;
}

const flagIs = (value: string | undefined, ...accepted: string[]) => value !== undefined && accepted.includes(value);

const plan: Step<ParavisorContext>[] = [
  {
    name: "reaper",
    policy: "fatal",
    run(context) {
      context.reaper.start();
    },
  },
  {
    name: "mounts",
    policy: "fatal",
    run(context) {
      mountTable(PARAVISOR_MOUNTS);
      const { setupScripts, workerArgs } = context.options;
      log.info(`command line args: setup scripts ${JSON.stringify(setupScripts)}, worker args ${JSON.stringify(workerArgs)}`);
    },
  },
  {
    // stderr goes to ttyprintk; on Debian's kernel that is a module, loaded here before the rest.
    name: "ttyprintk",
    policy: "fatal",
    when: () => !existsSync("/dev/ttyprintk"),
    run(context) {
      const loaded = loadWithDependencies("ttyprintk", listModules(context.runtime.config));
      if (loaded === null) {
        log.warn(`ttyprintk is neither built in nor under ${MODULES_ROOT}: ${TTYPRINTK_HINT}`);
        return;
      }
      for (const module of loaded) context.loadedEarly.add(module.path);
    },
  },
  {
    name: "stdio",
    policy: "fatal",
    run() {
      wireStdio();
      // fd 2 is ttyprintk now, which feeds the kernel log: records go to kmsg only, once.
      if (kmsgActive()) configureLogging({ console: false });
    },
  },
  {
    name: "stat-dump",
    policy: "warn",
    when: (context) => context.runtime.config.log === "trace",
    run() {
      dumpStatFiles();
    },
  },
  {
    name: "system-writes",
    policy: "fatal",
    run(context) {
      log.info("setting system resource limits and parameters");
      for (const write of systemWrites(context.confidentiality.filtering)) applyWrite(write);
    },
  },
  {
    name: "entropy",
    policy: "fatal",
    run(context) {
      useHostEntropy({ source: context.runtime.config.entropyPath, confidential: context.confidentiality.confidential });
    },
  },
  {
    name: "setup-scripts",
    policy: "fatal",
    async run(context) {
      for (const script of context.options.setupScripts) context.workerEnv.push(...(await runSetupScript(script, context)));
      context.workerEnv.push(["KERNEL_BOOT_TIME", context.runtime.startNs.toString()]);
    },
  },
  {
    name: "nvme-vfio",
    policy: "fatal",
    when: (context) => flagIs(context.env.OPENHCL_NVME_VFIO, "true", "1"),
    run() {
      if (applyWrite(NVME_VFIO_WRITE) === "written") log.info("registered vfio-pci as driver for nvme");
    },
  },
  {
    name: "modules",
    policy: "fatal",
    run(context) {
      const modules = listModules(context.runtime.config).filter((module: ModuleFile) => !context.loadedEarly.has(module.path));
      log.info(`loading ${modules.length} kernel modules from ${MODULES_ROOT} in the background`);
      const load = startBackgroundLoad({ modules, root: MODULES_ROOT });
      context.modulesSettled = load.done.then(() => null, (error: Error) => error);
      if (!waitsForModules(context)) {
        void context.modulesSettled.then((error) => {
          if (error) void failBootOn(new BootFailure("modules", error));
        });
      }
    },
  },
  {
    name: "modules-wait",
    policy: "fatal",
    when: waitsForModules,
    async run(context) {
      const error = await context.modulesSettled;
      if (error) throw error;
    },
  },
  {
    // Lower-VTL memory setup (underhill_mem's init), only for a partition named on the command
    // line; imported on demand so boots without one never load it.
    name: "memory",
    policy: "fatal",
    when: (context) => context.runtime.config.partition !== null,
    async run(context) {
      // hv-abi.ts encodes x86_64 hypercalls, registers and SNP/TDX calls: refuse plainly elsewhere.
      const arch = archOfNode(process.arch);
      if (arch !== "x86_64") throw new Error(`lower-VTL memory is x86_64 only (this is ${arch ?? process.arch}); burrow.partition=${context.runtime.config.partition} cannot be set up`);
      const { initMemory } = await import("../../memory");
      context.memory = await initMemory(context.runtime.config);
    },
  },
  {
    name: "worker",
    policy: "fatal",
    run(context) {
      // The mshv fds the memory step opened go to the worker as fds 3, 4, … (listed in memory.json).
      context.worker = spawnWorker(context, context.memory?.fds.map((entry) => entry.fd) ?? []);
    },
  },
];

function waitsForModules(context: ParavisorContext): boolean {
  return context.env.OPENHCL_WAIT_FOR_MODULES === "1";
}

/** VmRSS and its parts, and the thread count, from /proc/self/status; zeros when unreadable (no /proc: a figure fails no boot). */
export function residentFootprint(status = readOptionalText("/proc/self/status") ?? ""): NonNullable<BootReport["resident"]> {
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s*(\\d+)`, "m").exec(status)?.[1] ?? 0);
  return { rssKiB: kib("VmRSS"), anonKiB: kib("RssAnon"), fileKiB: kib("RssFile"), shmemKiB: kib("RssShmem"), threads: kib("Threads") };
}

function createContext(runtime: InitRuntime, env: Record<string, string | undefined> = process.env): ParavisorContext {
  return {
    runtime,
    options: parseParavisorArgs(runtime.config.initArgs),
    env,
    confidentiality: readConfidentiality(env),
    reaper: new Reaper(),
    workerEnv: [],
    loadedEarly: new Set(),
    modulesSettled: null,
    memory: null,
    worker: null,
  };
}

export async function bootParavisor(runtime: InitRuntime): Promise<void> {
  const context = createContext(runtime);
  const { confidential, debug, filtering } = context.confidentiality;
  log.info(`paravisor: confidential ${confidential}, confidential debug ${debug}, filtering ${filtering}`);
  try {
    await runPlan(plan, context, runtime.report, runtime.now);
  } catch (error) {
    return failBootOn(error);
  }
  const worker = context.worker!;
  // The hand-off ends every thread of burrow's: the background module load must be done first.
  const moduleError = context.modulesSettled ? await context.modulesSettled : null;
  if (moduleError) return failBootOn(new BootFailure("modules", moduleError));
  if (isEnding()) return new Promise<never>(() => {});
  // What the boot's garbage holds is given back, and burrow's footprint recorded, before the hand-off.
  Bun.gc(true);
  runtime.report.resident = residentFootprint();
  if (worker.exitCode === null && worker.signalCode === null) handOff(context, worker);
  // Still here: the worker already ended, or the supervisor could not start; burrow stays PID 1.
  writeReport(runtime.report);
  await worker.exited.catch(() => {});
  context.reaper.untrack(worker.pid);
  if (isEnding()) return new Promise<never>(() => {});
  if (worker.exitCode === 0) log.info("worker exited successfully");
  else log.error(`worker terminated unsuccessfully: ${describeStatus(worker)}`);
  return finishRun(worker.exitCode ?? 255);
}

/**
 * PID 1 becomes the supervisor for the worker's whole life: burrow's executable leaves the
 * initramfs first, so the exec frees its pages (~110 MB of ramfs) instead of leaving them pinned.
 * Returns only when the supervisor could not be started.
 */
function handOff(context: ParavisorContext, worker: Subprocess): void {
  const { config, report } = context.runtime;
  let fd: number;
  try {
    fd = openSupervisor();
  } catch (error) {
    log.warn(`cannot hand PID 1 to the supervisor (${describeError(error)}); burrow stays resident`);
    return;
  }
  const freed = releaseOwnExecutable();
  report.handoff = { supervisor: SUPERVISOR_PATH, worker: worker.pid, freed, atMs: context.runtime.now() };
  writeReport(report);
  log.info(`handing PID 1 to ${SUPERVISOR_PATH} for worker pid ${worker.pid}${freed ? ` (removed ${freed} from the initramfs)` : ""}`);
  context.reaper.stop();
  try {
    execSupervisor(fd, supervisorArgv(config, { kind: "adopt", pid: worker.pid }), [EXEC_PATH_VAR]);
  } catch (error) {
    configureLogging({ kmsg: true });
    context.reaper.start();
    log.warn(`cannot hand PID 1 to the supervisor (${describeError(error)}); burrow stays resident`);
  }
}

/** burrow's own executable, when it lives in the initramfs (ramfs pages are never evicted): unlinked, so the exec frees them. */
function releaseOwnExecutable(): string | null {
  const root = mountedAt("/")?.fstype;
  if (root !== "rootfs" && root !== "ramfs" && root !== "tmpfs") return null; // a disk's page cache is evictable
  try {
    sys.unlink(process.execPath);
    return process.execPath;
  } catch (error) {
    log.debug(`cannot remove ${process.execPath}: ${describeError(error)}`);
    return null;
  }
}
