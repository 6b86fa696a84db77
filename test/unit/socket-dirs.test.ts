// Socket directories of runs killed with SIGKILL are swept by the next run (src/host/socket-dirs.ts):
// named after their maker's pid and start time, removed once that process is gone, never while it
// runs, and nothing else in the directory is touched.
import { afterEach, beforeEach, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeSocketDir, socketDirOwner, sweepSocketDirs } from "../../src/host/socket-dirs";
import { processStartTicks } from "../../src/host/vm-registry";
import { deadPid } from "../helpers/dead-pid";

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), "burrow-sockets-test-"));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

test("the maker is read from the name; other names have none", () => {
  expect(socketDirOwner("burrow-control-1234.5678-AbC123")).toEqual({ pid: 1234, startTicks: 5678 });
  expect(socketDirOwner("burrow-restore-1.0-zzzzzz")).toEqual({ pid: 1, startTicks: 0 });
  for (const name of ["burrow-control-AbC123", "burrow-control-1234-AbC123", "burrow-net-1.2-AbC123", "other-1.2-AbC123", "burrow-control-1.2-AbC12"]) expect(socketDirOwner(name)).toBeNull();
});

test("a dead maker's directory goes with its sockets; a running maker's, an old-style name and other entries stay", () => {
  const dead = deadPid();
  const gone = join(base, `burrow-snapshot-${dead}.42-AbC123`);
  mkdirSync(gone);
  writeFileSync(join(gone, "qmp"), "");
  const mine = join(base, `burrow-control-${process.pid}.${processStartTicks(process.pid)}-XyZ789`);
  mkdirSync(mine);
  const reused = join(base, `burrow-restore-${process.pid}.1-Reused`);
  mkdirSync(reused);
  for (const other of ["burrow-control-OldStl", "unrelated"]) mkdirSync(join(base, other));
  expect(sweepSocketDirs(base).sort()).toEqual([`burrow-restore-${process.pid}.1-Reused`, `burrow-snapshot-${dead}.42-AbC123`]);
  expect(readdirSync(base).sort()).toEqual(["burrow-control-OldStl", `burrow-control-${process.pid}.${processStartTicks(process.pid)}-XyZ789`, "unrelated"].sort());
  expect(existsSync(mine)).toBe(true);
});

test("makeSocketDir names the directory after this process and sweeps first", () => {
  const dead = deadPid();
  mkdirSync(join(base, `burrow-control-${dead}.7-Left01`));
  const dir = makeSocketDir("restore", base);
  expect(socketDirOwner(dir.slice(base.length + 1))).toEqual({ pid: process.pid, startTicks: processStartTicks(process.pid)! });
  expect(readdirSync(base)).toEqual([dir.slice(base.length + 1)]);
});
