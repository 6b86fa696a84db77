// Setup scripts (`--setup-script CMD` init arguments): each runs under /bin/sh before the worker
// starts, and the KEY=VALUE lines it prints go into the worker's environment.
import type { Subprocess } from "bun";
import { describeError } from "../../errors";
import { log } from "../../log";
import type { Reaper } from "./reaper";
import { workerBaseEnv } from "./worker";

/** /bin/sh -c SCRIPT: stderr inherited, stdout captured; each KEY=VALUE line is for the worker. */
export async function runSetupScript(script: string, context: { reaper: Pick<Reaper, "track" | "untrack"> }, env: Record<string, string> = workerBaseEnv()): Promise<[string, string][]> {
  log.info(`running provided setup script ${script}`);
  let child;
  try {
    child = Bun.spawn(["/bin/sh", "-c", script], { stdin: "ignore", stdout: "pipe", stderr: "inherit", env });
  } catch (error) {
    throw new Error(`setup script ${JSON.stringify(script)} failed to start: ${describeError(error)}`);
  }
  context.reaper.track(child.pid);
  try {
    const [stdout] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    if (child.exitCode !== 0) throw new Error(`setup script ${JSON.stringify(script)} failed: ${describeStatus(child)}`);
    const pairs: [string, string][] = [];
    for (const line of stdout.split("\n")) {
      const equals = line.indexOf("=");
      if (equals < 0) continue;
      if (equals === 0) {
        log.warn(`setup script ${JSON.stringify(script)}: ignoring ${JSON.stringify(line)} (no variable name)`);
        continue;
      }
      const pair: [string, string] = [line.slice(0, equals), line.slice(equals + 1)];
      log.info(`setting env var ${pair[0]}=${pair[1]}`);
      pairs.push(pair);
    }
    return pairs;
  } finally {
    context.reaper.untrack(child.pid);
  }
}

/** How a child ended, for a message: its exit status or the signal that killed it. */
export function describeStatus(child: Pick<Subprocess, "exitCode" | "signalCode">): string {
  return child.exitCode !== null ? `exit status ${child.exitCode}` : `signal ${child.signalCode ?? "unknown"}`;
}
