// A strict reader of the VM verbs' arguments (exec, cp, ps, stop, kill, logs). citty reads its own
// copy for --help, but it takes an unknown option as a value and reads options inside the guest
// command of `burrow exec`; these verbs refuse what they do not know, in one line.

export interface OptionSpec {
  /** The long name, without "--". */
  name: string;
  /** One letter, without "-". */
  short?: string;
  /** flag: no value; value: the last one counts; list: every one, in order. */
  kind: "flag" | "value" | "list";
}

export interface CommandLineSpec {
  command: string;
  usage: string;
  options: OptionSpec[];
  /** Positionals required and allowed. */
  positionals: { min: number; max: number };
  /** After the last positional everything is the rest (exec's command), an optional leading "--" dropped. */
  rest?: boolean;
}

export interface CommandLine {
  flags: Set<string>;
  values: Map<string, string>;
  lists: Map<string, string[]>;
  positionals: string[];
  rest: string[];
}

export function parseCommandLine(args: readonly string[], spec: CommandLineSpec): CommandLine {
  const line: CommandLine = { flags: new Set(), values: new Map(), lists: new Map(), positionals: [], rest: [] };
  const fail = (why: string) => new Error(`${why} (usage: ${spec.usage})`);
  const byLong = new Map(spec.options.map((option) => [option.name, option]));
  const byShort = new Map(spec.options.filter((option) => option.short).map((option) => [option.short!, option]));
  const take = (option: OptionSpec, value: string | undefined, spelled: string) => {
    if (option.kind === "flag") {
      if (value !== undefined) throw fail(`${spelled} takes no value`);
      line.flags.add(option.name);
      return;
    }
    if (value === undefined) throw fail(`${spelled} needs a value`);
    if (option.kind === "value") line.values.set(option.name, value);
    else line.lists.set(option.name, [...(line.lists.get(option.name) ?? []), value]);
  };
  let index = 0;
  let optionsEnded = false;
  while (index < args.length) {
    const arg = args[index++]!;
    if (spec.rest && line.positionals.length === spec.positionals.max) {
      line.rest = arg === "--" ? args.slice(index) : args.slice(index - 1);
      return check(line, spec, fail);
    }
    if (optionsEnded || arg === "-" || !arg.startsWith("-")) {
      line.positionals.push(arg);
      continue;
    }
    if (arg === "--") {
      optionsEnded = true;
      continue;
    }
    if (arg.startsWith("--")) {
      const equals = arg.indexOf("=");
      const name = arg.slice(2, equals < 0 ? undefined : equals);
      const option = byLong.get(name);
      if (!option) throw fail(`unknown option --${name}`);
      const inline = equals < 0 ? undefined : arg.slice(equals + 1);
      take(option, inline ?? (option.kind === "flag" ? undefined : args[index++]), `--${name}`);
      continue;
    }
    // Short options, grouped as -it; a value-taking one ends the group with its value (-eK=V, -e K=V).
    for (let at = 1; at < arg.length; at++) {
      const option = byShort.get(arg[at]!);
      if (!option) throw fail(`unknown option -${arg[at]}`);
      if (option.kind === "flag") {
        take(option, undefined, `-${arg[at]}`);
        continue;
      }
      const attached = arg.slice(at + 1);
      take(option, attached !== "" ? attached : args[index++], `-${arg[at]}`);
      break;
    }
  }
  return check(line, spec, fail);
}

function check(line: CommandLine, spec: CommandLineSpec, fail: (why: string) => Error): CommandLine {
  const count = line.positionals.length;
  if (count < spec.positionals.min) throw fail(count === 0 ? "missing arguments" : "too few arguments");
  if (count > spec.positionals.max) throw fail(`unexpected argument ${JSON.stringify(line.positionals[spec.positionals.max])}`);
  if (spec.rest && line.rest.length === 0) throw fail("no command to run");
  return line;
}
