// `burrow kill NAME [SIGNAL]`: a signal to a named VM's workload (default SIGKILL).
import { defineCommand } from "citty";
import { constants } from "node:os";
import { parseCommandLine } from "./command-line";
import { connectVm } from "./vm-connection";

export const KILL_USAGE = "burrow kill NAME [SIGNAL]";

/** KILL, SIGKILL, kill or 9: a signal's number (1-64, real-time ones by number). */
export function parseSignal(text: string): number {
  if (/^\d+$/.test(text)) {
    const number = Number(text);
    if (number >= 1 && number <= 64) return number;
  } else {
    const upper = text.toUpperCase();
    const name = (upper.startsWith("SIG") ? upper : `SIG${upper}`) as NodeJS.Signals;
    const number = Object.hasOwn(constants.signals, name) ? constants.signals[name] : undefined;
    if (number !== undefined) return number;
  }
  throw new Error(`bad signal ${JSON.stringify(text)} (a name like TERM or SIGTERM, or a number 1-64)`);
}

export function parseKillArgs(args: readonly string[]): { name: string; signal: number } {
  const line = parseCommandLine(args, { command: "kill", usage: KILL_USAGE, options: [], positionals: { min: 1, max: 2 } });
  return { name: line.positionals[0]!, signal: parseSignal(line.positionals[1] ?? "SIGKILL") };
}

export async function runKill(name: string, signal: number): Promise<number> {
  const { client } = await connectVm(name);
  try {
    await client.signalWorkload(signal);
  } catch (error) {
    throw new Error(`VM ${name}: ${(error as Error).message}`);
  } finally {
    client.close();
  }
  return 0;
}

export const kill = defineCommand({
  meta: { name: "kill", description: "Send a signal to a named VM's workload (default SIGKILL; TERM, SIGTERM or 15)" },
  args: {
    name: { type: "positional", required: false, description: "the VM's name" },
    signal: { type: "positional", required: false, description: "a signal name (with or without SIG) or number (default SIGKILL)" },
  },
  async run({ rawArgs }) {
    const { name, signal } = parseKillArgs(rawArgs);
    process.exitCode = await runKill(name, signal);
  },
});
