// The uevent wait without a kernel: the polling watcher (what open() falls back to without netlink)
// driven by a fake clock, the backoff as a pure function, and parser cases microvm.test.ts lacks.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { MAX_BACKOFF_MS, nextBackoffMs, parseUevents, UeventWatcher } from "../../src/modes/microvm/uevent";

describe("nextBackoffMs", () => {
  test("doubles from 1 ms and stays at the 32 ms cap", () => {
    const sequence = [1];
    for (let i = 0; i < 8; i++) sequence.push(nextBackoffMs(sequence.at(-1)!));
    expect(sequence).toEqual([1, 2, 4, 8, 16, 32, 32, 32, 32]);
    expect(MAX_BACKOFF_MS).toBe(32);
    expect(nextBackoffMs(20)).toBe(32); // never above the cap, even from an odd value
  });
});

/**
 * A fake clock: time moves only when the watcher sleeps. setTimeout is replaced so each sleep
 * advances the clock by exactly the requested delay and resolves at once; the delays are kept.
 */
let clock = 0;
let delays: number[] = [];
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;
const now = () => clock;

beforeEach(() => {
  clock = 1000;
  delays = [];
  globalThis.setTimeout = ((fn: () => void, ms = 0) => {
    delays.push(ms);
    clock += ms;
    queueMicrotask(fn);
    return 0;
  }) as unknown as typeof setTimeout;
  globalThis.clearTimeout = (() => {}) as typeof clearTimeout;
});

afterEach(() => {
  globalThis.setTimeout = realSetTimeout;
  globalThis.clearTimeout = realClearTimeout;
});

describe("UeventWatcher.polling().waitFor (fake clock)", () => {
  test("a polling watcher is not event-driven", () => {
    const watcher = UeventWatcher.polling();
    expect(watcher.eventDriven).toBe(false);
    expect(watcher.count).toBe(0);
    watcher.close(); // no socket: nothing to cancel, must not throw
  });

  test("returns check()'s value once it succeeds, polling with the growing backoff", async () => {
    let calls = 0;
    const found = await UeventWatcher.polling().waitFor(() => (++calls === 4 ? "/dev/vda" : null), 5000, now);
    expect(found).toBe("/dev/vda");
    expect(calls).toBe(4);
    expect(delays).toEqual([1, 2, 4]);
    expect(clock).toBe(1007);
  });

  test("a falsy value other than null counts as found", async () => {
    expect(await UeventWatcher.polling().waitFor(() => 0, 10, now)).toBe(0);
    expect(await UeventWatcher.polling().waitFor(() => "", 10, now)).toBe("");
    expect(delays).toEqual([]);
  });

  test("returns null at the deadline; the last sleep is cut to the deadline, never past it", async () => {
    let calls = 0;
    const found = await UeventWatcher.polling().waitFor(() => (calls++, null), 100, now);
    expect(found).toBeNull();
    // 1+2+4+8+16+32+32 = 95 ms, then the 5 ms left, then one last check at the deadline.
    expect(delays).toEqual([1, 2, 4, 8, 16, 32, 32, 5]);
    expect(clock).toBe(1100);
    expect(calls).toBe(delays.length + 1);
  });

  test("timeout 0 still checks once: found now, or null without sleeping", async () => {
    let calls = 0;
    expect(await UeventWatcher.polling().waitFor(() => (calls++, null), 0, now)).toBeNull();
    expect(calls).toBe(1);
    expect(await UeventWatcher.polling().waitFor(() => "ready", 0, now)).toBe("ready");
    expect(delays).toEqual([]);
  });

  test("a clock that jumps past the deadline (a long stall) ends the wait without sleeping", async () => {
    let calls = 0;
    const found = await UeventWatcher.polling().waitFor(() => {
      calls++;
      clock += 10_000; // check() itself took longer than the whole timeout
      return null;
    }, 50, now);
    expect(found).toBeNull();
    expect(calls).toBe(1);
    expect(delays).toEqual([]);
  });
});

describe("UeventWatcher.polling().waitFor (real clock)", () => {
  beforeEach(() => {
    globalThis.setTimeout = realSetTimeout;
    globalThis.clearTimeout = realClearTimeout;
  });

  test("finds a state that appears later, and gives up near the deadline", async () => {
    const start = performance.now();
    const readyAt = start + 30;
    const realNow = () => performance.now();
    expect(await UeventWatcher.polling().waitFor(() => (performance.now() >= readyAt ? "up" : null), 2000, realNow)).toBe("up");
    expect(performance.now() - start).toBeLessThan(1000);
    const before = performance.now();
    expect(await UeventWatcher.polling().waitFor(() => null, 60, realNow)).toBeNull();
    const waited = performance.now() - before;
    expect(waited).toBeGreaterThanOrEqual(55);
    expect(waited).toBeLessThan(1000);
  });
});

describe("parseUevents: cases beyond test/unit/microvm.test.ts", () => {
  const message = (...tokens: string[]) => Buffer.from(tokens.join("\0") + "\0", "latin1");

  test("a view into a larger buffer is parsed from its own offset and length only", () => {
    const whole = Buffer.concat([Buffer.from("remove@/devices/junk\0ACTION=remove\0"), message("add@/devices/virtual/block/loop0", "DEVNAME=loop0"), Buffer.from("bind@/x\0")]);
    const start = Buffer.byteLength("remove@/devices/junk\0ACTION=remove\0");
    const view = new Uint8Array(whole.buffer, whole.byteOffset + start, whole.length - start - Buffer.byteLength("bind@/x\0"));
    expect(parseUevents(view)).toEqual([{ action: "add", devpath: "/devices/virtual/block/loop0", env: { DEVNAME: "loop0" } }]);
  });

  test("a udev message between two kernel messages: its keys go nowhere, the next kernel message starts fresh", () => {
    const data = Buffer.concat([
      message("add@/devices/a", "SEQNUM=1"),
      message("libudev", "\u00fe\u00ed\u00ca\u00fe\u0028\u0000", "ACTION=add", "DEVPATH=/devices/udev-only", "SEQNUM=99"),
      message("remove@/devices/b", "SEQNUM=2"),
    ]);
    expect(parseUevents(data)).toEqual([
      { action: "add", devpath: "/devices/a", env: { SEQNUM: "1" } },
      { action: "remove", devpath: "/devices/b", env: { SEQNUM: "2" } },
    ]);
  });

  test("a value that looks like a header (KEY=add@/…) stays a value; a datagram without a trailing NUL still parses", () => {
    const data = Buffer.from("change@/devices/c\0NOTE=add@/devices/fake\0SEQNUM=3\0move@/devices/d\0DEVPATH_OLD=/devices/e", "latin1");
    expect(parseUevents(data)).toEqual([
      { action: "change", devpath: "/devices/c", env: { NOTE: "add@/devices/fake", SEQNUM: "3" } },
      { action: "move", devpath: "/devices/d", env: { DEVPATH_OLD: "/devices/e" } },
    ]);
  });

  test("tokens with @ that are not headers (no lowercase action, no /) are ignored", () => {
    expect(parseUevents(message("ADD@/devices/x", "add@devices/x", "@/devices/x", "K=v"))).toEqual([]);
  });
});
