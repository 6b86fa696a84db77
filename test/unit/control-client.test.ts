// The host's control client against a scripted guest on a unix socket: the handshake through stale
// bytes, credit both ways, typed failures, file round trips.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChannelClosedError, ControlClient, GuestError, SpawnError } from "../../src/control/client";
import { encodeFrame, u32Body } from "../../src/control/frames";
import { FrameType, INPUT_WINDOW_BYTES, OUTPUT_WINDOW_BYTES } from "../../src/control/wire";
import { FakeGuest, type FakeGuestOptions, pattern } from "../helpers/fake-guest";

let directory = "";
let counter = 0;
const cleanups: (() => void)[] = [];

beforeAll(() => {
  directory = mkdtempSync(join(tmpdir(), "burrow-control-"));
});

afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

afterAll(() => {
  rmSync(directory, { recursive: true, force: true });
});

async function setup(options: FakeGuestOptions = {}, helloTimeoutMs?: number): Promise<{ guest: FakeGuest; client: ControlClient }> {
  const guest = new FakeGuest(join(directory, `guest-${++counter}.sock`), options);
  cleanups.push(() => guest.stop());
  const client = await ControlClient.connect(guest.path, { helloTimeoutMs, timeoutMs: 2000 });
  cleanups.push(() => client.close());
  return { guest, client };
}

const sha256 = (bytes: Uint8Array) => new Bun.CryptoHasher("sha256").update(bytes).digest("hex");

function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65_536) crypto.getRandomValues(bytes.subarray(offset, offset + 65_536));
  return bytes;
}

describe("handshake", () => {
  test("stale bytes before HELLO_ACK are skipped: junk, a stale frame, a cut header", async () => {
    const stale = new Uint8Array([
      ...randomBytes(333),
      ...encodeFrame(FrameType.STDOUT, 7, new Uint8Array([1, 2, 3])),
      ...encodeFrame(FrameType.PONG, 0).subarray(0, 7),
      0x0e, 0xb7, 0x41, 0, 5, 0, 0, 0, 20, 0, 0, 0, // a HELLO_ACK header on session 5: not the channel's
      0x0e, // the start of a magic, cut
    ]);
    const { guest, client } = await setup({ staleBytes: stale });
    expect(client.hello.outputWindow).toBe(OUTPUT_WINDOW_BYTES);
    expect(await client.ping()).toBeGreaterThanOrEqual(0);
    expect(guest.hellos).toBe(1);
  });

  test("HELLO is sent again until the guest answers", async () => {
    const { guest, client } = await setup({ ignoreHellos: 1 });
    expect(guest.hellos).toBe(2);
    expect((await client.info()).workload.pid).toBe(42);
  });

  test("a guest that never answers gives one clear error", async () => {
    const guest = new FakeGuest(join(directory, `silent-${++counter}.sock`), { ignoreHellos: 1_000 });
    cleanups.push(() => guest.stop());
    await expect(ControlClient.connect(guest.path, { helloTimeoutMs: 700 })).rejects.toThrow("no HELLO_ACK on the control channel within 700 ms");
    expect(guest.hellos).toBe(2);
  });
});

describe("requests", () => {
  test("ping, info, stop, signalWorkload; RESUME, READY and WORKLOAD_EXITED on session 0", async () => {
    const { guest, client } = await setup();
    const info = await client.info();
    expect(info.memory).toEqual({ totalKiB: 65536, availableKiB: 32768 });
    expect(info.workload.exitCode).toBeNull();
    await client.stop();
    await client.signalWorkload("SIGTERM");
    await expect(client.signalWorkload("SIGNOPE" as NodeJS.Signals)).rejects.toThrow("SIGNOPE is not a signal");
    expect(await client.resume("point 1")).toBe("instance of point 1");

    const ready = client.nextReady();
    const uptime = new Uint8Array(8);
    new DataView(uptime.buffer).setBigUint64(0, 98_765n, true);
    guest.announce(FrameType.READY, uptime);
    expect(await ready).toBe(98_765);

    const exits: number[] = [];
    client.onWorkloadExit((code) => exits.push(code));
    guest.announce(FrameType.WORKLOAD_EXITED, u32Body(3));
    await client.ping();
    expect(exits).toEqual([3]);
    expect(client.workloadExit).toBe(3);
  });

  test("sessions get distinct non-zero ids", async () => {
    const { guest, client } = await setup();
    await Promise.all([client.exec(["print", "a"]), client.exec(["print", "b"]), client.exec(["print", "c"])]);
    const ids = [...guest.sessions.keys()];
    expect(new Set(ids).size).toBe(3);
    expect(ids.every((id) => id > 0)).toBe(true);
  });
});

describe("exec", () => {
  test("output larger than the window: credit is granted back, never beyond the window", async () => {
    const { guest, client } = await setup();
    const result = await client.exec(["emit", String(1 << 20), String(300_000), "7"]);
    expect(result.exitCode).toBe(7);
    expect(sha256(result.stdout)).toBe(sha256(pattern(1 << 20, 1)));
    expect(sha256(result.stderr)).toBe(sha256(pattern(300_000, 2)));
    const record = [...guest.sessions.values()][0]!;
    expect(record.outputSent).toBe((1 << 20) + 300_000);
    expect(record.granted).toBeGreaterThanOrEqual((1 << 20) + 300_000 - OUTPUT_WINDOW_BYTES);
    expect(record.peakCredit).toBeLessThanOrEqual(OUTPUT_WINDOW_BYTES);
  });

  test("a reader that stops: the guest gets no more credit and sends no more", async () => {
    const { guest, client } = await setup();
    const child = client.spawn(["emit", String(2 << 20)]);
    const reader = child.stdout.getReader();
    let consumed = 0;
    while (consumed < 400_000) consumed += (await reader.read()).value!.byteLength;
    await Bun.sleep(100);
    const record = [...guest.sessions.values()][0]!;
    const { granted, outputSent } = record;
    expect(granted).toBeLessThanOrEqual(consumed);
    expect(outputSent).toBe(OUTPUT_WINDOW_BYTES + granted);
    await Bun.sleep(200);
    expect(record.granted).toBe(granted);
    expect(record.outputSent).toBe(outputSent);
    child.close();
    await expect(child.exited).rejects.toThrow("the session was closed by this host");
    await client.ping();
    expect(record.closed).toBe(true);
  });

  test("stdin goes within the input window", async () => {
    const { guest, client } = await setup();
    const input = randomBytes(1 << 20);
    const result = await client.exec(["cat"], { stdin: input });
    expect(result.exitCode).toBe(0);
    expect(sha256(result.stdout)).toBe(sha256(input));
    const record = [...guest.sessions.values()][0]!;
    expect(record.stdin).toBe(1 << 20);
    expect(record.peakInput).toBeLessThanOrEqual(INPUT_WINDOW_BYTES);
    expect(record.peakInput).toBeGreaterThan(0);
  });

  test("spawn: pid, write, closeStdin, resize, kill", async () => {
    const { guest, client } = await setup();
    const child = client.spawn(["sleep"], { stdin: true, tty: { rows: 24, cols: 80 } });
    const pid = await child.pid;
    expect(pid).toBeGreaterThan(1000);
    await child.write("ignored");
    await child.resize(50, 120);
    await child.kill("SIGKILL");
    expect(await child.exited).toEqual({ exitCode: 137, signal: 9, oomKilled: false, timedOut: false });
    await expect(child.kill("SIGTERM")).rejects.toThrow("sleep has exited");
    expect([...guest.sessions.values()][0]!.stdin).toBe(7);
    await expect(client.spawn(["print"]).write("x")).rejects.toThrow("no stdin to write to");
  });

  test("FAILED is a SpawnError naming the errno and the step", async () => {
    const { client } = await setup();
    const error = await client.exec(["fail"]).catch((caught) => caught);
    expect(error).toBeInstanceOf(SpawnError);
    expect(error.errnoName).toBe("ENOENT");
    expect(error.stepName).toBe("EXEC");
    expect(error.message).toBe("fail did not start: EXEC failed with ENOENT: execve fail: No such file or directory");
  });

  test("ERROR on a session is a GuestError", async () => {
    const { client } = await setup();
    const error = await client.exec(["refuse"]).catch((caught) => caught);
    expect(error).toBeInstanceOf(GuestError);
    expect(error.codeName).toBe("BAD_REQUEST");
    expect(error.message).toBe("the guest refused: BAD_REQUEST: refused on purpose");
  });

  test("the guest going mid-request fails everything pending with ChannelClosedError", async () => {
    const { client } = await setup();
    const sleeper = client.spawn(["sleep"]);
    await sleeper.pid;
    const closes: Error[] = [];
    client.onClose((error) => closes.push(error));
    await expect(client.exec(["hangup"])).rejects.toBeInstanceOf(ChannelClosedError);
    await expect(sleeper.exited).rejects.toBeInstanceOf(ChannelClosedError);
    await expect(sleeper.stdout.getReader().read()).rejects.toBeInstanceOf(ChannelClosedError);
    await expect(client.ping()).rejects.toThrow("the control channel closed: the control socket");
    expect(closes).toHaveLength(1);
  });
});

describe("files", () => {
  test("1 MiB of random bytes round trips, the upload within the input window", async () => {
    const { guest, client } = await setup();
    const data = randomBytes(1 << 20);
    await client.writeFile("/tmp/blob", data, { mode: 0o600 });
    expect(guest.files.get("/tmp/blob")!.mode).toBe(0o600);
    expect([...guest.sessions.values()][0]!.peakInput).toBeLessThanOrEqual(INPUT_WINDOW_BYTES);
    const back = await client.readFile("/tmp/blob");
    expect(back.byteLength).toBe(1 << 20);
    expect(sha256(back)).toBe(sha256(data));
    const { info, stream } = client.getFile("/tmp/blob");
    expect(await info).toEqual({ size: BigInt(1 << 20), mode: 0o600 });
    expect(sha256(await Bun.readableStreamToBytes(stream))).toBe(sha256(data));
  });

  test("putFile streams; a source that lies about its size fails and the upload is closed", async () => {
    const { guest, client } = await setup();
    async function* source(sizes: number[]) {
      for (const size of sizes) yield pattern(size, 3);
    }
    await client.putFile("/streamed", source([100_000, 100_000, 5]), 200_005, 0o755);
    expect(guest.files.get("/streamed")!.data.byteLength).toBe(200_005);

    await expect(client.putFile("/long", source([10, 10]), 15)).rejects.toThrow("/long: the source gave more than the declared 15 bytes");
    await expect(client.putFile("/short", source([10]), 15)).rejects.toThrow("/short: the source gave 10 bytes, 15 were declared");
    await client.ping();
    const closed = [...guest.sessions.values()].filter((record) => record.closed);
    expect(closed).toHaveLength(2);
    expect(guest.files.has("/long") || guest.files.has("/short")).toBe(false);
  });

  test("a missing file is a GuestError", async () => {
    const { client } = await setup();
    await expect(client.readFile("/nope")).rejects.toThrow("the guest refused: FILE: open /nope: ENOENT");
  });
});
