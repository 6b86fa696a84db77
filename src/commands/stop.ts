// `burrow stop NAME`: the guest's orderly stop (the workload's SIGTERM, its grace, teardown, power
// off), then the wait until the VM's `burrow run` is gone, so the name is free when this returns.
import { defineCommand } from "citty";
import { ChannelClosedError, GuestError } from "../control/client";
import { ErrorCode } from "../control/wire";
import { describeError } from "../errors";
import { lookupVm, ownerAlive, type VmRecord } from "../host/vm-registry";
import { hostStopWaitMs } from "../stop-port";
import { parseCommandLine } from "./command-line";
import { connectVm } from "./vm-connection";

export const STOP_USAGE = "burrow stop NAME";
/** The guest's default burrow.stop-timeout (the host cannot see a VM's own). */
const GUEST_STOP_TIMEOUT_MS = 5000;
/** After the guest powered off: QEMU's exit and burrow run's own teardown. */
const HOST_TEARDOWN_MS = 3000;
const POLL_MS = 100;

export function parseStopArgs(args: readonly string[]): { name: string } {
  const line = parseCommandLine(args, { command: "stop", usage: STOP_USAGE, options: [], positionals: { min: 1, max: 1 } });
  return { name: line.positionals[0]! };
}

/** Resolves true once the owner is gone, false when `waitMs` passed first. */
async function ownerGone(record: VmRecord, waitMs: number): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  while (ownerAlive(record)) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(POLL_MS);
  }
  return true;
}

export async function runStop(name: string): Promise<number> {
  const { record } = lookupVm(name);
  const waitMs = hostStopWaitMs(GUEST_STOP_TIMEOUT_MS) + HOST_TEARDOWN_MS;
  const seconds = Math.ceil(waitMs / 1000);
  let connection;
  try {
    connection = await connectVm(name);
  } catch (error) {
    // No channel yet (a VM still booting) or none that answers: its burrow run stops it on SIGTERM,
    // in order when it can, else by stopping QEMU.
    try {
      process.kill(record.ownerPid, "SIGTERM");
    } catch {
      // Gone meanwhile: the wait below sees it.
    }
    if (!(await ownerGone(record, waitMs))) throw new Error(`VM ${name} did not stop within ${seconds} s of SIGTERM to its burrow run (pid ${record.ownerPid}; its channel: ${describeError(error)})`);
    return 0;
  }
  try {
    await connection.client.stop();
  } catch (error) {
    // Already stopping, or it powered off before the answer came: either way, the wait below.
    const underWay = (error instanceof GuestError && error.code === ErrorCode.STOPPING) || error instanceof ChannelClosedError;
    if (!underWay) throw new Error(`VM ${name}: the stop request failed: ${describeError(error)}`);
  } finally {
    connection.client.close();
  }
  if (!(await ownerGone(record, waitMs))) throw new Error(`VM ${name} did not stop within ${seconds} s of the stop request (burrow run pid ${record.ownerPid} still runs)`);
  return 0;
}

export const stop = defineCommand({
  meta: { name: "stop", description: "Stop a named VM in order (the workload's SIGTERM, its grace period, power off) and wait until it is gone" },
  args: { name: { type: "positional", required: false, description: "the VM's name" } },
  async run({ rawArgs }) {
    process.exitCode = await runStop(parseStopArgs(rawArgs).name);
  },
});
