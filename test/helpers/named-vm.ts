// A detached named VM (`burrow run --name NAME --detach`) for a boot test, in a state directory of
// its own, always cleaned up: `burrow stop`, then SIGKILL to its burrow run if that did not end it
// (QEMU dies with it: pdeathsig), then the state directory removed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readVmRecord, vmPaths } from "../../src/host/vm-registry";
import { BURROW } from "./artifacts";

export interface NamedVm {
  name: string;
  /** BURROW_STATE_DIR for every burrow command aimed at this VM. */
  stateDir: string;
  /** Runs `burrow ARGS` against this VM's state directory. */
  burrow(args: string[], stdin?: string): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Stops the VM (in order, then by force) and removes its state directory; safe to call twice. */
  cleanup(): Promise<void>;
}

/** Starts the VM with `runArgs` (burrow run's, without --name/--detach); rejects with the run's reason if it never runs. */
export async function startNamedVm(name: string, runArgs: string[]): Promise<NamedVm> {
  const stateDir = mkdtempSync(join(tmpdir(), "burrow-named-"));
  const env = { ...process.env, BURROW_STATE_DIR: stateDir };
  const burrow = async (args: string[], stdin?: string) => {
    const child = Bun.spawn([BURROW, ...args], { env, stdin: stdin === undefined ? "ignore" : new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    return { stdout, stderr, code };
  };
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    const owner = readVmRecord(vmPaths(name, stateDir).record)?.ownerPid;
    if (owner !== undefined) {
      await burrow(["stop", name]);
      try {
        process.kill(owner, "SIGKILL");
      } catch {
        // Already gone: the stop did its work.
      }
    }
    rmSync(stateDir, { recursive: true, force: true });
  };
  // Split at the agent's "--": ours go before it.
  const dashes = runArgs.indexOf("--");
  const own = dashes < 0 ? runArgs : runArgs.slice(0, dashes);
  const agent = dashes < 0 ? [] : runArgs.slice(dashes);
  const started = await burrow(["run", ...own, "--name", name, "--detach", ...agent]);
  if (started.code !== 0) {
    await cleanup();
    throw new Error(`VM ${name} did not start (status ${started.code}): ${started.stderr.trim()}`);
  }
  return { name, stateDir, burrow, cleanup };
}
