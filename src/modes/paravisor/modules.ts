// Kernel modules the paravisor way: every module file under /lib/modules, in file-name order
// (the image lays them out as 000/, 001/, … so that order is dependency order), loaded by a
// background thread while boot goes on, then the directory is removed to give the memory back.
// ttyprintk is the exception: stderr needs it, so it (and what it depends on) loads first.
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { normalizeModuleName } from "../../config/cmdline";
import { moduleParamString, type Config } from "../../config/config";
import { log } from "../../log";
import { finitModuleFile, moduleInitFlags } from "../../modules/load";
import * as sys from "../../sys";

export const MODULES_ROOT = "/lib/modules";

export interface ModuleFile {
  name: string;
  path: string;
  params: string;
  /** finit_module flags (MODULE_INIT_COMPRESSED_FILE for .ko.xz/.gz/.zst). */
  flags: number;
}

const MODULE_FILE = /\.ko(\.(xz|gz|zst))?$/;

export function moduleNameOf(fileName: string): string {
  return normalizeModuleName(fileName.replace(MODULE_FILE, ""));
}

/** Every file under `root`, depth first, each directory's entries sorted by name (WalkDir sort_by_file_name). */
export function walkSorted(root: string): string[] {
  const files: string[] = [];
  const visit = (dir: string) => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
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
    if (!MODULE_FILE.test(base)) {
      log.debug(`modules: ${path} is not a module file; left alone`);
      continue;
    }
    const name = moduleNameOf(base);
    modules.push({
      name,
      path,
      params: moduleParamString(config as Config, name),
      flags: moduleInitFlags(base),
    });
  }
  return modules;
}

/** The `depends=` list from a module's .modinfo section (empty for compressed or unreadable files). */
export function moduleDepends(bytes: Uint8Array): string[] {
  if (bytes.length < 64 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[4] !== 2) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shoff = Number(view.getBigUint64(0x28, true));
  const shentsize = view.getUint16(0x3a, true);
  const shnum = view.getUint16(0x3c, true);
  const shstrndx = view.getUint16(0x3e, true);
  if (shoff === 0 || shoff + shnum * shentsize > bytes.length || shstrndx >= shnum) return [];
  const section = (index: number) => {
    const base = shoff + index * shentsize;
    return { name: view.getUint32(base, true), offset: Number(view.getBigUint64(base + 24, true)), size: Number(view.getBigUint64(base + 32, true)) };
  };
  const strings = section(shstrndx);
  const decoder = new TextDecoder();
  const nameAt = (offset: number) => {
    const start = strings.offset + offset;
    const end = bytes.indexOf(0, start);
    return decoder.decode(bytes.subarray(start, end < 0 ? start : end));
  };
  for (let i = 0; i < shnum; i++) {
    const header = section(i);
    if (nameAt(header.name) !== ".modinfo") continue;
    const text = decoder.decode(bytes.subarray(header.offset, header.offset + header.size));
    const depends = text.split("\0").find((entry) => entry.startsWith("depends="));
    return depends ? depends.slice("depends=".length).split(",").filter(Boolean).map(normalizeModuleName) : [];
  }
  return [];
}

export class ModuleLoadError extends Error {
  readonly module: string;
  readonly errno: number;
  constructor(module: ModuleFile, errno: number, code: string) {
    super(`failed to load module ${module.name} (${module.path}): finit_module: ${code} (${sys.errnoText(errno)})`);
    this.name = "ModuleLoadError";
    this.module = module.name;
    this.errno = errno;
  }
}

export type LoadResult = "loaded" | "already";

/** finit_module one file; EEXIST (already loaded, or built in twice) is not an error. */
export function loadModuleFile(module: ModuleFile): LoadResult {
  try {
    finitModuleFile(module.path, module.params, module.name, module.flags);
    return "loaded";
  } catch (error) {
    if (sys.isErrno(error, "EEXIST")) return "already";
    if (!(error instanceof sys.SysError)) throw new ModuleLoadError(module, 0, `open: ${String(error)}`);
    throw new ModuleLoadError(module, error.errno, error.call === "open" ? `open: ${error.code}` : error.code);
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
    } catch {}
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
  | { type: "loaded"; name: string; path: string; params: string; result: LoadResult; ms: number }
  | { type: "failed"; name: string; path: string; errno: number; message: string }
  | { type: "done"; removed: boolean; removeError?: string };

/** Messages to the loader thread. */
export interface LoaderRequest { modules: ModuleFile[]; root: string }

/** Load one module for the loader; false (after posting the failure) when it failed. */
export function loadOne(module: ModuleFile, post: (message: LoaderMessage) => void): boolean {
  const started = performance.now();
  try {
    const result = loadModuleFile(module);
    post({ type: "loaded", name: module.name, path: module.path, params: module.params, result, ms: performance.now() - started });
    return true;
  } catch (error) {
    const errno = error instanceof ModuleLoadError ? error.errno : 0;
    post({ type: "failed", name: module.name, path: module.path, errno, message: (error as Error).message });
    return false;
  }
}

/** The module files are in kernel memory now: free the initramfs copies. */
export function removeModulesRoot(root: string, post: (message: LoaderMessage) => void): void {
  try {
    rmSync(root, { recursive: true, force: true });
    post({ type: "done", removed: true });
  } catch (error) {
    post({ type: "done", removed: false, removeError: (error as Error).message });
  }
}

/** Load `modules` in order, then remove `root`. Runs in the loader thread. */
export function loadAll(request: LoaderRequest, post: (message: LoaderMessage) => void): void {
  for (const module of request.modules) if (!loadOne(module, post)) return;
  removeModulesRoot(request.root, post);
}

/** Where the loader thread's code is: an extra entrypoint of the compiled binary, or the source file. */
export function loaderWorkerUrl(): string {
  return Bun.isStandaloneExecutable ? "/$bunfs/root/modes/paravisor/modules-worker.js" : new URL("./modules-worker.ts", import.meta.url).href;
}

export interface BackgroundLoad {
  /** Resolves when every module is loaded and the directory is gone; rejects on the first failure. */
  done: Promise<void>;
  /** "worker" (a Bun Worker thread) or "main-thread" (fallback when the worker entry is missing). */
  how: "worker" | "main-thread";
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
    return fallback(`cannot start the loader thread: ${(error as Error).message}`);
  }
  let started = false;
  const result: BackgroundLoad = { done, how: "worker" };
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
      result.how = "main-thread";
      return;
    }
    if (!finished) {
      finished = true;
      reject(new Error(`module loader thread failed: ${event.message}`));
    }
  };
  return result;

  function fallback(why: string): BackgroundLoad {
    log.warn(`modules: ${why}; loading on the main thread, one module per event-loop turn`);
    const queue = [...request.modules];
    const step = () => {
      const module = queue.shift();
      if (!module) return removeModulesRoot(request.root, onMessage);
      if (loadOne(module, onMessage)) setTimeout(step, 0);
    };
    setTimeout(step, 0);
    return { done, how: "main-thread" };
  }
}
