// `burrow ps [--json]`: the named VMs under the state directory, each with what its guest says of
// its workload (asked with a short timeout: a VM that does not answer is "unreachable").
import { defineCommand } from "citty";
import { existsSync } from "node:fs";
import { ControlClient, type GuestInfo } from "../control/client";
import { listVms, type VmListing } from "../host/vm-registry";
import { parseCommandLine } from "./command-line";

export const PS_USAGE = "burrow ps [--json]";
/** ps must not hang on a wedged guest: each VM gets this long for the handshake and INFO. */
const INFO_TIMEOUT_MS = 1500;

export interface PsRow {
  name: string;
  state: VmListing["state"];
  pid: number | null;
  qemuPid: number | null;
  startedAt: string | null;
  uptimeSeconds: number | null;
  snapshot: string | null;
  /** The guest's answer; "unreachable" when it gave none in time; null for a stale VM. */
  workload: GuestInfo["workload"] | "unreachable" | null;
}

export function parsePsArgs(args: readonly string[]): { json: boolean } {
  const line = parseCommandLine(args, { command: "ps", usage: PS_USAGE, options: [{ name: "json", kind: "flag" }], positionals: { min: 0, max: 0 } });
  return { json: line.flags.has("json") };
}

async function askWorkload(socket: string): Promise<GuestInfo["workload"] | "unreachable"> {
  if (!existsSync(socket)) return "unreachable";
  let client: ControlClient | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("no answer")), INFO_TIMEOUT_MS)));
    client = await Promise.race([ControlClient.connect(socket, { timeoutMs: INFO_TIMEOUT_MS, helloTimeoutMs: INFO_TIMEOUT_MS }), deadline]);
    return (await Promise.race([client.info(), deadline])).workload;
  } catch {
    return "unreachable";
  } finally {
    clearTimeout(timer);
    client?.close();
  }
}

/** 42s, 5m07s, 3h02m, 2d04h. */
export function formatUptime(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const two = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor(s / 3600) % 24)}h`;
}

export function describeWorkload(workload: PsRow["workload"]): string {
  if (workload === null) return "-";
  if (workload === "unreachable") return "unreachable";
  if (workload.state === "exited") return `exited ${workload.exitCode ?? "?"}`;
  return workload.pid > 0 ? `${workload.state} (pid ${workload.pid})` : workload.state;
}

export async function psRows(now = Date.now()): Promise<PsRow[]> {
  return Promise.all(listVms().map(async (vm): Promise<PsRow> => {
    const started = vm.record ? Date.parse(vm.record.startedAt) : NaN;
    return {
      name: vm.name,
      state: vm.state,
      pid: vm.record?.ownerPid ?? null,
      qemuPid: vm.record?.qemuPid ?? null,
      startedAt: vm.record?.startedAt ?? null,
      uptimeSeconds: Number.isNaN(started) ? null : Math.max(0, Math.floor((now - started) / 1000)),
      snapshot: vm.record?.snapshot ?? null,
      workload: vm.state === "stale" ? null : await askWorkload(vm.paths.controlSocket),
    };
  }));
}

export function formatPsTable(rows: PsRow[]): string {
  const header = ["NAME", "STATE", "PID", "QEMU PID", "UPTIME", "WORKLOAD"];
  const cells = rows.map((row) => [row.name, row.state, String(row.pid ?? "-"), String(row.qemuPid ?? "-"), row.uptimeSeconds === null ? "-" : formatUptime(row.uptimeSeconds), describeWorkload(row.workload)]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((cell) => cell[column]!.length)));
  return [header, ...cells].map((cell) => cell.map((text, column) => (column === cell.length - 1 ? text : text.padEnd(widths[column]!))).join("  ")).join("\n") + "\n";
}

export const ps = defineCommand({
  meta: { name: "ps", description: "List the named VMs: NAME, STATE (running, starting, stale), PID, QEMU PID, UPTIME, WORKLOAD" },
  args: { json: { type: "boolean", description: "one JSON array instead of the table" } },
  async run({ rawArgs }) {
    const { json } = parsePsArgs(rawArgs);
    const rows = await psRows();
    process.stdout.write(json ? JSON.stringify(rows, null, 2) + "\n" : formatPsTable(rows));
  },
});
