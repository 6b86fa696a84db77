// `burrow run`'s options, checked once before anything starts: which run they ask for (a plain
// boot, a snapshot save, a restore), every value parsed and every rule applied, and each option
// the chosen run would not use refused by name instead of dropped. What the plan holds is what
// runVm, saveSnapshot and restoreSnapshot get.
import { statSync } from "node:fs";
import { type ArgsDef, parseArgs } from "citty";
import { type Arch, hostArch, parseArch } from "../arch";
import { withBootDisk } from "./boot-disk";
import { hasVirtioSerial, memFloorProblem } from "./mem-floor";
import { DEFAULT_BOOT_FILES, defaultMachine, parseForward, parseMem, parseSmp, parseTcgTbSize, parseTimeout, type PortForward, withInitArgs } from "./options";
import type { Accel, Machine, RunOptions } from "./qemu";
import { parsePortSpec, parseSerialDisk, type PortSpec, type SerialDisk } from "./qemu-argv";
import { checkRunInputs } from "./run-checks";
import type { RestoreOptions, SaveOptions } from "./snapshot";
import { checkVmName } from "./vm-registry";

/** A boot as asked for, its values parsed; what is left out takes burrow run's defaults. */
export interface BootRequest {
  arch: Arch;
  kernel?: string;
  /** Absent: the architecture's default initramfs; null: none. */
  initrd?: string | null;
  bootDisk?: string;
  disks: string[];
  serialDisks: SerialDisk[];
  ports: PortSpec[];
  mem: string;
  smp: number;
  machine?: Machine;
  accel: Accel;
  tcgTbSizeMiB?: number;
  /** The kernel command line, the agent's arguments already after its `--`. */
  append: string;
  net: boolean;
  forwards: PortForward[];
  timeoutSeconds: number;
}

/**
 * The run a boot request makes (burrow run's and boot()'s one home): the architecture's defaults,
 * the boot disk in front, and the memory floor, counting the control port a save always has.
 */
export function bootRun(request: BootRequest, snapshotSave = false): RunOptions {
  // The boot disk replaces the initramfs: one given as well would be silently dropped.
  if (request.bootDisk !== undefined && request.initrd) throw new Error("--initrd cannot be combined with --boot-disk (the boot disk replaces the initramfs)");
  const defaults = DEFAULT_BOOT_FILES[request.arch];
  const plain: RunOptions = {
    arch: request.arch,
    kernel: request.kernel ?? defaults.kernel,
    initrd: request.initrd === undefined ? defaults.initrd : request.initrd,
    disks: request.disks,
    serialDisks: request.serialDisks,
    ports: request.ports,
    mem: request.mem,
    smp: request.smp,
    machine: request.machine ?? defaultMachine(request.arch),
    accel: request.accel,
    ...(request.tcgTbSizeMiB === undefined ? {} : { tcgTbSizeMiB: request.tcgTbSizeMiB }),
    append: request.append,
    timeoutSeconds: request.timeoutSeconds,
    // Any --forward needs the NIC: it implies --net.
    ...(request.net || request.forwards.length > 0 ? { net: { forwards: request.forwards } } : {}),
  };
  const run = request.bootDisk === undefined ? plain : withBootDisk(plain, request.bootDisk);
  // A guest too small to boot fails in ways that never say memory: refused here, in one line.
  const floor = memFloorProblem(run.mem, run.initrd ? fileSize(run.initrd) : null, hasVirtioSerial(run, snapshotSave));
  if (floor) throw new Error(floor);
  return run;
}

/** A VM registered under a name for burrow exec, ps, stop…; detached: run in the background. */
export interface NamedRun {
  name: string;
  detach: boolean;
}

export type RunPlan =
  | { form: "plain"; run: RunOptions; named: NamedRun | null }
  | { form: "save"; run: RunOptions; dir: string; save: SaveOptions }
  | { form: "restore"; dir: string; restore: RestoreOptions; named: NamedRun | null };

/** Options only one form takes: a run of another form is told which. */
const ONLY_WITH: Record<string, "save" | "restore"> = { "snapshot-warm": "save", "snapshot-copy": "save", env: "restore" };

/** What the saved VM decides for each of its restores: a restore given any of them would ignore it. */
const DECIDED_BY_THE_SAVE = ["kernel", "initrd", "boot-disk", "disk", "serial-disk", "mem", "smp", "arch", "machine", "accel", "append", "net"];

/** The snapshot manifest records --disk disks only: a restore would come up without these. */
const NOT_SAVED = ["serial-disk"];

/**
 * `burrow run`'s plan from its raw arguments (those after "run") and its option definitions (for
 * citty's parse and which options take a value). Throws one line naming the first problem.
 */
export function planRun(rawArgs: readonly string[], definition: ArgsDef): RunPlan {
  const { given, agentArgs } = scanOptions(rawArgs, definition);
  const args = parseArgs([...rawArgs], definition) as Record<string, unknown>;
  // citty fills in defaults: whether the user gave an option is read from the words themselves.
  const has = (name: string) => (definition[name]?.type === "boolean" ? args[name] === true : given.has(name));
  const text = (name: string) => (typeof args[name] === "string" ? (args[name] as string) : undefined);
  const all = (name: string) => given.get(name) ?? [];
  const listed = (names: string[]) => names.map((name) => `--${name}`).join(", ");

  const saveDir = text("snapshot-save");
  const restoreDir = text("snapshot-restore");
  if (has("snapshot-save") && has("snapshot-restore")) throw new Error("--snapshot-save cannot be combined with --snapshot-restore (a save boots a new VM, a restore starts a saved one)");
  for (const [option, dir] of [["snapshot-save", saveDir], ["snapshot-restore", restoreDir]] as const) {
    if (has(option) && !dir) throw new Error(`--${option} needs a directory`);
  }
  const form = has("snapshot-restore") ? "restore" : has("snapshot-save") ? "save" : "plain";

  const name = has("name") ? checkVmName(text("name") ?? "") : null;
  if (has("detach") && name === null) throw new Error("--detach needs --name NAME (the name burrow exec, ps, stop and logs use)");
  if (name !== null && form === "save") throw new Error("--name cannot be combined with --snapshot-save (a save ends its VM)");
  const named = name === null ? null : { name, detach: has("detach") };

  for (const needed of ["save", "restore"] as const) {
    const foreign = Object.keys(ONLY_WITH).filter((option) => ONLY_WITH[option] === needed && needed !== form && has(option));
    if (foreign.length > 0) throw new Error(`${listed(foreign)} ${foreign.length === 1 ? "needs" : "need"} --snapshot-${needed}`);
  }
  if (form === "restore") {
    const foreign = DECIDED_BY_THE_SAVE.filter(has);
    if (foreign.length > 0) throw new Error(`${listed(foreign)} cannot be combined with --snapshot-restore (the saved VM keeps its own; a restore takes --port NAME=FILE, --forward, --env, --timeout, --tcg-tb-size, --name, --detach and -- ARGS)`);
  }
  if (form === "save") {
    const foreign = NOT_SAVED.filter(has);
    if (foreign.length > 0) throw new Error(`${listed(foreign)} cannot be combined with --snapshot-save (snapshots record --disk disks only)`);
  }

  const timeoutSeconds = parseTimeout(text("timeout") ?? "");
  const tcgTbSize = has("tcg-tb-size") ? { tcgTbSizeMiB: parseTcgTbSize(text("tcg-tb-size") ?? "") } : {};
  const ports = all("port").map(parsePortSpec);
  const forwards = all("forward").map(parseForward);
  if (form === "restore") {
    const restore: RestoreOptions = {
      ports,
      // Without "--" the saved command line's arguments; with it, this instance's (none included).
      args: agentArgs,
      env: all("env").map(parseEnv),
      timeoutSeconds,
      ...tcgTbSize,
      // Each clone its own forwards on its own user network (restoreSnapshot checks the save had --net).
      forwards,
    };
    return { form, dir: restoreDir!, restore, named };
  }
  const arch = has("arch") ? parseArch(text("arch") ?? "") : hostArch();
  const initrd = text("initrd");
  const run = bootRun({
    arch,
    ...(has("kernel") ? { kernel: text("kernel") } : {}),
    // --initrd "": no initramfs.
    ...(has("initrd") ? { initrd: initrd || null } : {}),
    ...(has("boot-disk") ? { bootDisk: text("boot-disk") } : {}),
    disks: all("disk"),
    serialDisks: all("serial-disk").map(parseSerialDisk),
    ports,
    mem: parseMem(text("mem") ?? ""),
    smp: parseSmp(text("smp") ?? ""),
    ...(has("machine") ? { machine: text("machine") as Machine } : {}),
    accel: text("accel") as Accel,
    ...tcgTbSize,
    // After "--": the agent's arguments, as they are for --snapshot-restore.
    append: withInitArgs(text("append") ?? "", agentArgs ?? []),
    net: has("net"),
    forwards,
    timeoutSeconds,
  }, form === "save");
  checkRunInputs(run);
  if (form === "save") return { form, run, dir: saveDir!, save: { form: has("snapshot-copy") ? "copy" : "mapped", warm: has("snapshot-warm") } };
  return { form, run, named };
}

/** `--env NAME=VALUE`: NAME ends at the first "="; what the guest refuses, restoreSnapshot names before QEMU starts. */
function parseEnv(pair: string): [string, string] {
  const equals = pair.indexOf("=");
  if (equals <= 0) throw new Error(`--env needs NAME=VALUE, got ${JSON.stringify(pair)}`);
  return [pair.slice(0, equals), pair.slice(equals + 1)];
}

/**
 * The options given before the first "--" that is not an option's value (the agent's words
 * follow it), each with its values in order, read as citty reads them: an option that takes a
 * value takes the next word, whatever it is. An option burrow run does not have, or a word that
 * is no option, is refused: citty would drop it without a word.
 */
export function scanOptions(rawArgs: readonly string[], definition: ArgsDef): { given: Map<string, string[]>; agentArgs: string[] | null } {
  const given = new Map<string, string[]>();
  for (let i = 0; i < rawArgs.length; i++) {
    const word = rawArgs[i]!;
    if (word === "--") return { given, agentArgs: rawArgs.slice(i + 1) };
    if (!word.startsWith("-") || word === "-") throw new Error(`unexpected argument ${JSON.stringify(word)} (the agent's arguments go after --)`);
    const equals = word.indexOf("=");
    const spelled = equals < 0 ? word : word.slice(0, equals);
    // citty also takes --camelCase and, for a switch, --no-NAME.
    const name = spelled.slice(2).replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
    const negated = name.startsWith("no-") && definition[name.slice(3)]?.type === "boolean" ? name.slice(3) : null;
    const option = negated ?? name;
    const kind = spelled.startsWith("--") ? definition[option]?.type : undefined;
    if (kind === undefined || kind === "positional") throw new Error(`unknown option ${spelled} (burrow run --help lists them)`);
    const values = given.get(option) ?? [];
    given.set(option, values);
    if (kind === "boolean") continue;
    if (equals >= 0) values.push(word.slice(equals + 1));
    else if (i + 1 < rawArgs.length) values.push(rawArgs[++i]!);
    else throw new Error(`${spelled} needs a value`);
  }
  return { given, agentArgs: null };
}

/** A file's size, or null when it cannot be read (checkRunInputs names a missing file). */
function fileSize(path: string): number | null {
  try {
    return statSync(path).size;
  } catch {
    return null;
  }
}
