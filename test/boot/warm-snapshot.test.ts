// Warm snapshots: the supervised workload asks for the snapshot itself once it is ready (READY=1
// on BURROW_NOTIFY_FD); every restore then resumes the *running* workload with fresh entropy, the
// host's clock and its own message. A malformed resume never lets it run on.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunOptions, RunResult } from "../../src/host/qemu";
import { restoreSnapshot, saveSnapshot } from "../../src/host/snapshot";
import { INITRAMFS, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../helpers/artifacts";
import { tail } from "../helpers/boot";
import { microGuest, restoreByHand, resumeFrames } from "../helpers/snapshot";

const BOOT_TIMEOUT_MS = 240_000;
const work = mkdtempSync(join(tmpdir(), "burrow-warm-test-"));
const disk = join(work, "rootfs.ext4");
const dir = join(work, "warm");
afterAll(() => rmSync(work, { recursive: true, force: true }));

// The workload warms up (here: it counts), asks for the snapshot, and blocks until it is resumed.
// No double quotes inside: the kernel command line has no escapes.
const WORKLOAD = [
  "echo warm: start",
  "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done",
  "echo warm: warmed $i",
  "echo READY=1 >&$BURROW_NOTIFY_FD",
  "read -r msg <&$BURROW_NOTIFY_FD",
  "echo warm: resumed $msg",
  "echo warm: urandom $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' ')",
  "echo warm: clock $(date +%s)",
].join("; ");

// Supervise mode is the default: no burrow.supervise=1 needed.
const base = (): RunOptions => ({ ...microGuest(disk, `burrow.agent=/bin/sh -- -c "${WORKLOAD}"`), ports: [] });

function lines(result: RunResult, key: string): string[] {
  return [...result.output.matchAll(new RegExp(`^warm: ${key} ?(.*?)\\r?$`, "gm"))].map((match) => match[1]!);
}

describe("warm snapshot", () => {
  test("taken when the workload asks; two restores at once resume it with their own message, entropy and the host's clock", async () => {
    requireArtifacts(KERNEL_MICRO, INITRAMFS, ROOTFS);
    copyFileSync(ROOTFS, disk);
    const saved = await saveSnapshot(base(), dir, () => {}, { warm: true });
    expect(saved.manifest.warm).toBe(true);
    expect(saved.manifest.options.append).toContain("burrow.snapshot=warm");
    expect(lines(saved.run, "warmed")).toEqual(["2000"]);
    expect(saved.run.output).toMatch(/warm snapshot: the workload is ready; waiting for the host/);
    expect(lines(saved.run, "resumed")).toEqual([]);

    const before = Date.now();
    const [first, second] = await Promise.all([
      restoreSnapshot(dir, { instance: "first", args: ["a b"], env: [["MODE", "x"]], timeoutSeconds: 120 }),
      restoreSnapshot(dir, { instance: "second", timeoutSeconds: 120 }),
    ]);
    for (const result of [first, second]) {
      const resumed = lines(result, "resumed");
      if (resumed.length !== 1) throw new Error(`restore ${result.instance} did not resume the workload:\n${tail(result, 40)}`);
      const message = JSON.parse(resumed[0]!) as { type: string; instance: string; realtimeNs: string; args?: string[]; env?: Record<string, string> };
      expect(message.type).toBe("resume");
      expect(message.instance).toBe(result.instance);
      expect(Math.abs(Number(BigInt(message.realtimeNs) / 1_000_000n) - before)).toBeLessThan(60_000);
      // The guest clock is the host's, not the saved one.
      expect(Math.abs(Number(lines(result, "clock")[0]) * 1000 - before)).toBeLessThan(60_000);
      expect(result.output).toMatch(new RegExp(`warm snapshot: resumed as instance ${result.instance} \\(64 bytes of host entropy credited, CRNG reseeded, clock set\\)`));
      // The workload was not started again: it only goes on.
      expect(lines(result, "start")).toEqual([]);
      expect(result.exitCode).toBe(0);
    }
    const firstMessage = JSON.parse(lines(first, "resumed")[0]!) as { args: string[]; env: Record<string, string> };
    expect(firstMessage.args).toEqual(["a b"]);
    expect(firstMessage.env).toEqual({ MODE: "x" });
    expect(lines(first, "urandom")[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(lines(first, "urandom")).not.toEqual(lines(second, "urandom"));
  }, BOOT_TIMEOUT_MS);

  test("a malformed warm resume: one line, the workload stopped, status 1", async () => {
    const result = await restoreByHand(dir, work, resumeFrames(`burrow-warm-resume 1 x ${BigInt(Date.now()) * 1_000_000n} abcd\n{"burrow":"snapshot"}\n`));
    expect(result.output).toMatch(/warm snapshot: malformed resume message on the control port: entropy: expected 64 to 4096 bytes in hex; stopping the workload rather than let it run on a cloned state/);
    expect(lines(result, "resumed")).toEqual([]);
    expect(result.exitCode).toBe(1);
  }, BOOT_TIMEOUT_MS);

  test("with burrow.supervise=0 (exec mode) a warm save is refused before QEMU starts", async () => {
    await expect(saveSnapshot({ ...base(), append: "burrow.supervise=0 -- x" }, join(work, "no-supervise"), () => {}, { warm: true })).rejects.toThrow(/a warm snapshot needs burrow\.supervise=1 in --append/);
  });
});
