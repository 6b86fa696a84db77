// `burrow cmdline`: the effective configuration as JSON, with the problems as warnings. A CLI
// view (it shows each mode's plan), so it lives beside the CLI, above config/ and the modes.
import { parseConfig } from "./config/config";
import { paravisorWorkerArgv, parseParavisorArgs } from "./modes/paravisor/options";

export function describeCmdline(text: string | Uint8Array): { json: Record<string, unknown>; warnings: string[] } {
  const config = parseConfig(text);
  const { problems, moduleParams, ...rest } = config;
  const json: Record<string, unknown> = { ...rest, moduleParams: Object.fromEntries(moduleParams) };
  if (config.mode === "paravisor") {
    const { setupScripts, workerArgs } = parseParavisorArgs(config.initArgs);
    json.plan = { setupScripts, worker: { path: config.worker, argv: paravisorWorkerArgv(config.worker, workerArgs) }, onexit: config.onexit };
  } else {
    // Who is PID 1 once the agent runs: the resident supervisor (the default) or, with burrow.supervise=0, the agent.
    json.plan = { root: config.root, agent: { path: config.agent, argv: [config.agent, ...config.initArgs] }, pid1: config.supervise ? "supervisor" : "agent" };
  }
  return { json, warnings: problems.map((problem) => problem.message) };
}
