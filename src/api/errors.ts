// The API's typed failures, each with a one-line message naming its cause. The control channel's
// own (GuestError, SpawnError, ChannelClosedError) are re-exported: a caller catches them by class.
import type { RunResult } from "../host/qemu";

export { ChannelClosedError, GuestError, SpawnError } from "../control/client";

/** boot() or restore() failed: a bad option, QEMU failing, or the VM ending before its supervisor answered. */
export class BootError extends Error {
  /** How the VM ended, when QEMU ran at all. */
  readonly run: RunResult | null;

  constructor(message: string, run: RunResult | null = null) {
    super(message);
    this.name = "BootError";
    this.run = run;
  }
}

/** A call on a VM that has ended (or whose control channel is gone with it). */
export class VmEndedError extends Error {
  constructor(readonly pid: number, readonly reason: string) {
    super(`the VM (QEMU pid ${pid}) has ended: ${reason}`);
    this.name = "VmEndedError";
  }
}

/** exec() stopped reading a stream past its bound; the process was killed. */
export class OutputLimitError extends Error {
  constructor(readonly program: string, readonly stream: "stdout" | "stderr", readonly limitBytes: number) {
    super(`${program}: ${stream} passed exec's bound of ${limitBytes} bytes (raise maxOutputBytes, or spawn and stream it); the process was killed`);
    this.name = "OutputLimitError";
  }
}

/** take() on a closed pool, or a take() still waiting when the pool closed. */
export class PoolClosedError extends Error {
  constructor() {
    super("the pool is closed");
    this.name = "PoolClosedError";
  }
}

/** A pool's restore failed; it is tried again after `retryInMs`. */
export class PoolRestoreError extends Error {
  constructor(readonly snapshot: string, override readonly cause: unknown, readonly failuresInARow: number, readonly retryInMs: number) {
    super(`restoring ${snapshot} failed (${failuresInARow} in a row; again in ${retryInMs} ms): ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "PoolRestoreError";
  }
}
