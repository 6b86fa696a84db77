// The control mux between one scripted guest and many clients: session ids rewritten both ways,
// session-0 news to everyone, a client's going or misbehaving costs no one else anything.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { ChannelClosedError, ControlClient } from "../../src/control/client";
import { decodeError, encodeExec, encodeFrame, type Frame, FrameReader, u32Body } from "../../src/control/frames";
import { ControlMux } from "../../src/control/mux";
import { ErrorCode, FrameType, PROTOCOL_VERSION, OUTPUT_WINDOW_BYTES } from "../../src/control/wire";
import { FakeGuest, pattern } from "../helpers/fake-guest";

let directory = "";
let counter = 0;
const cleanups: (() => void)[] = [];

beforeAll(() => {
  directory = mkdtempSync(join(tmpdir(), "burrow-mux-"));
});

afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

afterAll(() => {
  rmSync(directory, { recursive: true, force: true });
});

async function setup(): Promise<{ guest: FakeGuest; mux: ControlMux; socket: string; dropped: string[] }> {
  const guest = new FakeGuest(join(directory, `guest-${++counter}.sock`), { staleBytes: new Uint8Array([1, 2, 3, 0x0e]) });
  cleanups.push(() => guest.stop());
  const dropped: string[] = [];
  const mux = await ControlMux.connect(guest.path, { timeoutMs: 2000, log: (line) => dropped.push(line) });
  cleanups.push(() => mux.close());
  const socket = join(directory, `mux-${counter}.sock`);
  mux.listen(socket);
  return { guest, mux, socket, dropped };
}

async function client(path: string): Promise<ControlClient> {
  const connected = await ControlClient.connect(path, { timeoutMs: 2000 });
  cleanups.push(() => connected.close());
  return connected;
}

/** A client speaking raw frames, to break the wire on purpose. */
async function rawClient(path: string): Promise<{ socket: Socket<undefined>; frames: Frame[]; closed: Promise<void> }> {
  const reader = new FrameReader();
  const frames: Frame[] = [];
  let onClose = () => {};
  const closed = new Promise<void>((resolve) => (onClose = resolve));
  const socket = await Bun.connect({ unix: path, socket: { data: (_socket, data) => void frames.push(...reader.push(data)), close: () => onClose() } });
  cleanups.push(() => socket.end());
  return { socket, frames, closed };
}

const until = async (condition: () => boolean) => {
  for (let tries = 0; !condition(); tries++) {
    if (tries > 200) throw new Error("timed out waiting");
    await Bun.sleep(5);
  }
};

describe("ControlMux", () => {
  test("clients with the same session ids, in-process and on the socket, each get their own answers", async () => {
    const { guest, mux, socket } = await setup();
    const local = await ControlClient.over(mux.local());
    cleanups.push(() => local.close());
    const remote = await client(socket);
    const [a, b, bigA, bigB] = await Promise.all([
      local.exec(["print", "alpha"]),
      remote.exec(["print", "beta"]),
      local.exec(["emit", String(600_000), "0", "1"]),
      remote.exec(["emit", String(700_000), "10", "2"]),
    ]);
    expect(new TextDecoder().decode(a.stdout)).toBe("alpha");
    expect(new TextDecoder().decode(b.stdout)).toBe("beta");
    expect([bigA.exitCode, bigA.stdout.byteLength, bigA.stdout[599_999]]).toEqual([1, 600_000, pattern(600_000, 1)[599_999]]);
    expect([bigB.exitCode, bigB.stdout.byteLength, bigB.stderr.byteLength]).toEqual([2, 700_000, 10]);
    // Both clients used ids 1–2; the guest saw four distinct ones.
    expect(guest.sessions.size).toBe(4);
    expect(await remote.ping()).toBeGreaterThanOrEqual(0);
    expect((await local.info()).uptimeMs).toBe(1234);
    expect(guest.hellos).toBe(1);
  });

  test("session-0 news reaches every client, also one that greets after WORKLOAD_EXITED", async () => {
    const { guest, socket } = await setup();
    const first = await client(socket);
    const second = await client(socket);
    const ready = Promise.all([first.nextReady(), second.nextReady()]);
    const uptime = new Uint8Array(8);
    guest.announce(FrameType.READY, uptime);
    expect(await ready).toEqual([0, 0]);
    guest.announce(FrameType.WORKLOAD_EXITED, u32Body(5));
    await until(() => first.workloadExit === 5 && second.workloadExit === 5);
    expect((await client(socket)).workloadExit).toBe(5);
  });

  test("a client that goes: CLOSE for its open sessions only, the others' untouched", async () => {
    const { guest, socket } = await setup();
    const leaving = await client(socket);
    const staying = await client(socket);
    await leaving.exec(["print", "done"]);
    const sleeper = leaving.spawn(["sleep"]);
    await sleeper.pid;
    const other = staying.spawn(["sleep"]);
    await other.pid;
    leaving.close();
    await until(() => [...guest.sessions.values()].some((record) => record.closed));
    const closed = [...guest.sessions.values()].filter((record) => record.closed).map((record) => record.argv);
    expect(closed).toEqual([["sleep"]]);
    await other.kill("SIGTERM");
    expect((await other.exited).signal).toBe(15);
  });

  test("a client sending junk is dropped with one line; the VM and the other client carry on", async () => {
    const { socket } = await setup();
    const good = await client(socket);
    const running = good.spawn(["emit", String(500_000)]);
    const bad = await rawClient(socket);
    bad.socket.write(encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION)));
    await until(() => bad.frames.length > 0);
    expect(bad.frames[0]!.type).toBe(FrameType.HELLO_ACK);
    bad.socket.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    await bad.closed;
    const error = decodeError(bad.frames.at(-1)!.body);
    expect(error.code).toBe(ErrorCode.BAD_FRAME);
    expect(error.message).toStartWith("a malformed frame from the peer: bad magic");
    expect(await good.ping()).toBeGreaterThanOrEqual(0);
    expect((await Bun.readableStreamToBytes(running.stdout)).byteLength).toBe(500_000);
    expect((await running.exited).exitCode).toBe(0);
  });

  test("a client granting credit it was never sent is dropped before its queue can grow", async () => {
    const { guest, socket, dropped } = await setup();
    const good = await client(socket);
    const bad = await rawClient(socket);
    bad.socket.write(encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION)));
    bad.socket.write(encodeFrame(FrameType.EXEC, 1, encodeExec({ argv: ["sleep"] })));
    bad.socket.write(encodeFrame(FrameType.CREDIT, 1, u32Body(1 << 30)));
    await bad.closed;
    expect(dropped).toEqual([`control mux: dropped a client: output credit beyond the ${OUTPUT_WINDOW_BYTES}-byte window on session 1`]);
    const last = decodeError(bad.frames.at(-1)!.body);
    expect(last.message).toBe(`the control mux dropped this client: output credit beyond the ${OUTPUT_WINDOW_BYTES}-byte window on session 1`);
    await until(() => [...guest.sessions.values()].some((record) => record.closed));
    expect(guest.sessions.get(1)!.granted).toBe(0);
    expect(await good.ping()).toBeGreaterThanOrEqual(0);
  });

  test("a session-0 request is answered to the one client that asked, on 0", async () => {
    const { socket } = await setup();
    const bystander = await client(socket);
    const asker = await rawClient(socket);
    asker.socket.write(encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION)));
    asker.socket.write(encodeFrame(FrameType.PING, 0));
    await until(() => asker.frames.length === 2);
    expect([asker.frames[1]!.type, asker.frames[1]!.session]).toEqual([FrameType.PONG, 0]);
    const errors: Error[] = [];
    bystander.onError((error) => errors.push(error));
    await bystander.ping();
    expect(errors).toEqual([]);
  });

  test("the guest going closes the mux and every client", async () => {
    const { guest, mux, socket } = await setup();
    const remote = await client(socket);
    const sleeper = remote.spawn(["sleep"]);
    await sleeper.pid;
    guest.stop();
    await expect(sleeper.exited).rejects.toBeInstanceOf(ChannelClosedError);
    expect(mux.closed).toBe(true);
    await expect(ControlClient.connect(socket, { timeoutMs: 50 })).rejects.toThrow(`cannot connect to the control socket ${socket}`);
  });
});
