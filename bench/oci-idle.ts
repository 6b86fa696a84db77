// bench-oci's idle part: what an idle container costs the host in memory. `podman run -d
// --network none IMAGE sleep 3600` with each runtime; after it has been idle a while, the PSS and
// RSS (/proc/PID/smaps_rollup) of every host process of the container — the pid Podman records
// (burrow-oci's holder, runc's container process) and all its descendants (burrow-oci's QEMU) —
// and, apart, of the container's conmon (the engine's, the same for every runtime). Then
// `podman rm -f`.
import { readdirSync, readFileSync } from "node:fs";
import { checkNoContainersLeft, checkTemplate, log, median, noTemplateNote, podmanAsync, podmanWith, range, RUNTIME_TITLES, RUNTIMES, type Runtime, type TemplateCheck, TEST_IMAGE, ULIMITS, verdict, within } from "./oci-common";

/** The goal (issue 30): an idle burrow-oci container at most this much host PSS. */
export const IDLE_GOAL_MIB = 40;

export interface ProcessMemory { pid: number; comm: string; role: string; pssKiB: number; rssKiB: number }
export interface IdleSample { pssKiB: number; rssKiB: number; processes: ProcessMemory[]; conmon: ProcessMemory | null }
export interface IdleData { runs: number; idleSeconds: number; command: string[]; samples: Record<Runtime, IdleSample[]>; template?: TemplateCheck }

const COMMAND = ["sleep", "3600"];

/** Every process's parent, from /proc/PID/stat (the field after the parenthesised name, which may hold spaces). */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      out.set(Number(name), ppid);
    } catch {
      // Gone between the listing and the read.
    }
  }
  return out;
}

/** `root` and every process under it. */
function withDescendants(root: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const [pid, ppid] of parents()) byParent.set(ppid, [...(byParent.get(ppid) ?? []), pid]);
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(byParent.get(pid) ?? []));
  }
  return out;
}

function memoryOf(pid: number, role: string): ProcessMemory {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(rollup);
    if (!match) throw new Error(`/proc/${pid}/smaps_rollup has no ${name} line`);
    return Number(match[1]);
  };
  const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  return { pid, comm, role, pssKiB: field("Pss"), rssKiB: field("Rss") };
}

async function measureOne(runtime: Runtime, idleSeconds: number): Promise<IdleSample> {
  const id = await podmanAsync([...podmanWith(runtime), "run", "-d", "--network", "none", ...ULIMITS, TEST_IMAGE, ...COMMAND], `run -d (${runtime})`);
  try {
    await Bun.sleep(idleSeconds * 1000);
    const [pidText, conmonText, running] = (await podmanAsync([...podmanWith(runtime), "inspect", "--format", "{{.State.Pid}} {{.State.ConmonPid}} {{.State.Running}}", id], "inspect")).split(" ");
    if (running !== "true") throw new Error(`${runtime}: the container ${id.slice(0, 12)} is not running after ${idleSeconds} s idle`);
    const root = Number(pidText);
    const burrow = runtime !== "runc";
    const processes = withDescendants(root).map((pid) => {
      if (pid === root) return memoryOf(pid, burrow ? "holder" : "container");
      const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      return memoryOf(pid, comm.startsWith("qemu") ? "qemu" : "other");
    });
    if (burrow && !processes.some((process) => process.role === "qemu")) throw new Error(`${runtime}: no QEMU under the holder ${root}: ${processes.map((process) => process.comm).join(", ")}`);
    const conmon = Number(conmonText) > 0 ? memoryOf(Number(conmonText), "conmon") : null;
    const sum = (key: "pssKiB" | "rssKiB") => processes.reduce((total, process) => total + process[key], 0);
    return { pssKiB: sum("pssKiB"), rssKiB: sum("rssKiB"), processes, conmon };
  } finally {
    await within(podmanAsync([...podmanWith(runtime), "rm", "--force", "--time", "0", id], "rm -f"), 60_000, () => "");
  }
}

export async function measureIdle(runs: number, idleSeconds: number, warmUp: boolean): Promise<IdleData> {
  const samples = Object.fromEntries(RUNTIMES.map((runtime) => [runtime, [] as IdleSample[]])) as Record<Runtime, IdleSample[]>;
  // burrow-oci's template is built by its first fitting create: done here when the podman part did not run first.
  if (warmUp) await podmanAsync([...podmanWith("burrow-oci"), "run", "--rm", "--network", "none", ...ULIMITS, TEST_IMAGE, "true"], "run (the template's first create)");
  for (let run = 1; run <= runs; run++) {
    const order = RUNTIMES.map((_, index) => RUNTIMES[(index + run - 1) % RUNTIMES.length]!);
    for (const runtime of order) samples[runtime].push(await measureOne(runtime, idleSeconds));
    log(`idle run ${run}: ${RUNTIMES.map((runtime) => `${runtime} ${(samples[runtime].at(-1)!.pssKiB / 1024).toFixed(1)} MiB PSS`).join(", ")}`);
  }
  checkNoContainersLeft("the idle containers' rm -f");
  return { runs, idleSeconds, command: COMMAND, samples, template: await checkTemplate() };
}

const mib = (kib: number) => kib / 1024;

export function idleSection(data: IdleData): string[] {
  const cell = (runtime: Runtime, pick: (sample: IdleSample) => number | null) => {
    const xs = data.samples[runtime].map(pick).filter((x): x is number => x !== null).map(mib);
    return xs.length ? `${range(xs, 1)} MiB` : "—";
  };
  const role = (name: string) => (sample: IdleSample) => {
    const matching = sample.processes.filter((process) => process.role === name);
    return matching.length ? matching.reduce((total, process) => total + process.pssKiB, 0) : null;
  };
  const row = (what: string, pick: (sample: IdleSample) => number | null, goal: string) => `| ${what} | ${RUNTIMES.map((runtime) => cell(runtime, pick)).join(" | ")} | ${goal} |`;
  const goal = (runtime: Runtime) => {
    const pss = median(data.samples[runtime].map((sample) => mib(sample.pssKiB)));
    return `${runtime === "burrow-oci" ? "template" : "cold"}: ${verdict(pss <= IDLE_GOAL_MIB)}`;
  };
  const others = RUNTIMES.some((runtime) => data.samples[runtime].some((sample) => sample.processes.some((process) => process.role === "other")));
  return [
    `${data.runs} runs of each, the three interleaved (the order turned each run), on the Podman store, image, ulimits and runtime wrappers described under podman run. Each run: \`podman run -d --network none ${ULIMITS.join(" ")} IMAGE ${data.command.join(" ")}\`; **${data.idleSeconds} s** after it returned (the container's process running), the pid Podman records (\`podman inspect --format '{{.State.Pid}}'\`: for burrow-oci its holder, the \`burrow oci\` process that runs QEMU and holds the container's stdio; for runc the container's own process) and every process under it, each one's \`Pss\` and \`Rss\` from /proc/PID/smaps_rollup, summed; conmon (\`{{.State.ConmonPid}}\`), the engine's and the same for every runtime, apart; then \`podman rm -f\`. burrow-oci's guest: 256 MiB, 1 vCPU, QEMU TCG; restored from the template, its RAM is the template's RAM file mapped private (only the pages the guest has touched are read in); booted cold, anonymous memory. Each process's part in oci.json. Medians (min–max).`,
    "",
    `| measurement (host memory, /proc/PID/smaps_rollup; MiB = 2^20 bytes) | ${RUNTIMES.map((runtime) => RUNTIME_TITLES[runtime]).join(" | ")} | goal: burrow-oci ≤ ${IDLE_GOAL_MIB} MiB PSS (median) |`,
    `|---|${RUNTIMES.map(() => "---").join("|")}|---|`,
    row("**PSS** of the container's host processes (burrow-oci: the holder, QEMU and any other descendant; runc: the container's process and its descendants)", (sample) => sample.pssKiB, `${goal("burrow-oci")}; ${goal("burrow-oci-cold")}`),
    row("of which the holder (burrow-oci's `burrow oci` process, the pid Podman records)", role("holder"), "—"),
    row("of which QEMU", role("qemu"), "—"),
    ...(others ? [row("of which other descendants", role("other"), "—")] : []),
    row("RSS of the same processes (summed: pages shared between them counted in each)", (sample) => sample.rssKiB, "—"),
    row("conmon, the engine's monitor of the container (PSS; not in the rows above)", (sample) => sample.conmon?.pssKiB ?? null, "—"),
    row("conmon's RSS", (sample) => sample.conmon?.rssKiB ?? null, "—"),
    ...(data.template && data.template.saved === 0 ? ["", noTemplateNote(data.template)] : []),
  ];
}
