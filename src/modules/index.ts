// The kernel module index (modules.dep, modules.softdep, modules.alias, modules.builtin) and the
// dependency walk. Used on the host to pick what goes into an image and in the guest to load it:
// the guest has no kmod, so the walk is ours.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { normalizeModuleName } from "../config/cmdline";
import { compileGlob, globMatches, isGlob, type CompiledGlob } from "./glob";
import { moduleNameFromPath } from "./names";

export { MODULE_FILE_PATTERN, moduleCompression, moduleNameFromPath } from "./names";

export interface ModuleEntry {
  name: string;
  /** Path relative to /lib/modules/<release>/. */
  path: string;
  /** Every module it depends on (modules.dep lists the transitive closure), by name. */
  deps: string[];
}

export interface Softdep { pre: string[]; post: string[] }

export type Resolution =
  | { kind: "module"; names: string[] }
  | { kind: "builtin" }
  | { kind: "missing"; reason: string };

/**
 * Longer requested names are refused before any lookup. Module names are at most 55 characters
 * (MODULE_NAME_LEN) and the longest alias of a distribution kernel is under 100; the limit only
 * keeps a hostile command line from making every alias pattern walk a huge string.
 */
export const MAX_MODULE_NAME_LENGTH = 255;

export const NOT_IN_INDEX = "not found in modules.dep, modules.builtin or modules.alias";

/** kmod's alias_normalize: "-" becomes "_" except inside a bracket class, where it is a range. */
export function normalizeAliasPattern(pattern: string): string {
  let out = "";
  let inClass = false;
  for (const char of pattern) {
    if (char === "[") inClass = true;
    else if (char === "]") inClass = false;
    out += char === "-" && !inClass ? "_" : char;
  }
  return out;
}

/** The index files of `/lib/modules/<release>/`, or null when it has no modules.dep (everything built in). */
export function readModuleIndex(moduleDir: string): ModuleIndex | null {
  const depPath = join(moduleDir, "modules.dep");
  if (!existsSync(depPath)) return null;
  const readIfExists = (file: string) => (existsSync(join(moduleDir, file)) ? readFileSync(join(moduleDir, file), "utf8") : "");
  return ModuleIndex.parse({
    dep: readFileSync(depPath, "utf8"),
    softdep: readIfExists("modules.softdep"),
    alias: readIfExists("modules.alias"),
    builtin: readIfExists("modules.builtin"),
  });
}

export class ModuleIndex {
  readonly modules = new Map<string, ModuleEntry>();
  readonly softdeps = new Map<string, Softdep>();
  readonly builtin = new Set<string>();
  private readonly exactAliases = new Map<string, string[]>();
  private readonly globAliases: { glob: CompiledGlob; module: string }[] = [];

  static parse(files: { dep: string; softdep?: string; alias?: string; builtin?: string }): ModuleIndex {
    const index = new ModuleIndex();
    for (const line of files.dep.split("\n")) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const path = line.slice(0, colon).trim();
      const deps = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(moduleNameFromPath);
      const name = moduleNameFromPath(path);
      index.modules.set(name, { name, path, deps });
    }
    for (const line of (files.softdep ?? "").split("\n")) {
      const words = line.trim().split(/\s+/);
      if (words[0] !== "softdep" || words.length < 3) continue;
      const entry: Softdep = { pre: [], post: [] };
      let bucket: string[] | null = null;
      for (const word of words.slice(2)) {
        if (word === "pre:") bucket = entry.pre;
        else if (word === "post:") bucket = entry.post;
        else bucket?.push(normalizeModuleName(word));
      }
      index.softdeps.set(normalizeModuleName(words[1]!), entry);
    }
    for (const line of (files.alias ?? "").split("\n")) {
      const words = line.trim().split(/\s+/);
      if (words[0] !== "alias" || words.length < 3) continue;
      const module = normalizeModuleName(words[2]!);
      if (isGlob(words[1]!)) index.globAliases.push({ glob: compileGlob(normalizeAliasPattern(words[1]!)), module });
      else {
        const key = normalizeModuleName(words[1]!);
        const list = index.exactAliases.get(key) ?? [];
        if (!list.includes(module)) list.push(module);
        index.exactAliases.set(key, list);
      }
    }
    for (const line of (files.builtin ?? "").split("\n")) {
      if (line.trim()) index.builtin.add(moduleNameFromPath(line.trim()));
    }
    return index;
  }

  /** A requested name → the module(s) that provide it, or builtin, or missing. */
  resolve(requested: string): Resolution {
    if (requested.length > MAX_MODULE_NAME_LENGTH) {
      return { kind: "missing", reason: `not looked up: the name is ${requested.length} characters long (at most ${MAX_MODULE_NAME_LENGTH})` };
    }
    const name = normalizeModuleName(requested);
    if (this.modules.has(name)) return { kind: "module", names: [name] };
    if (this.builtin.has(name)) return { kind: "builtin" };
    const aliased = new Set(this.exactAliases.get(name));
    for (const alias of this.globAliases) if (globMatches(alias.glob, name)) aliased.add(alias.module);
    const loadable = [...aliased].filter((module) => this.modules.has(module));
    if (loadable.length > 0) return { kind: "module", names: loadable };
    if ([...aliased].some((module) => this.builtin.has(module))) return { kind: "builtin" };
    return { kind: "missing", reason: NOT_IN_INDEX };
  }

  /**
   * The closure of the requested names: every module needed, with the modules each must wait
   * for (its hard dependencies and its softdep "pre" modules). "post" softdeps are added with a
   * dependency on the module they follow. Missing names are returned, not thrown, each with why.
   */
  closure(requested: readonly string[]): { order: LoadNode[]; missing: string[]; missingReasons: Map<string, string>; builtin: string[] } {
    const nodes = new Map<string, LoadNode>();
    const missingReasons = new Map<string, string>();
    const builtin = new Set<string>();
    const visit = (name: string, optional: boolean): string[] => {
      const resolution = this.resolve(name);
      if (resolution.kind === "missing") {
        if (!optional && !missingReasons.has(name)) missingReasons.set(name, resolution.reason);
        return [];
      }
      if (resolution.kind === "builtin") {
        builtin.add(name);
        return [];
      }
      // Several providers of one alias (crc32c_intel, crc32c_generic): each may fail on its own.
      for (const moduleName of resolution.names) add(moduleName, optional || resolution.names.length > 1);
      return resolution.names;
    };
    const add = (moduleName: string, optional: boolean) => {
      if (nodes.has(moduleName)) {
        if (!optional) nodes.get(moduleName)!.optional = false;
        return;
      }
      const entry = this.modules.get(moduleName)!;
      const node: LoadNode = { name: moduleName, path: entry.path, after: [], optional };
      nodes.set(moduleName, node);
      for (const dep of entry.deps) {
        add(dep, optional);
        node.after.push(dep);
      }
      const soft = this.softdeps.get(moduleName);
      for (const pre of soft?.pre ?? []) node.after.push(...visit(pre, true));
      for (const post of soft?.post ?? []) {
        for (const postName of visit(post, true)) {
          const postNode = nodes.get(postName);
          if (postNode && !postNode.after.includes(moduleName) && !wouldCycle(nodes, moduleName, postName)) postNode.after.push(moduleName);
        }
      }
    };
    for (const name of requested) visit(name, false);
    for (const node of nodes.values()) node.after = [...new Set(node.after)].filter((dep) => dep !== node.name);
    return { order: topologicalOrder(nodes), missing: [...missingReasons.keys()], missingReasons, builtin: [...builtin] };
  }
}

export interface LoadNode {
  name: string;
  path: string;
  /** Modules that must be loaded before this one. */
  after: string[];
  /** Pulled in only by a softdep or an alias: a failure is not fatal for its users. */
  optional: boolean;
}

function wouldCycle(nodes: Map<string, LoadNode>, from: string, to: string): boolean {
  // Adding "to waits for from" cycles if from (transitively) waits for to.
  const stack = [from];
  const seen = new Set<string>();
  while (stack.length) {
    const current = stack.pop()!;
    if (current === to) return true;
    if (seen.has(current)) continue;
    seen.add(current);
    stack.push(...(nodes.get(current)?.after ?? []));
  }
  return false;
}

/** Dependencies first; ties broken by name so the order is stable. */
function topologicalOrder(nodes: Map<string, LoadNode>): LoadNode[] {
  const order: LoadNode[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (node: LoadNode) => {
    if (state.get(node.name) === "done" || state.get(node.name) === "visiting") return;
    state.set(node.name, "visiting");
    for (const dep of [...node.after].sort()) {
      const depNode = nodes.get(dep);
      if (depNode) visit(depNode);
    }
    state.set(node.name, "done");
    order.push(node);
  };
  for (const name of [...nodes.keys()].sort()) visit(nodes.get(name)!);
  return order;
}
