// The supervisor's side of the control channel (image/supervisor/channel.c, sessions.c, files.c)
// fed what the host's TypeScript encoder writes (src/control/frames.ts, src/control/client.ts):
// the real C parser against the real encoder, no re-implementation in between. The supervisor
// runs as PID 1 of a throw-away PID namespace and reaches "the host" through an abstract unix
// socket (control=@NAME) this test listens on, in place of the virtio port.
// SAFETY: outside the namespace nothing is signalled; the namespace ends with the test's kill.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ControlClient, GuestError, SpawnError } from "../../src/control/client";
import { decodeError, encodeExec, encodeFrame, encodePut, type Frame, FrameReader, readU32, readU64, u32Body } from "../../src/control/frames";
import { listenUnix } from "../../src/control/transport";
import { DATA_CHUNK_BYTES, ErrorCode, ExecField, FLAG_EOF, FrameType, INPUT_WINDOW_BYTES, MAX_BODY_BYTES, MAX_SESSIONS, OUTPUT_WINDOW_BYTES, PROTOCOL_VERSION, PUT_WINDOW_BYTES } from "../../src/control/wire";
import { compileSupervisor } from "../../src/image/supervisor";

let work: string;
let supervisor: string;
let names = 0;

beforeAll(() => {
  // Never skip: a privileged test that did not run must show up as a failure.
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (a PID namespace)");
  work = mkdtempSync(join(tmpdir(), "burrow-control-"));
  // Open to the unprivileged users the tests run commands as.
  chmodSync(work, 0o755);
  mkdirSync(join(work, "build"));
  supervisor = join(work, "supervisor");
  writeFileSync(supervisor, compileSupervisor(join(work, "build")), { mode: 0o755 });
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Guest {
  child: ReturnType<typeof Bun.spawn>;
  log(): string;
  /** Settles once the supervisor's stderr is read to its end. */
  logged: Promise<void>;
  end(): Promise<void>;
}

/** The supervisor as PID 1 of a new PID namespace, its control port an abstract socket named `name`; workload null: start=host's, none of its own. */
function startSupervisor(name: string, workload: string | null, options: string[] = []): Guest {
  let log = "";
  // The host's kernel log and console are not the test's to write: /dev/null in their place, in the namespace only.
  const enter = 'mount --bind /dev/null /dev/kmsg && mount --bind /dev/null /dev/console && exec "$@"';
  const child = Bun.spawn(["unshare", "--fork", "--pid", "--mount-proc", "--propagation", "private", "--kill-child", "sh", "-c", enter, "enter", supervisor, `control=@${name}`, "console-level=1", "log=6", "stop-timeout=1000", ...options, ...(workload === null ? [] : ["--", "/bin/sh", "-c", workload])], {
    stdin: "ignore", stdout: "pipe", stderr: "pipe",
  });
  const logged = (async () => {
    for await (const chunk of child.stderr as ReadableStream<Uint8Array>) log += new TextDecoder().decode(chunk);
  })();
  return {
    child,
    log: () => log,
    logged,
    end: async () => {
      child.kill("SIGKILL");
      await child.exited;
    },
  };
}

/** A guest driven through ControlClient, the host's own client. */
async function clientGuest(workload: string | null = "sleep 1000", options: string[] = []): Promise<{ client: ControlClient; guest: Guest }> {
  const name = `burrow-ctl-${process.pid}-${++names}`;
  let accepted: (client: Promise<ControlClient>) => void;
  const connected = new Promise<Promise<ControlClient>>((resolve) => (accepted = resolve));
  const listener = listenUnix(`\0${name}`, (transport) => accepted(ControlClient.over(transport)));
  const started = startSupervisor(name, workload, options);
  // Stopping the listener would close the connection it accepted: it goes with the guest.
  const guest = { ...started, end: async () => {
    await started.end();
    listener.stop();
  } };
  try {
    const client = await Promise.race([connected.then((c) => c), started.child.exited.then(() => Promise.reject(new Error(`the supervisor ended: ${started.log()}`)))]);
    return { client, guest };
  } catch (error) {
    await guest.end();
    throw error;
  }
}

/** A guest driven frame by frame: what a broken or hostile host sends. */
async function rawGuest(workload: string | null = "sleep 1000", options: string[] = []): Promise<{ send(bytes: Uint8Array): void; next(type: number, session?: number): Promise<Frame>; seen: Frame[]; guest: Guest; socket: Socket<undefined> }> {
  const name = `burrow-ctl-${process.pid}-${++names}`;
  const reader = new FrameReader();
  const frames: Frame[] = [];
  /** Every frame in the order it came (next() takes from `frames`, never from here). */
  const seen: Frame[] = [];
  const waiters: (() => void)[] = [];
  let opened: (socket: Socket<undefined>) => void;
  const connected = new Promise<Socket<undefined>>((resolve) => (opened = resolve));
  const server = Bun.listen<undefined>({
    unix: `\0${name}`,
    socket: {
      open: (socket) => opened(socket),
      data: (_socket, data) => {
        const got = reader.push(data);
        frames.push(...got);
        seen.push(...got);
        for (const wake of waiters.splice(0)) wake();
      },
    },
  });
  const started = startSupervisor(name, workload, options);
  const socket = await connected;
  const guest = { ...started, end: async () => {
    await started.end();
    server.stop(true);
  } };
  const next = async (type: number, session?: number): Promise<Frame> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const index = frames.findIndex((frame) => frame.type === type && (session === undefined || frame.session === session));
      if (index >= 0) return frames.splice(index, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`no frame of type ${type} (session ${session}) within 10 s; have ${frames.map((f) => f.type).join(",")}; log: ${guest.log()}`);
      await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), Bun.sleep(100)]);
    }
  };
  return { send: (bytes) => socket.write(bytes), next, seen, guest, socket };
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The supervisor is the child of unshare's fork: PID 1 inside, an ordinary pid here. */
function supervisorPid(guest: Guest): string | undefined {
  return readdirSync("/proc").filter((name) => /^\d+$/.test(name)).find((name) => {
    try {
      return readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]!.split(" ")[1] === String(guest.child.pid);
    } catch {
      return false;
    }
  });
}

describe("exec through the control channel", () => {
  test("stdout, stderr and the exit code; env, cwd and a numeric user; stdin piped to EOF; a spawn failure as its errno", async () => {
    const { client, guest } = await clientGuest();
    try {
      const plain = await client.exec(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
      expect({ code: plain.exitCode, out: text(plain.stdout), err: text(plain.stderr) }).toEqual({ code: 3, out: "out\n", err: "err\n" });
      const dir = mkdtempSync(join(work, "cwd-"));
      chmodSync(dir, 0o755);
      const shaped = await client.exec(["/bin/sh", "-c", 'echo "$GREETING $(pwd) $(id -u):$(id -g)"'], { env: { GREETING: "hi" }, cwd: dir, user: "65534:65534" });
      expect(text(shaped.stdout), text(shaped.stderr)).toBe(`hi ${dir} 65534:65534\n`);
      const input = randomBytes(3 * INPUT_WINDOW_BYTES + 17);
      const piped = await client.exec(["sha256sum"], { stdin: input });
      expect(text(piped.stdout).split(" ")[0]).toBe(createHash("sha256").update(input).digest("hex"));
      const failed = await client.exec(["/no/such/program"]).then(() => null, (error: unknown) => error);
      expect(failed).toBeInstanceOf(SpawnError);
      expect((failed as SpawnError).errnoName).toBe("ENOENT");
      const unknownUser = await client.exec(["true"], { user: "no-such-user-here" }).then(() => null, (error: unknown) => error);
      expect((unknownUser as SpawnError).guestText).toContain("no-such-user-here");
    } finally {
      client.close();
      await guest.end();
    }
  });

  test("the supervisor runs SCHED_BATCH; what it starts runs SCHED_OTHER", async () => {
    const { client, guest } = await clientGuest();
    try {
      const policies = await client.exec(["/bin/sh", "-c", "chrt -p 1; chrt -p $$"]);
      const said = text(policies.stdout);
      expect(said, text(policies.stderr)).toMatch(/^pid 1's current scheduling policy: SCHED_BATCH\n/);
      expect(said).toMatch(/\npid \d+'s current scheduling policy: SCHED_OTHER\n/);
    } finally {
      client.close();
      await guest.end();
    }
  });

  test("a timeout kills the whole process group, background children too", async () => {
    const { client, guest } = await clientGuest();
    try {
      const marker = join(mkdtempSync(join(work, "group-")), "bg.pid");
      const started = Date.now();
      const ended = await client.exec(["/bin/sh", "-c", `trap '' TERM; sleep 100 & echo $! > ${marker}; wait`], { timeoutMs: 400 });
      expect({ timedOut: ended.timedOut, signal: ended.signal, exitCode: ended.exitCode }).toEqual({ timedOut: true, signal: 9, exitCode: 137 });
      expect(Date.now() - started).toBeLessThan(10_000);
      // The background sleep was in the group: gone too (kill -0 fails).
      const probe = await client.exec(["/bin/sh", "-c", `kill -0 $(cat ${marker})`]);
      expect(probe.exitCode).not.toBe(0);
    } finally {
      client.close();
      await guest.end();
    }
  });

  test("64 sessions at once, each its own answer", async () => {
    const { client, guest } = await clientGuest();
    try {
      const results = await Promise.all(Array.from({ length: 64 }, (_, index) => client.exec(["/bin/sh", "-c", `echo ${index}`])));
      expect(results.map((result) => text(result.stdout).trim())).toEqual(Array.from({ length: 64 }, (_, index) => String(index)));
      expect((await client.info()).sessions).toBe(0);
    } finally {
      client.close();
      await guest.end();
    }
  });

  test("a process writing without end while the host reads nothing: it blocks on its pipe, the supervisor stays small", async () => {
    const { client, guest } = await clientGuest();
    try {
      const hog = client.spawn(["/bin/sh", "-c", "cat /dev/zero"]);
      await hog.pid;
      await Bun.sleep(1500);
      const info = await client.info();
      expect(info.supervisorRssKiB).toBeLessThan(1024);
      expect(info.sessions).toBe(1);
      hog.close();
    } finally {
      client.close();
      await guest.end();
    }
  });
});

describe("signals and terminals", () => {
  test("SIGNAL reaches the whole process group; RESIZE changes a tty's size; SIGNAL_WORKLOAD reaches the workload", async () => {
    const { client, guest } = await clientGuest("trap 'echo got-usr1; exit 9' USR1; while :; do sleep 0.1; done");
    try {
      const group = client.spawn(["/bin/sh", "-c", "trap 'exit 3' TERM; sleep 100 & wait"]);
      await group.pid;
      await Bun.sleep(200);
      await group.kill("SIGTERM");
      expect((await group.exited).exitCode).toBe(3);
      const tty = client.spawn(["/bin/sh", "-c", "stty size; read line; stty size"], { tty: { rows: 10, cols: 20 } });
      const reader = tty.stdout.getReader();
      let seen = "";
      while (!seen.includes("10 20")) seen += text((await reader.read()).value ?? new Uint8Array());
      await tty.resize(40, 120);
      await tty.write("go\n");
      while (!seen.includes("40 120")) {
        const chunk = await reader.read();
        if (chunk.done) break;
        seen += text(chunk.value);
      }
      expect(seen).toContain("40 120");
      await tty.exited;
      await client.signalWorkload("SIGUSR1");
      expect(await guest.child.exited).not.toBe(0);
      await guest.logged;
      expect(guest.log()).toMatch(/workload \(pid \d+\) exited with status 9/);
    } finally {
      client.close();
      await guest.end();
    }
  });
});

describe("files through the control channel", () => {
  test("put then get of 8 MiB of random bytes: the same bytes, the mode kept, no temporary file left", async () => {
    const { client, guest } = await clientGuest();
    try {
      const dir = mkdtempSync(join(work, "files-"));
      const data = randomBytes(8 * 2 ** 20);
      await client.writeFile(join(dir, "blob"), data, { mode: 0o640 });
      expect(statSync(join(dir, "blob")).mode & 0o777).toBe(0o640);
      expect(readdirSync(dir)).toEqual(["blob"]);
      const back = await client.readFile(join(dir, "blob"));
      expect(createHash("sha256").update(back).digest("hex")).toBe(createHash("sha256").update(data).digest("hex"));
      const missing = await client.readFile(join(dir, "absent")).then(() => null, (error: unknown) => error);
      expect(missing).toBeInstanceOf(GuestError);
      expect((missing as GuestError).message).toContain("ENOENT");
      expect(existsSync(join(dir, "absent"))).toBe(false);
    } finally {
      client.close();
      await guest.end();
    }
  });
});

describe("hostile frames from the host side", () => {
  test("junk, an oversized length, an unknown type, a cut exec request, input past the window: typed errors; the supervisor and the workload go on", async () => {
    const raw = await rawGuest();
    try {
      raw.send(encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION)));
      await raw.next(FrameType.HELLO_ACK, 0);
      raw.send(new TextEncoder().encode("garbage that is no frame at all"));
      expect(decodeError((await raw.next(FrameType.ERROR, 0)).body).code).toBe(ErrorCode.BAD_FRAME);
      raw.send(encodeFrame(FrameType.PING, 1));
      await raw.next(FrameType.PONG, 1);
      // A header claiming more than a frame may hold: refused without waiting for the body.
      const huge = encodeFrame(FrameType.PING, 2);
      new DataView(huge.buffer).setUint32(8, MAX_BODY_BYTES + 1, true);
      raw.send(huge);
      expect(decodeError((await raw.next(FrameType.ERROR, 0)).body).code).toBe(ErrorCode.BAD_FRAME);
      raw.send(encodeFrame(FrameType.PING, 3));
      await raw.next(FrameType.PONG, 3);
      raw.send(encodeFrame(0x3e, 4));
      expect(decodeError((await raw.next(FrameType.ERROR, 4)).body).code).toBe(ErrorCode.UNKNOWN_TYPE);
      const request = encodeExec({ argv: ["/bin/true"] });
      raw.send(encodeFrame(FrameType.EXEC, 5, request.subarray(0, request.byteLength - 3)));
      expect(decodeError((await raw.next(FrameType.ERROR, 5)).body).code).toBe(ErrorCode.BAD_REQUEST);
      raw.send(encodeFrame(FrameType.EXEC, 6, encodeExec({ argv: ["/bin/sh", "-c", "sleep 100"], stdin: true })));
      await raw.next(FrameType.STARTED, 6);
      const chunk = new Uint8Array(MAX_BODY_BYTES - 1024);
      for (let sent = 0; sent <= INPUT_WINDOW_BYTES; sent += chunk.byteLength) raw.send(encodeFrame(FrameType.STDIN, 6, chunk));
      expect(decodeError((await raw.next(FrameType.ERROR, 6)).body).code).toBe(ErrorCode.CREDIT_EXCEEDED);
      raw.send(encodeFrame(FrameType.EXEC, 7, encodeExec({ argv: ["/bin/true"] })));
      await raw.next(FrameType.STARTED, 7);
      await raw.next(FrameType.EXITED, 7);
      raw.send(encodeFrame(FrameType.INFO, 8));
      const info = JSON.parse(text((await raw.next(FrameType.INFO_REPLY, 8)).body));
      expect(info.workload.state).toBe("running");
      expect(raw.guest.child.exitCode).toBeNull();
    } finally {
      raw.socket.end();
      await raw.guest.end();
    }
  });

  test("a host that hangs up is not spun on: the supervisor sleeps until the next one", async () => {
    const raw = await rawGuest();
    try {
      raw.send(encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION)));
      await raw.next(FrameType.HELLO_ACK, 0);
      raw.socket.end();
      const pid = supervisorPid(raw.guest);
      expect(pid).toBeDefined();
      const cpuTicks = () => readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ").slice(11, 13).reduce((sum, ticks) => sum + Number(ticks), 0);
      await Bun.sleep(300);
      const before = cpuTicks();
      await Bun.sleep(1000);
      // Clock ticks are 10 ms: a loop spinning on the closed socket would burn ~100 of them.
      expect(cpuTicks() - before).toBeLessThan(5);
    } finally {
      await raw.guest.end();
    }
  });

  test("a new HELLO ends every session of the connection before it; requests before any HELLO are refused", async () => {
    const raw = await rawGuest();
    try {
      raw.send(encodeFrame(FrameType.INFO, 1));
      expect(decodeError((await raw.next(FrameType.ERROR, 1)).body).code).toBe(ErrorCode.NOT_NOW);
      raw.send(encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION)));
      const ack = (await raw.next(FrameType.HELLO_ACK, 0)).body;
      expect([0, 4, 8].map((offset) => readU32(ack, "HELLO_ACK", offset))).toEqual([PROTOCOL_VERSION, MAX_SESSIONS, OUTPUT_WINDOW_BYTES]);
      raw.send(encodeFrame(FrameType.EXEC, 2, encodeExec({ argv: ["/bin/sh", "-c", "sleep 100"] })));
      const pid = readU32((await raw.next(FrameType.STARTED, 2)).body, "STARTED");
      raw.send(encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION)));
      await raw.next(FrameType.HELLO_ACK, 0);
      raw.send(encodeFrame(FrameType.EXEC, 3, encodeExec({ argv: ["/bin/sh", "-c", `sleep 0.3; kill -0 ${pid}`] })));
      await raw.next(FrameType.STARTED, 3);
      expect(readU32((await raw.next(FrameType.EXITED, 3)).body, "EXITED")).not.toBe(0);
      raw.send(encodeFrame(FrameType.STDIN, 2, new Uint8Array([1]), FLAG_EOF));
      raw.send(encodeFrame(FrameType.SIGNAL, 2, u32Body(15)));
      expect(decodeError((await raw.next(FrameType.ERROR, 2)).body).code).toBe(ErrorCode.NO_SESSION);
    } finally {
      raw.socket.end();
      await raw.guest.end();
    }
  });

  test("STOP: the orderly stop ends the workload and the exec'd processes alike, and PID 1 powers off", async () => {
    const { client, guest } = await clientGuest();
    const running = client.spawn(["/bin/sh", "-c", "sleep 100"]);
    await running.pid;
    await client.stop();
    const ended = await running.exited;
    expect(ended.signal).toBe(15);
    // reboot() in a PID namespace ends it with SIGINT (power-off); unshare re-raises it.
    expect(await guest.child.exited).not.toBe(0);
    await guest.logged;
    expect(guest.log()).toContain("stop (the host's stop request)");
    client.close();
  });
});

describe("the host starts the workload (start=host)", () => {
  const hello = encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION));
  const infoOf = async (raw: Awaited<ReturnType<typeof rawGuest>>, session: number) => {
    raw.send(encodeFrame(FrameType.INFO, session));
    return JSON.parse(text((await raw.next(FrameType.INFO_REPLY, session)).body)).workload;
  };

  test("it waits; an exec works; the WORKLOAD exec streams through its session, EXITED before WORKLOAD_EXITED, its status the supervisor's; a second is refused", async () => {
    const raw = await rawGuest(null, ["start=host", "onexit=exit"]);
    try {
      raw.send(hello);
      await raw.next(FrameType.HELLO_ACK, 0);
      expect(await infoOf(raw, 1)).toEqual({ pid: 0, state: "waiting", exitCode: null });
      raw.send(encodeFrame(FrameType.EXEC, 2, encodeExec({ argv: ["/bin/sh", "-c", "echo before"] })));
      await raw.next(FrameType.STARTED, 2);
      expect(text((await raw.next(FrameType.STDOUT, 2)).body)).toBe("before\n");
      expect(readU32((await raw.next(FrameType.EXITED, 2)).body, "EXITED")).toBe(0);
      // Nothing to signal yet.
      raw.send(encodeFrame(FrameType.SIGNAL_WORKLOAD, 3, u32Body(15)));
      expect(decodeError((await raw.next(FrameType.ERROR, 3)).body).code).toBe(ErrorCode.NOT_NOW);
      raw.send(encodeFrame(FrameType.EXEC, 4, encodeExec({ argv: ["/bin/sh", "-c", "read x; echo got $x; exit 7"], stdin: true, workload: true })));
      const pid = readU32((await raw.next(FrameType.STARTED, 4)).body, "STARTED");
      expect(await infoOf(raw, 5)).toEqual({ pid, state: "running", exitCode: null });
      raw.send(encodeFrame(FrameType.EXEC, 6, encodeExec({ argv: ["/bin/sh", "-c", "echo second"], workload: true })));
      const second = decodeError((await raw.next(FrameType.ERROR, 6)).body);
      expect(second.code).toBe(ErrorCode.WORKLOAD);
      expect(second.message).toContain("started already");
      raw.send(encodeFrame(FrameType.STDIN, 4, new TextEncoder().encode("hello\n"), FLAG_EOF));
      const exited = readU32((await raw.next(FrameType.EXITED, 4)).body, "EXITED");
      expect(readU32((await raw.next(FrameType.WORKLOAD_EXITED, 0)).body, "WORKLOAD_EXITED")).toBe(7);
      expect(exited).toBe(7);
      const order = (type: number, session: number) => raw.seen.findIndex((frame) => frame.type === type && frame.session === session);
      expect(order(FrameType.EXITED, 4)).toBeGreaterThan(order(FrameType.STDOUT, 4));
      expect(order(FrameType.WORKLOAD_EXITED, 0)).toBeGreaterThan(order(FrameType.EXITED, 4));
      expect(raw.seen.filter((frame) => frame.type === FrameType.STDOUT && frame.session === 4).map((frame) => text(frame.body)).join("")).toBe("got hello\n");
      expect(raw.seen.some((frame) => frame.session === 6 && frame.type !== FrameType.ERROR)).toBe(false);
      // onexit=exit: PID 1 exits with the workload's status.
      expect(await raw.guest.child.exited).toBe(7);
      await raw.guest.logged;
      expect(raw.guest.log()).toContain("waiting for the host to start the workload");
      expect(raw.guest.log()).toMatch(/the host started the workload \/bin\/sh \(pid \d+\)/);
      expect(raw.guest.log()).toMatch(/workload \(pid \d+\) exited with status 7/);
    } finally {
      raw.socket.end();
      await raw.guest.end();
    }
  });

  test("through ControlClient: spawn with workload and a tty; the session's exit, then the workload's", async () => {
    const { client, guest } = await clientGuest(null, ["start=host", "onexit=exit"]);
    try {
      expect((await client.info()).workload.state).toBe("waiting");
      const child = client.spawn(["/bin/sh", "-c", "stty size; read x; echo got $x; exit 5"], { workload: true, tty: { rows: 12, cols: 34 } });
      const reader = child.stdout.getReader();
      let seen = "";
      while (!seen.includes("12 34")) seen += text((await reader.read()).value ?? new Uint8Array());
      await child.write("tty\n");
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) seen += text(chunk.value);
      expect(seen).toContain("got tty");
      expect((await child.exited).exitCode).toBe(5);
      expect(await guest.child.exited).toBe(5);
      expect(client.workloadExit).toBe(5);
    } finally {
      client.close();
      await guest.end();
    }
  });

  test("WORKLOAD on a guest that started its own workload is refused, nothing starts; a WORKLOAD with a value is a bad request", async () => {
    const raw = await rawGuest();
    try {
      raw.send(hello);
      await raw.next(FrameType.HELLO_ACK, 0);
      const before = await infoOf(raw, 1);
      expect(before.state).toBe("running");
      raw.send(encodeFrame(FrameType.EXEC, 2, encodeExec({ argv: ["/bin/sh", "-c", "echo no"], workload: true })));
      const refused = decodeError((await raw.next(FrameType.ERROR, 2)).body);
      expect(refused.code).toBe(ErrorCode.WORKLOAD);
      expect(refused.message).toContain("not start=host");
      const valued = new Uint8Array([...encodeExec({ argv: ["/bin/true"] }), ExecField.WORKLOAD, 0, 1, 0, 0, 0, 1]);
      raw.send(encodeFrame(FrameType.EXEC, 3, valued));
      expect(decodeError((await raw.next(FrameType.ERROR, 3)).body).code).toBe(ErrorCode.BAD_REQUEST);
      expect(await infoOf(raw, 4)).toEqual(before);
      expect(raw.seen.some((frame) => frame.type === FrameType.STARTED)).toBe(false);
      expect(raw.guest.child.exitCode).toBeNull();
    } finally {
      raw.socket.end();
      await raw.guest.end();
    }
  });

  test("STOP before any workload: the exec'd processes end, the VM stops in order with status 0", async () => {
    const { client, guest } = await clientGuest(null, ["start=host"]);
    const running = client.spawn(["/bin/sh", "-c", "sleep 100"]);
    await running.pid;
    await client.stop();
    expect((await running.exited).signal).toBe(15);
    // reboot() in a PID namespace ends it with SIGINT (power-off).
    expect(await guest.child.exited).not.toBe(0);
    await guest.logged;
    expect(guest.log()).toContain("stop (the host's stop request): SIGTERM to what runs (no workload was started)");
    expect(guest.log()).toContain("the VM stops before the host started a workload; reporting status 0");
    expect(guest.log()).toContain("powering off");
    client.close();
  });

  test("a signal to PID 1 before any workload ends the VM in order", async () => {
    const { client, guest } = await clientGuest(null, ["start=host", "onexit=exit"]);
    try {
      expect((await client.info()).workload).toEqual({ pid: 0, state: "waiting", exitCode: null });
      const pid = supervisorPid(guest);
      expect(pid).toBeDefined();
      process.kill(Number(pid), "SIGUSR1");
      // SIGUSR1 is halt: reboot() in a PID namespace ends it with SIGINT too.
      expect(await guest.child.exited).not.toBe(0);
      await guest.logged;
      expect(guest.log()).toContain("stop (SIGUSR1)");
      expect(guest.log()).toContain("reporting status 0");
      expect(guest.log()).toContain("halting");
    } finally {
      client.close();
      await guest.end();
    }
  });
});

describe("bulk streams and uploads (output spliced into the port, uploads pipelined)", () => {
  /** `bytes` of `line` repeated: what `yes LINE | head -c BYTES` writes. */
  const repeated = (line: string, bytes: number) => {
    const unit = new TextEncoder().encode(`${line}\n`);
    const out = new Uint8Array(bytes);
    for (let at = 0; at < bytes; at += unit.byteLength) out.set(unit.subarray(0, Math.min(unit.byteLength, bytes - at)), at);
    return out;
  };

  test("8 sessions stream 3 MiB each at once (64 KiB and small writes, stdout and stderr), one read slowly, execs in between: every byte in order, within credit", async () => {
    const { client, guest } = await clientGuest();
    try {
      const size = 3 * 2 ** 20;
      const streams = Array.from({ length: 8 }, (_, index) => {
        const line = `session ${index}: the quick brown fox jumps over the lazy dog`;
        // Even sessions: dd's 64 KiB writes (a pipe holding a frame's worth or more: spliced); odd: head's small ones; some to stderr.
        const producer = index % 2 ? `yes '${line}' | head -c ${size}` : `yes '${line}' | dd bs=65536 count=${size / 65536} iflag=fullblock 2>/dev/null`;
        const child = client.spawn(["/bin/sh", "-c", index % 3 === 2 ? `(${producer}) >&2` : producer]);
        return { child, expected: repeated(line, size), toStderr: index % 3 === 2, slow: index === 0 };
      });
      const read = async (stream: ReadableStream<Uint8Array>, slow: boolean) => {
        const chunks: Uint8Array[] = [];
        for await (const chunk of stream) {
          chunks.push(chunk);
          // The guest must hold the rest within the credit this reader gives back: its pipe waits.
          if (slow) await Bun.sleep(2);
        }
        return Buffer.concat(chunks);
      };
      const meanwhile = (async () => {
        for (let i = 0; i < 10; i++) expect((await client.exec(["true"])).exitCode).toBe(0);
      })();
      const results = await Promise.all(streams.map(async ({ child, slow }) => {
        const [stdout, stderr, exited] = await Promise.all([read(child.stdout, slow), read(child.stderr, slow), child.exited]);
        return { stdout, stderr, exited };
      }));
      await meanwhile;
      results.forEach((result, index) => {
        const { expected, toStderr } = streams[index]!;
        const [wanted, other] = toStderr ? [result.stderr, result.stdout] : [result.stdout, result.stderr];
        expect({ index, exit: result.exited.exitCode, other: other.byteLength, length: wanted.byteLength }).toEqual({ index, exit: 0, other: 0, length: size });
        expect(Buffer.compare(wanted, Buffer.from(expected))).toBe(0);
      });
      // The supervisor is still serving (and said nothing about padding a frame).
      expect((await client.exec(["echo", "still here"])).stdout).toEqual(new TextEncoder().encode("still here\n"));
      expect(guest.log()).not.toContain("padded");
    } finally {
      client.close();
      await guest.end();
    }
  });

  test("an upload's chunks go without waiting for INPUT_CREDIT up to the announced put window, past STDIN's", async () => {
    const raw = await rawGuest();
    try {
      raw.send(encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION)));
      const ack = (await raw.next(FrameType.HELLO_ACK, 0)).body;
      expect(readU32(ack, "HELLO_ACK", 20)).toBe(PUT_WINDOW_BYTES);
      expect(PUT_WINDOW_BYTES).toBeGreaterThan(INPUT_WINDOW_BYTES);
      const dir = mkdtempSync(join(work, "put-"));
      const data = randomBytes(PUT_WINDOW_BYTES);
      const frames = [encodeFrame(FrameType.PUT, 7, encodePut(join(dir, "whole.bin"), data.byteLength, 0o600))];
      // The whole window at once, no credit awaited.
      for (let at = 0; at < data.byteLength; at += DATA_CHUNK_BYTES) {
        const last = at + DATA_CHUNK_BYTES >= data.byteLength;
        frames.push(encodeFrame(FrameType.PUT_DATA, 7, data.subarray(at, at + DATA_CHUNK_BYTES), last ? FLAG_EOF : 0));
      }
      // The socket takes what fits; the rest as the supervisor reads.
      const bytes = Buffer.concat(frames);
      for (let at = 0; at < bytes.byteLength;) {
        at += Math.max(0, raw.socket.write(bytes.subarray(at)));
        if (at < bytes.byteLength) await Bun.sleep(1);
      }
      expect(readU64((await raw.next(FrameType.FILE_DONE, 7)).body, "FILE_DONE")).toBe(BigInt(data.byteLength));
      expect(Buffer.compare(readFileSync(join(dir, "whole.bin")), data)).toBe(0);
      expect(raw.seen.filter((frame) => frame.type === FrameType.ERROR && frame.session === 7).map((frame) => decodeError(frame.body))).toEqual([]);
    } finally {
      await raw.guest.end();
    }
  });
});
