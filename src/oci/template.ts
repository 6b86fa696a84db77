// Container templates: one VM per kernel, boot disk, memory size, vCPU count, command line and
// burrow version, booted once to the point before any container's root exists and saved as a
// mapped snapshot under the runtime's state (<--root>/burrow-templates/KEY/); every create it fits
// restores it, and the supervisor attaches that container's root after the resume
// (image/supervisor/container.c). Why that point: QEMU 7.2 refuses to migrate a virtio-9p share the
// guest has mounted (a migration blocker from the first attach), so no share may be mounted at
// the save; microvm has no hotplug, so the template carries every share a container may use,
// under fixed tags, each pointing at an empty directory — each restore names the real paths on
// its own command line. QEMU's -sandbox refuses the save's exec: migration, so only restores run
// sandboxed. A build is one process's (a lock file with its pid); the others wait for it.
import { randomBytes, createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ARCH_INFO, hostArch } from "../arch";
import { BURROW_VERSION } from "../boot/version";
import { splitAppend, wordKey } from "../config/cmdline";
import { ControlClient } from "../control/client";
import type { ControlMux } from "../control/mux";
import { describeError } from "../errors";
import { QmpClient } from "../host/qmp";
import { incomingUri } from "../host/qemu-argv";
import type { SpawnedVm, StoredRun } from "../host/run-options";
import { restoreProblem, saveSnapshot, savedFilesProblem } from "../host/snapshot";
import { fileIdentity } from "../host/snapshot-files";
import { RAM, readManifest, STATE } from "../host/snapshot-manifest";
import { processRuns, processStartTicks } from "../host/vm-registry";
import { encodePointResume, INSTANCE_PATTERN } from "../snapshot/protocol";
import { BUNDLE_TAG, type ContainerPlan, ROOT_TAG } from "./bundle";
import { inNetns, type NetworkPlan, TAP_NAME } from "./network";
import { TEMPLATE_PLAN_FILE, templatePlanText, templateSpecWords } from "./template-plan";
import { TEMPLATE_NIC } from "./template-nic";

/** Volume shares a template carries (burrow.v0 …): a container with more boots cold. */
export const TEMPLATE_VOLUMES = 4;
/** Set to 0 to never use a template (every create boots cold). */
export const TEMPLATE_ENV = "BURROW_OCI_TEMPLATE";
/** Changes whenever what a template holds or how it is attached changes: part of the key. */
const TEMPLATE_FORMAT = 3;
const TEMPLATES_DIR = "burrow-templates";
const EMPTY_DIR = "empty";
const RUN_FILE = "template.json";
/** How long a create waits for another's build before it boots cold. */
const BUILD_WAIT_MS = 60_000;
const BUILD_TIMEOUT_SECONDS = 120;
const POLL_MS = 50;
const IGNORE_SHARED = [{ capability: "x-ignore-shared", state: true }];
const RESUME_ENTROPY_BYTES = 64;
const BUILD_NETNS_WAIT_MS = 5000;

/** What the holder needs to start a container from a template. */
export interface TemplateStart {
  dir: string;
  /** The template's saved run: its devices and command line, which a restore must repeat. */
  run: StoredRun;
  append: string;
  runId: string;
  /** The container's spec as the supervisor's words, carried by the resume. */
  words: string[];
  instance: string;
}

/** Why this container cannot start from a template, or null. */
export function templateProblem(plan: ContainerPlan, env: Record<string, string | undefined> = process.env): string | null {
  if (env[TEMPLATE_ENV] === "0") return `${TEMPLATE_ENV}=0`;
  if (plan.shares.length > TEMPLATE_VOLUMES) return `${plan.shares.length} volumes (a template carries ${TEMPLATE_VOLUMES})`;
  return null;
}

/** The template's append: the container's without its own words (they ride on the resume). */
export function templateAppend(debug: boolean): string {
  return [`burrow.root=9p:${ROOT_TAG}`, `burrow.bundle=${BUNDLE_TAG}`, "burrow.start=host", "burrow.template=1", "burrow.net.lo=1", ...(debug ? [] : ["quiet"])].join(" ");
}

const volumeTag = (index: number) => `burrow.v${index}`;

/** The workload cgroup's limits on a container's command line (Podman sends pids.limit 2048 by default): a template is made with them. */
const CGROUP_WORDS = new Set(["burrow.memory-max", "burrow.pids-max"]);

export function templateCgroupWords(containerAppend: string): string[] {
  return splitAppend(containerAppend).kernelWords.filter((word) => CGROUP_WORDS.has(wordKey(word)));
}

/** Every share a template has, in its order: this container's where it has one, the empty directory elsewhere. */
export function templateShares(empty: string, given: readonly { tag: string; path: string; readOnly: boolean }[] = []): { tag: string; path: string; readOnly: boolean }[] {
  const tags = [ROOT_TAG, BUNDLE_TAG, ...Array.from({ length: TEMPLATE_VOLUMES }, (_, index) => volumeTag(index))];
  return tags.map((tag) => given.find((share) => share.tag === tag) ?? { tag, path: empty, readOnly: true });
}

/** The QEMU a run starts, resolved on PATH as the spawn does: its saved state is that QEMU's. */
function qemuPath(run: StoredRun): string | null {
  const name = run.qemu ?? ARCH_INFO[run.arch ?? hostArch()].qemu;
  return name.includes("/") ? name : Bun.which(name);
}

/**
 * The key: sha256 of everything the saved memory depends on — the QEMU binary too, since another
 * QEMU (a package upgrade) may refuse the state this one saved.
 */
export function templateKey(run: StoredRun): string {
  const qemu = qemuPath(run);
  const files = [run.kernel, ...(run.initrd ? [run.initrd] : []), ...run.disks, ...(qemu !== null && existsSync(qemu) ? [qemu] : [])].map((path) => {
    const { size, mtimeMs, head, tail } = fileIdentity(path);
    return { path, size, mtimeMs, head, tail };
  });
  const inputs = { format: TEMPLATE_FORMAT, burrow: BURROW_VERSION, files, mem: run.mem, smp: run.smp, machine: run.machine, accel: run.accel, append: run.append, arch: run.arch, nic: run.net !== undefined, extraArgs: run.extraArgs ?? [] };
  return createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 32);
}

function instanceFor(id: string): string {
  return INSTANCE_PATTERN.test(id) ? id : `c${randomBytes(8).toString("hex")}`;
}

/** A usable template in dir: its manifest there and every file it was saved from unchanged; else why not. */
function readyTemplate(dir: string): { run: StoredRun; append: string; runId: string } | string {
  if (!existsSync(join(dir, "manifest.json"))) return "not built";
  try {
    const manifest = readManifest(dir);
    const problem = restoreProblem(manifest) ?? savedFilesProblem(dir, manifest).problem;
    if (problem) return problem;
    return { run: JSON.parse(readFileSync(join(dir, RUN_FILE), "utf8")) as StoredRun, append: manifest.options.append, runId: manifest.options.runId };
  } catch (error) {
    return describeError(error);
  }
}

interface Lock { path: string }

/** The build lock: created whole or not at all; one whose process is gone is taken over. */
function tryLock(path: string): Lock | null {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, `${process.pid} ${processStartTicks(process.pid) ?? 0}\n`);
      closeSync(fd);
      return { path };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    if (lockHolderAlive(path)) return null;
    rmSync(path, { force: true });
  }
  return null;
}

function lockHolderAlive(path: string): boolean {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return false;
  }
  const [pid, ticks] = text.trim().split(" ").map(Number);
  // Half-written: its writer is between open and write.
  if (!pid) return true;
  return processRuns(pid, ticks || null);
}

/** Other keys' templates: their inputs changed (a new kernel, boot disk, burrow), never to be restored again. */
function removeStale(base: string, key: string): void {
  for (const name of readdirSync(base)) {
    if (name === EMPTY_DIR || name.startsWith(key) || name.endsWith(".lock")) continue;
    if (existsSync(join(base, `${name}.lock`)) && lockHolderAlive(join(base, `${name}.lock`))) continue;
    rmSync(join(base, name), { recursive: true, force: true });
  }
}

/**
 * A network namespace of the build's own with a tap in it, held by a process that dies with this
 * one (setpriv's death signal), so nothing outlives a build killed half-way. The template's NIC is
 * built on a real tap because virtio-net offers the guest checksum and segmentation offloads only
 * over a backend with a vnet header: on a hub port the saved guest would have none, and neither
 * would any container restored from it.
 */
async function withBuildTap<T>(body: (netns: string) => Promise<T>): Promise<T> {
  const holder = Bun.spawn(["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--net", "--", "sleep", "infinity"], { stdio: ["ignore", "ignore", "pipe"] });
  try {
    const netns = `/proc/${holder.pid}/ns/net`;
    const ours = statSync("/proc/self/ns/net").ino;
    // Until unshare has made the namespace and exec'd sleep, the pid's namespace is still ours.
    for (const deadline = performance.now() + BUILD_NETNS_WAIT_MS; ; await Bun.sleep(5)) {
      if (holder.exitCode !== null) throw new Error(`\`unshare --net\` for the template's build exited with status ${holder.exitCode}: ${(await new Response(holder.stderr).text()).trim()}`);
      try {
        if (statSync(netns).ino !== ours) break;
      } catch {
        // Not there yet.
      }
      if (performance.now() > deadline) throw new Error(`the template's build namespace was not made within ${BUILD_NETNS_WAIT_MS} ms`);
    }
    inNetns(netns, ["ip", "-batch", "-"], `tuntap add dev ${TAP_NAME} mode tap\nlink set dev ${TAP_NAME} up\n`);
    return await body(netns);
  } finally {
    holder.kill("SIGKILL");
    await holder.exited;
  }
}

async function build(dir: string, run: StoredRun, say: (line: string) => void): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  const started = performance.now();
  const save = (netns: string | null) => saveSnapshot({ ...run, ...(netns === null ? {} : { netns }), timeoutSeconds: BUILD_TIMEOUT_SECONDS, sandbox: false }, dir);
  const { manifest } = run.net !== undefined ? await withBuildTap((netns) => save(netns)) : await save(null);
  // After the save (which wants the directory to itself); readers wait for it under the lock.
  writeFileSync(join(dir, RUN_FILE), JSON.stringify(run), { mode: 0o600 });
  say(`template: built ${dir} in ${Math.round(performance.now() - started)} ms (ready after ${manifest.readyAfterMs} ms, saved in ${manifest.saveMs} ms)`);
}

/**
 * The template for a container's run, built when missing or stale (its inputs changed: a new
 * key), or why none (the caller boots cold). Waits for another create's build in progress.
 */
export async function ensureTemplate(stateRoot: string, containerRun: StoredRun, debug: boolean, id: string, words: string[], say: (line: string) => void): Promise<TemplateStart | string> {
  const base = join(stateRoot, TEMPLATES_DIR);
  const empty = join(base, EMPTY_DIR);
  mkdirSync(empty, { recursive: true, mode: 0o755 });
  const run: StoredRun = {
    arch: containerRun.arch,
    kernel: containerRun.kernel,
    initrd: containerRun.initrd,
    disks: containerRun.disks,
    ...(containerRun.readOnlyDisks ? { readOnlyDisks: containerRun.readOnlyDisks } : {}),
    ...(containerRun.serialDisks ? { serialDisks: containerRun.serialDisks } : {}),
    ports: containerRun.ports,
    mem: containerRun.mem,
    smp: containerRun.smp,
    machine: containerRun.machine,
    accel: containerRun.accel,
    // The boot disk's own words (root=, init=, as withBootDisk wrote them), then the template's, then
    // the workload cgroup's limits: the template's boot makes that cgroup (it is in the key).
    append: [...splitAppend(containerRun.append).kernelWords.filter((word) => ["root", "init"].includes(wordKey(word))), templateAppend(debug), ...templateCgroupWords(containerRun.append)].join(" "),
    timeoutSeconds: containerRun.timeoutSeconds,
    shares: templateShares(empty),
    // On the engine's network: the NIC each restore puts on the container's tap (built on a tap of its own).
    ...(containerRun.net !== undefined ? { net: { tap: { ifname: TAP_NAME, mac: TEMPLATE_NIC.mac } } } : {}),
    ...(containerRun.extraArgs ? { extraArgs: containerRun.extraArgs } : {}),
  };
  const key = templateKey(run);
  const dir = join(base, key);
  const lockPath = join(base, `${key}.lock`);
  const deadline = performance.now() + BUILD_WAIT_MS;
  for (;;) {
    const ready = readyTemplate(dir);
    if (typeof ready !== "string") return { dir, ...ready, words, instance: instanceFor(id) };
    const lock = tryLock(lockPath);
    if (lock !== null) {
      try {
        // Built by another while we looked: use it.
        const again = readyTemplate(dir);
        if (typeof again !== "string") return { dir, ...again, words, instance: instanceFor(id) };
        say(`template: ${dir}: ${again}; building it`);
        removeStale(base, key);
        await build(dir, run, say);
      } catch (error) {
        rmSync(dir, { recursive: true, force: true });
        return `building the template failed: ${describeError(error)}`;
      } finally {
        rmSync(lock.path, { force: true });
      }
      continue;
    }
    if (performance.now() > deadline) return `another create has been building the template for ${BUILD_WAIT_MS / 1000} s`;
    await Bun.sleep(POLL_MS);
  }
}

/** The template's command line with this container's shares, sockets and sandbox: what a restore runs. */
export function restoreRun(template: TemplateStart, container: StoredRun): StoredRun {
  const empty = join(template.dir, "..", EMPTY_DIR);
  return {
    ...template.run,
    append: template.append,
    runId: template.runId,
    shares: templateShares(empty, container.shares ?? []),
    sandbox: true,
    timeoutSeconds: container.timeoutSeconds,
    ...(container.qmpSocket ? { qmpSocket: container.qmpSocket } : {}),
    ...(container.controlSocket ? { controlSocket: container.controlSocket } : {}),
    // The translation buffer is no device state: this container's (capped under a memory limit).
    ...(container.tcgTbSizeMiB !== undefined ? { tcgTbSizeMiB: container.tcgTbSizeMiB } : {}),
    // The template's NIC (its MAC is the saved device's) on this container's tap, in its netns.
    ...(container.net !== undefined && "tap" in container.net ? { net: { tap: { ifname: container.net.tap.ifname, mac: TEMPLATE_NIC.mac } } } : {}),
    ...(container.netns !== undefined ? { netns: container.netns } : {}),
    ownSignals: true,
    snapshotDisks: true,
    incomingFile: join(template.dir, STATE),
    incomingDeferred: true,
    ramFile: { path: join(template.dir, RAM), shared: false },
  };
}

/** A template QEMU could not load (another QEMU, a damaged state): the template is of no use any more. */
export class TemplateLoadError extends Error {}

/** A template that failed to load is moved out of the way (creates restoring it now keep their open files) and removed; the next create builds it again. */
export function discardTemplate(dir: string): void {
  const doomed = `${dir}.discarded-${process.pid}`;
  try {
    renameSync(dir, doomed);
  } catch {
    return; // gone already: another create discarded or rebuilt it
  }
  rmSync(doomed, { recursive: true, force: true });
}

/**
 * Drive a restore of the template: the saved state loaded with the RAM file mapped, the VM
 * continued, then the resume (fresh entropy, the clock, this container's spec words), after which
 * the guest has attached the container's root. Resolves with the VM's control channel.
 */
export async function resumeTemplate(vm: SpawnedVm, qmpSocket: string, template: TemplateStart, say: (line: string) => void): Promise<ControlMux> {
  if (vm.control === null) throw new Error("the restored VM has no control port");
  const started = performance.now();
  let qmp: QmpClient | null = null;
  let status: { status: string };
  let commandsMs = 0;
  try {
    qmp = await QmpClient.connect(qmpSocket, 10_000);
    commandsMs = performance.now() - started;
    await qmp.execute("migrate-set-capabilities", { capabilities: IGNORE_SHARED });
    await qmp.execute("migrate-incoming", { uri: incomingUri() });
    status = await qmp.waitFor<{ status: string }>("query-status", (value) => value.status !== "inmigrate", 60_000, 2);
  } catch (error) {
    qmp?.close();
    throw new TemplateLoadError(`QEMU did not load the template ${template.dir}: ${describeError(error)}`);
  }
  try {
    const loadedMs = performance.now() - started;
    if (status.status !== "running") await qmp.execute("cont");
    const mux = await vm.control;
    const client = await ControlClient.over(mux.local());
    const answeredMs = performance.now() - started;
    try {
      const message = encodePointResume({ instance: template.instance, entropy: new Uint8Array(randomBytes(RESUME_ENTROPY_BYTES)), realtimeNs: BigInt(Date.now()) * 1_000_000n, args: template.words, env: [] });
      await client.resume(message);
    } finally {
      client.close();
    }
    // Each time from QEMU's spawn; bench/oci-restore.ts reads this line.
    say(`template: restored ${template.dir} as ${template.instance}: QEMU took commands after ${Math.round(commandsMs)} ms, state loaded after ${Math.round(loadedMs)} ms, the guest answered after ${Math.round(answeredMs)} ms, root attached after ${Math.round(performance.now() - started)} ms`);
    return mux;
  } finally {
    qmp.close();
  }
}

/**
 * create's choice: the template for this container (its container.plan written into the bundle
 * share), or null with the reason said on --debug — the container then boots cold.
 */
export async function chooseTemplate(stateRoot: string, id: string, plan: ContainerPlan, network: NetworkPlan | null, run: StoredRun, debug: boolean, bundleShare: string, say: (line: string) => void): Promise<TemplateStart | null> {
  const problem = templateProblem(plan);
  const spec = problem === null ? templateSpecWords(plan.kernelWords) : null;
  const why = problem ?? (spec !== null && "problem" in spec ? spec.problem : null);
  if (why !== null || spec === null || !("words" in spec)) {
    say(`start: cold boot (no template: ${why})`);
    return null;
  }
  let planText;
  try {
    planText = templatePlanText(plan, plan.files.map((file) => statSync(file.from).size), network);
  } catch (error) {
    say(`start: cold boot (no template: ${describeError(error)})`);
    return null;
  }
  const template = await ensureTemplate(stateRoot, run, debug, id, spec.words, say);
  if (typeof template === "string") {
    say(`start: cold boot (no template: ${template})`);
    return null;
  }
  try {
    writeFileSync(join(bundleShare, TEMPLATE_PLAN_FILE), planText.text, { mode: 0o644 });
  } catch (error) {
    // A delete --force while the template was built took the container's directory.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`container ${id} was deleted while it was being created`);
    throw error;
  }
  for (const line of planText.skipped) say(`container mount ${line}; skipped`);
  say(`start: from the template ${template.dir} (a restore; the guest attaches the root after it)`);
  return template;
}
