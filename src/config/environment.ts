// What the kernel does with the words it does not understand: dot-less KEY=VALUE words become
// init's environment and the words after "--" its arguments, both capped by
// CONFIG_INIT_ENV_ARG_LIMIT (32: more makes the kernel panic before init runs). Some variables
// steer Bun, JavaScriptCore, glibc's loader or Node before burrow's first line; the preload
// constructor (image/early-mounts.c) removes them, and the programs burrow starts never see them.
import { clipValue, type CmdlineToken, type Problem } from "./cmdline";

/** Variables that steer the runtime or the dynamic loader; the C programs' copies are generated from this one (src/control/c-header.ts). */
export const RUNTIME_ENV_PREFIXES = ["BUN_", "JSC_", "__BUN", "BUNFS", "NODE_", "LD_", "GLIBC_TUNABLES", "MALLOC_"] as const;

export function isRuntimeVariable(name: string): boolean {
  return RUNTIME_ENV_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/** init's argv holds "init" plus at most this many words. */
export const MAX_INIT_ARGS = 31;
/** init's environment holds HOME and TERM plus at most this many more. */
const MAX_INIT_ENV_WORDS = 30;

/**
 * Parameters the kernel consumes itself (a common subset of __setup/early_param names): they
 * never reach init's environment, so they do not count against its limit.
 */
const KERNEL_PARAMETERS = new Set([
  "console", "earlycon", "earlyprintk", "loglevel", "panic", "reboot", "tsc", "tsc_early_khz", "root",
  "rootfstype", "rootflags", "rootwait", "rootdelay", "init", "rdinit", "mem", "memmap", "maxcpus",
  "nr_cpus", "mitigations", "clocksource", "lpj", "acpi", "pci", "iommu", "swiotlb", "nokaslr",
  "noapic", "nolapic", "quiet", "debug", "ro", "rw", "hugepages", "hugepagesz", "cgroup_disable",
  "crashkernel", "isolcpus", "nohz", "nohz_full", "rcu_nocbs", "pti", "spectre_v2", "lsm", "apparmor",
  "selinux", "audit", "ignore_loglevel", "initcall_debug", "noreplace-smp", "virtio_mmio.device",
]);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function environmentProblems(params: readonly CmdlineToken[], initArgs: readonly string[], droppedWords: number): Problem[] {
  const problems: Problem[] = [];
  const envNames = new Set<string>();
  for (const { key, value } of params) {
    if (value === null || key.includes(".") || KERNEL_PARAMETERS.has(key)) continue;
    if (isRuntimeVariable(key)) {
      problems.push({ key, value, message: `${key}=${clipValue(value)} would steer the runtime or the loader; removed from PID 1's environment and never passed on` });
    }
    if (ENV_NAME.test(key) && key !== "HOME" && key !== "TERM") envNames.add(key);
  }
  if (envNames.size > MAX_INIT_ENV_WORDS) {
    problems.push({ key: "", value: null, message: `${envNames.size} environment words (KEY=VALUE without a dot): the kernel panics when init's environment exceeds 32 entries (HOME and TERM take two)` });
  }
  if (initArgs.length > MAX_INIT_ARGS) {
    problems.push({ key: "--", value: null, message: `${initArgs.length} init arguments after --: the kernel panics with more than ${MAX_INIT_ARGS}` });
  }
  if (droppedWords > 0) {
    problems.push({ key: "--", value: null, message: `a second -- ends init's arguments: the kernel drops it and the ${droppedWords - 1} word(s) after it` });
  }
  return problems;
}
