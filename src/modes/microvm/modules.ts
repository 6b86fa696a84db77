// Kernel modules for microvm mode: the wanted set from the configuration, its closure from
// modules.{dep,softdep,alias,builtin}, and finit_module in dependency order.
//
// Sequential on purpose: FFI calls block the JS thread, so parallel loads would need Bun Workers.
// Measured under TCG (see the report of issue 3): the whole default closure loads in less time
// than starting one Worker, and with one vCPU the kernel work of finit_module (relocation,
// symbol resolution, the module's init) cannot overlap anyway.
import { existsSync, readFileSync } from "node:fs";
import { moduleParamString, type Config } from "../../config/config";
import { log } from "../../log";
import { ModuleIndex, type LoadNode } from "../../modules";
import { finitModuleFile } from "../../modules/load";
import * as sys from "../../sys";

export interface ModuleRequest {
  /** Names whose absence is worth a warning. */
  required: string[];
  /** Names loaded when present (compressors: one of them is enough). */
  optional: string[];
}

/** The base set plus what the command line asks for. */
export function wantedModules(config: Config): ModuleRequest {
  const required = ["virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console"];
  const rootTypes = config.rootfstype ? config.rootfstype.split(",").map((t) => t.trim()).filter(Boolean) : ["ext4"];
  required.push(...rootTypes);
  const optional: string[] = [];
  if (config.zram.kind !== "off") {
    required.push("zram");
    // Compressors are crypto modules ("lz4") or built in (lzo, lzo-rle); ask for each.
    optional.push(...config.zramAlgorithms);
  }
  if (config.net) required.push("virtio_net");
  if (config.balloon) required.push("virtio_balloon");
  required.push(...config.modules);
  return { required: [...new Set(required)], optional: [...new Set(optional)].filter((name) => !required.includes(name)) };
}

export function readModuleIndex(dir: string): ModuleIndex | null {
  const read = (file: string) => {
    try {
      return readFileSync(`${dir}/${file}`, "utf8");
    } catch {
      return "";
    }
  };
  if (!existsSync(`${dir}/modules.dep`)) return null;
  return ModuleIndex.parse({ dep: read("modules.dep"), softdep: read("modules.softdep"), alias: read("modules.alias"), builtin: read("modules.builtin") });
}

export interface LoadResult {
  loaded: string[];
  already: string[];
  builtin: string[];
  /** module → reason (errno name or "not found"). */
  failed: Map<string, string>;
  ms: Record<string, number>;
}

export type Loader = (node: LoadNode, params: string) => void;

/** finit_module on the file; compressed modules are handed to the kernel to decompress. */
export function finitLoader(moduleDir: string): Loader {
  return (node, params) => finitModuleFile(`${moduleDir}/${node.path}`, params, node.name);
}

/** Load the closure in order; a module whose hard dependency failed is not tried. Never throws. */
export function loadModules(index: ModuleIndex, request: ModuleRequest, config: Config, load: Loader, now: () => number): LoadResult {
  const result: LoadResult = { loaded: [], already: [], builtin: [], failed: new Map(), ms: {} };
  const { order, missing, builtin } = index.closure(request.required);
  const optional = index.closure(request.optional);
  result.builtin.push(...builtin, ...optional.builtin);
  for (const name of missing) result.failed.set(name, "not found in modules.dep, modules.builtin or modules.alias");
  const seen = new Set(order.map((node) => node.name));
  const nodes = [...order, ...optional.order.filter((node) => !seen.has(node.name)).map((node) => ({ ...node, optional: true }))];
  const ok = new Set<string>();
  for (const node of nodes) {
    const brokenDep = node.after.find((dep) => result.failed.has(dep) && !ok.has(dep) && nodes.find((n) => n.name === dep && !n.optional));
    if (brokenDep) {
      result.failed.set(node.name, `needs ${brokenDep}, which failed`);
      continue;
    }
    const started = now();
    try {
      load(node, moduleParamString(config, node.name));
      result.loaded.push(node.name);
      ok.add(node.name);
    } catch (error) {
      if (sys.isErrno(error, "EEXIST")) {
        result.already.push(node.name);
        ok.add(node.name);
      } else {
        const reason = error instanceof sys.SysError ? `${error.code} (${sys.errnoText(error.errno)})` : String((error as Error)?.message ?? error);
        if (node.optional) log.debug(`module ${node.name} (optional): ${reason}`);
        else result.failed.set(node.name, reason);
      }
    }
    result.ms[node.name] = Math.round((now() - started) * 100) / 100;
  }
  return result;
}
