// The holder: the container's process on the host — the pid the engine reads from --pid-file. It
// joins the container's cgroup (so QEMU, its child, starts in it), boots the VM, holds the
// container's stdio (pipes, or the pty's slave), starts the workload over the control channel when
// `start` asks, copies its streams, forwards every signal it gets to it, and exits with its status.
// Its socket takes start, kill, pause and resume; the VM's channel is served beside it for exec.
// Its lines go to its own log: fds 0-2 belong to the container.
import { appendFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { ControlClient, type GuestProcess, SpawnError } from "../control/client";
import type { ControlMux } from "../control/mux";
import { relayProcess } from "../commands/relay";
import { describeError } from "../errors";
import { runVm } from "../host/qemu";
import { QmpClient } from "../host/qmp";
import { processStartTicks } from "../host/vm-registry";
import * as sys from "../sys";
import { type ContainerPaths, updateRecord } from "./container-dir";
import { type HolderRequest, serveHolderRequests } from "./holder-link";
import type { LaunchPlan } from "./launch";
import { isSandboxPlan, runSandboxHolder } from "./sandbox";
import { joinCgroup } from "./cgroups";
import { discardTemplate, restoreRun, resumeTemplate, TemplateLoadError } from "./template";
import { mirrorMarker, setUpMirror, tearDownMirror } from "./network";
import { FORWARDED_SIGNALS, terminalSize } from "./forwarding";
import { answerParent } from "./spawn-self";
import { dropIdleExecutablePages } from "./idle-pages";

/** Status for a container whose VM ended without its workload's status (killed, crashed). */
const LOST_STATUS = 128 + 9;
/** After a SIGKILL the guest gets this long to go down in order before QEMU is killed. */
const KILL_GRACE_MS = 10_000;
/** The console log keeps this much; the rest is counted, not written (a guest cannot fill the disk). */
const CONSOLE_LOG_BYTES = 4 << 20;
/** After the start, the holder settles this long before it drops the executable's pages it no longer runs (idle-pages.ts). */
const SETTLE_BEFORE_TRIM_MS = 2000;
/** Signals that end a container that never started. */
const ENDING = new Set([constants.signals.SIGKILL, constants.signals.SIGTERM, constants.signals.SIGINT, constants.signals.SIGHUP, constants.signals.SIGQUIT]);

/** The holder's own log (fds 0-2 are the container's); best effort: the state file says what matters. */
export function appendHolderLog(paths: ContainerPaths, line: string): void {
  try {
    appendFileSync(paths.holderLog, `${new Date().toISOString()} ${line}\n`);
  } catch {
    // A log that cannot be written loses a line, never the container.
  }
}

class Holder {
  private client: ControlClient | null = null;
  private workload: GuestProcess | null = null;
  private workloadStatus: number | null = null;
  private qemuPid = 0;
  /** performance.now() when QEMU was spawned (the holder's own start is 0). */
  private qemuSpawnedAt = 0;
  private qemuKill: ((signal?: NodeJS.Signals) => void) | null = null;
  private consoleBytes = 0;
  private ready = false;
  /** Why the template's restore failed, while its QEMU is being killed: run() then boots the VM cold. */
  private coldRetry: string | null = null;
  /** A signal that ends the container came before it was ready: nothing is retried. */
  private ending = false;
  private terminal: boolean;

  constructor(private readonly paths: ContainerPaths, private readonly plan: LaunchPlan) {
    this.terminal = plan.process.terminal;
  }

  say(line: string): void {
    appendHolderLog(this.paths, line);
  }

  private console(text: string): void {
    if (this.consoleBytes >= CONSOLE_LOG_BYTES) return;
    const room = CONSOLE_LOG_BYTES - this.consoleBytes;
    const piece = text.length > room ? `${text.slice(0, room)}\n[console log full: the rest is not kept]\n` : text;
    this.consoleBytes += piece.length;
    try {
      appendFileSync(this.paths.consoleLog, piece);
    } catch {
      this.consoleBytes = CONSOLE_LOG_BYTES;
    }
  }

  async run(): Promise<number> {
    const { run, process: proc, notes } = this.plan;
    for (const note of notes) this.say(`note: ${note}`);
    try {
      // Before any child: QEMU and its helpers inherit the cgroup, and the engine's limits cover them.
      joinCgroup(this.plan.cgroups, process.pid);
    } catch (error) {
      this.failCreate(describeError(error));
      return 1;
    }
    writeFileSync(this.paths.consoleLog, "", { mode: 0o600 });
    const server = this.listen();
    const forwarders = FORWARDED_SIGNALS.map((signal) => [signal, () => void this.signal(constants.signals[signal]!)] as const);
    for (const [signal, listener] of forwarders) process.on(signal, listener);
    const onResize = () => void this.resize();
    if (this.terminal) {
      // The pty becomes our controlling terminal, so the engine's resizes reach us as SIGWINCH.
      try {
        sys.setControllingTerminal(0);
      } catch (error) {
        this.say(`the terminal's resizes will not reach the container: ${describeError(error)}`);
      }
      process.on("SIGWINCH", onResize);
    }
    let result;
    const { network } = this.plan;
    try {
      // The tap and the mirror before QEMU opens the tap; they go when the VM does (finally below).
      if (network !== null) setUpMirror(network, mirrorMarker(this.paths.dir));
      let template = this.plan.template ?? null;
      for (;;) {
        const restoring = template;
        result = await runVm(
          {
            // From a template: its command line with this container's shares, then the resume (src/oci/template.ts).
            ...(restoring ? restoreRun(restoring, run) : run),
            onSpawn: (vm) => {
              this.qemuPid = vm.pid;
              this.qemuSpawnedAt = performance.now();
              this.qemuKill = vm.kill;
              updateRecord(this.paths, { qemuPid: vm.pid });
              const control = restoring ? resumeTemplate(vm, run.qmpSocket!, restoring, (line) => this.say(line)) : vm.control;
              control?.then(
                (mux) => this.connected(mux, proc.args[0]!),
                (error: Error) => (restoring && !this.ending ? this.restoreFailed(error, restoring.dir) : this.failCreate(`the VM ended before its supervisor answered: ${error.message}`)),
              );
            },
          },
          (text) => this.console(text),
        );
        if (this.ready || template === null || this.coldRetry === null || this.ending) break;
        // The same container, booted: what a template could not give it costs a cold boot, not the create.
        this.say(`template: the restore failed (${this.coldRetry}); booting the VM cold`);
        template = null;
        this.coldRetry = null;
      }
    } catch (error) {
      this.failCreate(describeError(error));
      result = null;
    } finally {
      for (const [signal, listener] of forwarders) process.off(signal, listener);
      if (this.terminal) process.off("SIGWINCH", onResize);
      server.stop(true);
      this.client?.close();
      if (network !== null) for (const problem of tearDownMirror(network, mirrorMarker(this.paths.dir))) this.say(`network: ${problem}`);
      for (const socket of [this.paths.holderSocket, this.paths.controlSocket, this.paths.vmPortSocket, this.paths.qmpSocket]) rmSync(socket, { force: true });
    }
    if (!this.ready) {
      this.failCreate(result ? `the VM ended before it was ready (${result.reason ?? "no reason given"})` : "the VM did not start");
      return 1;
    }
    // The workload's own status; a VM that went without saying one was killed under it.
    const status = this.workloadStatus ?? (this.workload === null ? 0 : LOST_STATUS);
    updateRecord(this.paths, { status: "stopped", exitStatus: status });
    this.say(`the VM ended (${result?.reason ?? "unknown"}); the container's status is ${status}`);
    return status;
  }

  /** A template's restore failed before the guest was ready: its QEMU goes, and run() boots the VM cold. */
  private restoreFailed(error: Error, dir: string): void {
    this.coldRetry = describeError(error);
    // QEMU could not load it at all (another QEMU, a damaged state): no create may use it again.
    if (error instanceof TemplateLoadError) {
      discardTemplate(dir);
      this.say(`template: ${dir} removed (the next create builds it again)`);
    }
    this.qemuKill?.("SIGKILL");
  }

  private failCreate(reason: string): void {
    if (this.ready) return this.say(reason);
    this.say(`create failed: ${reason}`);
    updateRecord(this.paths, { status: "stopped", error: reason });
    answerParent(`error: ${reason}`);
    this.qemuKill?.("SIGKILL");
  }

  private async connected(mux: ControlMux, program: string): Promise<void> {
    try {
      mux.listen(this.paths.controlSocket);
      this.client = await ControlClient.over(mux.local());
      this.client.onWorkloadExit((code) => (this.workloadStatus ??= code));
      await this.client.ping();
      this.ready = true;
      updateRecord(this.paths, { status: "created" });
      // bench/oci-restore.ts reads the times.
      this.say(`created: the VM (QEMU pid ${this.qemuPid}) waits to start ${program}; ready ${Math.round(performance.now() - this.qemuSpawnedAt)} ms after QEMU was spawned, ${Math.round(this.qemuSpawnedAt)} ms into the holder`);
      answerParent("ready");
    } catch (error) {
      this.failCreate(`the control channel failed: ${describeError(error)}`);
    }
  }

  private listen() {
    return serveHolderRequests(this.paths.holderSocket, (request) => this.handle(request), describeError);
  }

  private async handle(request: HolderRequest): Promise<void> {
    if (request.op === "start") return this.start();
    if (request.op === "kill") return this.signal(request.signal);
    const qmp = await QmpClient.connect(this.paths.qmpSocket, 5000);
    try {
      await qmp.execute(request.op === "pause" ? "stop" : "cont");
    } finally {
      qmp.close();
    }
    updateRecord(this.paths, { status: request.op === "pause" ? "paused" : "running" });
  }

  private async start(): Promise<void> {
    if (!this.ready || this.client === null) throw new Error("the container's VM is not ready");
    if (this.workload !== null) throw new Error("the container was already started");
    const asked = performance.now();
    const { process: proc } = this.plan;
    const tty = this.terminal ? terminalSize() : undefined;
    const workload = this.client.spawn(proc.args, {
      env: proc.env,
      cwd: proc.cwd,
      user: proc.user,
      stdin: true,
      workload: true,
      rlimits: [],
      ...(tty ? { tty } : {}),
    });
    this.workload = workload;
    let pid: number;
    try {
      pid = await workload.pid;
    } catch (error) {
      // The process never ran: the container ends with the shell's status for it.
      this.workloadStatus = error instanceof SpawnError && error.errnoName === "ENOENT" ? 127 : 126;
      const reason = describeError(error);
      this.say(`start failed: ${reason}`);
      void this.client.stop().catch(() => {});
      throw new Error(reason);
    }
    updateRecord(this.paths, { status: "running" });
    this.say(`started ${proc.args[0]} (guest pid ${pid}) ${Math.round(performance.now() - asked)} ms after the start request`);
    void this.relay(workload);
    setTimeout(() => this.trim(), SETTLE_BEFORE_TRIM_MS).unref();
  }

  private async relay(workload: GuestProcess): Promise<void> {
    const { exited } = await relayProcess(workload, { feedStdin: true });
    if (exited instanceof Error) return this.say(`the workload's session ended: ${describeError(exited)}`);
    this.workloadStatus ??= exited.exitCode;
    this.say(`the workload ended with status ${exited.exitCode}${exited.oomKilled ? " (killed by the guest's OOM killer)" : ""}`);
  }

  /** The running container's holder waits from now on: the setup's code leaves its page tables. */
  private trim(): void {
    try {
      this.say(`memory: ${(dropIdleExecutablePages() / 1024).toFixed(1)} MiB of the executable's pages unmapped (clean, still in the page cache)`);
    } catch (error) {
      this.say(`memory: the executable's pages stay mapped: ${describeError(error)}`);
    }
  }

  private async resize(): Promise<void> {
    const { rows, cols } = terminalSize();
    if (this.workload) await this.workload.resize(rows, cols).catch(() => {});
  }

  /** A signal for the container: to its workload once started; one that ends it stops a VM that never started. */
  async signal(signal: number): Promise<void> {
    if (!this.ready && ENDING.has(signal)) this.ending = true;
    if (this.client === null) {
      if (ENDING.has(signal)) this.qemuKill?.("SIGKILL");
      return;
    }
    if (signal === constants.signals.SIGKILL) {
      // Should the guest not go down in order, QEMU goes without it.
      setTimeout(() => this.qemuKill?.("SIGKILL"), KILL_GRACE_MS).unref();
    }
    if (this.workload === null) {
      if (ENDING.has(signal)) await this.client.stop();
      return;
    }
    await this.client.signalWorkload(signal);
  }
}

/** `burrow-oci holder ID`: runs for the container's whole life; its exit status is the container's. */
export async function runHolder(paths: ContainerPaths): Promise<number> {
  const read: unknown = JSON.parse(readFileSync(paths.plan, "utf8"));
  updateRecord(paths, { holderPid: process.pid, holderStartTicks: processStartTicks(process.pid) });
  if (isSandboxPlan(read)) return runSandboxHolder(paths, read, (line) => appendHolderLog(paths, line));
  const plan = read as LaunchPlan;
  const holder = new Holder(paths, plan);
  try {
    return await holder.run();
  } catch (error) {
    holder.say(`the holder failed: ${describeError(error)}`);
    updateRecord(paths, { status: "stopped" });
    return 1;
  }
}
