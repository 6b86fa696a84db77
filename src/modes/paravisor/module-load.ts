// One module and what it depends on, loaded now on this thread: ttyprintk, which stderr needs
// before the background load (module-loader.ts) has begun. Also the one finit_module of a file
// both loads use.
import { readFileSync } from "node:fs";
import { normalizeModuleName } from "../../config/cmdline";
import { describeError } from "../../errors";
import { log } from "../../log";
import { readElfSections, sectionData } from "../../modules/elf-sections";
import { finitModuleFile } from "../../modules/load";
import * as sys from "../../sys";
import type { ModuleFile } from "./module-files";

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

export class ModuleLoadError extends Error {
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
export function loadModuleFile(module: ModuleFile): LoadOutcome {
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

