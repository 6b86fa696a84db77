// restore(): `burrow run --snapshot-restore` as a function, the clone handed out once it resumed
// as its own instance and its supervisor answers on the control channel.
import { describeError } from "../errors";
import { parseForward, RUN_DEFAULTS } from "../host/options";
import { parsePortSpec } from "../host/qemu-argv";
import { guestStopWaitMs } from "../host/run-checks";
import { type RestoreOptions, restoreSnapshot } from "../host/snapshot";
import { readManifest } from "../host/snapshot-manifest";
import { BootError } from "./errors";
import { launch } from "./launch";
import type { Vm } from "./vm";

export interface RestoreVmOptions {
  /** The agent's arguments for this instance; absent or null: the saved command line's. */
  args?: string[] | null;
  /** Variables for the agent (the guest refuses PATH, HOME, BUN_*, LD_* and the like). */
  env?: Record<string, string>;
  /** Default a fresh random id; give each clone its own. */
  instance?: string;
  /** "NAME=FILE" for the saved ports, as --port. */
  ports?: string[];
  /** "[tcp:|udp:]HOSTPORT:GUESTPORT" for this clone (the save had a NIC), as --forward. */
  forwards?: string[];
  /** The clone's whole life: QEMU is killed after it. Default 120, at most 7 days. */
  timeoutSeconds?: number;
  tcgTbSizeMiB?: number;
  /** The serial console as it comes. */
  onOutput?: (text: string) => void;
  /** Aborting kills QEMU: restore() then rejects, or the running clone ends. */
  signal?: AbortSignal;
}

/**
 * Restores a clone of the snapshot in `dir`; resolves once it resumed and its supervisor answers.
 * Rejects with one BootError when the snapshot or an option is refused (before QEMU starts), or
 * the clone ends or fails first (QEMU gone).
 */
export async function restore(dir: string, options: RestoreVmOptions = {}): Promise<Vm> {
  let request: RestoreOptions;
  let stopWaitMs: number | null;
  try {
    stopWaitMs = guestStopWaitMs(readManifest(dir).options.append);
    request = {
      args: options.args ?? null,
      env: Object.entries(options.env ?? {}),
      ...(options.instance === undefined ? {} : { instance: options.instance }),
      ports: (options.ports ?? []).map(parsePortSpec),
      forwards: (options.forwards ?? []).map(parseForward),
      timeoutSeconds: options.timeoutSeconds ?? RUN_DEFAULTS.timeoutSeconds,
      ...(options.tcgTbSizeMiB === undefined ? {} : { tcgTbSizeMiB: options.tcgTbSizeMiB }),
    };
  } catch (error) {
    throw new BootError(`restore: ${describeError(error)}`);
  }
  if (stopWaitMs === null) throw new BootError(`restore: ${dir} was saved with burrow.supervise=0: its agent replaces the supervisor the API drives`);
  return launch({
    what: "restore",
    stopWaitMs,
    awaitResume: true,
    signal: options.signal,
    start: (hooks) => restoreSnapshot(dir, {
      ...request,
      signal: hooks.signal,
      onQemu: hooks.spawned,
      onControl: hooks.control,
      onResumed: hooks.resumed,
    }, options.onOutput),
  });
}
