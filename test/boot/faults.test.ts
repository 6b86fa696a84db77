// The fault matrix, host side: QEMU refusing to start, killed under a run, a save and a restore;
// a save interrupted half-way; a damaged snapshot directory; many restores while one is killed.
// Each row injects the fault for real and asserts the one line, the exit status, that nothing is
// left running and what is on disk.
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitStatusError } from "../../src/errors";
import { runVm, type RunOptions } from "../../src/host/qemu";
import { restoreSnapshot, saveSnapshot, type RestoreResult } from "../../src/host/snapshot";
import { statIdentity } from "../../src/host/snapshot-files";
import { MANIFEST, RAM, STATE, type SnapshotManifest } from "../../src/host/snapshot-manifest";
import { BURROW, INITRAMFS, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../helpers/artifacts";
import { parseConsole, tail } from "../helpers/boot";
import { startCliRun } from "../helpers/cli-run";
import { randomBytes } from "node:crypto";
import { microGuest, restoreByHand, resumeFrames } from "../helpers/snapshot";
import { MAX_BODY_BYTES } from "../../src/control/wire";
import { encodePointResume, MAX_SUPERVISOR_RESUME_BYTES } from "../../src/snapshot/protocol";

const BOOT_TIMEOUT_MS = 240_000;
const work = mkdtempSync(join(tmpdir(), "burrow-faults-"));
const disk = join(work, "rootfs.ext4");
const dir = join(work, "snap");
afterAll(() => rmSync(work, { recursive: true, force: true }));

const base = (append = "burrow.zram=64M -- fault-args"): RunOptions => microGuest(disk, append);

const cliBase = () => ["--kernel", KERNEL_MICRO, "--initrd", INITRAMFS, "--disk", disk];

/** QEMU processes whose command line names `needle` (a path only this test uses). */
function qemusNaming(needle: string): number[] {
  const found = Bun.spawnSync(["pgrep", "-f", `qemu-system.*${needle}`]).stdout.toString().trim();
  return found ? found.split("\n").map(Number) : [];
}

/** Nothing crashed in Bun: no crash banner, no stack trace. */
function expectNoCrash(text: string): void {
  expect(text).not.toMatch(/Bun v\d+\.\d+\.\d+ \(Linux/);
  expect(text).not.toMatch(/^\s+at .*:\d+:\d+\)?$/m);
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = Bun.spawn([BURROW, "run", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

describe("QEMU refusing to start or dying", () => {
  test("more memory than the host has: QEMU's reason (plain, copy save), or refused before QEMU (mapped save)", async () => {
    requireArtifacts(BURROW, KERNEL_MICRO, INITRAMFS, ROOTFS);
    copyFileSync(ROOTFS, disk);
    const plain = await cli([...cliBase(), "--mem", "3T"]);
    expect(plain.code).toBe(126);
    expect(plain.stderr).toContain("burrow: error: qemu exited with status 1: cannot set up guest memory 'microvm.ram': Cannot allocate memory");
    const copy = await cli([...cliBase(), "--mem", "3T", "--snapshot-save", join(work, "big-copy"), "--snapshot-copy"]);
    expect(copy.code).toBe(126);
    expect(copy.stderr).toContain(`--snapshot-save ${join(work, "big-copy")}: qemu exited with status 1: cannot set up guest memory 'microvm.ram': Cannot allocate memory`);
    const mapped = await cli([...cliBase(), "--mem", "3T", "--snapshot-save", join(work, "big-mapped")]);
    expect(mapped.code).toBe(1);
    expect(mapped.stderr).toMatch(/--snapshot-save .*big-mapped: --mem 3T is more than this host's memory \(\d+\.\d GiB\)/);
    for (const run of [plain, copy, mapped]) {
      expectNoCrash(run.stderr);
      expect(run.stderr.trim().split("\n").filter((line) => line.startsWith("burrow:"))).toHaveLength(1);
    }
    expect(existsSync(join(work, "big-copy", MANIFEST))).toBe(false);
  }, BOOT_TIMEOUT_MS);

  test("a disk another QEMU holds: QEMU's lock error, status 126; the holder is unaffected", async () => {
    const controller = new AbortController();
    let holderOutput = "";
    const holder = runVm({ ...base("burrow.agent=/bin/sh -- -c 'echo holding; sleep 100'"), signal: controller.signal }, (text) => (holderOutput += text));
    try {
      const deadline = Date.now() + 120_000;
      while (!holderOutput.includes("holding") && Date.now() < deadline) await Bun.sleep(50);
      expect(holderOutput).toContain("holding");
      const second = await runVm({ ...base(), timeoutSeconds: 60 });
      expect(second.outcome).toBe("qemu-failed");
      expect(second.exitCode).toBe(126);
      expect(second.reason).toMatch(/^qemu exited with status 1: .*Failed to get "write" lock/);
    } finally {
      controller.abort();
      await holder;
    }
  }, BOOT_TIMEOUT_MS);

  test("QEMU killed under a run: one line, status 126", async () => {
    let seen = "";
    const result = await runVm({ ...base(), onSpawn: (qemu) => void waitFor(() => seen.includes("Run /init"), 60_000).then(() => qemu.kill("SIGKILL")) }, (text) => (seen += text));
    expect(result.outcome).toBe("qemu-failed");
    expect(result.exitCode).toBe(126);
    expect(result.reason).toBe("qemu was killed by SIGKILL");
  }, BOOT_TIMEOUT_MS);
});

async function waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await Bun.sleep(20);
  return done();
}

async function expectStatusError(promise: Promise<unknown>, status: number, pattern: RegExp): Promise<void> {
  const error = await promise.then(() => null, (caught: unknown) => caught);
  if (!(error instanceof ExitStatusError)) throw new Error(`expected an ExitStatusError, got ${String(error)}`);
  expect(error.message).toMatch(pattern);
  expect(error.message).not.toContain("\n");
  expect(error.exitStatus).toBe(status);
}

describe("snapshot faults", () => {
  test("QEMU killed under a save, then burrow run killed under a save: nothing left running, nothing a restore accepts, the directory reusable", async () => {
    const killer = setInterval(() => {
      for (const pid of qemusNaming(`${dir}/ram.partial`)) process.kill(pid, "SIGKILL");
    }, 1000);
    try {
      await expectStatusError(saveSnapshot(base(), dir), 126, new RegExp(`^--snapshot-save ${dir}: qemu was killed by SIGKILL$`));
    } finally {
      clearInterval(killer);
    }
    expect(existsSync(join(dir, MANIFEST))).toBe(false);
    expect(existsSync(join(dir, `${RAM}.partial`))).toBe(false);

    const run = startCliRun([...cliBase(), "--snapshot-save", dir]);
    expect(await run.waitFor(/Run \/init/)).toBe(true);
    const stopped = await run.stop("SIGKILL");
    expect(stopped.code).toBe(137);
    // QEMU dies with burrow run (its parent-death signal), however burrow run died.
    expect(await waitFor(() => qemusNaming(dir).length === 0, 5_000)).toBe(true);
    expect(existsSync(join(dir, MANIFEST))).toBe(false);
    await expect(restoreSnapshot(dir, { timeoutSeconds: 60 })).rejects.toThrow(`--snapshot-restore ${dir}: no manifest.json: not a snapshot, or its save did not finish (save again)`);

    const saved = await saveSnapshot(base(), dir);
    expect(saved.manifest.form).toBe("mapped");
    expect(existsSync(join(dir, `${RAM}.partial`))).toBe(false);
  }, BOOT_TIMEOUT_MS);

  test("three restores at once, one killed: it ends in one line and status 126, the others are unaffected", async () => {
    requireArtifacts(join(dir, MANIFEST));
    const pids: number[] = [];
    const restores = ["one", "two", "three"].map((instance, index) =>
      restoreSnapshot(dir, { instance, args: [instance], timeoutSeconds: 120, onQemu: (pid) => (pids[index] = pid) }));
    await waitFor(() => pids[1] !== undefined, 30_000);
    process.kill(pids[1]!, "SIGKILL");
    const [one, two, three] = await Promise.allSettled(restores);
    // Killed before the guest resumed, the restore fails; after, the run it started ends: one line and 126 either way.
    if (two!.status === "rejected") {
      const error = two!.reason as ExitStatusError;
      expect(error.exitStatus).toBe(126);
      expect(error.message).toMatch(/^restore of .* failed: qemu was killed by SIGKILL$/);
    } else {
      expect(two!.value.exitCode).toBe(126);
      expect(two!.value.reason).toBe("qemu was killed by SIGKILL");
    }
    for (const settled of [one, three]) {
      if (settled!.status !== "fulfilled") throw settled!.reason;
      const result = settled!.value as RestoreResult;
      const agent = parseConsole(result.output).agent;
      if (!agent.has("done")) throw new Error(`restore ${result.instance} did not finish:\n${tail(result, 40)}`);
      expect(agent.get("arg[1]")).toEqual([result.instance]);
      expect(result.exitCode).toBe(0);
    }
    // No restore wrote the RAM file: it is still the file the save sealed.
    const manifest = JSON.parse(readFileSync(join(dir, MANIFEST), "utf8")) as SnapshotManifest;
    expect(statIdentity(join(dir, RAM))).toBe(manifest.saved.ram!.identity);
    expect(pids.every((pid) => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z "))).toBe(true);
  }, BOOT_TIMEOUT_MS);

  test("a moved copy is hashed once, then trusted; damaged files and manifests are refused before QEMU starts", async () => {
    const copy = join(work, "copy");
    expect(Bun.spawnSync(["cp", "-a", "--sparse=always", dir, copy]).exitCode).toBe(0);
    const moved = await restoreSnapshot(copy, { timeoutSeconds: 120 });
    expect(moved.timings!.hashed).toBe(true);
    expect(parseConsole(moved.output).agent.has("done")).toBe(true);

    const refused = async (damage: () => void, pattern: RegExp) => {
      const scratch = join(work, `damaged-${Math.random().toString(36).slice(2)}`);
      expect(Bun.spawnSync(["cp", "-a", "--sparse=always", copy, scratch]).exitCode).toBe(0);
      const previous = process.cwd();
      process.chdir(scratch);
      try {
        damage();
      } finally {
        process.chdir(previous);
      }
      let started = false;
      const error = await restoreSnapshot(scratch, { timeoutSeconds: 60, onQemu: () => (started = true) }).then(() => null, (caught: Error) => caught);
      expect(started).toBe(false);
      expect(error?.message ?? "restored").toMatch(pattern);
      expect(error!.message).toContain("(save again)");
      rmSync(scratch, { recursive: true, force: true });
    };
    const flip = (name: string, offset: number) => {
      const fd = openSync(name, "r+");
      writeSync(fd, Buffer.from([0x5a]), 0, 1, offset);
      closeSync(fd);
    };
    await refused(() => truncateSync(RAM, 64 << 20), /ram is 67108864 bytes, the save wrote 536870912 \(truncated or replaced\)/);
    await refused(() => flip(RAM, 256 << 20), /ram does not hold what the save wrote \(its sha256 differs\)/);
    await refused(() => flip(STATE, statSync(STATE).size >> 1), /state does not hold what the save wrote/);
    await refused(() => writeFileSync(RAM, Buffer.alloc(0)), /ram is 0 bytes/);
    await refused(() => rmSync(STATE), /state is missing \(ENOENT\)/);
    const editManifest = (edit: (manifest: Record<string, any>) => void) => () => {
      const manifest = JSON.parse(readFileSync(MANIFEST, "utf8"));
      edit(manifest);
      writeFileSync(MANIFEST, JSON.stringify(manifest));
    };
    await refused(editManifest((manifest) => (manifest.options.mem = "1G")), /saved\.ram\.size: expected the guest's memory/);
    await refused(editManifest((manifest) => delete manifest.options.disks), /options\.disks: expected a list of strings; the snapshot is damaged or was edited \(save again\)/);
    await refused(editManifest((manifest) => (manifest.options.smp = "1; rm -rf /")), /options\.smp: expected a number/);
    await refused(editManifest((manifest) => (manifest.burrowSnapshot = 1)), /saved by an older burrow \(version 1/);
    await refused(() => writeFileSync(MANIFEST, "{\"burrowSnapshot\":"), /manifest\.json: not JSON/);
  }, BOOT_TIMEOUT_MS);

  test("the control port during a restore: a resume too long, one cut off by the host hanging up, one a real host refuses to send — one line each, the fallback, status 1", async () => {
    const scratch = mkdtempSync(join(work, "control-"));
    const refusal = (why: string) => new RegExp(`snapshot: malformed resume message on burrow\\.control: ${why}; not starting the agent from a cloned state`);
    const flood = await restoreByHand(dir, scratch, resumeFrames(new Uint8Array(MAX_BODY_BYTES).fill(0x78)));
    expect(flood.output).toMatch(refusal(`longer than ${MAX_SUPERVISOR_RESUME_BYTES} bytes`));
    const header = `burrow-resume 1 vm-1 ${BigInt(Date.now()) * 1_000_000n} ${"ab".repeat(64)}`;
    const [hello, whole] = resumeFrames(`${header} - 0:\n`);
    const halfway = await restoreByHand(dir, scratch, [hello!, whole!.subarray(0, 40)], { hangUp: true });
    expect(halfway.output).toMatch(refusal("the host closed the port in the middle of it \\(\\d+ bytes received\\)"));
    // Well formed, but what a real host refuses to send: the guest refuses it too.
    const loader = await restoreByHand(dir, scratch, resumeFrames(`${header} - 1:${Buffer.from("LD_PRELOAD=/x.so").toString("hex")}\n`));
    expect(loader.output).toMatch(refusal("env: a variable that steers the runtime or the loader cannot be set"));
    const nul = await restoreByHand(dir, scratch, resumeFrames(`${header} 1:610062 0:\n`));
    expect(nul.output).toMatch(refusal("args: expected - or COUNT:HEX,... of at most 256 arguments without NUL"));
    for (const result of [flood, halfway, loader, nul]) {
      expect(parseConsole(result.output).agent.has("start")).toBe(false);
      expect(result.exitCode).toBe(1);
    }
  }, BOOT_TIMEOUT_MS);

  test("junk on the control port before a host greets: one warning, the bytes skipped, and a valid resume after it is taken", async () => {
    const scratch = mkdtempSync(join(work, "junk-"));
    const junk = new TextEncoder().encode("garbage\n".repeat(2000));
    const message = encodePointResume({ instance: "vm-junk", entropy: new Uint8Array(randomBytes(64)), realtimeNs: BigInt(Date.now()) * 1_000_000n, args: null, env: [] });
    const result = await restoreByHand(dir, scratch, [junk, ...resumeFrames(message)]);
    expect(result.output).toMatch(/control: a malformed frame from the host \(bad frame magic\); skipping to the next frame/);
    expect(result.output).toMatch(/resumed as instance vm-junk/);
    expect(parseConsole(result.output).agent.has("start")).toBe(true);
  }, BOOT_TIMEOUT_MS);

  test("burrow run --snapshot-restore ended by SIGTERM, SIGINT, SIGHUP or SIGKILL: QEMU never outlives it, the status names the signal", async () => {
    const sleepy = join(work, "sleepy");
    await saveSnapshot(base('burrow.agent=/bin/sh -- -c "echo sleepy: up; exec sleep 300"'), sleepy);
    // Supervised (the default): the clone stops in order over its control channel and reports the
    // workload's status (143, its SIGTERM); SIGKILL leaves no time for that.
    for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 143], ["SIGHUP", 143], ["SIGKILL", 137]] as const) {
      const run = startCliRun(["--snapshot-restore", sleepy]);
      expect(await run.waitFor(/^sleepy: up/m, 60_000)).toBe(true);
      const stopped = await run.stop(signal);
      expect(stopped.code).toBe(code);
      if (signal !== "SIGKILL") expect(stopped.stderr).toContain(`guest reported exit status 143 (stopped by ${signal})`);
      expect(await waitFor(() => qemusNaming(sleepy).length === 0, 5_000)).toBe(true);
      expectNoCrash(stopped.stderr);
    }
  }, BOOT_TIMEOUT_MS);
});
