// The verbs on an existing container, without a VM: signals as runc spells them, the state JSON
// the engines read, ps, features, the holder's request line, and start/kill/pause/delete against a
// holder socket played by the test (or a holder and a QEMU played by `sleep`).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import type { UnixSocketListener } from "bun";
import { type ContainerPaths, type ContainerRecord, makeContainerDir, newRecord, OCI_VERSION, readRecord, writeRecord } from "../../src/oci/container-dir";
import { askHolder, parseHolderRequest, type HolderReply, type HolderRequest } from "../../src/oci/holder-link";
import { containerPs, containerState, deleteContainer, features, killContainer, parseSignal, pauseContainer, startContainer, stateOf } from "../../src/oci/lifecycle";
import { UsageError } from "../../src/oci/command-line";
import { processAlive, processStartTicks } from "../../src/host/vm-registry";
import { deadPid } from "../helpers/dead-pid";

let root: string;
const cleanups: (() => void)[] = [];
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "burrow-oci-life-"));
});
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  rmSync(root, { recursive: true, force: true });
});

function ticksOf(pid: number): number {
  const ticks = processStartTicks(pid);
  if (ticks === null) throw new Error(`no start ticks for pid ${pid}`);
  return ticks;
}

/** This process as a live holder: its pid with its start time. */
const live = (): Partial<ContainerRecord> => ({ holderPid: process.pid, holderStartTicks: ticksOf(process.pid) });

function container(id: string, change: Partial<ContainerRecord>): { paths: ContainerPaths; record: ContainerRecord } {
  const paths = makeContainerDir(root, id);
  const record = { ...newRecord(id, `/bundles/${id}`, { "io.container.manager": "libpod" }), ...change };
  writeRecord(paths, record);
  return { paths, record };
}

/** A `sleep` standing in for a holder or QEMU; killed at the end if a test did not. */
function sleeper(): Bun.Subprocess {
  const child = Bun.spawn(["sleep", "60"], { stdio: ["ignore", "ignore", "ignore"] });
  cleanups.push(() => child.kill("SIGKILL"));
  return child;
}

/** The holder's socket played by the test: each request line is recorded and answered with `reply`. */
function fakeHolder(paths: ContainerPaths, reply: (request: HolderRequest | string) => HolderReply | null): (HolderRequest | string)[] {
  const seen: (HolderRequest | string)[] = [];
  const listener: UnixSocketListener<{ buffer: string }> = Bun.listen<{ buffer: string }>({
    unix: paths.holderSocket,
    socket: {
      open: (socket) => void (socket.data = { buffer: "" }),
      data: (socket, data) => {
        socket.data.buffer += Buffer.from(data).toString("utf8");
        const end = socket.data.buffer.indexOf("\n");
        if (end < 0) return;
        const request = parseHolderRequest(socket.data.buffer.slice(0, end));
        seen.push(request);
        const answer = reply(request);
        if (answer === null) socket.end();
        else socket.write(`${JSON.stringify(answer)}\n`);
      },
    },
  });
  cleanups.push(() => listener.stop(true));
  return seen;
}

describe("parseSignal", () => {
  test("numbers, names with and without SIG, any case", () => {
    expect(parseSignal("15")).toBe(constants.signals.SIGTERM);
    expect(parseSignal("9")).toBe(constants.signals.SIGKILL);
    expect(parseSignal("10")).toBe(10);
    expect(parseSignal("64")).toBe(64);
    expect(parseSignal("1")).toBe(1);
    expect(parseSignal("TERM")).toBe(constants.signals.SIGTERM);
    expect(parseSignal("SIGTERM")).toBe(constants.signals.SIGTERM);
    expect(parseSignal("sigkill")).toBe(constants.signals.SIGKILL);
    expect(parseSignal("kill")).toBe(constants.signals.SIGKILL);
    expect(parseSignal("UsR1")).toBe(constants.signals.SIGUSR1);
    expect(parseSignal("SIGWINCH")).toBe(constants.signals.SIGWINCH);
  });

  test("no signal is SIGTERM, as runc kill ID", () => {
    expect(parseSignal(undefined)).toBe(constants.signals.SIGTERM);
  });

  test("out of range, unknown names, signs and spaces: one line naming the text", () => {
    for (const text of ["0", "65", "99999", "-9", "+9", " 9", "9 ", "", "SIG", "FOO", "SIGFOO", "TERM1", "9.0", "constructor", "__proto__"]) {
      expect(() => parseSignal(text)).toThrow(UsageError);
      expect(() => parseSignal(text)).toThrow(`unknown signal ${JSON.stringify(text.slice(0, 20))}`);
    }
    expect(() => parseSignal("X".repeat(100))).toThrow(`unknown signal "${"X".repeat(20)}"`);
  });
});

describe("state", () => {
  test("a live created container: the spec's fields, the holder's pid", () => {
    const { record } = container("c1", { status: "created", ...live() });
    expect(stateOf(record)).toEqual({
      ociVersion: OCI_VERSION,
      id: "c1",
      status: "created",
      pid: process.pid,
      bundle: "/bundles/c1",
      rootfs: "",
      created: record.created,
      owner: "",
      annotations: { "io.container.manager": "libpod" },
    });
  });

  test("a holder that is gone: stopped with pid 0, whatever the record said", () => {
    const { record } = container("c1", { status: "running", holderPid: deadPid(), holderStartTicks: null });
    expect(stateOf(record)).toMatchObject({ status: "stopped", pid: 0, id: "c1", bundle: "/bundles/c1" });
  });

  test("still creating, no holder yet: creating, pid 0", () => {
    expect(stateOf(newRecord("c1", "/b", {}))).toMatchObject({ status: "creating", pid: 0 });
  });

  test("containerState: the record by id as indented JSON with a newline; an unknown id does not exist", () => {
    container("c1", { status: "running", ...live() });
    const text = containerState(root, "c1");
    expect(text.endsWith("}\n")).toBe(true);
    expect(JSON.parse(text)).toMatchObject({ ociVersion: "1.0.2", id: "c1", status: "running", pid: process.pid, annotations: { "io.container.manager": "libpod" } });
    expect(() => containerState(root, "nope")).toThrow("container nope does not exist");
  });
});

describe("ps", () => {
  test("json and table: the holder while it lives, nothing once stopped", () => {
    container("up", { status: "running", ...live() });
    container("down", { status: "running", holderPid: deadPid() });
    expect(containerPs(root, "up", "json")).toBe(`[${process.pid}]\n`);
    expect(containerPs(root, "up", "table")).toBe(`PID\n${process.pid}\n`);
    expect(containerPs(root, "up", undefined)).toBe(`PID\n${process.pid}\n`);
    expect(containerPs(root, "down", "json")).toBe("[]\n");
    expect(containerPs(root, "down", undefined)).toBe("PID\n");
  });

  test("another format is refused; an unknown id does not exist", () => {
    container("up", { status: "running", ...live() });
    expect(() => containerPs(root, "up", "yaml")).toThrow(UsageError);
    expect(() => containerPs(root, "up", "yaml")).toThrow('ps --format: expected table or json, got "yaml"');
    expect(() => containerPs(root, "nope", "json")).toThrow("container nope does not exist");
  });
});

describe("features", () => {
  test("valid JSON with the spec versions, no hooks, no namespaces, cgroup v1 and v2 (no systemd units), the mount options", () => {
    const text = features();
    expect(text.endsWith("}\n")).toBe(true);
    const parsed = JSON.parse(text);
    expect(parsed.ociVersionMin).toBe("1.0.0");
    expect(parsed.ociVersionMax).toBe(OCI_VERSION);
    expect(parsed.hooks).toEqual([]);
    expect(parsed.linux.namespaces).toEqual([]);
    expect(parsed.linux.cgroup).toEqual({ v1: true, v2: true, systemd: false, systemdUser: false });
    expect(parsed.mountOptions).toEqual(expect.arrayContaining(["ro", "rw", "nosuid", "nodev", "noexec", "bind", "rbind", "rprivate"]));
    expect(parsed.annotations["org.burrow.isolation"]).toBe("microvm");
  });
});

describe("the holder's request line", () => {
  test("start, pause, resume, kill with a signal", () => {
    expect(parseHolderRequest('{"op":"start"}')).toEqual({ op: "start" });
    expect(parseHolderRequest('{"op":"pause"}')).toEqual({ op: "pause" });
    expect(parseHolderRequest('{"op":"resume","extra":1}')).toEqual({ op: "resume" });
    expect(parseHolderRequest('{"op":"kill","signal":9}')).toEqual({ op: "kill", signal: 9 });
    expect(parseHolderRequest('{"op":"kill","signal":64}')).toEqual({ op: "kill", signal: 64 });
    expect(parseHolderRequest(JSON.stringify({ op: "kill", signal: 1 }))).toEqual({ op: "kill", signal: 1 });
  });

  test("not JSON, not an object, an unknown op, a kill without a good signal", () => {
    expect(parseHolderRequest("")).toBe("not JSON");
    expect(parseHolderRequest("{op:start}")).toBe("not JSON");
    expect(parseHolderRequest("null")).toBe("expected an object");
    expect(parseHolderRequest('"start"')).toBe("expected an object");
    expect(parseHolderRequest("7")).toBe("expected an object");
    expect(parseHolderRequest("{}")).toBe('unknown op "undefined"');
    expect(parseHolderRequest('{"op":"exec"}')).toBe('unknown op "exec"');
    expect(parseHolderRequest(JSON.stringify({ op: "x".repeat(100) }))).toBe(`unknown op "${"x".repeat(20)}"`);
    for (const signal of [0, 65, -9, 9.5, "9", null, undefined]) {
      expect(parseHolderRequest(JSON.stringify({ op: "kill", signal }))).toBe("kill: expected a signal from 1 to 64");
    }
  });
});

describe("askHolder", () => {
  test("one request out, one reply back", async () => {
    const paths = makeContainerDir(root, "c1");
    const seen = fakeHolder(paths, () => ({ ok: true }));
    expect(await askHolder(paths.holderSocket, { op: "kill", signal: 10 })).toEqual({ ok: true });
    expect(seen).toEqual([{ op: "kill", signal: 10 }]);
  });

  test("a holder that closes without answering, or is not there", async () => {
    const paths = makeContainerDir(root, "c1");
    fakeHolder(paths, () => null);
    expect(await askHolder(paths.holderSocket, { op: "start" })).toEqual({ ok: false, error: "the holder closed the connection without an answer" });
    const gone = await askHolder(join(root, "nobody.sock"), { op: "start" });
    expect(gone.ok).toBe(false);
    expect(!gone.ok && gone.error).toStartWith("cannot reach the container's holder: ");
    expect(!gone.ok && gone.error).toContain(join(root, "nobody.sock"));
  });

  test("a holder that does not answer in time", async () => {
    const paths = makeContainerDir(root, "c1");
    const listener = Bun.listen({ unix: paths.holderSocket, socket: { data: () => {} } });
    cleanups.push(() => listener.stop(true));
    expect(await askHolder(paths.holderSocket, { op: "pause" }, 100)).toEqual({ ok: false, error: "the holder did not answer pause within 0.1 s" });
  });
});

describe("the verbs through the holder", () => {
  test("start: only a created container, asked of its holder", async () => {
    const { paths } = container("c1", { status: "created", ...live() });
    const seen = fakeHolder(paths, () => ({ ok: true }));
    await startContainer(root, "c1");
    expect(seen).toEqual([{ op: "start" }]);
    container("c2", { status: "running", ...live() });
    await expect(startContainer(root, "c2")).rejects.toThrow("cannot start container c2: it is running, not created");
    container("c3", { status: "created", holderPid: deadPid() });
    await expect(startContainer(root, "c3")).rejects.toThrow("cannot start container c3: it is stopped, not created");
    await expect(startContainer(root, "c4")).rejects.toThrow("container c4 does not exist");
  });

  test("a holder's refusal is the verb's one line", async () => {
    const { paths } = container("c1", { status: "created", ...live() });
    fakeHolder(paths, () => ({ ok: false, error: "the VM is gone" }));
    await expect(startContainer(root, "c1")).rejects.toThrow("container c1: the VM is gone");
  });

  test("kill: the signal to the holder; a stopped container is not running", async () => {
    const { paths } = container("c1", { status: "running", ...live() });
    const seen = fakeHolder(paths, (request) => (typeof request === "object" && request.op === "kill" && request.signal === 15 ? { ok: true } : { ok: false, error: "no" }));
    await killContainer(root, "c1", 15);
    expect(seen).toEqual([{ op: "kill", signal: 15 }]);
    await expect(killContainer(root, "c1", 10)).rejects.toThrow("container c1: no");
    container("c2", { status: "running", holderPid: deadPid() });
    await expect(killContainer(root, "c2", 9)).rejects.toThrow("container c2 is not running");
  });

  test("kill 9 with a holder that cannot answer: the holder is killed directly", async () => {
    const holder = sleeper();
    container("c1", { status: "running", holderPid: holder.pid, holderStartTicks: ticksOf(holder.pid) });
    await killContainer(root, "c1", constants.signals.SIGKILL);
    expect(await holder.exited).not.toBe(0);
    expect(holder.signalCode).toBe("SIGKILL");
  });

  test("pause only a running container, resume only a paused one", async () => {
    const running = container("c1", { status: "running", ...live() });
    const seen = fakeHolder(running.paths, () => ({ ok: true }));
    await pauseContainer(root, "c1", true);
    await expect(pauseContainer(root, "c1", false)).rejects.toThrow("cannot resume container c1: it is running, not paused");
    const paused = container("c2", { status: "paused", ...live() });
    const seenPaused = fakeHolder(paused.paths, () => ({ ok: true }));
    await pauseContainer(root, "c2", false);
    await expect(pauseContainer(root, "c2", true)).rejects.toThrow("cannot pause container c2: it is paused");
    expect(seen).toEqual([{ op: "pause" }]);
    expect(seenPaused).toEqual([{ op: "resume" }]);
  });
});

describe("delete", () => {
  test("a stopped container: its directory goes", async () => {
    const { paths } = container("c1", { status: "stopped", holderPid: deadPid(), qemuPid: deadPid() });
    await deleteContainer(root, "c1", false);
    expect(existsSync(paths.dir)).toBe(false);
    await expect(deleteContainer(root, "c1", false)).rejects.toThrow("container c1 does not exist");
  });

  test("a live container without --force is refused and left as it was", async () => {
    const { paths, record } = container("c1", { status: "running", ...live() });
    await expect(deleteContainer(root, "c1", false)).rejects.toThrow("cannot delete container c1: it is running (stop it first, or delete --force)");
    expect(readRecord(paths)).toEqual(record);
  });

  test("--force: the holder is killed and waited for, a QEMU left behind too, then the directory goes", async () => {
    const holder = sleeper();
    const qemu = sleeper();
    const { paths } = container("c1", { status: "running", holderPid: holder.pid, holderStartTicks: ticksOf(holder.pid), qemuPid: qemu.pid });
    await deleteContainer(root, "c1", true);
    expect(existsSync(paths.dir)).toBe(false);
    await holder.exited;
    await qemu.exited;
    expect(holder.signalCode).toBe("SIGKILL");
    expect(qemu.signalCode).toBe("SIGKILL");
  });

  test("--force on a recycled holder pid kills nothing of it", async () => {
    const bystander = sleeper();
    const { paths } = container("c1", { status: "running", holderPid: bystander.pid, holderStartTicks: ticksOf(bystander.pid) + 1 });
    await deleteContainer(root, "c1", true);
    expect(existsSync(paths.dir)).toBe(false);
    expect(processAlive(bystander.pid)).toBe(true);
  });
});
