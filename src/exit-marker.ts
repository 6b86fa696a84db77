// The console line through which a guest tells `burrow run` its exit status. Both sides build it
// here, so the guest's text and the host's pattern cannot drift apart. The host puts a random
// per-run id on the kernel command line (burrow.runid=); burrow echoes it, so a line printed by
// anything that does not know this run's id (agent output, logs replayed to the console) is not
// taken for burrow's verdict.
export const EXIT_STATUS_MARKER = "burrow: guest exit status";

/** Run ids: what the host generates and the guest accepts (letters and digits, 8 to 64). */
export const RUN_ID_PATTERN = /^[A-Za-z0-9]{8,64}$/;

export function exitStatusLine(status: number, runId: string | null): string {
  return `${EXIT_STATUS_MARKER} ${status}${runId ? ` run ${runId}` : ""}`;
}

/** Every marker line carrying `runId` (global: the host takes the last one). */
export function exitStatusPattern(runId: string): RegExp {
  if (!RUN_ID_PATTERN.test(runId)) throw new Error(`bad run id ${JSON.stringify(runId)}`);
  return new RegExp(`${EXIT_STATUS_MARKER} (\\d{1,3}) run ${runId}(?=\\r?$)`, "gm");
}
