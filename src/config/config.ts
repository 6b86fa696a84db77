// The typed configuration, parsed once from the kernel command line. Every burrow.* key is
// declared in KEYS; anything else under burrow.* or init.* is reported, never silently ignored,
// and so is every bad value (with the key and the value). Parsing is total: any byte string
// gives a Config and its problems, never an exception — keys are looked up in Maps, so a word
// named like an Object.prototype member is just an unknown word.
import { RUN_ID_PATTERN } from "../exit-marker";
import { SHARE_TAG } from "../oci/guest-plan";
import { describeError } from "../errors";
import { clipValue, encodeParam, normalizeModuleName, tokenize, type CmdlineToken, type Problem } from "./cmdline";
import { environmentProblems } from "./environment";
import { parseHardenSwitches, type HardenSwitches } from "./harden";
import { emptyNicSettings, NIC_SETTERS, nicProblem, type NicSettings } from "./nic";
import { formatSize, parseSize } from "./size";
import { defaultWorkload, workloadSetter, type WorkloadRequest } from "./workload";

export type Mode = "microvm" | "paravisor";
export type LogLevelName = "error" | "warn" | "info" | "debug" | "trace";
export type OnFail = "poweroff" | "shell" | "halt";
export type OnExit = "poweroff" | "reboot" | "halt" | "exit";
/** What Ctrl-Alt-Del (SIGINT to PID 1 once the kernel hands it over) does under the supervisor. */
export type CtrlAltDel = "reboot" | "poweroff" | "halt" | "ignore";

export type ZramSetting = { kind: "off" } | { kind: "percent"; percent: number } | { kind: "bytes"; bytes: number };

/** burrow.overlay=: none, a tmpfs upper layer, or a device spec (as root=) for a disk upper layer. */
export type OverlaySetting = { kind: "none" } | { kind: "tmpfs" } | { kind: "device"; spec: string };

/** module (normalized) → its parameters, each already spelled for finit_module. */
export type ModuleParams = ReadonlyMap<string, readonly string[]>;

export interface Config {
  mode: Mode;
  log: LogLevelName;
  onfail: OnFail;
  /** Extra modules requested with burrow.modules=. */
  modules: string[];
  moduleParams: ModuleParams;
  net: boolean;
  /** burrow.net.mac=, .mtu=, .addr=, .route= (config/nic.ts): the NIC burrow configures before the workload (a container's engine network). */
  nic: NicSettings;
  /** burrow.net.lo=1: bring the loopback interface up (a container's, as runc does in every network namespace it makes). */
  loopback: boolean;
  balloon: boolean;
  /**
   * burrow.snapshot=1 ("point"): stop before the agent's exec, announce "ready" and wait for a
   * resume message. burrow.snapshot=warm: the resident supervisor takes the snapshot when the
   * running workload asks (READY=1 on BURROW_NOTIFY_FD); needs supervise mode (not burrow.supervise=0).
   */
  snapshot: "off" | "point" | "warm";
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
  /** The host's id for this run (burrow.runid=), echoed in the exit-status line. */
  runId: string | null;
  /** microvm: a writable layer merged over the (then read-only) root. */
  overlay: OverlaySetting;
  /** burrow.overlay.format=1: mkfs.ext4 an overlay disk that holds no filesystem yet. */
  overlayFormat: boolean;
  /** burrow.overlay.ro=1: the overlay disk is merged read-only (a second lower layer). */
  overlayReadOnly: boolean;
  /** burrow.bundle=TAG: the 9p share holding a container's mount plan (mounts.json) and files, applied before switch_root. */
  bundle: string | null;
  /** burrow.hide-root-devices=1: remove the root (and overlay) disks' device nodes once mounted. */
  hideRootDevices: boolean;
  /** burrow.harden= switches over each rule's default (config/harden.ts). */
  harden: HardenSwitches;
  /** burrow.console-stdin=1: the agent's stdin stays on the console instead of /dev/null. */
  consoleStdin: boolean;
  /**
   * microvm: the agent runs as PID 1's child under the resident supervisor (the default) instead
   * of replacing PID 1 (burrow.supervise=0: an agent that is itself an init, systemd). paravisor
   * hands PID 1 to the supervisor regardless; there it is false unless the line says 1.
   */
  supervise: boolean;
  /**
   * burrow.start=host: the resident supervisor starts no workload; it serves the control channel
   * and waits for the host's EXEC with the workload field (a container's create, then start).
   * boot (the default): the agent starts at boot. host needs supervise mode.
   */
  start: "boot" | "host";
  /**
   * burrow.template=1 (with burrow.start=host, burrow.snapshot=1 and burrow.bundle=TAG): a container
   * template — no root is mounted at boot; the supervisor waits at the snapshot point on the boot
   * disk's root and, after each restore's resume, attaches the container's root and mounts from
   * the bundle share itself (image/supervisor/container.c, src/oci/template.ts).
   */
  template: boolean;
  /** burrow.stop-timeout=MS: on a stop, how long the workload has between SIGTERM and SIGKILL. */
  stopTimeoutMs: number;
  /** burrow.ctrl-alt-del=: what the supervisor does on Ctrl-Alt-Del. */
  ctrlAltDel: CtrlAltDel;
  /** burrow.user=, burrow.rlimit.*=, burrow.caps=… (config/workload.ts): what the workload runs as, unresolved. */
  workload: WorkloadRequest;
  /** Unknown keys, bad values and dangerous words, in command-line order. */
  problems: Problem[];
}

type Scalars = Omit<Config, "nic" | "problems" | "moduleParams" | "initArgs" | "modules" | "zramAlgorithms" | "harden" | "workload">;

const DEFAULTS: Readonly<Scalars> & { zramAlgorithms: readonly string[] } = Object.freeze({
  mode: "microvm",
  log: "info",
  onfail: "poweroff",
  net: false,
  loopback: false,
  balloon: false,
  snapshot: "off",
  root: "/dev/vda",
  rootfstype: null,
  rootflags: null,
  readOnly: false,
  rootwaitMs: 5000,
  agent: "/usr/local/bin/guest-agent",
  zram: { kind: "percent", percent: 50 },
  zramAlgorithms: Object.freeze(["lz4", "lzo-rle", "lzo"]),
  zramPriority: 100,
  swappiness: 100,
  worker: "/bin/openvmm_hcl",
  onexit: "exit",
  entropyPath: "/proc/device-tree/openhcl/entropy/reg",
  partition: null,
  runId: null,
  overlay: { kind: "none" },
  overlayFormat: false,
  overlayReadOnly: false,
  bundle: null,
  hideRootDevices: false,
  consoleStdin: false,
  // microvm's default (parseConfig turns it off in paravisor mode unless the line sets it).
  supervise: true,
  start: "boot",
  template: false,
  stopTimeoutMs: 5000,
  ctrlAltDel: "reboot",
} as const);

/** A request module name longer than this is refused before any lookup (the kernel's alias strings are far shorter). */
const MAX_MODULE_REQUEST = 255;

type Setter = (config: Config, value: string | null) => string | void;

const ONFAIL: readonly OnFail[] = ["poweroff", "shell", "halt"];

function oneOf<T extends string>(field: "mode" | "log" | "onfail" | "onexit" | "ctrlAltDel" | "start", options: readonly T[]): Setter {
  return (config, value) => {
    if (value === null || !options.includes(value as T)) return `expected one of ${options.join("|")}`;
    (config as unknown as Record<string, unknown>)[field] = value;
  };
}

function flag(field: "net" | "loopback" | "balloon" | "overlayFormat" | "overlayReadOnly" | "hideRootDevices" | "consoleStdin" | "supervise" | "template"): Setter {
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

function path(field: "agent" | "worker" | "entropyPath" | "partition"): Setter {
  return (config, value) => {
    if (value === null || !value.startsWith("/")) return "expected an absolute path";
    config[field] = value;
  };
}

function integer(field: "rootwaitMs" | "zramPriority" | "swappiness" | "stopTimeoutMs", min: number, max: number): Setter {
  return (config, value) => {
    const parsed = value !== null && /^\d{1,9}$/.test(value) ? Number(value) : NaN;
    if (!(parsed >= min && parsed <= max)) return `expected a whole number from ${min} to ${max}`;
    config[field] = parsed;
  };
}

const list = (value: string | null) => (value ?? "").split(",").map((item) => item.trim()).filter(Boolean);

const KEYS: ReadonlyMap<string, Setter> = new Map<string, Setter>([
  ["burrow.mode", oneOf("mode", ["microvm", "paravisor"])],
  ["burrow.log", oneOf("log", ["error", "warn", "info", "debug", "trace"])],
  ["burrow.onfail", oneOf("onfail", ONFAIL)],
  ["burrow.onexit", oneOf("onexit", ["poweroff", "reboot", "halt", "exit"])],
  ["burrow.supervise", flag("supervise")],
  ["burrow.start", oneOf("start", ["boot", "host"])],
  ["burrow.template", flag("template")],
  ["burrow.stop-timeout", integer("stopTimeoutMs", 0, 600_000)],
  ["burrow.ctrl-alt-del", oneOf("ctrlAltDel", ["reboot", "poweroff", "halt", "ignore"])],
  [
    "burrow.modules",
    (config, value) => {
      const names = list(value);
      if (names.length === 0) return "expected a comma-separated list of module names";
      const absurd = names.find((name) => name.length > MAX_MODULE_REQUEST || /[\s"\0-\x1f\x7f]/.test(name));
      if (absurd !== undefined) return `module name ${JSON.stringify(absurd.slice(0, 40))}${absurd.length > 40 ? "…" : ""} is not a module name (at most ${MAX_MODULE_REQUEST} printable characters)`;
      config.modules.push(...names);
    },
  ],
  ["burrow.net", flag("net")],
  ["init.net", flag("net")],
  ["burrow.net.lo", flag("loopback")],
  ...[...NIC_SETTERS].map(([key, set]): [string, Setter] => [key, (config, value) => set(config.nic, value)]),
  ["burrow.balloon", flag("balloon")],
  ["init.balloon", flag("balloon")],
  [
    "burrow.snapshot",
    (config, value) => {
      if (value === "warm") return void (config.snapshot = "warm");
      const parsed = parseBoolean(value);
      if (parsed === null) return "expected 1/0 (the snapshot point before the agent) or warm (when the supervised workload asks)";
      config.snapshot = parsed ? "point" : "off";
    },
  ],
  ["burrow.root", text("root")],
  ["root", text("root")],
  ["rootfstype", text("rootfstype")],
  ["rootflags", text("rootflags")],
  ["ro", (config, value) => (value === null ? void (config.readOnly = true) : "takes no value")],
  ["rw", (config, value) => (value === null ? void (config.readOnly = false) : "takes no value")],
  ["burrow.rootwait", integer("rootwaitMs", 0, 600_000)],
  ["burrow.agent", path("agent")],
  [
    "burrow.zram",
    (config, value) => {
      // A bad value keeps what was set before (the 50 % default), as every other bad burrow.* value does.
      const parsed = parseZram(value);
      if ("problem" in parsed) return `${parsed.problem}; keeping ${describeZram(config.zram)}`;
      config.zram = parsed;
    },
  ],
  [
    "burrow.zram.algo",
    (config, value) => {
      const names = list(value);
      if (names.length === 0) return "expected a comma-separated list of compressors";
      config.zramAlgorithms = names;
    },
  ],
  ["burrow.zram.prio", integer("zramPriority", 0, 32767)],
  ["burrow.swappiness", integer("swappiness", 0, 200)],
  ["burrow.worker", path("worker")],
  ["burrow.entropy.path", path("entropyPath")],
  ["burrow.partition", path("partition")],
  [
    "burrow.overlay",
    (config, value) => {
      if (value === null || value === "") return "expected tmpfs, off or a device spec (/dev/vdb, SERIAL=…, LABEL=…, UUID=…, PARTUUID=…, PARTLABEL=…)";
      config.overlay = value === "tmpfs" ? { kind: "tmpfs" } : ["off", "none", "0"].includes(value) ? { kind: "none" } : { kind: "device", spec: value };
    },
  ],
  ["burrow.overlay.format", flag("overlayFormat")],
  ["burrow.overlay.ro", flag("overlayReadOnly")],
  [
    "burrow.bundle",
    (config, value) => {
      if (value === null || !SHARE_TAG.test(value)) return "expected a 9p share tag (1 to 31 of A-Z a-z 0-9 . _ -)";
      config.bundle = value;
    },
  ],
  ["burrow.hide-root-devices", flag("hideRootDevices")],
  ["burrow.console-stdin", flag("consoleStdin")],
  [
    "burrow.harden",
    (config, value) => {
      const { switches, problems } = parseHardenSwitches(value, config.harden);
      config.harden = switches;
      if (problems.length) return problems.join("; ");
    },
  ],
  [
    "burrow.runid",
    (config, value) => {
      if (value === null || !RUN_ID_PATTERN.test(value)) return "expected 8 to 64 letters and digits";
      config.runId = value;
    },
  ],
]);

/** Prefixes that are burrow's own: an unknown key under them is a typo, never a module parameter. */
const OWN_PREFIXES = ["burrow.", "init."];
/** What finit_module accepts as a module name (MODULE_NAME_LEN is 56 with the NUL). */
const MODULE_NAME = /^[A-Za-z0-9_-]{1,55}$/;
const PARAM_NAME = /^[A-Za-z0-9_.-]{1,255}$/;

function parseBoolean(value: string | null): boolean | null {
  if (value === null) return true; // a bare "burrow.net" means on
  const lowered = value.toLowerCase();
  if (["1", "on", "true", "yes", "y"].includes(lowered)) return true;
  if (["0", "off", "false", "no", "n"].includes(lowered)) return false;
  return null;
}

export function parseZram(value: string | null): ZramSetting | { problem: string } {
  const raw = (value ?? "").trim();
  if (["off", "0%", "no", "false", "none"].includes(raw.toLowerCase())) return { kind: "off" };
  const percent = /^(\d{1,3}(?:\.\d{1,6})?)%$/.exec(raw);
  if (percent) {
    const number = Number(percent[1]);
    if (number <= 0 || number > 100) return { problem: "a percentage must be above 0 and at most 100" };
    return { kind: "percent", percent: number };
  }
  if (raw.endsWith("%")) return { problem: "a percentage must be above 0 and at most 100" };
  const size = parseSize(raw);
  if ("problem" in size) return { problem: `${size.problem} (expected off, N% or a size: 512M, 1G, bytes)` };
  const { bytes } = size;
  if (bytes === 0) return { problem: "size 0" };
  if (bytes < 64 * 1024) return { problem: "smaller than the 64 KiB a swap area needs" };
  return { kind: "bytes", bytes };
}

function describeZram(setting: ZramSetting): string {
  return setting.kind === "off" ? "no zram swap" : setting.kind === "percent" ? `${setting.percent}% of RAM` : formatSize(setting.bytes);
}

/** What a failed boot does, read on its own so that even a bug in parsing ends in the user's fallback. */
export function readOnFail(cmdline: string | Uint8Array): OnFail {
  let policy: OnFail = DEFAULTS.onfail;
  try {
    for (const { key, value } of tokenize(cmdline).params) {
      if (key === "burrow.onfail" && ONFAIL.includes(value as OnFail)) policy = value as OnFail;
    }
  } catch {
    // The defaults stand; parseConfig reports what went wrong.
  }
  return policy;
}

export function parseConfig(cmdline: string | Uint8Array): Config {
  const config = defaultConfig();
  try {
    const { params, initArgs, droppedWords } = tokenize(cmdline);
    config.initArgs = initArgs;
    const moduleParams = new Map<string, string[]>();
    for (const token of params) applyToken(config, moduleParams, token);
    config.moduleParams = moduleParams;
    // burrow.root= names burrow's root even when the kernel's root= is set too (booting without an
    // initramfs, root= is the disk that holds burrow itself).
    const burrowRoot = params.filter((token) => token.key === "burrow.root" && token.value).at(-1);
    if (burrowRoot) config.root = burrowRoot.value!;
    // Paravisor's default hands the worker's status to the kernel (underhill_init's way); a
    // supervised microVM powers off after the workload unless told otherwise.
    if (config.mode === "microvm" && !params.some((token) => token.key === "burrow.onexit" && config.onexit === token.value)) config.onexit = "poweroff";
    // Supervise mode is microvm's default; the paravisor plan hands PID 1 to the supervisor anyway.
    if (config.mode === "paravisor" && !params.some((token) => token.key === "burrow.supervise" && parseBoolean(token.value) !== null)) config.supervise = false;
    // Only microvm's supervisor waits for the host's workload; the paravisor's worker is its own.
    if (config.mode === "paravisor" && config.start === "host") {
      config.problems.push({ key: "burrow.start", value: "host", message: "burrow.start=host: only microvm mode waits for the host's workload; ignored" });
      config.start = "boot";
    }
    // A template waits at the snapshot point for a container the host names later: it needs all three.
    if (config.template && (config.mode !== "microvm" || config.start !== "host" || config.snapshot !== "point" || config.bundle === null)) {
      config.problems.push({ key: "burrow.template", value: "1", message: "burrow.template=1 needs microvm mode, burrow.start=host, burrow.snapshot=1 and burrow.bundle=TAG; ignored" });
      config.template = false;
    }
    const nic = nicProblem(config.nic);
    if (nic !== null) {
      config.problems.push({ key: "burrow.net.mac", value: null, message: nic });
      config.nic = emptyNicSettings();
    }
    config.problems.push(...environmentProblems(params, initArgs, droppedWords));
  } catch (error) {
    // Not expected; but PID 1 must boot on defaults (and the user's onfail) rather than die here.
    const fresh = defaultConfig();
    fresh.onfail = readOnFail(cmdline);
    fresh.problems.push({ key: "", value: null, message: `cannot parse the command line (${describeError(error)}); using the defaults` });
    // Whatever workload spec the line held is unknown: fail closed rather than run unconfined.
    fresh.workload.invalid.push(fresh.problems.at(-1)!.message);
    return fresh;
  }
  return config;
}

function defaultConfig(): Config {
  return { ...DEFAULTS, zramAlgorithms: [...DEFAULTS.zramAlgorithms], nic: emptyNicSettings(), modules: [], moduleParams: new Map(), initArgs: [], harden: {}, workload: defaultWorkload(), problems: [] };
}

function applyToken(config: Config, moduleParams: Map<string, string[]>, { key, value }: CmdlineToken): void {
  const setter = KEYS.get(key);
  const shown = `${key}${value === null ? "" : `=${clipValue(value)}`}`;
  const workload = setter ? null : workloadSetter(key);
  if (workload) {
    // Remembered as a failed spec too: the workload must not start with less confinement than asked.
    const problem = workload(config.workload, value);
    if (!problem) return;
    config.workload.invalid.push(`${shown}: ${problem}`);
    config.problems.push({ key, value, message: `${shown}: ${problem}` });
    return;
  }
  if (setter) {
    const problem = setter(config, value);
    if (problem) config.problems.push({ key, value, message: `${shown}: ${problem}` });
    return;
  }
  if (OWN_PREFIXES.some((prefix) => key.startsWith(prefix))) {
    config.problems.push({ key, value, message: `unknown key ${key} (ignored)` });
    return;
  }
  const dot = key.indexOf(".");
  if (dot <= 0 || value === null) return; // the kernel's own parameter, or init's environment
  const moduleName = normalizeModuleName(key.slice(0, dot));
  const param = key.slice(dot + 1);
  // Not a loadable module's parameter (the kernel ignores it too): nothing for burrow to pass on.
  if (!MODULE_NAME.test(moduleName)) return;
  const encoded = PARAM_NAME.test(param) ? encodeParam(param, value) : null;
  if (encoded === null) {
    config.problems.push({ key, value, message: `${shown}: cannot be passed to module ${moduleName} unchanged (quotes or odd characters); not passed` });
    return;
  }
  const list = moduleParams.get(moduleName) ?? [];
  list.push(encoded);
  moduleParams.set(moduleName, list);
}

/** The string finit_module takes for one module. */
export function moduleParamString(moduleParams: ModuleParams, moduleName: string): string {
  return (moduleParams.get(normalizeModuleName(moduleName)) ?? []).join(" ");
}
