// `create --bundle B --pid-file P [--console-socket S] ID`: the bundle read and checked, the
// container's directory, cgroup (with its limits) and bundle share made, the holder started with
// the container's stdio (or the pty's slave) — it joins the cgroup before it starts QEMU — and its
// pid written once its VM's supervisor answered. On any failure nothing of the container is left.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describeError } from "../errors";
import { FILES_DIR, readBundle } from "./bundle";
import { readCgroupRecord, removeCgroup, setUpCgroup, writeCgroupRecord } from "./cgroups";
import type { GlobalOptions } from "./command-line";
import { type ContainerPaths, holderAlive, makeContainerDir, newRecord, readRecord, removeContainerDir, writeRecord } from "./container-dir";
import { GUEST_PLAN_FILE, serializeGuestPlan } from "./guest-plan";
import { killQuietly, spawnSelf, writePidFile } from "./spawn-self";
import { findAssets, launchPlan } from "./launch";
import { inspectNetwork } from "./network";
import { chooseTemplate } from "./template";
import { podSandbox, type SandboxPlan } from "./sandbox";

export interface CreateRequest {
  id: string;
  bundle: string;
  pidFile: string | null;
  consoleSocket: string | null;
}

function prepareBundleShare(paths: ContainerPaths, files: { from: string; name: string }[], planText: string): void {
  mkdirSync(join(paths.bundleShare, FILES_DIR), { recursive: true, mode: 0o755 });
  for (const file of files) copyFileSync(file.from, join(paths.bundleShare, FILES_DIR, file.name));
  writeFileSync(join(paths.bundleShare, GUEST_PLAN_FILE), planText, { mode: 0o644 });
}

/** How long a delete that killed the holder may take to remove the directory. */
const DELETE_WAIT_MS = 3000;

function readOptionalLastLine(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim().split("\n").at(-1)?.replace(/^\S+ /, "") || null;
  } catch {
    return null;
  }
}

async function recordGone(paths: ContainerPaths): Promise<boolean> {
  const deadline = performance.now() + DELETE_WAIT_MS;
  while (performance.now() < deadline) {
    if (readRecord(paths) === null) return true;
    await Bun.sleep(20);
  }
  return false;
}

export async function createContainer(globals: GlobalOptions, request: CreateRequest, debug: (line: string) => void): Promise<void> {
  const bundle = resolve(request.bundle);
  let text: string;
  try {
    text = readFileSync(join(bundle, "config.json"), "utf8");
  } catch (error) {
    throw new Error(`cannot read ${join(bundle, "config.json")}: ${(error as NodeJS.ErrnoException).code ?? describeError(error)}`);
  }
  const read = readBundle(text, bundle, globals.systemdCgroup ? "systemd" : "cgroupfs");
  if (!read.ok) throw new Error(read.error);
  const { plan, resources } = read;
  const assets = findAssets();
  const annotations = (JSON.parse(text) as { annotations?: Record<string, string> }).annotations ?? {};
  const paths = makeContainerDir(globals.root, request.id);
  let holderPid = 0;
  let holderExited: Promise<unknown> | null = null;
  try {
    writeRecord(paths, newRecord(request.id, bundle, annotations));
    // Recorded as each directory is made: a create killed half-way still leaves delete the list.
    const cgroup = setUpCgroup(resources, { onMade: (made) => writeCgroupRecord(paths.dir, made) });
    const sandbox = podSandbox(annotations, plan.process.args);
    if (sandbox !== null) {
      // A pod's sandbox holds the pod's namespaces for its containers: no VM (src/oci/sandbox.ts).
      const held: SandboxPlan = { sandbox: { netns: plan.netns, why: sandbox }, cgroups: cgroup.join };
      writeFileSync(paths.plan, JSON.stringify(held), { mode: 0o600 });
      debug(`start: no VM: a pod's sandbox (${sandbox}) only holds the pod's namespaces`);
    } else {
      prepareBundleShare(paths, plan.files, serializeGuestPlan(plan.guestPlan));
      // The engine's namespace as it is now (its veth configured before create): what the guest takes.
      const inspected = plan.netns === null ? { network: null, notes: [] } : inspectNetwork(plan.netns);
      const launch = launchPlan({ ...plan, notes: [...plan.notes, ...inspected.notes, ...cgroup.notes] }, paths, assets, globals.debug, inspected.network, resources);
      launch.cgroups = cgroup.join;
      // A template restore where one fits (built on first use), else the cold boot; --debug says which.
      launch.template = await chooseTemplate(globals.root, request.id, plan, inspected.network, launch.run, globals.debug, paths.bundleShare, debug);
      writeFileSync(paths.plan, JSON.stringify(launch), { mode: 0o600 });
      for (const note of launch.notes) debug(note);
    }
    const { child: holder, answer } = await spawnSelf(globals, ["holder", request.id], request.consoleSocket);
    holderPid = holder.pid;
    holderExited = holder.exited;
    if (answer !== "ready") {
      if (answer.startsWith("error: ")) throw new Error(answer.slice(7));
      await holder.exited;
      // Killed without a word: a delete --force, which takes the directory once the holder is gone.
      if (holder.signalCode === "SIGKILL" && (await recordGone(paths))) throw new Error(`container ${request.id} was deleted while it was being created`);
      const why = readRecord(paths)?.error ?? (holder.signalCode ? `was killed by ${holder.signalCode}` : `exited with status ${holder.exitCode}`);
      // The directory goes with the failure: its log's last line comes along.
      const last = readOptionalLastLine(paths.holderLog);
      throw new Error(`the holder (pid ${holderPid}) ended before the VM was ready: ${why}${last ? ` (its log: ${last})` : ""}`);
    }
    // A delete --force while the VM booted took the directory: nothing may stay running.
    const record = readRecord(paths);
    if (record === null || !holderAlive(record)) throw new Error(`container ${request.id} was deleted while it was being created`);
    if (request.pidFile !== null) writePidFile(request.pidFile, holderPid);
    holder.unref();
  } catch (error) {
    if (holderPid > 0) killQuietly(holderPid);
    // The cgroup goes once the holder (and QEMU, which dies with it) has left it.
    await holderExited;
    const left = await removeCgroup(readCgroupRecord(paths.dir));
    removeContainerDir(paths);
    if (left.length > 0) throw new Error(`${describeError(error)}; and ${left.join("; ")}`);
    throw error;
  }
}
