// A running VM as the API hands it out (boot(), restore(), Pool.take()): requests to its
// supervisor over the control channel, its orderly stop, its end.
import { ChannelClosedError, type ControlClient, type ExecOptions, type ExecResult, GuestError, type GuestInfo, type GuestProcess, type SpawnOptions } from "../control/client";
import { ErrorCode } from "../control/wire";
import { describeError } from "../errors";
import type { RunResult } from "../host/qemu";
import { OutputLimitError, VmEndedError } from "./errors";
import { readBounded } from "./read-bounded";

/** What exec() holds of each stream by default: enough for a command's output, not for a flood. */
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 2 ** 20;

export type VmExecOptions = ExecOptions & {
  /** The most bytes of stdout, and of stderr, exec() keeps; more kills the process (OutputLimitError). */
  maxOutputBytes?: number;
};

/** @internal What launch() hands a VM. */
export interface VmParts {
  pid: number;
  /** A client of the VM's one control connection (runVm owns it and closes it when QEMU ends). */
  client: ControlClient;
  /** runVm's or restoreSnapshot's promise: settles once QEMU ended. */
  run: Promise<RunResult>;
  /** QEMU at once (SIGKILL). */
  kill(): void;
  /** How long an orderly stop may take before QEMU is killed (the guest's stop-timeout and teardown). */
  stopWaitMs: number;
}

export class Vm {
  /** QEMU's pid. */
  readonly pid: number;
  /** How the run ended (runVm's verdict); settles once QEMU has exited. */
  readonly ended: Promise<RunResult>;
  private endReason: string | null = null;
  private stopping: Promise<void> | null = null;

  /** @internal boot() and restore() make it. */
  constructor(private readonly parts: VmParts) {
    this.pid = parts.pid;
    this.ended = parts.run;
    // Marked handled: a caller that never awaits `ended` must not see an unhandled rejection.
    this.ended.catch(() => {});
    const over = (reason: string) => {
      this.endReason = reason;
      parts.client.close();
    };
    parts.run.then((result) => over(result.reason), (error: unknown) => over(describeError(error)));
  }

  /** True once QEMU has exited or the control channel went with it. */
  get hasEnded(): boolean {
    return this.endReason !== null || this.parts.client.closed;
  }

  /** The guest's supervisor: the workload, uptime, memory. */
  async info(): Promise<GuestInfo> {
    return this.channel().info();
  }

  /** A streaming process; throws VmEndedError at once when the VM has ended. */
  spawn(argv: string[], options: SpawnOptions = {}): GuestProcess {
    return this.channel().spawn(argv, options);
  }

  /** Runs a process to its end: stdin fed, both outputs collected (each up to maxOutputBytes). */
  async exec(argv: string[], options: VmExecOptions = {}): Promise<ExecResult> {
    const { stdin, maxOutputBytes = DEFAULT_MAX_OUTPUT_BYTES, ...rest } = options;
    const child = this.spawn(argv, { ...rest, stdin: stdin !== undefined });
    // A process may end without reading all its input; its exit, not the feeding, is the answer.
    if (stdin !== undefined) child.write(stdin).then(() => child.closeStdin()).catch(() => {});
    const program = argv[0] ?? "";
    try {
      const [stdout, stderr, exited] = await Promise.all([
        readBounded(child.stdout, maxOutputBytes, () => new OutputLimitError(program, "stdout", maxOutputBytes)),
        readBounded(child.stderr, maxOutputBytes, () => new OutputLimitError(program, "stderr", maxOutputBytes)),
        child.exited,
      ]);
      return { ...exited, stdout, stderr };
    } catch (error) {
      // The guest kills the process group of a session this side gave up (a no-op once it ended).
      child.close();
      throw error;
    }
  }

  /** Writes a guest file whole (synced and renamed into place), or not at all. */
  async writeFile(path: string, data: Uint8Array | string, options: { mode?: number } = {}): Promise<void> {
    await this.channel().writeFile(path, data, options);
  }

  async readFile(path: string): Promise<Uint8Array> {
    return this.channel().readFile(path);
  }

  /**
   * The orderly stop: the supervisor stops the workload (SIGTERM, grace, SIGKILL), tears down and
   * powers off; QEMU is killed if it is not gone within the guest's stop-timeout plus teardown.
   * Resolves with the run's result once QEMU ended; on a VM that already ended, with its result.
   */
  stop(): Promise<RunResult> {
    if (!this.hasEnded) this.stopping ??= this.askToStop();
    return this.ended;
  }

  /** Kills QEMU at once; resolves with the run's result once it exited. */
  kill(): Promise<RunResult> {
    this.parts.kill();
    return this.ended;
  }

  private async askToStop(): Promise<void> {
    const deadline = setTimeout(() => this.parts.kill(), this.parts.stopWaitMs);
    const clear = () => clearTimeout(deadline);
    this.parts.run.then(clear, clear);
    try {
      await this.parts.client.stop();
    } catch (error) {
      // Already stopping (the workload ended), or the channel going with QEMU: the deadline bounds
      // the wait. Any other refusal leaves the guest running: QEMU goes now.
      const going = error instanceof ChannelClosedError || (error instanceof GuestError && error.code === ErrorCode.STOPPING);
      if (!going) this.parts.kill();
    }
  }

  private channel(): ControlClient {
    if (this.endReason !== null) throw new VmEndedError(this.pid, this.endReason);
    // The channel closes only with QEMU: the run's verdict follows in a moment.
    if (this.parts.client.closed) throw new VmEndedError(this.pid, "its control channel closed");
    return this.parts.client;
  }
}
