// microvm boot plan: API mounts, console, modules, zram swap, devices (event-driven), root, an
// optional overlay, hardening, switch_root, exec the agent. Every step is named, timed and has a failure policy; a fatal
// failure ends in the configured fallback (boot/ending.ts), never in a hang or an uncaught throw.
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { closeOnExecAllBut, prepareForExec, setFallbackRoot, writeReport } from "../../boot/ending";
import { mountTable } from "../../boot/mounts";
import { readOptionalText } from "../../boot/optional-text";
import { ROOT_MOUNT_POINT, SUPERVISOR_PATH } from "../../boot/paths";
import { runPlan, type InitRuntime, type Step } from "../../boot/plan";
import { execSupervisor, openSupervisor, supervisorArgv, type SupervisorRole } from "../../boot/supervisor";
import { resolveWorkload } from "../../workload/resolve";
import { prepareWorkloadCgroup } from "../../workload/cgroup";
import { log } from "../../log";
import * as sys from "../../sys";
import { agentArgv, buildAgentEnv } from "./agent";
import { describeError } from "../../errors";
import { deviceFilesystem, findRootDevice, linkVirtioPorts, listNetworkInterfaces, listVirtioPorts, parseRootSpec, removeDeviceNodes, type RootSpec } from "./devices";
import { applyHardening } from "./harden";
import { readModuleIndex } from "../../modules";
import { finitLoader, loadModules, wantedModules } from "./modules";
import { API_MOUNTS, makeStdioBlocking, MOVED_MOUNTS, routeConsole } from "./mounts";
import { formatFromLower, mountOverlay, mountStaging, OVERLAY_LOWER } from "./overlay";
import { mountRoot, rootFsTypes, rootMountFlags, typesIdentifiedFirst } from "./root";
import { applyContainerMounts } from "./container-mounts";
import { mountRootShare, ninePMountData } from "./shares";
import { controlPortDevice, warmAgent } from "./snapshot";
import { checkNewRoot, checkSwitch, switchRoot } from "./switchroot";
import { CONTROL_PORT } from "../../control/wire";
import { UeventWatcher } from "./uevent";
import { applyVmTunings, setupZram } from "./zram";
import { configureNetwork } from "./nic";

/** After the root device is there, how long unnamed virtio ports may take to get their names. */
const PORT_NAME_GRACE_MS = 250;

interface MicrovmContext {
  runtime: InitRuntime;
  watcher: UeventWatcher | null;
  failedModules: Map<string, string>;
  rootDevice: string | null;
  rootType: string | null;
  /** burrow.overlay=<device spec>: the upper layer's disk, found beside the root device. */
  overlayDevice: string | null;
  /** The resident supervisor's file, opened before the root switch (null: not in the image). */
  supervisorFd: number | null;
  supervisorError: string | null;
  /** An fd on the overlay's upper disk, which the root hides: the supervisor freezes it at the stop. */
  freezeFd: number | null;
  /** The control port the supervisor waits on at the snapshot point (burrow.snapshot=1), or null. */
  pointPort: string | null;
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
    when: (context) => context.runtime.config.zram.kind !== "off",
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
  {
    // The engine's network, handed over on the command line: configured before the workload can use it.
    name: "nic",
    policy: "fatal",
    when: (context) => context.runtime.config.nic.mac !== null || context.runtime.config.loopback,
    run(context) {
      const { nic, loopback } = context.runtime.config;
      log.info(`network: ${configureNetwork(nic, loopback).join("; ")}`);
    },
  },
  // A container template (burrow.template=1) has no root yet: the supervisor attaches it after each restore.
  { name: "root", policy: "fatal", when: (context) => !context.runtime.config.template, run: mountRootStep },
  { name: "overlay", policy: "fatal", when: (context) => context.runtime.config.overlay.kind !== "none", run: overlayStep },
  { name: "container-mounts", policy: "fatal", when: (context) => context.runtime.config.bundle !== null && !context.runtime.config.template, run: containerMountsStep },
  { name: "harden", policy: "warn", run: hardenStep },
  { name: "switch-root", policy: "fatal", when: (context) => !context.runtime.config.template, run: switchRootStep },
  {
    name: "snapshot",
    policy: "fatal",
    when: (context) => context.runtime.config.snapshot === "point",
    run(context) {
      context.pointPort = requiredControlPort("1");
      if (context.runtime.config.template) {
        // No root switch: the supervisor runs from its copy on /dev, which moves into the container's root with it.
        context.supervisorFd = openStagedSupervisor();
        return log.info(`container template: the supervisor waits at the snapshot point on ${context.pointPort}; the root and mounts of burrow.bundle=${context.runtime.config.bundle} come after each resume`);
      }
      log.debug(`snapshot point: read ${warmAgent(context.runtime.config.agent).join(", ") || "nothing"} into the page cache for the restores`);
    },
  },
  { name: "start-workload", policy: "fatal", run: startWorkload },
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

/** Wait for one device spec; `what` names it in the lines ("root device", "overlay device"). */
async function waitForDevice(context: MicrovmContext, spec: RootSpec, shown: string, what: string, budgetMs: number): Promise<string> {
  const { config } = context.runtime;
  if (spec.kind === "invalid") throw new Error(`${spec.reason} (EINVAL; no device can match, not waiting)`);
  const watcher = context.watcher ?? UeventWatcher.open();
  context.watcher = watcher;
  const started = now(context);
  const device = await watcher.waitFor(() => findRootDevice(spec), budgetMs, () => now(context));
  if (device === null) {
    const types = rootFsTypes(config).join(", ");
    const moduleNote = [...context.failedModules].map(([name, reason]) => `; module ${name}: ${reason}`).join("");
    // The overlay device gets what the root device left of burrow.rootwait: say so, or the numbers disagree.
    const share = budgetMs === config.rootwaitMs ? "" : `, the rest of burrow.rootwait=${config.rootwaitMs}`;
    throw new Error(`${what} ${shown} did not appear within ${budgetMs} ms${share} (ENODEV; fs types to try: ${types}; ${watcher.count} uevents seen${moduleNote})`);
  }
  log.info(`${what} ${shown}${device !== shown ? ` is ${device}` : ""}, ready after ${(now(context) - started).toFixed(1)} ms (${watcher.eventDriven ? "uevents" : "polling"})`);
  return device;
}

async function waitForRootDevice(context: MicrovmContext): Promise<void> {
  const { config } = context.runtime;
  const overlay = config.overlay;
  // Both specs are checked before any wait: an impossible overlay spec fails at once too.
  const rootSpec = parseRootSpec(config.root);
  const overlaySpec = overlay.kind === "device" ? parseRootSpec(overlay.spec, "burrow.overlay") : null;
  if (overlaySpec?.kind === "invalid") throw new Error(`${overlaySpec.reason} (EINVAL; no device can match, not waiting)`);
  if (overlay.kind === "device" && overlaySpec?.kind === "share") throw new Error(`burrow.overlay=${overlay.spec}: an overlay's upper layer is a disk or tmpfs, not a share (EINVAL)`);
  if (rootSpec.kind === "share") {
    // The host's directory is writable as it is; an overlay on 9p is not supported.
    if (overlay.kind !== "none") throw new Error(`burrow.overlay with a share root (root=${config.root}) is not supported (EINVAL)`);
    // Built-in virtio drivers probed at boot (or the modules step loaded them): nothing to wait for.
    log.debug(`root ${config.root}: a ${rootSpec.fs} share, no device to wait for`);
    return;
  }
  const started = now(context);
  context.rootDevice = await waitForDevice(context, rootSpec, config.root, "root device", config.rootwaitMs);
  if (overlay.kind === "device" && overlaySpec) {
    const left = Math.max(0, config.rootwaitMs - (now(context) - started));
    context.overlayDevice = await waitForDevice(context, overlaySpec, overlay.spec, "overlay device", left);
    if (context.overlayDevice === context.rootDevice) throw new Error(`burrow.overlay=${overlay.spec} is the root device ${context.rootDevice} itself (EINVAL)`);
  }
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
  // With a bundle the mount points are made on the root first: container-mounts makes it read-only after.
  const deferReadOnly = config.bundle !== null;
  const spec = parseRootSpec(config.root);
  if (spec.kind === "share") {
    const flags = rootMountFlags({ ...config, readOnly: config.readOnly && !deferReadOnly });
    mkdirSync(ROOT_MOUNT_POINT, { recursive: true, mode: 0o755 });
    mountRootShare(spec.fs, spec.tag, ROOT_MOUNT_POINT, flags);
    context.rootType = spec.fs;
    setFallbackRoot(ROOT_MOUNT_POINT);
    log.info(`root ${config.root} mounted on ${ROOT_MOUNT_POINT} ${flags & sys.MountFlags.RDONLY ? "ro" : "rw"},noatime${spec.fs === "9p" ? ` (${ninePMountData("root")})` : ""}`);
    return;
  }
  const device = context.rootDevice!;
  // With an overlay the root is its lower layer: read-only below, under a staging tmpfs.
  const overlaid = config.overlay.kind !== "none";
  if (overlaid) mountStaging();
  const target = overlaid ? OVERLAY_LOWER : ROOT_MOUNT_POINT;
  const rootConfig = overlaid ? { ...config, readOnly: true } : deferReadOnly ? { ...config, readOnly: false } : config;
  const types = typesIdentifiedFirst(rootFsTypes(config), config.rootfstype ? null : (deviceFilesystem(device)?.type ?? null));
  context.rootType = mountRoot(device, target, rootConfig, types, context.failedModules);
  setFallbackRoot(target);
  log.info(`root ${device} (${context.rootType}) mounted on ${target} ${rootConfig.readOnly ? "ro" : "rw"},noatime${config.rootflags ? `,${config.rootflags}` : ""}`);
}

function overlayStep(context: MicrovmContext): void {
  const { config } = context.runtime;
  const upper = context.overlayDevice;
  let upperType: string | null = null;
  if (upper) {
    upperType = deviceFilesystem(upper)?.type ?? null;
    if (upperType === null && config.overlayFormat) {
      const mkfs = formatFromLower(upper);
      log.info(`overlay: formatted ${upper} with the root's ${mkfs}`);
      upperType = "ext";
    } else if (upperType === null) {
      throw new Error(`overlay device ${upper} holds no filesystem burrow knows (set burrow.overlay.format=1 to mkfs.ext4 it from the root)`);
    }
  }
  const readOnly = config.overlayReadOnly && upper !== null;
  if (config.overlayReadOnly && !upper) log.warn("burrow.overlay.ro=1 with a tmpfs overlay: a read-only empty layer is pointless; mounted read-write");
  const { data, upperFd } = mountOverlay(upper, upperType === "ext" ? "ext4" : upperType, readOnly);
  context.freezeFd = upperFd;
  setFallbackRoot(ROOT_MOUNT_POINT);
  log.info(`overlay on ${ROOT_MOUNT_POINT} ${readOnly ? "ro" : "rw"}: upper ${upper ?? "tmpfs"} (${data})`);
}

function containerMountsStep(context: MicrovmContext): void {
  const { config } = context.runtime;
  // `ro` on the command line: the root stayed writable for the mount points, read-only from here (an overlay is its own).
  const readOnly = config.readOnly && config.overlay.kind === "none";
  const result = applyContainerMounts(config.bundle!, ROOT_MOUNT_POINT, MOVED_MOUNTS, rootMountFlags(config), readOnly);
  const skipped = result.skipped.length ? `, skipped ${result.skipped.join(", ")}` : "";
  log.info(`container mounts from burrow.bundle=${config.bundle}: ${result.made.join(" ") || "none"}${skipped}${result.readOnlyRoot ? "; root read-only" : ""}`);
}

function hardenStep(context: MicrovmContext): void {
  const { config } = context.runtime;
  if (config.hideRootDevices) {
    const removed = removeDeviceNodes([context.rootDevice, context.overlayDevice].filter((device): device is string => device !== null));
    log.info(`hide-root-devices: removed ${removed.join(" ") || "nothing"}`);
  }
  const { done, failed } = applyHardening(config.harden, describeError);
  log.debug(`harden: ${done.join("; ") || "no rules"}`);
  if (failed.length) throw new Error(`harden: ${failed.join("; ")}`);
}

function switchRootStep(context: MicrovmContext): void {
  const check = checkSwitch(ROOT_MOUNT_POINT);
  if (!check.ok) throw new Error(`cannot switch root to ${ROOT_MOUNT_POINT}: ${check.reason}`);
  const problem = checkNewRoot(ROOT_MOUNT_POINT, context.runtime.config.start === "host" ? null : context.runtime.config.agent, MOVED_MOUNTS);
  if (problem) throw new Error(`cannot switch root to ${ROOT_MOUNT_POINT}: ${problem} (initramfs kept)`);
  try {
    context.supervisorFd = check.initramfs ? openSupervisor() : openStagedSupervisor();
  } catch (error) {
    context.supervisorError = describeError(error);
  }
  context.watcher?.close();
  const outcome = switchRoot(ROOT_MOUNT_POINT, MOVED_MOUNTS, check.initramfs);
  setFallbackRoot(null);
  for (const error of outcome.deleteErrors.slice(0, 5)) log.warn(`switch-root: could not delete ${error}`);
  const oldRoot = {
    emptied: `initramfs emptied (${outcome.deleted} files)`,
    detached: "old root detached (its disk and page cache are freed at exec)",
    kept: `old root kept beneath / (${outcome.keptReason ?? "not ramfs/tmpfs"})`,
  }[outcome.oldRoot];
  log.info(`switched root: ${oldRoot}, moved ${outcome.moved.join(" ")}`);
}

/** Where the supervisor is copied from a boot disk: /dev is a tmpfs (devtmpfs) that moves to the new root. */
const STAGED_SUPERVISOR = "/dev/.burrow-supervisor";

/**
 * From a boot disk, the supervisor a copy on /dev, opened and unlinked before anyone else runs: a
 * resident supervisor (supervise mode, the default) exec'd from the boot disk itself would pin
 * it, and the detached old root, its disk and its page cache (Bun's pages) would stay until the
 * VM ends instead of going with burrow's exec. The boot disk's own file if the copy fails.
 */
function openStagedSupervisor(): number {
  try {
    writeFileSync(STAGED_SUPERVISOR, readFileSync(SUPERVISOR_PATH), { mode: 0o500, flag: "wx" });
    try {
      return sys.open(STAGED_SUPERVISOR, sys.OpenFlags.RDONLY | sys.OpenFlags.CLOEXEC);
    } finally {
      unlinkSync(STAGED_SUPERVISOR);
    }
  } catch (error) {
    log.warn(`supervisor: cannot copy it to ${STAGED_SUPERVISOR} (${describeError(error)}); running it from the boot disk, which then stays mounted`);
    return openSupervisor();
  }
}

/** The control port a snapshot (burrow.snapshot=1 or warm) is announced on; the host must add it. */
function requiredControlPort(setting: "1" | "warm"): string {
  const device = controlPortDevice();
  if (device === null) throw new Error(`burrow.snapshot=${setting} but no virtio-serial port named ${CONTROL_PORT} (ENODEV); the host must add it`);
  return device;
}

/** The control port the supervisor announces a warm snapshot on; warm snapshots are the supervisor's, so they need it. */
function warmSnapshotPort(supervise: boolean): string {
  if (!supervise) throw new Error("burrow.snapshot=warm needs supervise mode, not burrow.supervise=0 (the resident supervisor takes the snapshot when the workload asks)");
  return requiredControlPort("warm");
}

/** The control port the host's workload EXEC comes on (burrow.start=host): supervise mode, no snapshot, the port there. */
function hostStartPort(config: InitRuntime["config"]): string {
  if (!config.supervise) throw new Error("burrow.start=host needs supervise mode, not burrow.supervise=0 (the resident supervisor starts the host's workload)");
  if (config.snapshot !== "off" && !config.template) throw new Error(`burrow.start=host cannot be combined with burrow.snapshot=${config.snapshot === "point" ? "1" : "warm"} (the workload is the host's to start)`);
  const device = controlPortDevice();
  if (device === null) throw new Error(`burrow.start=host but no virtio-serial port named ${CONTROL_PORT} (ENODEV); the host must add it`);
  return device;
}

/**
 * The agent, one of three ways: started and supervised by the resident supervisor for its whole
 * life (the default), or with burrow.supervise=0 exec'd as PID 1 (burrow leaves), by the
 * supervisor when it applied a workload spec or took the snapshot point's resume first. Or none:
 * with burrow.start=host the supervisor waits for the host to start the workload. A spec that
 * cannot be applied fully stops here: fail closed.
 */
function startWorkload(context: MicrovmContext): void {
  const { config, report, startNs } = context.runtime;
  // passwd, group, the OCI file: one the new root lacks is null, and the resolver says what that means.
  const plan = resolveWorkload(config.workload, readOptionalText);
  if (!plan.ok) throw new Error(`${plan.reason}; the agent was not started`);
  for (const field of plan.ignored) log.warn(`workload spec: ${field} is not applied`);
  // The host's EXEC names the program then: no agent starts here, none need be on the root.
  const hostPort = config.start === "host" ? hostStartPort(config) : null;
  if (hostPort !== null && plan.argv) log.warn("workload spec: process.args is not used with burrow.start=host (the host's EXEC names the program)");
  const argv = plan.argv ?? agentArgv(config.agent, config.initArgs);
  const env = buildAgentEnv(process.env, startNs);
  env.push(...plan.env);
  if (hostPort === null && argv[0]!.startsWith("/") && !existsSync(argv[0]!)) throw new Error(`cannot exec agent ${argv[0]}: ENOENT (no such file or directory)`);
  const words = [...plan.words];
  if (plan.cgroup) words.push(`cgroup=${prepareWorkloadCgroup(plan.cgroup)}`);
  // A bare program name (a spec file's process.args) needs the supervisor's PATH lookup.
  const warm = config.snapshot === "warm" && warmSnapshotPort(config.supervise) !== null;
  // The snapshot point is the supervisor's too: it waits for the resume, then execs or starts the agent.
  const pointPort = context.pointPort;
  const role: SupervisorRole | null = hostPort !== null
    ? { kind: "host", controlPort: hostPort, ...(config.template && config.bundle !== null ? { template: config.bundle } : {}) }
    : config.supervise
    ? { kind: "spawn", argv, controlPort: controlPortDevice(), warm, point: pointPort !== null }
    : words.length > 0 || !argv[0]!.startsWith("/") || pointPort ? { kind: "exec", argv, pointPort } : null;
  if (role && context.supervisorFd === null) throw new Error(`cannot start the supervisor (${config.supervise ? "supervise mode" : pointPort ? "burrow.snapshot=1" : "workload spec"}): ${context.supervisorError ?? "not opened"}`);
  // Ports that got their names while the root was mounted.
  try {
    linkVirtioPorts(listVirtioPorts());
  } catch {
    // Best effort: the links the virtio-ports step made are in place.
  }
  const record = report.steps.at(-1);
  if (record) record.endMs = now(context);
  writeReport(report);
  const shown = argv.map((arg) => JSON.stringify(arg)).join(" ");
  const after = `${((Number(sys.clockNs(sys.Clock.BOOTTIME)) - Number(startNs)) / 1e6).toFixed(1)} ms after burrow started`;
  const spec = words.length ? `; ${plan.summary}` : "";
  const waits = pointPort ? `; the supervisor starts it after the resume on ${CONTROL_PORT}` : "";
  if (role?.kind === "host") log.info(`the supervisor waits for the host's workload on ${CONTROL_PORT} (${after}${spec})`);
  else log.info(role?.kind === "spawn" ? `supervise ${shown} (${after}${spec}${waits})` : `exec ${shown} (${after}${spec}${waits})`);
  makeStdioBlocking();
  // The agent reads no console input unless asked: a stray keystroke on the console cannot reach it.
  if (!config.consoleStdin) stdinFromDevNull();
  if (role) {
    const freeze = (role.kind === "spawn" || role.kind === "host") && context.freezeFd !== null ? [context.freezeFd] : [];
    try {
      execSupervisor(context.supervisorFd!, supervisorArgv(config, role, words, freeze), env, freeze);
    } catch (error) {
      throw new Error(`cannot start the supervisor: ${error instanceof sys.SysError ? error.reason : String(error)}`);
    }
  }
  prepareForExec();
  closeOnExecAllBut();
  try {
    sys.execve(argv[0]!, argv, env);
  } catch (error) {
    throw new Error(`cannot exec agent ${argv[0]}: ${error instanceof sys.SysError ? error.reason : String(error)}`);
  }
}

function stdinFromDevNull(): void {
  try {
    const fd = sys.open("/dev/null", sys.OpenFlags.RDONLY | sys.OpenFlags.CLOEXEC);
    if (fd !== 0) {
      sys.dup2(fd, 0);
      sys.close(fd);
    }
  } catch (error) {
    log.warn(`agent stdin stays on the console: cannot open /dev/null (${describeError(error)})`);
  }
}

export async function bootMicrovm(runtime: InitRuntime): Promise<void> {
  const context: MicrovmContext = { runtime, watcher: null, failedModules: new Map(), rootDevice: null, rootType: null, overlayDevice: null, supervisorFd: null, supervisorError: null, freezeFd: null, pointPort: null };
  await runPlan(MICROVM_PLAN, context, runtime.report, runtime.now);
}
