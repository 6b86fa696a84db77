// The background load of every listed module: a loader thread (a Bun Worker, modules-worker.ts)
// walks them while boot goes on, then removes the directory to give the memory back; without
// the thread, the same walk runs on the main thread, one module per event-loop turn. The walk
// has a time budget, checked between modules: what it had no time for is reported as failed,
// and the directory is then left in place.
import { rmSync } from "node:fs";
import { describeError } from "../../errors";
import { log } from "../../log";
import { MODULES_STEP_BUDGET_MS, notTriedReason } from "../../modules/load";
import type { ModuleFile } from "./module-files";
import { loadModuleFile, ModuleLoadError, type LoadOutcome } from "./module-load";

/** Messages from the loader thread. */
export type LoaderMessage =
  | { type: "loaded"; name: string; path: string; params: string; result: LoadOutcome; ms: number }
  | { type: "failed"; name: string; path: string; errno: number; message: string }
  /** The budget ran out with `names` still to load; nothing follows. */
  | { type: "not-tried"; names: string[]; reason: string }
  | { type: "done"; removed: boolean; removeError?: string };

/** Messages to the loader thread. */
export interface LoaderRequest {
  modules: ModuleFile[];
  root: string;
  /** Milliseconds from the first module after which no more are tried (default MODULES_STEP_BUDGET_MS). */
  budgetMs?: number;
}

/** Load one module for the loader; false (after posting the failure) when it failed. */
function loadOne(module: ModuleFile, post: (message: LoaderMessage) => void): boolean {
  const started = performance.now();
  try {
    const result = loadModuleFile(module);
    post({ type: "loaded", name: module.name, path: module.path, params: module.params, result, ms: performance.now() - started });
    return true;
  } catch (error) {
    const errno = error instanceof ModuleLoadError ? error.errno : 0;
    post({ type: "failed", name: module.name, path: module.path, errno, message: describeError(error) });
    return false;
  }
}

/** The module files are in kernel memory now: free the initramfs copies. */
function removeModulesRoot(root: string, post: (message: LoaderMessage) => void): void {
  try {
    rmSync(root, { recursive: true, force: true });
    post({ type: "done", removed: true });
  } catch (error) {
    post({ type: "done", removed: false, removeError: describeError(error) });
  }
}

/**
 * The loader's walk, one module per `step()`: false once it has finished (all loaded and the
 * directory removed, a module failed, or the budget ran out), having posted how it ended.
 * `now` is a millisecond clock; the budget starts at the first step. `load` is for tests.
 */
export function moduleLoaderSteps(
  request: LoaderRequest,
  post: (message: LoaderMessage) => void,
  now: () => number = () => performance.now(),
  load: (module: ModuleFile, post: (message: LoaderMessage) => void) => boolean = loadOne,
): { step(): boolean } {
  const budgetMs = request.budgetMs ?? MODULES_STEP_BUDGET_MS;
  let deadline: number | null = null;
  let next = 0;
  return {
    step() {
      deadline ??= now() + budgetMs;
      if (next >= request.modules.length) {
        removeModulesRoot(request.root, post);
        return false;
      }
      if (now() >= deadline) {
        post({ type: "not-tried", names: request.modules.slice(next).map((module) => module.name), reason: notTriedReason(budgetMs) });
        return false;
      }
      return load(request.modules[next++]!, post);
    },
  };
}

/** Load `modules` in order, then remove `root`. Runs in the loader thread. */
export function loadAll(request: LoaderRequest, post: (message: LoaderMessage) => void, now?: () => number): void {
  const loader = moduleLoaderSteps(request, post, now);
  while (loader.step());
}

/** Where the loader thread's code is: an extra entrypoint of the compiled binary, or the source file. */
function loaderWorkerUrl(): string {
  return Bun.isStandaloneExecutable ? "/$bunfs/root/modes/paravisor/modules-worker.js" : new URL("./modules-worker.ts", import.meta.url).href;
}

export interface BackgroundLoad {
  /** Resolves when every module is loaded and the directory is gone; rejects on the first failure or when the budget runs out. */
  done: Promise<void>;
}

/** Start loading in the background; progress is logged here, on the main thread (which owns kmsg). */
export function startBackgroundLoad(request: LoaderRequest): BackgroundLoad {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  let finished = false;
  const onMessage = (message: LoaderMessage) => {
    if (finished) return;
    if (message.type === "loaded") {
      log.info(`${message.result === "loaded" ? "loaded" : "already loaded:"} kernel module ${message.name} (${message.path})${message.params ? ` ${message.params}` : ""} in ${message.ms.toFixed(1)} ms`);
    } else if (message.type === "failed") {
      finished = true;
      reject(new Error(message.message));
    } else if (message.type === "not-tried") {
      finished = true;
      reject(new Error(notTriedMessage(message)));
    } else {
      finished = true;
      if (message.removed) log.info(`modules: all ${request.modules.length} loaded; removed ${request.root}`);
      else log.warn(`modules: all ${request.modules.length} loaded; could not remove ${request.root}: ${message.removeError}`);
      resolve();
    }
  };

  let worker: Worker;
  try {
    worker = new Worker(loaderWorkerUrl());
  } catch (error) {
    return fallback(`cannot start the loader thread: ${describeError(error)}`);
  }
  let started = false;
  worker.onmessage = (event: MessageEvent) => {
    const message = event.data as LoaderMessage | { type: "ready" };
    if (message.type === "ready") {
      started = true;
      worker.postMessage(request);
      return;
    }
    onMessage(message);
    if (finished) worker.terminate();
  };
  worker.onerror = (event: ErrorEvent) => {
    if (!started) {
      // The compiled binary lacks the worker entrypoint: keep going on this thread.
      worker.terminate();
      fallback(`loader thread unavailable (${event.message})`);
      return;
    }
    if (!finished) {
      finished = true;
      reject(new Error(`module loader thread failed: ${event.message}`));
    }
  };
  return { done };

  function fallback(why: string): BackgroundLoad {
    log.warn(`modules: ${why}; loading on the main thread, one module per event-loop turn`);
    const loader = moduleLoaderSteps(request, onMessage);
    const step = () => {
      if (loader.step()) setTimeout(step, 0);
    };
    setTimeout(step, 0);
    return { done };
  }
}

/** One line for every module the budget left untried: "failed" with the reason, as other failures read. */
export function notTriedMessage(message: Extract<LoaderMessage, { type: "not-tried" }>): string {
  const names = message.names.join(", ");
  return `${message.names.length === 1 ? "kernel module" : `${message.names.length} kernel modules`} ${names} failed: ${message.reason}`;
}
