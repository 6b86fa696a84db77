// `burrow logs NAME [-f]`: a named VM's console.log; with -f, what it prints next, until the VM ends.
import { defineCommand } from "citty";
import { open } from "node:fs/promises";
import { lookupVm, ownerAlive } from "../host/vm-registry";
import { parseCommandLine } from "./command-line";
import { BROKEN_PIPE_STATUS, guardOutput, isBrokenPipe, writeOut } from "./output";

export const LOGS_USAGE = "burrow logs NAME [-f]";
const CHUNK_BYTES = 65_536;
const FOLLOW_POLL_MS = 200;

export function parseLogsArgs(args: readonly string[]): { name: string; follow: boolean } {
  const line = parseCommandLine(args, { command: "logs", usage: LOGS_USAGE, options: [{ name: "follow", short: "f", kind: "flag" }], positionals: { min: 1, max: 1 } });
  return { name: line.positionals[0]!, follow: line.flags.has("follow") };
}

export async function runLogs(name: string, follow: boolean): Promise<number> {
  const { paths, record } = lookupVm(name);
  let file: Awaited<ReturnType<typeof open>>;
  try {
    file = await open(paths.consoleLog, "r");
  } catch (error) {
    throw new Error(`VM ${name} has no console.log yet: ${(error as Error).message}`);
  }
  // The open file outlives the VM's directory: what it printed last is still read after it ended.
  const unguard = guardOutput(() => {}); // the failed write itself says it
  try {
    const buffer = new Uint8Array(CHUNK_BYTES);
    for (;;) {
      // Checked before the read: a VM that ended wrote its last bytes before it went.
      const running = follow && ownerAlive(record);
      const { bytesRead } = await file.read(buffer, 0, CHUNK_BYTES, null);
      if (bytesRead > 0) {
        try {
          await writeOut(process.stdout, buffer.slice(0, bytesRead));
        } catch (error) {
          if (isBrokenPipe(error)) return BROKEN_PIPE_STATUS;
          throw new Error(`cannot write VM ${name}'s console: ${(error as Error).message}`);
        }
        continue;
      }
      if (!running) return 0;
      await Bun.sleep(FOLLOW_POLL_MS);
    }
  } finally {
    unguard();
    await file.close();
  }
}

export const logs = defineCommand({
  meta: { name: "logs", description: "Print a named VM's console (its console.log); -f follows it until the VM ends" },
  args: {
    follow: { type: "boolean", alias: "f", description: "keep printing what the console prints until the VM ends" },
    name: { type: "positional", required: false, description: "the VM's name" },
  },
  async run({ rawArgs }) {
    const { name, follow } = parseLogsArgs(rawArgs);
    process.exitCode = await runLogs(name, follow);
  },
});
