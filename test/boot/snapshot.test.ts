// Snapshot point end to end: boot once to burrow's snapshot point and save the VM; restore it twice
// at once; every restore gets its own entropy, the host's clock, its own arguments and variables,
// and the same mounts and swap as a cold boot. Changed files and missing or malformed resume
// messages never reach the agent.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runVm, type RunOptions, type RunResult } from "../../src/host/qemu";
import { restoreSnapshot, saveSnapshot } from "../../src/host/snapshot";
import { INITRAMFS, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../helpers/artifacts";
import { parseConsole, tail } from "../helpers/boot";
import { microGuest, restoreByHand, resumeFrames } from "../helpers/snapshot";

const BOOT_TIMEOUT_MS = 240_000;
const work = mkdtempSync(join(tmpdir(), "burrow-snapshot-test-"));
const disk = join(work, "rootfs.ext4");
const dir = join(work, "snap");
afterAll(() => rmSync(work, { recursive: true, force: true }));

const base = (): RunOptions => microGuest(disk, "burrow.zram=64M -- saved-args");

function explain(result: RunResult): string {
  return `outcome ${result.outcome} (${result.reason})\n${tail(result, 60)}`;
}

describe("snapshot point", () => {
  test("save, then two concurrent restores: fresh entropy, host clock, own args, same mounts and swap as a cold boot", async () => {
    requireArtifacts(KERNEL_MICRO, INITRAMFS, ROOTFS);
    copyFileSync(ROOTFS, disk);
    const saved = await saveSnapshot(base(), dir);
    // The mapped form: the stream holds device state only, the RAM is a sparse file.
    expect(saved.manifest.form).toBe("mapped");
    expect(saved.manifest.saved.state.size).toBeLessThan(1 << 20);
    expect(saved.manifest.ramAllocatedBytes).toBeGreaterThan(8 << 20);
    expect(saved.manifest.options.append).toContain("burrow.snapshot=1");
    expect(saved.run.output).toMatch(/burrow: snapshot point: ready on burrow\.control/);
    expect(parseConsole(saved.run.output).agent.has("start")).toBe(false);

    const before = Date.now();
    // The second with a translation buffer smaller than the guest translates (--tcg-tb-size 4): TCG flushes and refills it.
    let secondCmdline = "";
    // Read once QEMU has exec'd (the pid is known from the spawn, the command line a moment later).
    const readCmdline = (pid: number) => {
      try {
        secondCmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        return;
      }
      if (!secondCmdline.includes("qemu")) setTimeout(() => readCmdline(pid), 5);
    };
    const [first, second] = await Promise.all([
      restoreSnapshot(dir, { args: ["one", "a b"], env: [["APP_MODE", "first"]], instance: "first", timeoutSeconds: 120 }),
      restoreSnapshot(dir, { args: ["two"], instance: "second", timeoutSeconds: 120, tcgTbSizeMiB: 4, onQemu: readCmdline }),
    ]);
    expect(secondCmdline.split("\0")).toContain("tcg,tb-size=4");
    const cold = await runVm({ ...base(), append: "burrow.zram=64M ro -- cold" });
    const results = [first, second].map((result) => ({ result, ...parseConsole(result.output) }));
    for (const { result, agent, burrow } of results) {
      if (!agent.has("done")) throw new Error(`restore ${result.instance} did not reach the agent's end:\n${explain(result)}`);
      // Supervise mode (the default): the supervisor started the agent after the resume, and reports its exit.
      expect(agent.get("pid")![0]).toMatch(/^\d+ ppid=1$/);
      expect(burrow.some((line) => /^burrow: workload \(pid \d+\) exited with status 0$/.test(line))).toBe(true);
      expect(result.outcome).toBe("exit-status");
      expect(result.exitCode).toBe(0);
      expect(result.timings!.resumedMs).toBeGreaterThan(0);
      // The guest clock is the host's at resume, not the one frozen into the snapshot.
      const clock = Number(agent.get("clock")![0]) * 1000;
      expect(Math.abs(clock - before)).toBeLessThan(60_000);
      expect(agent.get("env")).toContain(`BURROW_INSTANCE=${result.instance}`);
      const reportLine = agent.get("boot-report")![0]!;
      if (!reportLine.endsWith("}")) throw new Error(`boot report cut: ${reportLine.slice(-300)}\n${explain(result)}`);
      const report = JSON.parse(reportLine) as { steps: { name: string; status: string }[] };
      expect(report.steps.find((step) => step.name === "snapshot")!.status).toBe("ok");
      // The supervisor's record of this restore (burrow itself was gone before the save).
      const resume = JSON.parse(agent.get("resume-report")![0]!) as { instance: string; readyMs: number; resumeMs: number; execMs: number; entropyBytes: number; args: number; env: number };
      expect(resume.instance).toBe(result.instance);
      expect(resume.resumeMs).toBeGreaterThanOrEqual(resume.readyMs);
      expect(resume.execMs).toBeGreaterThanOrEqual(resume.resumeMs);
      expect(resume.entropyBytes).toBe(64);
    }
    const [one, two] = results;
    expect(one!.agent.get("argc")).toEqual(["2"]);
    expect(one!.agent.get("arg[2]")).toEqual(["a b"]);
    expect(one!.agent.get("env")).toContain("APP_MODE=first");
    expect(two!.agent.get("arg[1]")).toEqual(["two"]);
    expect(one!.agent.get("urandom")![0]).toMatch(/^[0-9a-f]{32}$/);
    expect(one!.agent.get("urandom")).not.toEqual(two!.agent.get("urandom"));

    const coldAgent = parseConsole(cold.output).agent;
    if (!coldAgent.has("done")) throw new Error(`the cold boot did not finish:\n${explain(cold)}`);
    expect(one!.agent.get("mount")).toEqual(coldAgent.get("mount"));
    expect(one!.agent.get("swap")!.length).toBe(1);
    expect(one!.agent.get("swap")![0]!.replace(/ prio=.*/, "")).toBe(coldAgent.get("swap")![0]!.replace(/ prio=.*/, ""));
  }, BOOT_TIMEOUT_MS);

  test("the copy form (--snapshot-copy): the RAM in the stream, restored as before; exec mode (burrow.supervise=0): the agent is PID 1", async () => {
    const copyDir = join(work, "copy-form");
    const saved = await saveSnapshot({ ...base(), append: "burrow.supervise=0 burrow.zram=64M -- saved-args" }, copyDir, () => {}, { form: "copy" });
    expect(saved.manifest.form).toBe("copy");
    expect(saved.manifest.saved.ram).toBeNull();
    expect(saved.manifest.saved.state.size).toBeGreaterThan(16 << 20);
    const restored = await restoreSnapshot(copyDir, { args: ["copied"], timeoutSeconds: 120 });
    const agent = parseConsole(restored.output).agent;
    if (!agent.has("done")) throw new Error(`the copy-form restore did not finish:\n${explain(restored)}`);
    expect(agent.get("arg[1]")).toEqual(["copied"]);
    expect(restored.form).toBe("copy");
    // The supervisor took the resume, then exec'd the agent in its place; it powers off itself.
    expect(agent.get("pid")).toEqual(["1 ppid=0"]);
    expect(restored.outcome).toBe("poweroff");
  }, BOOT_TIMEOUT_MS);

  test("a disk changed since the save: refused with one line", async () => {
    utimesSync(disk, new Date(), new Date(Date.now() + 5000));
    await expect(restoreSnapshot(dir, { timeoutSeconds: 60 })).rejects.toThrow(/cannot restore .*rootfs\.ext4 was modified after the save; the snapshot no longer matches it/);
    copyFileSync(ROOTFS, disk);
  });

  test("without a resume message the agent never starts; a malformed one ends in the fallback", async () => {
    // Same files as the save, so the manifest check would pass: restore by hand with bare QEMU.
    const fresh = mkdtempSync(join(work, "bare-"));
    const runBare = (send: string | null) => restoreByHand(dir, fresh, send === null ? null : resumeFrames(send));
    const silent = await runBare(null);
    expect(parseConsole(silent.output).agent.has("start")).toBe(false);
    expect(silent.output).not.toMatch(/exec "\/usr\/local\/bin\/guest-agent"|supervising pid/);

    const malformed = await runBare(`burrow-resume 1 x ${BigInt(Date.now()) * 1_000_000n} 00 - 0:\n`);
    expect(malformed.output).toMatch(/snapshot: malformed resume message on burrow\.control: entropy: expected 64 to 4096 bytes in hex; not starting the agent from a cloned state/);
    expect(parseConsole(malformed.output).agent.has("start")).toBe(false);
    expect(malformed.outcome).toBe("exit-status");
    expect(malformed.exitCode).toBe(1);
  }, BOOT_TIMEOUT_MS);
});
