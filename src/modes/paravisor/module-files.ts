// Kernel modules the paravisor way: every module file under /lib/modules, in file-name order
// (the image lays them out as 000/, 001/, … so that order is dependency order). This file lists
// them; module-load.ts loads one now, module-loader.ts the rest in the background.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { moduleParamString, type Config } from "../../config/config";
import { log } from "../../log";
import { MODULE_FILE_PATTERN, moduleNameFromPath } from "../../modules";
import { moduleInitFlags } from "../../modules/load";

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

