// Kernel modules the paravisor way: every module file under /lib/modules, in file-name order
// (the image lays them out as 000/, 001/, … so that order is dependency order), loaded by a
// background thread while boot goes on, then the directory is removed to give the memory back.
// ttyprintk is the exception: stderr needs it, so it (and what it depends on) loads first.
// The background load has a time budget, checked between modules; what it had no time for is
// reported as failed, and the directory is then left in place.
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { normalizeModuleName } from "../../config/cmdline";
import { moduleParamString, type Config } from "../../config/config";
import { describeError } from "../../errors";
import { log } from "../../log";
import { MODULE_FILE_PATTERN, moduleNameFromPath } from "../../modules";
import { readElfSections, sectionData } from "../../modules/elf-sections";
import { finitModuleFile, moduleInitFlags, MODULES_STEP_BUDGET_MS, notTriedReason } from "../../modules/load";
import * as sys from "../../sys";

export const MODULES_ROOT = "/lib/modules";

export interface ModuleFile {
  name: string;
  path: string;
  params: string;
  /** finit_module flags (MODULE_INIT_COMPRESSED_FILE for .ko.xz/.gz/.zst). */
  flags: number;
}

/** Every file under `root`, depth first, each directory's entries sorted by name (WalkDir sort_by_file_name). */
export function walkSorted(root: string): string[] {
  const files: string[] = [];
  const visit = (dir: string) => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return; // no such directory: no modules in it
    }
    for (const entry of entries.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      const path = join(dir, entry);
      const info = statSync(path, { throwIfNoEntry: false });
      if (info?.isDirectory()) visit(path);
      else if (info?.isFile()) files.push(path);
    }
  };
  visit(root);
  return files;
}

/** The module files to load, in load order, with their command-line parameters. */
export function listModules(config: Pick<Config, "moduleParams">, root = MODULES_ROOT): ModuleFile[] {
  const modules: ModuleFile[] = [];
  for (const path of walkSorted(root)) {
    const base = path.slice(path.lastIndexOf("/") + 1);
    if (!MODULE_FILE_PATTERN.test(base)) {
      log.debug(`modules: ${path} is not a module file; left alone`);
      continue;
    }
    const name = moduleNameFromPath(base);
    modules.push({
      name,
      path,
      params: moduleParamString(config.moduleParams, name),
      flags: moduleInitFlags(base),
    });
  }
  return modules;
}

/** The `depends=` list from a module's .modinfo section (empty for compressed or unreadable files). */
export function moduleDepends(bytes: Uint8Array): string[] {
  let modinfo: Uint8Array;
  try {
    const section = readElfSections(bytes).find((candidate) => candidate.name === ".modinfo");
    if (!section) return [];
    modinfo = sectionData(bytes, section);
  } catch {
    return []; // not ELF (a compressed module): the kernel's own error will name what is missing
  }
  // .modinfo is a run of NUL-terminated "key=value" strings.
  const depends = new TextDecoder().decode(modinfo).split("\0").find((entry) => entry.startsWith("depends="));
  return depends ? depends.slice("depends=".length).split(",").filter(Boolean).map(normalizeModuleName) : [];
}

class ModuleLoadError extends Error {
  readonly module: string;
  readonly errno: number;
  constructor(module: ModuleFile, errno: number, reason: string) {
    super(`failed to load module ${module.name} (${module.path}): finit_module: ${reason}`);
    this.name = "ModuleLoadError";
    this.module = module.name;
    this.errno = errno;
  }
}

export type LoadOutcome = "loaded" | "already";

/** finit_module one file; EEXIST (already loaded, or built in twice) is not an error. */
function loadModuleFile(module: ModuleFile): LoadOutcome {
  try {
    finitModuleFile(module.path, module.params, module.name, module.flags);
    return "loaded";
  } catch (error) {
    if (sys.isErrno(error, "EEXIST")) return "already";
    if (!(error instanceof sys.SysError)) throw new ModuleLoadError(module, 0, `open: ${describeError(error)}`);
    throw new ModuleLoadError(module, error.errno, error.call === "open" ? `open: ${error.reason}` : error.reason);
  }
}

/**
 * Load one module and everything it depends on, now, on this thread. Returns the files loaded
 * (so the background walk skips them), or null when the module is not in the image.
 */
export function loadWithDependencies(name: string, modules: readonly ModuleFile[]): ModuleFile[] | null {
  const byName = new Map(modules.map((module) => [module.name, module]));
  const wanted = byName.get(normalizeModuleName(name));
  if (!wanted) return null;
  const done: ModuleFile[] = [];
  const visiting = new Set<string>();
  const visit = (module: ModuleFile) => {
    if (visiting.has(module.name)) return;
    visiting.add(module.name);
    let depends: string[] = [];
    try {
      depends = moduleDepends(new Uint8Array(readFileSync(module.path)));
    } catch {
      // Unreadable: finit_module below fails with the reason.
    }
    for (const dep of depends) {
      const file = byName.get(dep);
      if (file) visit(file);
      // Not in the image: built in, or the kernel's own error below names it.
    }
    const result = loadModuleFile(module);
    log.info(`${result === "loaded" ? "loaded" : "already loaded:"} kernel module ${module.name} (${module.path})${module.params ? ` ${module.params}` : ""}`);
    done.push(module);
  };
  visit(wanted);
  return done;
}

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
