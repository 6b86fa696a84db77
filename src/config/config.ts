// The typed configuration, parsed once from the kernel command line. Every burrow.* key is
// declared in KEYS; anything else under burrow.* is reported, never silently ignored. A bad
// value is kept as a problem (with the key and the value) so the step that owns it can say
// one clear line and take its fallback.
import { normalizeModuleName, tokenize, type CmdlineToken } from "./cmdline";

export type Mode = "microvm" | "paravisor";
export type LogLevelName = "error" | "warn" | "info" | "debug" | "trace";
export type OnFail = "poweroff" | "shell" | "halt";
export type OnExit = "poweroff" | "reboot" | "exit";

export type ZramSetting =
  | { kind: "off" }
  | { kind: "percent"; percent: number }
  | { kind: "bytes"; bytes: number }
  | { kind: "invalid"; value: string; reason: string };

export interface Problem {
  key: string;
  value: string | null;
  message: string;
}

export interface Config {
  mode: Mode;
  log: LogLevelName;
  onfail: OnFail;
  /** Extra modules requested with burrow.modules=. */
  modules: string[];
  /** module → ["param=value", …] from module.param=value pairs (names normalized). */
  moduleParams: Record<string, string[]>;
  net: boolean;
  balloon: boolean;
  root: string;
  rootfstype: string | null;
  rootflags: string | null;
  readOnly: boolean;
  rootwaitMs: number;
  agent: string;
  initArgs: string[];
  zram: ZramSetting;
  zramAlgorithms: string[];
  zramPriority: number;
  swappiness: number;
  worker: string;
  onexit: OnExit;
  entropyPath: string;
  partition: string | null;
  /** Unknown keys and bad values, in command-line order. */
  problems: Problem[];
}

export const DEFAULTS: Omit<Config, "problems" | "moduleParams" | "initArgs" | "modules"> = {
  mode: "microvm",
  log: "info",
  onfail: "poweroff",
  net: false,
  balloon: false,
  root: "/dev/vda",
  rootfstype: null,
  rootflags: null,
  readOnly: false,
  rootwaitMs: 5000,
  agent: "/usr/local/bin/guest-agent",
  zram: { kind: "percent", percent: 50 },
  zramAlgorithms: ["lz4", "lzo-rle", "lzo"],
  zramPriority: 100,
  swappiness: 100,
  worker: "/bin/openvmm_hcl",
  onexit: "exit",
  entropyPath: "/proc/device-tree/openhcl/entropy/reg",
  partition: null,
};

type Setter = (config: Config, value: string | null, key: string) => string | void;

function oneOf<T extends string>(field: keyof Config, options: readonly T[]): Setter {
  return (config, value) => {
    if (value === null || !options.includes(value as T)) return `expected one of ${options.join("|")}`;
    (config as unknown as Record<string, unknown>)[field] = value;
  };
}

function flag(field: "net" | "balloon"): Setter {
  return (config, value) => {
    const parsed = parseBoolean(value);
    if (parsed === null) return "expected 1/0, on/off, true/false or yes/no";
    config[field] = parsed;
  };
}

function text(field: "root" | "agent" | "worker" | "entropyPath" | "rootfstype" | "rootflags" | "partition"): Setter {
  return (config, value) => {
    if (value === null || value === "") return "expected a value";
    config[field] = value;
  };
}

function integer(field: "rootwaitMs" | "zramPriority" | "swappiness", min: number, max: number): Setter {
  return (config, value) => {
    const parsed = value !== null && /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(parsed >= min && parsed <= max)) return `expected a whole number from ${min} to ${max}`;
    config[field] = parsed;
  };
}

const list = (value: string | null) => (value ?? "").split(",").map((item) => item.trim()).filter(Boolean);

const KEYS: Record<string, Setter> = {
  "burrow.mode": oneOf("mode", ["microvm", "paravisor"]),
  "burrow.log": oneOf("log", ["error", "warn", "info", "debug", "trace"]),
  "burrow.onfail": oneOf("onfail", ["poweroff", "shell", "halt"]),
  "burrow.onexit": oneOf("onexit", ["poweroff", "reboot", "exit"]),
  "burrow.modules": (config, value) => {
    const names = list(value);
    if (names.length === 0) return "expected a comma-separated list of module names";
    config.modules.push(...names);
  },
  "burrow.net": flag("net"),
  "init.net": flag("net"),
  "burrow.balloon": flag("balloon"),
  "init.balloon": flag("balloon"),
  "burrow.root": text("root"),
  root: text("root"),
  rootfstype: text("rootfstype"),
  rootflags: text("rootflags"),
  ro: (config, value) => (value === null ? void (config.readOnly = true) : "takes no value"),
  rw: (config, value) => (value === null ? void (config.readOnly = false) : "takes no value"),
  "burrow.rootwait": integer("rootwaitMs", 0, 600_000),
  "burrow.agent": text("agent"),
  "burrow.zram": (config, value) => {
    config.zram = parseZram(value);
  },
  "burrow.zram.algo": (config, value) => {
    const names = list(value);
    if (names.length === 0) return "expected a comma-separated list of compressors";
    config.zramAlgorithms = names;
  },
  "burrow.zram.prio": integer("zramPriority", 0, 32767),
  "burrow.swappiness": integer("swappiness", 0, 200),
  "burrow.worker": text("worker"),
  "burrow.entropy.path": text("entropyPath"),
  "burrow.partition": text("partition"),
};

/** Keys burrow reads that belong to the kernel too; they are never module parameters. */
const NOT_MODULE_PREFIXES = new Set(["burrow", "init"]);

export function parseBoolean(value: string | null): boolean | null {
  if (value === null) return true; // a bare "burrow.net" means on
  const lowered = value.toLowerCase();
  if (["1", "on", "true", "yes", "y"].includes(lowered)) return true;
  if (["0", "off", "false", "no", "n"].includes(lowered)) return false;
  return null;
}

const SIZE_UNITS: Record<string, number> = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** "512M", "1G", "1.5g", "4096", "64KiB" → bytes; null when not a size. */
export function parseSize(value: string): number | null {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(value.trim());
  if (!match) return null;
  const bytes = Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]!;
  return Number.isFinite(bytes) ? Math.floor(bytes) : null;
}

export function parseZram(value: string | null): ZramSetting {
  const raw = value ?? "";
  if (["off", "0%", "no", "false", "none"].includes(raw.toLowerCase())) return { kind: "off" };
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(raw);
  if (percent) {
    const number = Number(percent[1]);
    if (number <= 0 || number > 100) return { kind: "invalid", value: raw, reason: "a percentage must be above 0 and at most 100" };
    return { kind: "percent", percent: number };
  }
  const bytes = parseSize(raw);
  if (bytes === null) return { kind: "invalid", value: raw, reason: "not a size (use off, 50%, 512M, 1G…)" };
  if (bytes === 0) return { kind: "invalid", value: raw, reason: "size 0" };
  if (bytes < 64 * 1024) return { kind: "invalid", value: raw, reason: "smaller than the 64 KiB a swap area needs" };
  return { kind: "bytes", bytes };
}

export function parseConfig(cmdline: string): Config {
  const { params, initArgs } = tokenize(cmdline);
  const config: Config = { ...DEFAULTS, modules: [], moduleParams: {}, initArgs, problems: [] };
  for (const token of params) applyToken(config, token);
  // burrow.root= names burrow's root even when the kernel's root= is set too (booting without an
  // initramfs, root= is the disk that holds burrow itself).
  const burrowRoot = params.filter((token) => token.key === "burrow.root" && token.value).at(-1);
  if (burrowRoot) config.root = burrowRoot.value!;
  return config;
}

function applyToken(config: Config, { key, value }: CmdlineToken): void {
  const setter = KEYS[key];
  if (setter) {
    const problem = setter(config, value, key);
    if (problem) config.problems.push({ key, value, message: `${key}${value === null ? "" : `=${value}`}: ${problem}` });
    return;
  }
  if (key.startsWith("burrow.")) {
    config.problems.push({ key, value, message: `unknown key ${key} (ignored)` });
    return;
  }
  const dot = key.indexOf(".");
  if (dot > 0 && value !== null && !NOT_MODULE_PREFIXES.has(key.slice(0, dot))) {
    const moduleName = normalizeModuleName(key.slice(0, dot));
    (config.moduleParams[moduleName] ??= []).push(`${key.slice(dot + 1)}=${quoteParam(value)}`);
  }
}

/** finit_module parses "p=v" with the same quoting rules; keep spaces inside quotes. */
function quoteParam(value: string): string {
  return /\s/.test(value) ? `"${value}"` : value;
}

/** The string finit_module takes for one module. */
export function moduleParamString(config: Config, moduleName: string): string {
  return (config.moduleParams[normalizeModuleName(moduleName)] ?? []).join(" ");
}
