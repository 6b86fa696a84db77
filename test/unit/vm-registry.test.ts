import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deadPid } from "../helpers/dead-pid";
import { checkVmName, listVms, lookupVm, readVmRecord, registerVm, stateRoot, vmPaths, type VmRecord } from "../../src/host/vm-registry";

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "burrow-registry-"));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function plant(name: string, record: Partial<VmRecord>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "vm.json"), JSON.stringify({ name, ownerPid: deadPid(), ownerStartTicks: null, qemuPid: null, startedAt: new Date().toISOString(), state: "running", snapshot: null, ...record }));
  return dir;
}

describe("the state root", () => {
  test("BURROW_STATE_DIR, else /run/burrow for root, else XDG_RUNTIME_DIR/burrow, else /tmp/burrow-UID", () => {
    expect(stateRoot({ BURROW_STATE_DIR: "/x", XDG_RUNTIME_DIR: "/r" }, 1000)).toBe("/x");
    expect(stateRoot({ XDG_RUNTIME_DIR: "/r" }, 0)).toBe("/run/burrow");
    expect(stateRoot({ XDG_RUNTIME_DIR: "/run/user/1000" }, 1000)).toBe("/run/user/1000/burrow");
    expect(stateRoot({}, 1000)).toBe("/tmp/burrow-1000");
  });
});

describe("names", () => {
  test("1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit", () => {
    for (const name of ["a", "web-1", "A.b_c", "0", "x".repeat(64)]) expect(checkVmName(name)).toBe(name);
    for (const name of ["", "-a", ".a", "_a", "a/b", "a b", "..", "x".repeat(65), "é", "a\n"]) {
      expect(() => checkVmName(name)).toThrow(`bad VM name ${JSON.stringify(name)} (1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit)`);
    }
  });
});

describe("register, lookup, list", () => {
  test("a registered VM is found, listed, and gone once unregistered", () => {
    const held = registerVm("web", { root, snapshot: "/snaps/a" });
    expect(held.paths).toEqual(vmPaths("web", root));
    expect(statSync(held.paths.dir).mode & 0o777).toBe(0o700);
    const found = lookupVm("web", root);
    expect(found.record).toMatchObject({ name: "web", ownerPid: process.pid, state: "starting", snapshot: "/snaps/a", qemuPid: null });
    held.update({ qemuPid: 1234, state: "running" });
    expect(lookupVm("web", root).record).toMatchObject({ qemuPid: 1234, state: "running" });
    expect(listVms(root).map((vm) => [vm.name, vm.state])).toEqual([["web", "running"]]);
    held.unregister();
    expect(existsSync(held.paths.dir)).toBe(false);
    expect(() => lookupVm("web", root)).toThrow("no VM named web (burrow ps lists them)");
    expect(listVms(root)).toEqual([]);
  });

  test("a name a live VM holds is refused in one line", () => {
    const held = registerVm("db", { root });
    try {
      expect(() => registerVm("db", { root })).toThrow(`a VM named db is running (burrow run pid ${process.pid})`);
    } finally {
      held.unregister();
    }
  });

  test("a stale directory (its owner gone) is removed with one line and the name taken", () => {
    const dir = plant("old", {});
    writeFileSync(join(dir, "console.log"), "from before");
    expect(listVms(root).map((vm) => [vm.name, vm.state])).toEqual([["old", "stale"]]);
    const lines: string[] = [];
    const held = registerVm("old", { root, log: (line) => lines.push(line) });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^removed the stale state directory of VM old \(its burrow run \(pid \d+\) is gone\)$/);
    expect(existsSync(join(dir, "console.log"))).toBe(false);
    expect(readVmRecord(held.paths.record)!.ownerPid).toBe(process.pid);
    held.unregister();
    expect(readdirSync(root)).toEqual([]);
  });

  test("a reused pid is not the owner: a recorded start time that differs makes the directory stale", () => {
    plant("reused", { ownerPid: process.pid, ownerStartTicks: 1 });
    expect(listVms(root)[0]!.state).toBe("stale");
  });

  test("the verbs' lookup of an ended VM says so in one line and removes its directory", () => {
    const dir = plant("gone", {});
    expect(() => lookupVm("gone", root)).toThrow(/^VM gone has ended: its burrow run \(pid \d+\) is gone; removed its stale state directory$/);
    expect(existsSync(dir)).toBe(false);
    expect(readdirSync(root)).toEqual([]);
  });

  test("a directory without vm.json is being registered while young, stale once old", () => {
    const dir = join(root, "half");
    mkdirSync(dir);
    expect(() => registerVm("half", { root })).toThrow("a VM named half is being started by another burrow run");
    expect(listVms(root).map((vm) => vm.state)).toEqual(["starting"]);
    const old = (Date.now() - 60_000) / 1000;
    utimesSync(dir, old, old);
    expect(() => lookupVm("half", root)).toThrow("VM half has ended: it has no vm.json; removed its stale state directory");
  });

  test("a control socket path longer than a unix socket takes is refused before anything is made", () => {
    const deep = join(root, "d".repeat(100));
    expect(() => registerVm("vm", { root: deep })).toThrow("is longer than a unix socket allows (107 bytes); set BURROW_STATE_DIR to a shorter directory");
    expect(existsSync(deep)).toBe(false);
  });

  test("vm.json is replaced whole: a reader holding the old file reads it complete; nothing partial is left", () => {
    const held = registerVm("atomic", { root });
    try {
      const before = statSync(held.paths.record).ino;
      const fd = openSync(held.paths.record, "r");
      held.update({ state: "running", qemuPid: 77 });
      const old = Buffer.alloc(4096);
      const length = readSync(fd, old, 0, old.length, 0);
      expect(JSON.parse(old.subarray(0, length).toString()).state).toBe("starting");
      expect(statSync(held.paths.record).ino).not.toBe(before);
      expect(readVmRecord(held.paths.record)).toMatchObject({ state: "running", qemuPid: 77 });
      expect(readdirSync(held.paths.dir)).toEqual(["vm.json"]);
    } finally {
      held.unregister();
    }
  });

  test("unregister leaves a directory another owner took", () => {
    const held = registerVm("taken", { root });
    writeFileSync(held.paths.record, JSON.stringify({ ...held.record, ownerPid: deadPid() }));
    held.unregister();
    expect(existsSync(held.paths.dir)).toBe(true);
  });
});
