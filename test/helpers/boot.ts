// Boot a guest in QEMU (TCG) for a test and parse what it reported.
import { runVm, type RunOptions, type RunResult } from "../../src/host/qemu";
import { INITRAMFS, KERNEL, requireArtifacts } from "./artifacts";

export interface BootResult extends RunResult {
  /** "agent: key rest" lines: key → values in order. */
  agent: Map<string, string[]>;
  /** Lines printed by burrow (console or kmsg echo), without timestamps. */
  burrow: string[];
}

export async function boot(options: Partial<RunOptions> = {}): Promise<BootResult> {
  const kernel = options.kernel ?? KERNEL;
  const initrd = options.initrd === undefined ? INITRAMFS : options.initrd;
  requireArtifacts(kernel, ...(initrd ? [initrd] : []), ...(options.disks ?? []));
  const result = await runVm({
    kernel,
    initrd,
    disks: [],
    ports: [],
    mem: "512M",
    smp: 1,
    machine: "microvm",
    accel: "tcg",
    append: "",
    timeoutSeconds: 90,
    ...options,
  }, process.env.BURROW_TEST_CONSOLE ? (text) => process.stderr.write(text) : undefined);
  const agent = new Map<string, string[]>();
  const burrow: string[] = [];
  for (const raw of result.output.split(/\r?\n/)) {
    const line = raw.replace(/^\[\s*[\d.]+\]\s*/, "");
    const agentMatch = /^agent: (\S+?)(?:[ =](.*))?$/.exec(line);
    if (agentMatch) {
      const list = agent.get(agentMatch[1]!) ?? [];
      list.push(agentMatch[2] ?? "");
      agent.set(agentMatch[1]!, list);
    }
    if (/^burrow(\/\w+)?: /.test(line)) burrow.push(line);
  }
  return { ...result, agent, burrow };
}

/** Explain a failed expectation with the guest's console tail. */
export function tail(result: RunResult, lines = 60): string {
  return result.output.split("\n").slice(-lines).join("\n");
}
