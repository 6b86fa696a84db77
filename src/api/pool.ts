// A pool of restored clones of one snapshot: take() hands out one that already answers, and the
// pool starts restoring its replacement at once. `size` slots, each restoring, ready, or waiting
// out a backoff after a failure: never more than `size` clones restoring or ready.
import { PoolClosedError, PoolRestoreError, VmEndedError } from "./errors";
import { restore as restoreVm, type RestoreVmOptions } from "./restore";
import type { Vm } from "./vm";

/** What the pool needs of a clone (a Vm; tests give their own). */
export interface PoolClone {
  readonly pid: number;
  readonly ended: Promise<{ reason: string }>;
  stop(): Promise<unknown>;
}

export type RestoreFunction<T extends PoolClone> = (dir: string, options: RestoreVmOptions) => Promise<T>;

export interface PoolOptions<T extends PoolClone = Vm> {
  /** The snapshot directory every clone is restored from. */
  snapshot: string;
  /** Clones restoring or ready at once (taken ones no longer count). */
  size: number;
  /**
   * Each restore's options; a function is called once per restore (each clone its own instance
   * id or host ports). The pool adds its own abort signal to any given.
   */
  restoreOptions?: RestoreVmOptions | (() => RestoreVmOptions);
  /** Every failed restore, and every ready clone that ended before it was taken. */
  onError?: (error: PoolRestoreError) => void;
  /** The first retry's delay, doubled per failure in a row up to maxMs (defaults 250 ms, 30 s). */
  backoff?: { initialMs?: number; maxMs?: number };
  /** How a clone is made (default restore()); tests inject their own. */
  restore?: RestoreFunction<T>;
}

const DEFAULT_BACKOFF_INITIAL_MS = 250;
const DEFAULT_BACKOFF_MAX_MS = 30_000;

interface Waiter<T> {
  resolve(clone: T): void;
  reject(error: Error): void;
}

/**
 * take() resolves at once with a ready clone. With none ready it waits for the next restore to
 * finish; it rejects with PoolRestoreError when a restore fails while no other is under way and
 * none is ready (nothing is then on its way), and with PoolClosedError on close(). Every failure
 * also goes to onError, and its slot is restored again after the backoff.
 */
export class Pool<T extends PoolClone = Vm> {
  readonly snapshot: string;
  readonly size: number;
  private readonly ready: T[] = [];
  private readonly waiters: Waiter<T>[] = [];
  /** Restores under way, each with what aborts it on close(). */
  private readonly restoring = new Map<AbortController, Promise<void>>();
  private readonly retries = new Set<ReturnType<typeof setTimeout>>();
  /** Clones stopping because the pool closed. */
  private readonly stopping = new Set<Promise<unknown>>();
  private failuresInARow = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly restoreFn: RestoreFunction<T>;
  private readonly initialMs: number;
  private readonly maxMs: number;

  constructor(private readonly options: PoolOptions<T>) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new RangeError(`a pool's size must be a whole number from 1, got ${options.size}`);
    this.snapshot = options.snapshot;
    this.size = options.size;
    this.restoreFn = options.restore ?? (restoreVm as unknown as RestoreFunction<T>);
    this.initialMs = options.backoff?.initialMs ?? DEFAULT_BACKOFF_INITIAL_MS;
    this.maxMs = options.backoff?.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
    if (!(this.initialMs > 0 && this.maxMs >= this.initialMs)) throw new RangeError(`a pool's backoff needs 0 < initialMs <= maxMs, got ${this.initialMs} and ${this.maxMs}`);
    for (let slot = 0; slot < this.size; slot++) this.startRestore();
  }

  /** Slots by state, for a caller's metrics. */
  get counts(): { ready: number; restoring: number; retrying: number; waiting: number } {
    return { ready: this.ready.length, restoring: this.restoring.size, retrying: this.retries.size, waiting: this.waiters.length };
  }

  /** A restored clone, answering; its slot starts restoring a replacement. */
  take(): Promise<T> {
    if (this.closed) return Promise.reject(new PoolClosedError());
    const clone = this.ready.shift();
    if (clone) {
      // The replacement's restore starts right after: its synchronous part (the snapshot's checks,
      // QEMU's spawn) is not the taker's to wait for.
      setImmediate(() => this.startRestore());
      return Promise.resolve(clone);
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Stops the clones the pool holds and those still restoring; resolves once all have ended. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    for (const timer of this.retries) clearTimeout(timer);
    this.retries.clear();
    for (const waiter of this.waiters.splice(0)) waiter.reject(new PoolClosedError());
    for (const clone of this.ready.splice(0)) this.stopClone(clone);
    const restoring = [...this.restoring];
    // Aborting kills their QEMUs; one that finished first is stopped as it arrives (restored()).
    for (const [abort] of restoring) abort.abort();
    await Promise.all(restoring.map(([, settled]) => settled));
    await Promise.allSettled([...this.stopping]);
  }

  private startRestore(): void {
    if (this.closed) return;
    const abort = new AbortController();
    let attempt: Promise<T>;
    try {
      const given = typeof this.options.restoreOptions === "function" ? this.options.restoreOptions() : this.options.restoreOptions ?? {};
      const signal = given.signal ? AbortSignal.any([given.signal, abort.signal]) : abort.signal;
      attempt = this.restoreFn(this.snapshot, { ...given, signal });
    } catch (error) {
      attempt = Promise.reject(error);
    }
    this.restoring.set(abort, attempt.then((clone) => this.restored(abort, clone), (error: unknown) => this.failed(abort, error)));
  }

  private restored(abort: AbortController, clone: T): void {
    this.restoring.delete(abort);
    if (this.closed) return this.stopClone(clone);
    this.failuresInARow = 0;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve(clone);
      return this.startRestore();
    }
    this.ready.push(clone);
    const gone = (reason: string) => this.readyEnded(clone, reason);
    clone.ended.then((result) => gone(result.reason), (error: unknown) => gone(error instanceof Error ? error.message : String(error)));
  }

  /** A ready clone that ended before it was taken (its timeout, a crash): a failure of its slot. */
  private readyEnded(clone: T, reason: string): void {
    const index = this.ready.indexOf(clone);
    if (index < 0) return; // taken, or stopped by close()
    this.ready.splice(index, 1);
    this.failed(null, new VmEndedError(clone.pid, reason));
  }

  private failed(abort: AbortController | null, error: unknown): void {
    if (abort) this.restoring.delete(abort);
    if (this.closed) return;
    this.failuresInARow++;
    const retryInMs = Math.min(this.initialMs * 2 ** (this.failuresInARow - 1), this.maxMs);
    const failure = new PoolRestoreError(this.snapshot, error, this.failuresInARow, retryInMs);
    const timer = setTimeout(() => {
      this.retries.delete(timer);
      this.startRestore();
    }, retryInMs);
    this.retries.add(timer);
    // Nothing under way and nothing ready: a waiting take() would wait out the backoff blind.
    if (this.restoring.size === 0 && this.ready.length === 0) for (const waiter of this.waiters.splice(0)) waiter.reject(failure);
    // Outside the pool's own bookkeeping: a callback that throws cannot leave it half done.
    const report = this.options.onError;
    if (report) queueMicrotask(() => report(failure));
  }

  private stopClone(clone: T): void {
    const stopped = clone.stop().catch(() => {});
    this.stopping.add(stopped);
    void stopped.then(() => this.stopping.delete(stopped));
  }
}
