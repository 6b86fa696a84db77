// The uevent watcher on a real netlink socket (root): an event the kernel sends before anyone
// waits is queued on the socket and still wakes the first wait, which is when reading starts.
import { describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { UeventWatcher } from "../../src/modes/microvm/uevent";

const now = () => performance.now();
/** A synthetic "change" uevent for /dev/null's device: harmless, and the kernel broadcasts it. */
const pokeNull = () => writeFileSync("/sys/class/mem/null/uevent", "change\n");

describe("UeventWatcher on the kernel's uevent socket", () => {
  test("an event sent before the first wait wakes it (the socket queued it; the reader starts lazily)", async () => {
    if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (netlink uevent socket)");
    const watcher = UeventWatcher.open();
    try {
      expect(watcher.eventDriven).toBe(true);
      pokeNull();
      const seen = await watcher.waitFor(() => (watcher.count > 0 ? watcher.count : null), 10_000, now);
      expect(seen).toBeGreaterThan(0);
    } finally {
      watcher.close();
    }
  });

  test("a watcher that never waited closes its socket", () => {
    const watcher = UeventWatcher.open();
    const fd = (watcher as unknown as { fd: number }).fd;
    expect(existsSync(`/proc/self/fd/${fd}`)).toBe(true);
    watcher.close();
    expect(existsSync(`/proc/self/fd/${fd}`)).toBe(false);
  });
});
