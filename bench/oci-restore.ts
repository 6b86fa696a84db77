// bench-oci's restore part: where a container's start from the template spends its time, without
// an engine. dist/burrow-oci driven directly as an engine would: `create` (its own --root in the
// run's directory, a bundle whose process is `true`, no network namespace path: no NIC), `start`
// at once, then the stop awaited and `delete`. The holder logs its phases (src/oci/holder.ts,
// src/oci/template.ts), each timed from QEMU's spawn in the holder's own clock; this part reads
// them from its log before the delete. The first create builds the template and is not counted.
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeTestRootfs } from "../test/helpers/oci-image";
import { BURROW_OCI, log, median, onCleanUp, range, verdict, work } from "./oci-common";

/** The goal (issue 30): template restore → the container's process started. */
export const RESTORE_GOAL_MS = 150;

export interface RestoreSample {
  /** From QEMU's spawn (the holder's clock). */
  commandsMs: number;
  loadedMs: number;
  answeredMs: number;
  attachedMs: number;
  readyMs: number;
  /** The start request reaching the holder → the workload's STARTED. */
  startMs: number;
  /** The holder's own start → QEMU's spawn. */
  holderToSpawnMs: number;
  /** Wall time on the bench's clock: the create command, the start command. */
  createWallMs: number;
  startWallMs: number;
}

export interface RestoreData { runs: number; command: string[]; samples: RestoreSample[] }

const COMMAND = ["true"];

/** Runs a burrow-oci command; its output to files, as the container's holder keeps create's stdio for the container. */
async function run(argv: string[], what: string, dir: string): Promise<number> {
  const errors = join(dir, "stderr");
  const out = openSync(join(dir, "stdout"), "w");
  const err = openSync(errors, "w");
  const started = performance.now();
  let child;
  try {
    child = Bun.spawn(argv, { stdin: "ignore", stdout: out, stderr: err });
  } finally {
    closeSync(out);
    closeSync(err);
  }
  const code = await child.exited;
  const ms = performance.now() - started;
  if (code !== 0) throw new Error(`${what}: exit status ${code}: ${readFileSync(errors, "utf8").trim()}`);
  return ms;
}

function number(log: string, pattern: RegExp, what: string): number[] {
  const match = pattern.exec(log);
  if (!match) throw new Error(`the holder's log has no ${what} line:\n${log}`);
  return match.slice(1).map(Number);
}

/** Containers created and not yet deleted: a bench that ends early deletes them (delete --force) on its way out. */
const undeleted = new Map<string, string>();
onCleanUp(() => {
  for (const [id, root] of undeleted) Bun.spawnSync([BURROW_OCI, "--root", root, "delete", "--force", id], { stdout: "ignore", stderr: "ignore" });
});

async function oneContainer(root: string, bundle: string, id: string): Promise<RestoreSample> {
  const oci = [BURROW_OCI, "--root", root];
  undeleted.set(id, root);
  const dir = join(root, "..", "output");
  const createWallMs = await run([...oci, "create", "--bundle", bundle, id], `create ${id}`, dir);
  const startWallMs = await run([...oci, "start", id], `start ${id}`, dir);
  for (const deadline = performance.now() + 60_000; ; await Bun.sleep(20)) {
    const state = Bun.spawnSync([...oci, "state", id], { stdout: "pipe", stderr: "pipe" });
    if (state.exitCode === 0 && JSON.parse(state.stdout.toString()).status === "stopped") break;
    if (performance.now() > deadline) throw new Error(`${id} did not stop within 60 s`);
  }
  const holderLog = readFileSync(join(root, id, "holder.log"), "utf8");
  await run([...oci, "delete", id], `delete ${id}`, dir);
  undeleted.delete(id);
  const [commandsMs, loadedMs, answeredMs, attachedMs] = number(holderLog, /QEMU took commands after (\d+) ms, state loaded after (\d+) ms, the guest answered after (\d+) ms, root attached after (\d+) ms/, "template restore");
  const [readyMs, holderToSpawnMs] = number(holderLog, /ready (\d+) ms after QEMU was spawned, (\d+) ms into the holder/, "created");
  const [startMs] = number(holderLog, /\(guest pid \d+\) (\d+) ms after the start request/, "started");
  return { commandsMs: commandsMs!, loadedMs: loadedMs!, answeredMs: answeredMs!, attachedMs: attachedMs!, readyMs: readyMs!, startMs: startMs!, holderToSpawnMs: holderToSpawnMs!, createWallMs, startWallMs };
}

export async function measureRestore(runs: number): Promise<RestoreData> {
  const dir = join(work, "restore");
  const root = join(dir, "root");
  const rootfs = join(dir, "rootfs");
  mkdirSync(join(dir, "output"), { recursive: true });
  await writeTestRootfs(rootfs);
  const bundle = join(dir, "bundle");
  mkdirSync(bundle);
  writeFileSync(join(bundle, "config.json"), JSON.stringify({
    ociVersion: "1.0.2",
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: COMMAND, env: ["PATH=/bin"], cwd: "/" },
    root: { path: rootfs, readonly: false },
    hostname: "restore",
    mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
    linux: { namespaces: [{ type: "pid" }, { type: "uts" }, { type: "mount" }, { type: "network" }] },
  }));
  // The first create builds the template (its log line says so); the timed ones restore it.
  const warmUp = await oneContainer(root, bundle, "restore-0");
  log(`restore warm-up (the template's build): create ${warmUp.createWallMs.toFixed(0)} ms`);
  const samples: RestoreSample[] = [];
  for (let index = 1; index <= runs; index++) {
    samples.push(await oneContainer(root, bundle, `restore-${index}`));
    const last = samples.at(-1)!;
    log(`restore run ${index}: ready ${last.readyMs} ms after QEMU's spawn, start → STARTED ${last.startMs} ms`);
  }
  return { runs, command: COMMAND, samples };
}

export function restoreSection(data: RestoreData): string[] {
  const pick = (key: keyof RestoreSample) => data.samples.map((sample) => sample[key]);
  const total = data.samples.map((sample) => sample.readyMs + sample.startMs);
  const row = (what: string, xs: number[], goal = "—") => `| ${what} | ${range(xs)} ms | ${goal} |`;
  return [
    `${data.runs} containers one after another (after one whose create built the template), each \`dist/burrow-oci --root DIR create --bundle B ID\`, then \`start ID\` at once, the stop awaited, \`delete ID\`; the bundle's process \`${data.command.join(" ")}\`, its root the test image's files (test/helpers/oci-image.ts) over 9p, no network namespace path (no NIC). Every time but the last two rows is the holder's own (performance.now(); src/oci/holder.ts, src/oci/template.ts logs them), from QEMU's spawn; the engine's part — the create command's exit, the start command's own start — is left out. Medians (min–max).`,
    "",
    "| phase (from QEMU's spawn, the holder's clock) | burrow-oci from the template | goal |",
    "|---|---|---|",
    row("**template restore → the container's process started**: QEMU spawned → ready (the root attached, the channel answering), plus the start request → the process's STARTED", total, `≤ ${RESTORE_GOAL_MS} ms: ${verdict(median(total) <= RESTORE_GOAL_MS)}`),
    row("QEMU takes QMP commands (its own start: libraries, machine and devices; -incoming defer)", pick("commandsMs")),
    row("the saved state loaded (RAM mapped from the template's file, x-ignore-shared)", pick("loadedMs")),
    row("the guest's supervisor answered HELLO (after `cont`)", pick("answeredMs")),
    row("the root attached: RESUME (entropy, clock, the container's words) → the guest mounted the bundle and root shares and switched root", pick("attachedMs")),
    row("ready (the holder's ping answered; create answers its caller)", pick("readyMs")),
    row("the start request → the workload's STARTED", pick("startMs")),
    row("the holder's own start (a new `burrow oci` process) → QEMU's spawn (not in the total)", pick("holderToSpawnMs")),
    row("`burrow-oci create` wall time, on the bench's clock (not in the total)", pick("createWallMs")),
    row("`burrow-oci start` wall time, on the bench's clock (not in the total)", pick("startWallMs")),
  ];
}
