// underhill_init's init-argument rules: leading `--setup-script CMD` / `--setup-script=CMD`
// options (repeatable), then everything from the first other argument (or after a bare `--`)
// goes to the worker.

export interface ParavisorOptions {
  setupScripts: string[];
  workerArgs: string[];
}

export function parseParavisorArgs(args: readonly string[]): ParavisorOptions {
  const setupScripts: string[] = [];
  let index = 0;
  while (index < args.length) {
    const arg = args[index]!;
    if (arg === "--") {
      index++;
      break;
    }
    if (!arg.startsWith("--") || arg.length <= 2) break;
    const equals = arg.indexOf("=");
    const name = equals < 0 ? arg : arg.slice(0, equals);
    if (name !== "--setup-script") break; // an unknown option starts the worker's arguments
    if (equals >= 0) {
      setupScripts.push(arg.slice(equals + 1));
      index++;
      continue;
    }
    if (index + 1 >= args.length) {
      // A trailing option without its value ends parsing and is not kept.
      index = args.length;
      break;
    }
    setupScripts.push(args[index + 1]!);
    index += 2;
  }
  return { setupScripts, workerArgs: args.slice(index) };
}

/** underhill_init writes the worker's pid here; the worker is told where with --pid. */
const WORKER_PID_FILE = "/run/underhill.pid";

export function paravisorWorkerArgv(worker: string, workerArgs: readonly string[]): string[] {
  return [worker, "--pid", WORKER_PID_FILE, ...workerArgs];
}
