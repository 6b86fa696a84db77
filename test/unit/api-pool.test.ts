// The pool's logic against a scripted restore function: hand-outs never wait on a restore while a
// clone is ready, replacements start on take, the size bound holds, failures are retried with
// backoff and surfaced, close() stops everything.
import { afterEach, describe, expect, test } from "bun:test";
import { Pool, type PoolClone } from "../../src/api/pool";
import { PoolClosedError, PoolRestoreError, VmEndedError } from "../../src/api/errors";
import type { RestoreVmOptions } from "../../src/api/restore";

class FakeClone implements PoolClone {
  readonly ended: Promise<{ reason: string }>;
  stopCalls = 0;
  private end!: (result: { reason: string }) => void;

  constructor(readonly pid: number, private readonly stopMs = 0) {
    this.ended = new Promise((resolve) => (this.end = resolve));
  }

  stop(): Promise<{ reason: string }> {
    this.stopCalls++;
    setTimeout(() => this.end({ reason: "stopped" }), this.stopMs);
    return this.ended;
  }

  crash(reason: string): void {
    this.end({ reason });
  }
}

type Behaviour = "ready" | "fail" | "hang" | "late";

interface Call {
  at: number;
  options: RestoreVmOptions;
  settled: boolean;
  /** For "hang": resolves it by hand. */
  release(): FakeClone;
}

/** A restore function whose n-th call (from 0) does what `script(n)` says. */
class FakeRestorer {
  readonly calls: Call[] = [];
  readonly clones: FakeClone[] = [];
  inflight = 0;
  constructor(private readonly script: (call: number) => Behaviour, private readonly delayMs = 0, private readonly stopMs = 0) {}

  readonly restore = (_dir: string, options: RestoreVmOptions): Promise<FakeClone> => {
    const number = this.calls.length;
    const behaviour = this.script(number);
    this.inflight++;
    let settle!: (clone: FakeClone | Error) => void;
    const result = new Promise<FakeClone>((resolve, reject) => {
      settle = (value) => {
        if (call.settled) return;
        call.settled = true;
        this.inflight--;
        if (value instanceof Error) reject(value);
        else resolve(value);
      };
    });
    const make = () => {
      const clone = new FakeClone(1000 + number, this.stopMs);
      this.clones.push(clone);
      return clone;
    };
    const call: Call = { at: performance.now(), options, settled: false, release: () => {
      const clone = make();
      settle(clone);
      return clone;
    } };
    this.calls.push(call);
    if (behaviour === "hang") options.signal?.addEventListener("abort", () => settle(new Error(`restore ${number} aborted`)));
    // "late": finishes after an abort, as a restore past its last await would.
    if (behaviour === "late") options.signal?.addEventListener("abort", () => setTimeout(() => call.release(), 20));
    if (behaviour === "ready") setTimeout(() => call.release(), this.delayMs);
    if (behaviour === "fail") setTimeout(() => settle(new Error(`restore ${number} failed`)), this.delayMs);
    return result;
  };
}

const pools: Pool<FakeClone>[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

function pool(restorer: FakeRestorer, size: number, extra: Partial<ConstructorParameters<typeof Pool<FakeClone>>[0]> = {}): Pool<FakeClone> {
  const made = new Pool<FakeClone>({ snapshot: "/snap", size, restore: restorer.restore, backoff: { initialMs: 20, maxMs: 1000 }, ...extra });
  pools.push(made);
  return made;
}

async function until(condition: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

/** Whether `promise` settled within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([promise.then(() => true, () => true), Bun.sleep(ms).then(() => false)]);
}

describe("Pool", () => {
  test("take() of a ready clone does not wait for a slow pending restore; with none ready it waits for the next", async () => {
    const restorer = new FakeRestorer((call) => (call < 2 ? "ready" : "hang"));
    const clones = pool(restorer, 2);
    await until(() => clones.counts.ready === 2, "two ready clones");
    const started = performance.now();
    const first = await clones.take();
    const second = await clones.take();
    expect(performance.now() - started).toBeLessThan(50);
    expect([first.pid, second.pid]).toEqual([1000, 1001]);
    // Both replacements are under way (started on the next turn) and hang: the next take waits for one of them.
    await new Promise((resolve) => setImmediate(resolve));
    expect(restorer.calls.length).toBe(4);
    const third = clones.take();
    expect(await settlesWithin(third, 50)).toBe(false);
    const released = restorer.calls[2]!.release();
    expect(await third).toBe(released);
  });

  test("take() starts the replacement restore right after it hands the clone out", async () => {
    const restorer = new FakeRestorer(() => "ready");
    const clones = pool(restorer, 3);
    expect(restorer.calls.length).toBe(3);
    await until(() => clones.counts.ready === 3, "three ready clones");
    await clones.take();
    // The replacement's synchronous start is not the taker's to wait for: it follows on the next turn.
    await new Promise((resolve) => setImmediate(resolve));
    expect(restorer.calls.length).toBe(4);
    expect(clones.counts).toEqual({ ready: 2, restoring: 1, retrying: 0, waiting: 0 });
  });

  test("never more than size clones restoring or ready, under takes, delays and failures", async () => {
    const size = 3;
    let clones: Pool<FakeClone> | null = null;
    let peak = 0;
    const check = () => {
      const held = restorer.inflight + (clones?.counts.ready ?? 0);
      peak = Math.max(peak, held);
      expect(held).toBeLessThanOrEqual(size);
    };
    const restorer = new FakeRestorer((call) => {
      // A restore starting now takes a slot: one must be free.
      expect(restorer.inflight + (clones?.counts.ready ?? 0)).toBeLessThan(size);
      return call % 5 === 4 ? "fail" : "ready";
    }, 3);
    clones = pool(restorer, size, { backoff: { initialMs: 5, maxMs: 20 }, onError: () => {} });
    for (let taken = 0; taken < 20; taken++) {
      check();
      await clones.take().catch((error: unknown) => expect(error).toBeInstanceOf(PoolRestoreError));
      check();
      await Bun.sleep(taken % 3);
    }
    expect(peak).toBe(size);
    expect(restorer.calls.length).toBeGreaterThanOrEqual(20);
  });

  test("a failed restore is surfaced and retried after a doubling backoff; a lone waiting take() rejects with it", async () => {
    const errors: PoolRestoreError[] = [];
    const restorer = new FakeRestorer((call) => (call < 3 ? "fail" : "ready"));
    const clones = pool(restorer, 1, { onError: (error) => errors.push(error) });
    const error = await clones.take().then(() => null, (failure: unknown) => failure);
    expect(error).toBeInstanceOf(PoolRestoreError);
    expect((error as PoolRestoreError).cause).toEqual(new Error("restore 0 failed"));
    await until(() => clones.counts.ready === 1, "the clone after three failures");
    expect(errors.map((failure) => [failure.failuresInARow, failure.retryInMs])).toEqual([[1, 20], [2, 40], [3, 80]]);
    expect(errors[2]!.message).toBe("restoring /snap failed (3 in a row; again in 80 ms): restore 2 failed");
    const gaps = restorer.calls.slice(1).map((call, index) => call.at - restorer.calls[index]!.at);
    // Timers fire no earlier than asked (a millisecond of rounding allowed).
    gaps.forEach((gap, index) => expect(gap).toBeGreaterThanOrEqual(20 * 2 ** index - 1));
    expect((await clones.take()).pid).toBe(1003);
  });

  test("a restore that always fails is retried at the backoff's pace, never spinning", async () => {
    const restorer = new FakeRestorer(() => "fail");
    const clones = pool(restorer, 2, { backoff: { initialMs: 10, maxMs: 40 }, onError: () => {} });
    await Bun.sleep(300);
    // Two slots, each at most once per 10, 20, 40, 40… ms: about 20 calls; a spin would make thousands.
    expect(restorer.calls.length).toBeGreaterThan(4);
    expect(restorer.calls.length).toBeLessThanOrEqual(24);
    expect(clones.counts.restoring + clones.counts.retrying).toBe(2);
  });

  test("a waiting take() is not failed while another restore is under way", async () => {
    const restorer = new FakeRestorer((call) => (call === 0 ? "fail" : "ready"), 0);
    const errors: PoolRestoreError[] = [];
    const clones = pool(restorer, 2, { onError: (error) => errors.push(error) });
    // Call 1 is ready on the next timer tick, after call 0 failed at the same tick's start.
    const clone = await clones.take();
    expect(clone.pid).toBe(1001);
    expect(errors).toHaveLength(1);
  });

  test("a ready clone that ends before it is taken is reported and its slot restored again", async () => {
    const errors: PoolRestoreError[] = [];
    const restorer = new FakeRestorer(() => "ready");
    const clones = pool(restorer, 1, { onError: (error) => errors.push(error) });
    await until(() => clones.counts.ready === 1, "a ready clone");
    restorer.clones[0]!.crash("qemu was killed by SIGKILL");
    await until(() => errors.length === 1, "the report");
    expect(errors[0]!.cause).toBeInstanceOf(VmEndedError);
    expect(errors[0]!.message).toContain("the VM (QEMU pid 1000) has ended: qemu was killed by SIGKILL");
    expect((await clones.take()).pid).toBe(1001);
  });

  test("restoreOptions as a function gives each restore its own, with the pool's abort signal", async () => {
    let counter = 0;
    const restorer = new FakeRestorer(() => "ready");
    const clones = pool(restorer, 2, { restoreOptions: () => ({ instance: `clone-${counter++}`, args: ["--serve"] }) });
    await until(() => clones.counts.ready === 2, "two ready clones");
    expect(restorer.calls.map((call) => call.options.instance)).toEqual(["clone-0", "clone-1"]);
    expect(restorer.calls.every((call) => call.options.args?.[0] === "--serve" && call.options.signal instanceof AbortSignal)).toBe(true);
  });

  test("close() rejects waiting takes, aborts restores, stops held clones and waits for them; taken clones stay", async () => {
    const restorer = new FakeRestorer((call) => (["ready", "ready", "hang", "late", "fail"] as const)[call] ?? "hang", 0, 30);
    const clones = pool(restorer, 4, { onError: () => {} });
    await until(() => clones.counts.ready === 2, "two ready clones");
    const taken = await clones.take(); // its replacement is call 4: it fails, a retry is pending
    await until(() => clones.counts.retrying === 1, "the failed restore's retry");
    expect(clones.counts).toEqual({ ready: 1, restoring: 2, retrying: 1, waiting: 0 });
    const callsBefore = restorer.calls.length;

    const closing = clones.close();
    expect(clones.close()).toBe(closing);
    await expect(clones.take()).rejects.toBeInstanceOf(PoolClosedError);
    // The held clone takes 30 ms to stop: close() waits for it.
    expect(await settlesWithin(closing, 10)).toBe(false);
    await closing;
    expect(restorer.calls[2]!.options.signal!.aborted).toBe(true);
    expect(restorer.calls[3]!.options.signal!.aborted).toBe(true);
    const held = restorer.clones.filter((clone) => clone !== taken);
    // The ready one, and the late one that came after the abort.
    expect(held.map((clone) => clone.stopCalls)).toEqual([1, 1]);
    expect(taken.stopCalls).toBe(0);
    await Bun.sleep(60); // past the retry's backoff: no restore starts after close()
    expect(restorer.calls.length).toBe(callsBefore);
    expect(restorer.inflight).toBe(0);
  });

  test("a take() waiting when the pool closes rejects with PoolClosedError", async () => {
    const restorer = new FakeRestorer(() => "hang");
    const clones = pool(restorer, 1);
    const waiting = clones.take();
    await clones.close();
    await expect(waiting).rejects.toBeInstanceOf(PoolClosedError);
  });

  test("a size that is not a whole number from 1 is refused in one line", () => {
    const restorer = new FakeRestorer(() => "ready");
    expect(() => new Pool({ snapshot: "/snap", size: 0, restore: restorer.restore })).toThrow("a pool's size must be a whole number from 1, got 0");
    expect(() => new Pool({ snapshot: "/snap", size: 1.5, restore: restorer.restore })).toThrow("got 1.5");
    expect(restorer.calls).toHaveLength(0);
  });
});
