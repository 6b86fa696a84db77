// Kernel modules for microvm mode: the wanted set from the configuration, its closure from
// modules.{dep,softdep,alias,builtin}, and finit_module in dependency order.
//
// Sequential on purpose: FFI calls block the JS thread, so parallel loads would need Bun Workers.
// Measured under TCG: the whole default closure loads in less time than starting one Worker, and
// with one vCPU the kernel work of finit_module (relocation, symbol resolution, the module's
// init) cannot overlap anyway.
import { moduleParamString, type Config } from "../../config/config";
import { describeError } from "../../errors";
import { log } from "../../log";
import type { LoadNode, ModuleIndex } from "../../modules";
import { finitModuleFile, MODULES_STEP_BUDGET_MS, notTriedReason } from "../../modules/load";
import * as sys from "../../sys";
import { parseRootSpec } from "./devices";

/** Debian's names for the virtio-9p transport and the 9p filesystem (the micro kernel builds them in). */
const NINEP_MODULES = ["9pnet_virtio", "9p"];

export interface WantedModules {
  /** Names whose absence is worth a warning. */
  required: string[];
  /** Names loaded when present (compressors: one of them is enough). */
  optional: string[];
}

/** The base set plus what the command line asks for. */
export function wantedModules(config: Config): WantedModules {
  const required = ["virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console"];
  const share = parseRootSpec(config.root);
  if (share.kind === "share") {
    // A root shared by the host: its transport and filesystem instead of a disk's.
    required.push(...(share.fs === "9p" ? NINEP_MODULES : ["virtiofs"]));
  } else {
    const rootTypes = config.rootfstype ? config.rootfstype.split(",").map((t) => t.trim()).filter(Boolean) : ["ext4"];
    required.push(...rootTypes);
  }
  // A container's bundle and volumes are 9p shares.
  if (config.bundle !== null) required.push(...NINEP_MODULES);
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

export interface LoadSummary {
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

/**
 * Load the closure in order; a module whose hard dependency failed is not tried, nor is any
 * module once `budgetMs` (on the `now` clock, in ms) has passed since the first. Never throws.
 */
export function loadModules(index: ModuleIndex, request: WantedModules, config: Config, load: Loader, now: () => number, budgetMs = MODULES_STEP_BUDGET_MS): LoadSummary {
  const result: LoadSummary = { loaded: [], already: [], builtin: [], failed: new Map(), ms: {} };
  const { order, missingReasons, builtin } = index.closure(request.required);
  const optional = index.closure(request.optional);
  result.builtin.push(...builtin, ...optional.builtin);
  for (const [name, reason] of missingReasons) result.failed.set(name, reason);
  const byName = new Map(order.map((node) => [node.name, node]));
  for (const node of optional.order) if (!byName.has(node.name)) byName.set(node.name, { ...node, optional: true });
  const nodes = [...byName.values()];
  const ok = new Set<string>();
  const deadline = now() + budgetMs;
  for (const [position, node] of nodes.entries()) {
    if (now() >= deadline) {
      for (const untried of nodes.slice(position)) result.failed.set(untried.name, notTriedReason(budgetMs));
      break;
    }
    // Only a required dependency's failure is recorded; an optional one's users still get their try.
    const brokenDep = node.after.find((dep) => result.failed.has(dep) && !ok.has(dep) && byName.get(dep)?.optional === false);
    if (brokenDep) {
      result.failed.set(node.name, `needs ${brokenDep}, which failed`);
      continue;
    }
    const started = now();
    try {
      load(node, moduleParamString(config.moduleParams, node.name));
      result.loaded.push(node.name);
      ok.add(node.name);
    } catch (error) {
      if (sys.isErrno(error, "EEXIST")) {
        result.already.push(node.name);
        ok.add(node.name);
      } else {
        const reason = error instanceof sys.SysError ? error.reason : describeError(error);
        if (node.optional) log.debug(`module ${node.name} (optional): ${reason}`);
        else result.failed.set(node.name, reason);
      }
    }
    result.ms[node.name] = Math.round((now() - started) * 100) / 100;
  }
  return result;
}
