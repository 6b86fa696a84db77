// burrow-oci: runc's command line over burrow microVMs (`burrow oci …`; dist/burrow-oci runs it).
// Every failure is one line on stderr and, with --log, a record in that file as runc writes it
// (JSON with --log-format json: containerd shows the last error from it, else only "unable to
// retrieve OCI runtime error").
import { appendFileSync } from "node:fs";
import { BURROW_VERSION } from "../boot/version";
import { describeError, ExitStatusError } from "../errors";
import { type GlobalOptions, type ParsedLine, parseCommandLine, singleId, UsageError, VERBS, type VerbLine } from "./command-line";
import { containerPaths } from "./container-dir";
import { createContainer } from "./create";
import { execInContainer, runExecHolder } from "./exec";
import { runHolder } from "./holder";
import { containerPs, containerState, deleteContainer, features, killContainer, parseSignal, pauseContainer, startContainer } from "./lifecycle";

const USAGE = `usage: burrow-oci [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND [OPTIONS] ID
Each container is a burrow microVM; runc's command line (docs/oci/).
commands: ${VERBS.join(", ")}
`;

type Level = "error" | "warning" | "debug";

function logLine(globals: GlobalOptions | null, level: Level, message: string): void {
  if (globals?.log) {
    const time = new Date().toISOString();
    const line = globals.logFormat === "json" ? JSON.stringify({ level, msg: message, time }) : `time="${time}" level=${level} msg=${JSON.stringify(message)}`;
    try {
      appendFileSync(globals.log, `${line}\n`);
    } catch {
      // The engine's log is gone: stderr still has the line.
    }
  }
}

function fail(globals: GlobalOptions | null, error: unknown): number {
  const message = describeError(error);
  process.stderr.write(`burrow-oci: ${message}\n`);
  logLine(globals, "error", message);
  if (error instanceof UsageError) return 2;
  return error instanceof ExitStatusError ? error.exitStatus : 1;
}

function write(text: string): number {
  process.stdout.write(text);
  return 0;
}

async function dispatch(globals: GlobalOptions, line: VerbLine): Promise<number> {
  const debug = (message: string) => {
    if (globals.debug) {
      logLine(globals, "debug", message);
      if (!globals.log) process.stderr.write(`burrow-oci: debug: ${message}\n`);
    }
  };
  for (const option of globals.ignored) debug(`${option} does not apply to a VM-backed container; ignored`);
  switch (line.verb) {
    case "create": {
      const preserve = line.values.get("preserve-fds");
      if (preserve !== undefined && preserve !== "0") throw new UsageError("create --preserve-fds: passing extra fds into a VM is not supported");
      await createContainer(globals, { id: singleId(line), bundle: line.values.get("bundle") ?? process.cwd(), pidFile: line.values.get("pid-file") ?? null, consoleSocket: line.values.get("console-socket") ?? null }, debug);
      return 0;
    }
    case "start":
      await startContainer(globals.root, singleId(line));
      return 0;
    case "state":
      return write(containerState(globals.root, singleId(line)));
    case "kill": {
      const id = singleId(line, 1);
      await killContainer(globals.root, id, parseSignal(line.positionals[1]));
      return 0;
    }
    case "delete":
      await deleteContainer(globals.root, singleId(line), line.flags.has("force"));
      return 0;
    case "pause":
    case "resume":
      await pauseContainer(globals.root, singleId(line), line.verb === "pause");
      return 0;
    case "ps":
      return write(containerPs(globals.root, singleId(line), line.values.get("format")));
    case "features":
      return write(features());
    case "exec": {
      const preserve = line.values.get("preserve-fds");
      if (preserve !== undefined && preserve !== "0") throw new UsageError("exec --preserve-fds: passing extra fds into a VM is not supported");
      const [id, ...args] = line.positionals;
      return execInContainer(globals, {
        id: singleId({ ...line, positionals: [id ?? ""] }),
        processFile: line.values.get("process") ?? null,
        args,
        detach: line.flags.has("detach"),
        pidFile: line.values.get("pid-file") ?? null,
        tty: line.flags.has("tty"),
        consoleSocket: line.values.get("console-socket") ?? null,
        cwd: line.values.get("cwd") ?? null,
        env: line.lists.get("env") ?? [],
        user: line.values.get("user") ?? null,
      });
    }
    case "holder":
      return runHolder(containerPaths(globals.root, singleId(line)));
    case "exec-holder": {
      const file = line.values.get("process");
      if (file === undefined) throw new UsageError("exec-holder needs --process");
      return runExecHolder(globals, singleId(line), file, line.flags.has("tty"));
    }
  }
}

/** `burrow oci ARGS…`: the exit status. */
export async function ociMain(args: string[]): Promise<number> {
  let parsed: ParsedLine;
  try {
    parsed = parseCommandLine(args);
  } catch (error) {
    return fail(null, error);
  }
  if (parsed.version) return write(`burrow-oci version ${BURROW_VERSION}\nspec: 1.0.2\n`);
  if (parsed.help || parsed.command === null) {
    process.stdout.write(USAGE);
    return parsed.help ? 0 : 2;
  }
  try {
    return await dispatch(parsed.globals, parsed.command);
  } catch (error) {
    return fail(parsed.globals, error);
  }
}
