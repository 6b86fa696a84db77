// A verb's way to a named VM: the registry's lookup, then a control client on the VM's socket, each
// failure one line naming the VM.
import { existsSync } from "node:fs";
import { ControlClient } from "../control/client";
import { describeError } from "../errors";
import { lookupVm, type VmPaths, type VmRecord } from "../host/vm-registry";

/** The mux answers HELLO itself: a socket that does not answer at once is not a running VM's. */
const HELLO_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 2000;

export interface VmConnection {
  client: ControlClient;
  paths: VmPaths;
  record: VmRecord;
}

export async function connectVm(name: string, options: { timeoutMs?: number } = {}): Promise<VmConnection> {
  const { paths, record } = lookupVm(name);
  // The owner serves the socket once the guest's supervisor answered; before that there is none.
  if (!existsSync(paths.controlSocket)) throw new Error(`VM ${name} is starting: its control channel is not up yet (burrow ps shows its state)`);
  try {
    const client = await ControlClient.connect(paths.controlSocket, { timeoutMs: options.timeoutMs ?? CONNECT_TIMEOUT_MS, helloTimeoutMs: options.timeoutMs ?? HELLO_TIMEOUT_MS });
    return { client, paths, record };
  } catch (error) {
    throw new Error(`VM ${name}: cannot reach its control channel: ${describeError(error)}`);
  }
}
