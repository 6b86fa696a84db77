// What runVm refuses before QEMU starts (a direct API caller included), and how long a guest has to stop.
import { existsSync } from "node:fs";
import { hostArch } from "../arch";
import { splitAppend } from "../config/cmdline";
import { parseConfig } from "../config/config";
import { RUN_ID_PATTERN } from "../exit-marker";
import { hostStopWaitMs } from "../stop-port";
import { checkMachine, checkSmp, checkTcgTbSizeUnder, checkTimeout, parseMem } from "./options";
import type { RunOptions } from "./run-options";

/**
 * The rules a run's options must meet, in one place: `burrow run`'s plan applies them before
 * anything starts, and runVm again (they are cheap) for a caller that builds RunOptions itself.
 */
export function checkRunInputs(options: RunOptions): void {
  const missing: string[] = [];
  if (!existsSync(options.kernel)) missing.push(`kernel ${options.kernel}`);
  if (options.initrd && !existsSync(options.initrd)) missing.push(`initrd ${options.initrd}`);
  for (const disk of [...options.disks, ...(options.serialDisks ?? []).map((entry) => entry.file)]) if (!existsSync(disk)) missing.push(`disk ${disk}`);
  for (const share of options.shares ?? []) if (!existsSync(share.path)) missing.push(`share ${share.tag} directory ${share.path}`);
  if (options.netns !== undefined && !existsSync(options.netns)) missing.push(`network namespace ${options.netns}`);
  if (missing.length) throw new Error(`not found: ${missing.join(", ")}`);
  checkTimeout(options.timeoutSeconds);
  checkSmp(options.smp);
  checkMachine(options.arch ?? hostArch(), options.machine);
  parseMem(options.mem);
  if (options.tcgTbSizeMiB !== undefined) checkTcgTbSizeUnder(options.accel, options.tcgTbSizeMiB);
  if (options.runId !== undefined && !RUN_ID_PATTERN.test(options.runId)) throw new Error(`bad run id ${JSON.stringify(options.runId)} (8 to 64 letters and digits)`);
  // The id must come from this run alone, or a guest could be told which marker to forge.
  if (splitAppend(options.append).kernelWords.some((word) => word.startsWith("burrow.runid="))) throw new Error(`burrow.runid= is set by burrow run itself; remove it from --append`);
}

/**
 * How long the host gives a guest to stop after it asked it to, or null: the guest keeps no stop
 * port (only the resident supervisor, burrow.supervise=1, reads one).
 */
export function guestStopWaitMs(append: string): number | null {
  const config = parseConfig(append);
  return config.supervise ? hostStopWaitMs(config.stopTimeoutMs) : null;
}
