// A container's directory under --root: made once per id, its record written whole and read back,
// and the status the engines see following the holder's life (a dead or recycled pid is "stopped").
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  containerPaths,
  type ContainerRecord,
  effectiveStatus,
  holderAlive,
  loadRecord,
  makeContainerDir,
  newRecord,
  NoSuchContainerError,
  readRecord,
  removeContainerDir,
  updateRecord,
  writeRecord,
} from "../../src/oci/container-dir";
import { processStartTicks } from "../../src/host/vm-registry";
import { deadPid } from "../helpers/dead-pid";

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "burrow-oci-root-"));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function liveTicks(): number {
  const ticks = processStartTicks(process.pid);
  if (ticks === null) throw new Error("no start ticks for this process");
  return ticks;
}

const record = (change: Partial<ContainerRecord>): ContainerRecord => ({ ...newRecord("c1", "/bundles/c1", { a: "b" }), ...change });

describe("the directory", () => {
  test("paths sit under root/ID with short socket names", () => {
    const paths = containerPaths("/run/burrow-oci", "c1");
    expect(paths).toEqual({
      dir: "/run/burrow-oci/c1",
      sockets: "/run/burrow-oci/c1",
      record: "/run/burrow-oci/c1/state.json",
      holderSocket: "/run/burrow-oci/c1/h.sock",
      controlSocket: "/run/burrow-oci/c1/c.sock",
      vmPortSocket: "/run/burrow-oci/c1/v.sock",
      qmpSocket: "/run/burrow-oci/c1/q.sock",
      bundleShare: "/run/burrow-oci/c1/bundle",
      plan: "/run/burrow-oci/c1/plan.json",
      consoleLog: "/run/burrow-oci/c1/console.log",
      holderLog: "/run/burrow-oci/c1/holder.log",
    });
  });

  test("sockets whose paths would not fit in sun_path get a short directory of their own, the same for every verb", () => {
    const root = "/run/docker/a-long-exec-root-for-docker/runtime-runc/moby";
    const id = "a".repeat(64);
    const paths = containerPaths(root, id);
    expect(paths.dir).toBe(`${root}/${id}`);
    expect(paths.sockets).not.toBe(paths.dir);
    for (const socket of [paths.holderSocket, paths.controlSocket, paths.vmPortSocket, paths.qmpSocket]) expect(Buffer.byteLength(socket)).toBeLessThanOrEqual(107);
    expect(containerPaths(root, id)).toEqual(paths);
    expect(containerPaths(root, "b".repeat(64)).sockets).not.toBe(paths.sockets);
  });

  test("makeContainerDir makes the root and a private directory; an id in use is refused", () => {
    const nested = join(root, "state", "oci");
    const paths = makeContainerDir(nested, "c1");
    expect(paths).toEqual(containerPaths(nested, "c1"));
    expect(statSync(paths.dir).isDirectory()).toBe(true);
    expect(statSync(paths.dir).mode & 0o777).toBe(0o700);
    expect(() => makeContainerDir(nested, "c1")).toThrow("container c1 already exists");
    // The refusal left what was there alone.
    writeRecord(paths, record({}));
    expect(() => makeContainerDir(nested, "c1")).toThrow("container c1 already exists");
    expect(readRecord(paths)?.id).toBe("c1");
  });

  test("a root that cannot hold the directory fails naming it, not as an id in use", () => {
    const file = join(root, "a-file");
    writeFileSync(file, "");
    expect(() => makeContainerDir(file, "c1")).toThrow(`mkdir '${file}'`);
    expect(() => makeContainerDir(join(file, "oci"), "c1")).toThrow(`ENOTDIR: not a directory, mkdir '${join(file, "oci")}'`);
  });

  test("removeContainerDir takes everything; again is no error", () => {
    const paths = makeContainerDir(root, "c1");
    writeRecord(paths, record({}));
    writeFileSync(paths.consoleLog, "boot\n");
    removeContainerDir(paths);
    expect(existsSync(paths.dir)).toBe(false);
    removeContainerDir(paths);
  });
});

describe("the record", () => {
  test("newRecord: creating, no holder yet, now", () => {
    const before = Date.now();
    const fresh = newRecord("c1", "/b", { k: "v" });
    expect(fresh).toMatchObject({ id: "c1", bundle: "/b", annotations: { k: "v" }, status: "creating", holderPid: 0, holderStartTicks: null, qemuPid: 0, exitStatus: null, error: null });
    const created = Date.parse(fresh.created);
    expect(created).toBeGreaterThanOrEqual(before - 1);
    expect(created).toBeLessThanOrEqual(Date.now());
  });

  test("writeRecord then readRecord: the same record, written private, no temporary left", () => {
    const paths = makeContainerDir(root, "c1");
    const written = record({ status: "running", holderPid: 4242, holderStartTicks: 123456, qemuPid: 4243, exitStatus: 137, error: "x" });
    writeRecord(paths, written);
    expect(readRecord(paths)).toEqual(written);
    expect(statSync(paths.record).mode & 0o777).toBe(0o600);
    expect(readdirSync(paths.dir)).toEqual(["state.json"]);
    expect(readFileSync(paths.record, "utf8").endsWith("}\n")).toBe(true);
  });

  test("readRecord: null when gone, not JSON, or not a record", () => {
    const paths = makeContainerDir(root, "c1");
    expect(readRecord(paths)).toBeNull();
    for (const text of ["{", "null", "[]", '"c1"', '{"bundle":"/b"}', '{"id":7}']) {
      writeFileSync(paths.record, text);
      expect(readRecord(paths)).toBeNull();
    }
  });

  test("loadRecord: the record, or 'does not exist' as the engines read it", () => {
    const paths = makeContainerDir(root, "c1");
    writeRecord(paths, record({}));
    expect(loadRecord(root, "c1")).toEqual({ paths, record: readRecord(paths)! });
    expect(() => loadRecord(root, "c2")).toThrow(NoSuchContainerError);
    expect(() => loadRecord(root, "c2")).toThrow("container c2 does not exist");
  });

  test("updateRecord changes the named fields; a vanished record stays vanished", () => {
    const paths = makeContainerDir(root, "c1");
    writeRecord(paths, record({}));
    expect(updateRecord(paths, { status: "created", holderPid: 99 })).toMatchObject({ id: "c1", status: "created", holderPid: 99, bundle: "/bundles/c1" });
    expect(readRecord(paths)).toMatchObject({ status: "created", holderPid: 99, annotations: { a: "b" } });
    removeContainerDir(paths);
    expect(updateRecord(paths, { status: "stopped" })).toBeNull();
    expect(existsSync(paths.record)).toBe(false);
  });
});

describe("effectiveStatus", () => {
  test("a dead holder: stopped, whatever the record says", () => {
    const pid = deadPid();
    for (const status of ["creating", "created", "running", "paused"] as const) {
      expect(effectiveStatus(record({ status, holderPid: pid, holderStartTicks: null }))).toBe("stopped");
      expect(effectiveStatus(record({ status, holderPid: pid, holderStartTicks: 1 }))).toBe("stopped");
    }
    expect(holderAlive(record({ status: "running", holderPid: pid }))).toBe(false);
  });

  test("a live holder with its start ticks: the recorded status", () => {
    const ticks = liveTicks();
    for (const status of ["creating", "created", "running", "paused"] as const) {
      expect(effectiveStatus(record({ status, holderPid: process.pid, holderStartTicks: ticks }))).toBe(status);
    }
    expect(holderAlive(record({ holderPid: process.pid, holderStartTicks: ticks }))).toBe(true);
    // No ticks recorded: the pid alone.
    expect(effectiveStatus(record({ status: "running", holderPid: process.pid, holderStartTicks: null }))).toBe("running");
  });

  test("a live pid that started at another time is a recycled pid: stopped", () => {
    expect(effectiveStatus(record({ status: "running", holderPid: process.pid, holderStartTicks: liveTicks() + 1 }))).toBe("stopped");
  });

  test("stopped stays stopped; creating with no holder yet stays creating; created with no holder is stopped", () => {
    expect(effectiveStatus(record({ status: "stopped", holderPid: process.pid, holderStartTicks: liveTicks() }))).toBe("stopped");
    expect(effectiveStatus(record({ status: "creating", holderPid: 0 }))).toBe("creating");
    expect(effectiveStatus(record({ status: "created", holderPid: 0 }))).toBe("stopped");
    expect(effectiveStatus(record({ status: "running", holderPid: -1 }))).toBe("stopped");
  });
});
