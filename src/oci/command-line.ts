// runc's command line as the engines write it (Podman's conmon, containerd's runc shim, Docker
// through the shim): global options, the verb, its options, the container id. Options take their
// value as the next word or after "=" (urfave/cli's rules); a boolean takes "=true"/"=false".
// Options that change nothing for a VM-backed container are accepted and said to be ignored under
// --debug; an option that would change what runc does and that burrow cannot honour is refused.

export type LogFormat = "text" | "json";

export interface GlobalOptions {
  root: string;
  log: string | null;
  logFormat: LogFormat;
  debug: boolean;
  /** --systemd-cgroup: linux.cgroupsPath is systemd's "slice:prefix:name" (cgroup-paths.ts), not a path. */
  systemdCgroup: boolean;
  /** Accepted runc options that do not apply to a VM (said under --debug). */
  ignored: string[];
}

/** runc's default state root for root; burrow-oci's own so the two never share a directory. */
export const DEFAULT_ROOT = "/run/burrow-oci";

export const VERBS = ["create", "start", "state", "kill", "delete", "exec", "pause", "resume", "ps", "features"] as const;
/** Internal verbs: the processes burrow-oci starts for itself. */
export const INTERNAL_VERBS = ["holder", "exec-holder"] as const;
export type Verb = (typeof VERBS)[number] | (typeof INTERNAL_VERBS)[number];

type OptionKind = "flag" | "value" | "list";
interface OptionSpec {
  names: readonly string[];
  kind: OptionKind;
  /** Accepted and ignored: no effect on a VM-backed container. */
  ignored?: boolean;
}

const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { names: ["root"], kind: "value" },
  { names: ["log"], kind: "value" },
  { names: ["log-format"], kind: "value" },
  { names: ["debug"], kind: "flag" },
  { names: ["systemd-cgroup"], kind: "flag" },
  { names: ["criu"], kind: "value", ignored: true },
  { names: ["rootless"], kind: "value" },
  { names: ["version", "v"], kind: "flag" },
  { names: ["help", "h"], kind: "flag" },
];

const VERB_OPTIONS: Readonly<Record<Verb, readonly OptionSpec[]>> = {
  create: [
    { names: ["bundle", "b"], kind: "value" },
    { names: ["pid-file"], kind: "value" },
    { names: ["console-socket"], kind: "value" },
    { names: ["no-pivot"], kind: "flag", ignored: true },
    { names: ["no-new-keyring"], kind: "flag", ignored: true },
    { names: ["preserve-fds"], kind: "value" },
  ],
  start: [],
  state: [],
  kill: [{ names: ["all", "a"], kind: "flag" }],
  delete: [{ names: ["force", "f"], kind: "flag" }],
  exec: [
    { names: ["process", "p"], kind: "value" },
    { names: ["detach", "d"], kind: "flag" },
    { names: ["pid-file"], kind: "value" },
    { names: ["tty", "t"], kind: "flag" },
    { names: ["console-socket"], kind: "value" },
    { names: ["cwd"], kind: "value" },
    { names: ["env", "e"], kind: "list" },
    { names: ["user", "u"], kind: "value" },
    { names: ["preserve-fds"], kind: "value" },
    { names: ["no-new-privs"], kind: "flag" },
    { names: ["cap", "c"], kind: "list", ignored: true },
    { names: ["apparmor"], kind: "value", ignored: true },
    { names: ["process-label"], kind: "value", ignored: true },
    { names: ["additional-gids", "g"], kind: "list", ignored: true },
    { names: ["cgroup"], kind: "value", ignored: true },
  ],
  pause: [],
  resume: [],
  ps: [{ names: ["format", "f"], kind: "value" }],
  features: [],
  holder: [],
  "exec-holder": [
    { names: ["process", "p"], kind: "value" },
    { names: ["tty", "t"], kind: "flag" },
  ],
};

export interface VerbLine {
  verb: Verb;
  flags: Set<string>;
  values: Map<string, string>;
  lists: Map<string, string[]>;
  positionals: string[];
}

export interface ParsedLine {
  globals: GlobalOptions;
  /** null: no verb (runc --version, --help). */
  command: VerbLine | null;
  version: boolean;
  help: boolean;
}

export class UsageError extends Error {}

const TRUE_WORDS = new Set(["true", "1", "t", "yes"]);
const FALSE_WORDS = new Set(["false", "0", "f", "no"]);

interface Collected {
  flags: Set<string>;
  values: Map<string, string>;
  lists: Map<string, string[]>;
  ignored: string[];
}

/**
 * Options of one level from `args[start]` on; returns the index of the first word that is not one
 * of them. `--` ends options.
 */
function collectOptions(args: readonly string[], start: number, specs: readonly OptionSpec[], where: string, into: Collected): number {
  let index = start;
  while (index < args.length) {
    const word = args[index]!;
    if (word === "--") return index + 1;
    if (!word.startsWith("-") || word === "-") return index;
    const body = word.replace(/^--?/, "");
    const equals = body.indexOf("=");
    const name = equals < 0 ? body : body.slice(0, equals);
    const inline = equals < 0 ? null : body.slice(equals + 1);
    const spec = specs.find((candidate) => candidate.names.includes(name));
    if (!spec) throw new UsageError(`${where}: unknown option ${word.slice(0, 60)}`);
    const canonical = spec.names[0]!;
    index++;
    if (spec.kind === "flag") {
      if (inline !== null && !TRUE_WORDS.has(inline) && !FALSE_WORDS.has(inline)) throw new UsageError(`${where}: --${canonical} takes true or false, got ${JSON.stringify(inline.slice(0, 40))}`);
      const on = inline === null || TRUE_WORDS.has(inline);
      if (on) into.flags.add(canonical);
      else into.flags.delete(canonical);
      if (spec.ignored && on) into.ignored.push(`--${canonical}`);
      continue;
    }
    let value = inline;
    if (value === null) {
      if (index >= args.length) throw new UsageError(`${where}: --${canonical} needs a value`);
      value = args[index++]!;
    }
    if (spec.kind === "list") into.lists.set(canonical, [...(into.lists.get(canonical) ?? []), value]);
    else into.values.set(canonical, value);
    if (spec.ignored) into.ignored.push(`--${canonical}`);
  }
  return index;
}

function parseLogFormat(value: string | undefined): LogFormat {
  if (value === undefined || value === "text") return "text";
  if (value === "json") return "json";
  throw new UsageError(`--log-format: expected text or json, got ${JSON.stringify(value.slice(0, 40))}`);
}

/** runc's whole command line: global options, then a verb and its own. */
export function parseCommandLine(args: readonly string[]): ParsedLine {
  const global: Collected = { flags: new Set(), values: new Map(), lists: new Map(), ignored: [] };
  const rest = args;
  const verbAt = collectOptions(rest, 0, GLOBAL_OPTIONS, "burrow-oci", global);
  const rootless = global.values.get("rootless");
  // burrow-oci runs its VMs as the user that calls it; "true" would promise rootless cgroups it does not set up.
  if (rootless !== undefined && rootless !== "false" && rootless !== "auto") throw new UsageError(`--rootless ${rootless.slice(0, 20)}: not supported (use false or auto)`);
  const globals: GlobalOptions = {
    root: global.values.get("root") ?? DEFAULT_ROOT,
    log: global.values.get("log") ?? null,
    logFormat: parseLogFormat(global.values.get("log-format")),
    debug: global.flags.has("debug"),
    systemdCgroup: global.flags.has("systemd-cgroup"),
    ignored: global.ignored,
  };
  const version = global.flags.has("version");
  const help = global.flags.has("help");
  if (verbAt >= rest.length) return { globals, command: null, version, help };
  const verb = rest[verbAt]!;
  if (![...VERBS, ...INTERNAL_VERBS].includes(verb as Verb)) throw new UsageError(`unknown command ${JSON.stringify(verb.slice(0, 40))}; commands: ${VERBS.join(", ")}`);
  const own: Collected = { flags: new Set(), values: new Map(), lists: new Map(), ignored: [] };
  const positionalAt = collectOptions(rest, verbAt + 1, VERB_OPTIONS[verb as Verb], verb, own);
  globals.ignored.push(...own.ignored);
  return {
    globals,
    command: { verb: verb as Verb, flags: own.flags, values: own.values, lists: own.lists, positionals: rest.slice(positionalAt) },
    version,
    help,
  };
}

/** runc's rule for container ids: a path component, no separators or dots alone. */
const CONTAINER_ID = /^[\w+.-]{1,128}$/;

export function checkContainerId(id: string | undefined): string {
  if (id === undefined || id === "") throw new UsageError("a container id is required");
  if (!CONTAINER_ID.test(id) || id === "." || id === "..") throw new UsageError(`invalid container id ${JSON.stringify(id.slice(0, 80))} (1 to 128 of A-Z a-z 0-9 _ + . -)`);
  return id;
}

/** The one positional id of most verbs; extra words are refused, not dropped. */
export function singleId(line: VerbLine, extra = 0): string {
  if (line.positionals.length > 1 + extra) throw new UsageError(`${line.verb}: unexpected arguments after the container id: ${line.positionals.slice(1 + extra).join(" ").slice(0, 80)}`);
  return checkContainerId(line.positionals[0]);
}
