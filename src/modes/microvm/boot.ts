// microvm boot plan: API mounts, console, modules, zram swap, devices (event-driven), root,
// switch_root, exec the agent. Every step is named, timed and has a failure policy; a fatal
// failure ends in the configured fallback (boot/ending.ts), never in a hang or an uncaught throw.
import { existsSync } from "node:fs";
import { prepareForExec, setFallbackRoot, writeReport } from "../../boot/ending";
import { mountTable } from "../../boot/mounts";
import { ROOT_MOUNT_POINT } from "../../boot/paths";
import { runPlan, type InitRuntime, type Step } from "../../boot/plan";
import { log } from "../../log";
import * as sys from "../../sys";
import { agentArgv, buildAgentEnv } from "./agent";
import { findRootDevice, linkVirtioPorts, listNetworkInterfaces, listVirtioPorts, parseRootSpec } from "./devices";
import { readModuleIndex } from "../../modules";
import { finitLoader, loadModules, wantedModules } from "./modules";
import { API_MOUNTS, makeStdioBlocking, MOVED_MOUNTS, routeConsole } from "./mounts";
import { mountRoot, rootFsTypes } from "./root";
import { snapshotPoint, type ResumeRecord } from "./snapshot";
import { checkNewRoot, checkSwitch, switchRoot } from "./switchroot";
import type { ResumeMessage } from "../../snapshot/protocol";
import { UeventWatcher } from "./uevent";
import { applyVmTunings, setupZram } from "./zram";

/** After the root device is there, how long unnamed virtio ports may take to get their names. */
const PORT_NAME_GRACE_MS = 250;

interface MicrovmContext {
  runtime: InitRuntime;
  watcher: UeventWatcher | null;
  failedModules: Map<string, string>;
  rootDevice: string | null;
  rootType: string | null;
  switched: boolean;
  /** Set when a snapshot was resumed: the instance's arguments and variables replace the command line's. */
  resume: { message: ResumeMessage; record: ResumeRecord } | null;
}

const now = (context: MicrovmContext) => context.runtime.now();

const MICROVM_PLAN: readonly Step<MicrovmContext>[] = [
  { name: "mounts", policy: "fatal", run: () => mountTable(API_MOUNTS) },
  {
    name: "console",
    policy: "warn",
    run() {
      log.debug(`console: ${routeConsole()}`);
    },
  },
  {
    // Before any module loads: every "add" from here on wakes the device waits.
    name: "uevents",
    policy: "warn",
    run(context) {
      context.watcher = UeventWatcher.open();
    },
  },
  { name: "modules", policy: "warn", run: loadModulesStep },
  {
    name: "zram",
    policy: "warn",
    // An invalid burrow.zram= was reported with the command line's problems: no swap, no second line.
    when: (context) => context.runtime.config.zram.kind !== "off" && context.runtime.config.zram.kind !== "invalid",
    run(context) {
      if (setupZram(context.runtime.config)) applyVmTunings(context.runtime.config);
    },
  },
  { name: "root-device", policy: "fatal", run: waitForRootDevice },
  { name: "virtio-ports", policy: "warn", run: linkPorts },
  {
    name: "network",
    policy: "warn",
    when: (context) => context.runtime.config.net,
    run() {
      // Drivers probe synchronously in finit_module: an interface that is not here now is not coming.
      // The agent configures networking; boot never waits for it.
      const interfaces = listNetworkInterfaces();
      if (interfaces.length === 0) throw new Error("burrow.net=1 but no network interface appeared (no virtio-net device?); continuing without one");
      log.info(`network: ${interfaces.join(" ")}`);
    },
  },
  { name: "root", policy: "fatal", run: mountRootStep },
  { name: "switch-root", policy: "fatal", run: switchRootStep },
  {
    name: "snapshot",
    policy: "fatal",
    when: (context) => context.runtime.config.snapshot,
    run(context) {
      context.resume = snapshotPoint(() => now(context));
    },
  },
  { name: "exec-agent", policy: "fatal", run: execAgent },
];

function loadModulesStep(context: MicrovmContext): void {
  const { config, kernelRelease } = context.runtime;
  const dir = `/lib/modules/${kernelRelease}`;
  const index = readModuleIndex(dir);
  const request = wantedModules(config);
  if (!index) {
    // A kernel with its drivers built in ships no modules: nothing to do, nothing to report.
    if (config.modules.length > 0) log.warn(`modules: no ${dir}/modules.dep; cannot load ${config.modules.join(", ")}`);
    else log.debug(`modules: no ${dir}/modules.dep (drivers built in)`);
    return;
  }
  const result = loadModules(index, request, config, finitLoader(dir), () => now(context));
  context.failedModules = result.failed;
  for (const [name, reason] of result.failed) log.warn(`module ${name}: ${reason}`);
  const total = Object.values(result.ms).reduce((sum, ms) => sum + ms, 0);
  log.info(`modules: loaded ${result.loaded.length} in ${total.toFixed(1)} ms (${result.loaded.join(" ") || "none"})${result.already.length ? `, already loaded: ${result.already.join(" ")}` : ""}${result.builtin.length ? `, built in: ${result.builtin.join(" ")}` : ""}`);
  log.debug(`modules: ms per module ${JSON.stringify(result.ms)}`);
}

async function waitForRootDevice(context: MicrovmContext): Promise<void> {
  const { config } = context.runtime;
  const spec = parseRootSpec(config.root);
  if (spec.kind === "invalid") throw new Error(`${spec.reason} (EINVAL; no device can match, not waiting)`);
  const watcher = context.watcher ?? UeventWatcher.open();
  context.watcher = watcher;
  const started = now(context);
  const device = await watcher.waitFor(() => findRootDevice(spec), config.rootwaitMs, () => now(context));
  if (device === null) {
    const types = rootFsTypes(config).join(", ");
    const moduleNote = [...context.failedModules].map(([name, reason]) => `; module ${name}: ${reason}`).join("");
    throw new Error(`root device ${config.root} did not appear within ${config.rootwaitMs} ms (ENODEV; fs types to try: ${types}; ${watcher.count} uevents seen${moduleNote})`);
  }
  context.rootDevice = device;
  log.info(`root device ${config.root}${device !== config.root ? ` is ${device}` : ""}, ready after ${(now(context) - started).toFixed(1)} ms (${watcher.eventDriven ? "uevents" : "polling"})`);
}

async function linkPorts(context: MicrovmContext): Promise<void> {
  const watcher = context.watcher!;
  // Ports are announced by the host right after virtio_console probes; each gets its name in a
  // later control message (a "change" uevent). Wait briefly for the names of ports already seen.
  const ports = (await watcher.waitFor(() => {
    const list = listVirtioPorts();
    return list.every((port) => port.name !== null) ? list : null;
  }, PORT_NAME_GRACE_MS, () => now(context))) ?? listVirtioPorts();
  const made = linkVirtioPorts(ports);
  const unnamed = ports.filter((port) => port.name === null).map((port) => port.device);
  if (ports.length > 0) log.info(`virtio ports: ${made.join(", ") || "none named"}${unnamed.length ? ` (unnamed: ${unnamed.join(" ")})` : ""}`);
}

function mountRootStep(context: MicrovmContext): void {
  const { config } = context.runtime;
  const device = context.rootDevice!;
  context.rootType = mountRoot(device, ROOT_MOUNT_POINT, config, rootFsTypes(config), context.failedModules);
  setFallbackRoot(ROOT_MOUNT_POINT);
  log.info(`root ${device} (${context.rootType}) mounted on ${ROOT_MOUNT_POINT} ${config.readOnly ? "ro" : "rw"},noatime${config.rootflags ? `,${config.rootflags}` : ""}`);
}

function switchRootStep(context: MicrovmContext): void {
  const check = checkSwitch(ROOT_MOUNT_POINT);
  if (!check.ok) throw new Error(`cannot switch root to ${ROOT_MOUNT_POINT}: ${check.reason}`);
  const problem = checkNewRoot(ROOT_MOUNT_POINT, context.runtime.config.agent, MOVED_MOUNTS);
  if (problem) throw new Error(`cannot switch root to ${ROOT_MOUNT_POINT}: ${problem} (initramfs kept)`);
  // Every libc call left to make, bound while libc.so.6 is still a file we can open.
  sys.prebind(["mount", "chroot", "chdir", "execve", "fcntl", "dup2", "signal", "sigprocmask", "reboot", "sync", "open", "close", "write", "syscall"]);
  context.watcher?.close();
  const outcome = switchRoot(ROOT_MOUNT_POINT, MOVED_MOUNTS, check.initramfs);
  context.switched = true;
  setFallbackRoot(null);
  for (const error of outcome.deleteErrors.slice(0, 5)) log.warn(`switch-root: could not delete ${error}`);
  log.info(`switched root: ${check.initramfs ? `initramfs emptied (${outcome.deleted} files)` : "old root kept (not ramfs/tmpfs)"}, moved ${outcome.moved.join(" ")}`);
}

function execAgent(context: MicrovmContext): void {
  const { config, report, startNs } = context.runtime;
  const resume = context.resume?.message ?? null;
  const argv = agentArgv(config.agent, resume?.args ?? config.initArgs);
  const env = buildAgentEnv(process.env, startNs);
  if (resume) env.push(`BURROW_INSTANCE=${resume.instance}`, ...resume.env.map(([name, value]) => `${name}=${value}`));
  if (!existsSync(config.agent)) throw new Error(`cannot exec agent ${config.agent}: ENOENT (no such file or directory)`);
  // Ports that got their names while the root was mounted.
  try {
    linkVirtioPorts(listVirtioPorts());
  } catch {
    // Best effort: the links the virtio-ports step made are in place.
  }
  const record = report.steps.at(-1);
  if (record) record.endMs = now(context);
  if (context.resume) report.resume = { ...context.resume.record, execMs: now(context) };
  writeReport(report);
  log.info(`exec ${argv.map((arg) => JSON.stringify(arg)).join(" ")} (${((Number(sys.clockNs(sys.Clock.BOOTTIME)) - Number(startNs)) / 1e6).toFixed(1)} ms after burrow started)`);
  makeStdioBlocking();
  prepareForExec();
  try {
    sys.closeRangeCloexec(3);
  } catch {
    // Linux before 5.11: burrow's own fds are O_CLOEXEC; only the runtime's could leak.
  }
  try {
    sys.execve(config.agent, argv, env);
  } catch (error) {
    throw new Error(`cannot exec agent ${config.agent}: ${error instanceof sys.SysError ? error.reason : String(error)}`);
  }
}

export async function bootMicrovm(runtime: InitRuntime): Promise<void> {
  const context: MicrovmContext = { runtime, watcher: null, failedModules: new Map(), rootDevice: null, rootType: null, switched: false, resume: null };
  await runPlan(MICROVM_PLAN, context, runtime.report, runtime.now);
}
