import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SpawnError } from "../../src/control/client";
import { OUTPUT_WINDOW_BYTES } from "../../src/control/wire";
import { parseCpArgs } from "../../src/commands/cp";
import { execOutcome, parseExecArgs, spawnFailure } from "../../src/commands/exec";
import { parseKillArgs, parseSignal } from "../../src/commands/kill";
import { parseLogsArgs } from "../../src/commands/logs";
import { formatUptime, parsePsArgs } from "../../src/commands/ps";
import { parseStopArgs } from "../../src/commands/stop";
import { withoutDetach } from "../../src/host/detach";
import { vmPaths } from "../../src/host/vm-registry";
import { FakeGuest, pattern } from "../helpers/fake-guest";

const MAIN = resolve(import.meta.dir, "../../src/main.ts");

describe("burrow exec's arguments", () => {
  test("options until NAME, then the command (with or without --)", () => {
    expect(parseExecArgs(["-it", "-e", "A=1", "-eB=2=3", "-w", "/srv", "-u", "app", "--timeout", "1.5", "web", "--", "ls", "-l", "--timeout"])).toEqual({
      name: "web", argv: ["ls", "-l", "--timeout"], interactive: true, tty: true, env: [["A", "1"], ["B", "2=3"]], cwd: "/srv", user: "app", timeoutMs: 1500,
    });
    expect(parseExecArgs(["web", "uname", "-a"])).toEqual({ name: "web", argv: ["uname", "-a"], interactive: false, tty: false, env: [] });
  });

  test("bad values are refused in one line", () => {
    const usage = "(usage: burrow exec";
    expect(() => parseExecArgs([])).toThrow(`missing arguments ${usage}`);
    expect(() => parseExecArgs(["web"])).toThrow(`no command to run ${usage}`);
    expect(() => parseExecArgs(["web", "--"])).toThrow(`no command to run ${usage}`);
    expect(() => parseExecArgs(["--bogus", "web", "ls"])).toThrow(`unknown option --bogus ${usage}`);
    expect(() => parseExecArgs(["-x", "web", "ls"])).toThrow(`unknown option -x ${usage}`);
    expect(() => parseExecArgs(["-e", "NOEQUALS", "web", "ls"])).toThrow('-e needs NAME=VALUE, got "NOEQUALS"');
    expect(() => parseExecArgs(["-e", "1A=x", "web", "ls"])).toThrow('env: "1A" is not a variable name');
    expect(() => parseExecArgs(["-w", "rel", "web", "ls"])).toThrow('cwd "rel": expected an absolute path');
    expect(() => parseExecArgs(["-u", "a b", "web", "ls"])).toThrow('user "a b": expected NAME or UID[:GID]');
    for (const bad of ["0", "-1", "abc", "1e3", "5000000"]) expect(() => parseExecArgs(["--timeout", bad, "web", "ls"])).toThrow(`bad --timeout ${JSON.stringify(bad)} (seconds, above 0 and at most 4294967)`);
    expect(() => parseExecArgs(["--timeout"])).toThrow(`--timeout needs a value ${usage}`);
    expect(() => parseExecArgs(["-i=1", "web", "ls"])).toThrow("unknown option -=");
  });

  test("the command's end becomes the status: its own, 124 for a guest timeout, 127/126 for a spawn failure", () => {
    expect(execOutcome("ls", { exitCode: 3, timedOut: false, oomKilled: false })).toEqual({ status: 3, line: null });
    expect(execOutcome("sleep", { exitCode: 137, timedOut: true, oomKilled: false }, 2000)).toEqual({ status: 124, line: "sleep timed out after 2 s; the guest killed its process group" });
    expect(execOutcome("big", { exitCode: 137, timedOut: false, oomKilled: true })).toEqual({ status: 137, line: "big was killed by the guest's OOM killer" });
    expect(spawnFailure(new SpawnError("nope", 2, 13, "execve nope")).exitStatus).toBe(127);
    expect(spawnFailure(new SpawnError("/etc/passwd", 13, 13, "execve")).exitStatus).toBe(126);
    expect(spawnFailure(new SpawnError("x", 2, 13, "t")).message).toBe("x did not start: EXEC failed with ENOENT: t");
  });
});

describe("the other verbs' arguments", () => {
  test("kill: names with or without SIG, any case, or 1-64; SIGKILL by default", () => {
    expect(parseSignal("KILL")).toBe(9);
    expect(parseSignal("SIGTERM")).toBe(15);
    expect(parseSignal("hup")).toBe(1);
    expect(parseSignal("64")).toBe(64);
    expect(parseKillArgs(["web"])).toEqual({ name: "web", signal: 9 });
    for (const bad of ["0", "65", "BOGUS", "SIG", "", "-9", "constructor"]) expect(() => parseSignal(bad)).toThrow(`bad signal ${JSON.stringify(bad)} (a name like TERM or SIGTERM, or a number 1-64)`);
    expect(() => parseKillArgs(["web", "TERM", "extra"])).toThrow('unexpected argument "extra"');
  });

  test("cp: exactly one side NAME:/PATH", () => {
    expect(parseCpArgs(["web:/etc/hosts", "out"])).toEqual({ direction: "from-guest", guest: { name: "web", path: "/etc/hosts" }, local: "out" });
    expect(parseCpArgs(["./a:b", "web:/tmp/"])).toEqual({ direction: "to-guest", local: "./a:b", guest: { name: "web", path: "/tmp/" } });
    expect(() => parseCpArgs(["web:/a", "db:/b"])).toThrow("both sides name a VM");
    expect(() => parseCpArgs(["a", "b"])).toThrow("neither side names a VM (NAME:PATH)");
    expect(() => parseCpArgs(["web:etc", "b"])).toThrow("web:etc: the guest path must be absolute");
    expect(() => parseCpArgs(["web:/a"])).toThrow("too few arguments (usage: burrow cp");
  });

  test("ps, stop, logs take what they name and nothing else", () => {
    expect(parsePsArgs(["--json"])).toEqual({ json: true });
    expect(() => parsePsArgs(["web"])).toThrow('unexpected argument "web"');
    expect(parseStopArgs(["web"])).toEqual({ name: "web" });
    expect(() => parseStopArgs([])).toThrow("missing arguments (usage: burrow stop NAME)");
    expect(parseLogsArgs(["-f", "web"])).toEqual({ name: "web", follow: true });
    expect(() => parseLogsArgs(["web", "--tail"])).toThrow("unknown option --tail");
  });

  test("uptime reads at a glance", () => {
    expect([5, 65, 3 * 3600 + 120, 2 * 86400 + 4 * 3600].map(formatUptime)).toEqual(["5s", "1m05s", "3h02m", "2d04h"]);
  });

  test("--detach is dropped from run's own options only", () => {
    expect(withoutDetach(["--name", "a", "--detach", "--", "--detach"])).toEqual(["--name", "a", "--", "--detach"]);
  });
});

describe("the verbs as a user runs them, against a scripted guest", () => {
  let root: string;
  let guest: FakeGuest | null = null;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "burrow-verbs-"));
  });
  afterEach(() => {
    guest?.stop();
    guest = null;
    rmSync(root, { recursive: true, force: true });
  });

  /** A VM named NAME whose owner is `ownerPid` and whose channel is a FakeGuest. */
  function namedGuest(name: string, ownerPid = process.pid): FakeGuest {
    const paths = vmPaths(name, root);
    mkdirSync(paths.dir, { recursive: true });
    writeFileSync(paths.record, JSON.stringify({ name, ownerPid, ownerStartTicks: null, qemuPid: null, startedAt: new Date().toISOString(), state: "running", snapshot: null }));
    writeFileSync(paths.consoleLog, "line one\nline two\n");
    guest = new FakeGuest(paths.controlSocket);
    return guest;
  }

  async function burrow(args: string[], stdin: string | null = null): Promise<{ stdout: Buffer; stderr: string; code: number }> {
    const child = Bun.spawn([process.execPath, MAIN, ...args], { env: { ...process.env, BURROW_STATE_DIR: root }, stdin: stdin === null ? "ignore" : new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).arrayBuffer(), new Response(child.stderr).text(), child.exited]);
    return { stdout: Buffer.from(stdout), stderr, code };
  }

  test("exec: output through a pipe within credit, the command's status, 127 with one line for a missing program", async () => {
    const fake = namedGuest("web");
    // More than the window: the CLI must grant credit back as it writes, never more than the window at once.
    const size = 2 * OUTPUT_WINDOW_BYTES + 500_000;
    const big = await burrow(["exec", "web", "--", "emit", String(size), "5", "3"]);
    expect(big.code).toBe(3);
    expect(big.stdout.equals(Buffer.from(pattern(size, 1)))).toBe(true);
    for (const session of fake.sessions.values()) expect(session.peakCredit).toBeLessThanOrEqual(OUTPUT_WINDOW_BYTES);
    const missing = await burrow(["exec", "web", "fail"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr.trim().split("\n")).toEqual(["burrow: error: fail did not start: EXEC failed with ENOENT: execve fail: No such file or directory"]);
    const echoed = await burrow(["exec", "-i", "web", "--", "cat"], "to the guest\n");
    expect([echoed.code, echoed.stdout.toString()]).toEqual([0, "to the guest\n"]);
  });

  test("exec: SIGTERM to burrow exec goes to the command, whose end is the status", async () => {
    namedGuest("web");
    const child = Bun.spawn([process.execPath, MAIN, "exec", "web", "--", "sleep"], { env: { ...process.env, BURROW_STATE_DIR: root }, stdout: "pipe", stderr: "pipe" });
    while (guest!.sessions.size === 0) await Bun.sleep(20);
    child.kill("SIGTERM");
    expect(await child.exited).toBe(143);
  });

  test("cp both ways, binary-safe, with the mode; a guest error is one line and leaves no temporary file", async () => {
    const fake = namedGuest("web");
    const local = join(root, "blob.bin");
    const data = pattern(300_000, 9);
    writeFileSync(local, data, { mode: 0o640 });
    expect((await burrow(["cp", local, "web:/srv/"])).code).toBe(0);
    expect(Buffer.from(fake.files.get("/srv/blob.bin")!.data).equals(Buffer.from(data))).toBe(true);
    expect(fake.files.get("/srv/blob.bin")!.mode & 0o777).toBe(0o640);
    const back = join(root, "back.bin");
    expect((await burrow(["cp", "web:/srv/blob.bin", back])).code).toBe(0);
    expect(readFileSync(back).equals(Buffer.from(data))).toBe(true);
    expect(statSync(back).mode & 0o777).toBe(0o640);
    const failed = await burrow(["cp", "web:/missing", join(root, "never")]);
    expect([failed.code, failed.stderr.trim()]).toEqual([1, "burrow: error: web:/missing: open /missing: ENOENT"]);
    expect(readdirSync(root).filter((name) => name.includes("burrow-cp"))).toEqual([]);
  });

  test("ps, kill and logs", async () => {
    namedGuest("web");
    const table = await burrow(["ps"]);
    expect(table.stdout.toString()).toMatch(/^NAME +STATE +PID +QEMU PID +UPTIME +WORKLOAD\nweb +running +\d+ +- +\d+s +running \(pid 42\)\n$/);
    const json = JSON.parse((await burrow(["ps", "--json"])).stdout.toString());
    expect(json[0]).toMatchObject({ name: "web", state: "running", workload: { state: "running", pid: 42 } });
    expect((await burrow(["kill", "web", "TERM"])).code).toBe(0);
    const bad = await burrow(["kill", "web", "NOPE"]);
    expect([bad.code, bad.stderr.trim().split("\n").length]).toEqual([1, 1]);
    expect((await burrow(["logs", "web"])).stdout.toString()).toBe("line one\nline two\n");
  });

  test("stop: the stop request, then the wait until the owner is gone", async () => {
    const owner = Bun.spawn(["sleep", "60"]);
    namedGuest("web", owner.pid);
    const stopping = burrow(["stop", "web"]);
    await Bun.sleep(500);
    owner.kill("SIGKILL");
    const stopped = await stopping;
    expect([stopped.code, stopped.stderr, stopped.stdout.toString()]).toEqual([0, "", ""]);
  });

  test("a name no VM has, and one whose VM has ended, are one line each", async () => {
    const none = await burrow(["exec", "ghost", "true"]);
    expect([none.code, none.stderr.trim()]).toEqual([1, "burrow: error: no VM named ghost (burrow ps lists them)"]);
    const dead = Bun.spawnSync(["true"]).pid;
    const paths = vmPaths("ended", root);
    mkdirSync(paths.dir);
    writeFileSync(paths.record, JSON.stringify({ name: "ended", ownerPid: dead, ownerStartTicks: null, qemuPid: null, startedAt: new Date().toISOString(), state: "running", snapshot: null }));
    expect((await burrow(["ps"])).stdout.toString()).toMatch(/\nended +stale +/);
    const ended = await burrow(["stop", "ended"]);
    expect([ended.code, ended.stderr.trim()]).toEqual([1, `burrow: error: VM ended has ended: its burrow run (pid ${dead}) is gone; removed its stale state directory`]);
    expect(existsSync(paths.dir)).toBe(false);
  });

  test("run refuses --detach without --name, and --name with --snapshot-save, before anything starts", async () => {
    const detach = await burrow(["run", "--detach", "--disk", "x"]);
    expect([detach.code, detach.stderr.trim()]).toEqual([1, "burrow: error: --detach needs --name NAME (the name burrow exec, ps, stop and logs use)"]);
    const save = await burrow(["run", "--name", "a", "--snapshot-save", join(root, "snap")]);
    expect([save.code, save.stderr.trim()]).toEqual([1, "burrow: error: --name cannot be combined with --snapshot-save (a save ends its VM)"]);
    const badName = await burrow(["run", "--name", "../x"]);
    expect(badName.code).toBe(1);
    expect(readdirSync(root)).toEqual([]);
  });

  test("a detached run that fails before its VM runs: its reason, its status, nothing left behind", async () => {
    const failed = await burrow(["run", "--name", "d1", "--detach", "--kernel", join(root, "no-kernel"), "--initrd", "", "--disk", join(root, "no-disk")]);
    expect(failed.code).toBe(1);
    expect(failed.stderr.trim()).toBe(`burrow: error: not found: kernel ${join(root, "no-kernel")}, disk ${join(root, "no-disk")}`);
    expect(readdirSync(root)).toEqual([]);
  });
});
