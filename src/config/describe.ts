// `burrow cmdline`: the effective configuration as JSON, with the problems as warnings.
import { parseConfig } from "./config";
import { parseParavisorArgs } from "../modes/paravisor/options";

export function describeCmdline(text: string): { json: Record<string, unknown>; warnings: string[] } {
  const config = parseConfig(text);
  const { problems, ...rest } = config;
  const json: Record<string, unknown> = { ...rest };
  if (config.mode === "paravisor") {
    const { setupScripts, workerArgs } = parseParavisorArgs(config.initArgs);
    json.plan = {
      setupScripts,
      worker: { path: config.worker, argv: [config.worker, "--pid", "/run/underhill.pid", ...workerArgs] },
      onexit: config.onexit,
    };
  } else {
    json.plan = { root: config.root, agent: { path: config.agent, argv: [config.agent, ...config.initArgs] } };
  }
  return { json, warnings: problems.map((problem) => problem.message) };
}
