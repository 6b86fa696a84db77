// The control channel end to end on the micro kernel: the host's ControlClient through runVm's
// ControlMux, QEMU's virtio-serial port, the resident supervisor. One guest serves most cases
// (boots are the suite's cost); a second is driven frame by frame with hostile input; two clones
// of one snapshot answer each with their own randomness, one through a forwarded port.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "../../src/api";
import { ControlClient, GuestError } from "../../src/control/client";
import { decodeError, encodeFrame, type Frame, FrameReader, u32Body } from "../../src/control/frames";
import type { ControlMux } from "../../src/control/mux";
import { ErrorCode, FrameType, MAX_BODY_BYTES, OUTPUT_PIPE_BYTES, OUTPUT_WINDOW_BYTES, PROTOCOL_VERSION } from "../../src/control/wire";
import { runVm, type RunOptions, type RunResult } from "../../src/host/qemu";
import { restoreSnapshot, saveSnapshot } from "../../src/host/snapshot";
import { copyOfRoot, INITRAMFS, KERNEL_MICRO, requireArtifacts } from "../helpers/artifacts";
import { tail } from "../helpers/boot";
import { fetchReply, freePort } from "../helpers/net";

const BOOT_TIMEOUT_MS = 600_000;
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
let work: string;

beforeAll(() => {
  requireArtifacts(KERNEL_MICRO, INITRAMFS);
  work = mkdtempSync(join(tmpdir(), "burrow-control-boot-"));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A supervised micro-kernel guest whose workload sleeps; the demo root has the users root and app. */
function guestOptions(extra: Partial<RunOptions> = {}): RunOptions {
  return {
    kernel: KERNEL_MICRO, initrd: INITRAMFS, disks: [copyOfRoot(work)], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "tcg",
    append: 'burrow.zram=off burrow.agent=/bin/sh -- -c "echo workload: up; exec sleep 100000"', timeoutSeconds: 400, ...extra,
  };
}

interface Running {
  client: ControlClient;
  ended: Promise<RunResult>;
  output(): string;
}

/** Boot and wait for the control channel; the VM runs until stopped. */
async function bootGuest(extra: Partial<RunOptions> = {}): Promise<Running> {
  let output = "";
  let control: Promise<ControlMux> | null = null;
  const ended = runVm({ ...guestOptions(extra), onSpawn: (vm) => (control = vm.control) }, (chunk) => (output = (output + chunk).slice(-65536)));
  while (control === null) await Bun.sleep(10);
  const mux = await Promise.race([control as Promise<ControlMux>, ended.then((result) => Promise.reject(new Error(`the guest ended before its channel answered: ${result.reason}\n${tail(result)}`)))]);
  return { client: await ControlClient.over(mux.local()), ended, output: () => output };
}

describe("a running guest driven through the control channel", () => {
  let guest: Running;
  beforeAll(async () => {
    guest = await bootGuest();
  }, BOOT_TIMEOUT_MS);

  test("exec with a user by name and by id, a cwd, env, a tty of the asked size; the spawn failure's errno", async () => {
    const { client } = guest;
    const named = await client.exec(["/bin/sh", "-c", 'echo "$(id -u):$(id -g) $(id -G) $(pwd) $HOME $GREETING"'], { user: "app", cwd: "/tmp", env: { GREETING: "hello" } });
    expect(text(named.stdout), text(named.stderr)).toBe("1000:1000 1000 10 /tmp /home/app hello\n");
    const numeric = await client.exec(["id", "-u"], { user: "4242:4343" });
    expect(text(numeric.stdout)).toBe("4242\n");
    const limited = await client.exec(["/bin/sh", "-c", "ulimit -n; ulimit -Hn"], { rlimits: [{ resource: 7 /* RLIMIT_NOFILE */, soft: 64, hard: 128 }] });
    expect(text(limited.stdout)).toBe("64\n128\n");
    const tty = await client.exec(["/bin/sh", "-c", "tty; stty size"], { tty: { rows: 33, cols: 101 } });
    expect(text(tty.stdout)).toMatch(/^\/dev\/pts\/\d+\r\n33 101\r\n$/);
    const status = await client.exec(["/bin/sh", "-c", "exit 7"]);
    expect(status.exitCode).toBe(7);
    const missing = await client.exec(["no-such-command"]).then(() => null, (error: unknown) => error as Error);
    expect(missing?.message).toContain("ENOENT");
  }, BOOT_TIMEOUT_MS);

  test("stdin: a 10 MiB file piped in, its sha256 back", async () => {
    const data = randomBytes(10 * 2 ** 20);
    const result = await guest.client.exec(["sha256sum"], { stdin: data });
    expect(text(result.stdout).split(" ")[0]).toBe(createHash("sha256").update(data).digest("hex"));
  }, BOOT_TIMEOUT_MS);

  test("64 sessions at once", async () => {
    const results = await Promise.all(Array.from({ length: 64 }, (_, index) => guest.client.exec(["/bin/sh", "-c", `echo $((${index} * 3))`])));
    expect(results.map((result) => Number(text(result.stdout)))).toEqual(Array.from({ length: 64 }, (_, index) => index * 3));
  }, BOOT_TIMEOUT_MS);

  test("a process ignoring SIGTERM under a timeout: its whole group is gone in bounded time", async () => {
    const started = Date.now();
    const result = await guest.client.exec(["/bin/sh", "-c", "trap '' TERM; sleep 1000 & echo $! > /tmp/background; wait"], { timeoutMs: 1500 });
    expect({ timedOut: result.timedOut, signal: result.signal }).toEqual({ timedOut: true, signal: 9 });
    expect(Date.now() - started).toBeLessThan(30_000);
    const probe = await guest.client.exec(["/bin/sh", "-c", "kill -0 $(cat /tmp/background)"]);
    expect(probe.exitCode).not.toBe(0);
  }, BOOT_TIMEOUT_MS);

  test("a writer without end while the host does not read: it blocks at the window, the supervisor stays under 1 MiB, reading resumes it", async () => {
    const { client } = guest;
    // Counts the 64 KiB blocks it got out: a blocked pipe stops the count.
    const writer = client.spawn(["/bin/sh", "-c", "i=0; while head -c 65536 /dev/zero; do i=$((i+1)); echo $i > /tmp/blocks; done"]);
    await writer.pid;
    await Bun.sleep(3000);
    const blocks = async () => Number(text((await client.exec(["cat", "/tmp/blocks"])).stdout));
    const stalled = await blocks();
    await Bun.sleep(1500);
    expect(await blocks()).toBe(stalled);
    // The window, the pipe and one block in flight: nothing grows beyond them.
    expect(stalled * 65536).toBeLessThanOrEqual(OUTPUT_WINDOW_BYTES + OUTPUT_PIPE_BYTES + 2 * 65536);
    expect((await client.info()).supervisorRssKiB).toBeLessThan(1024);
    const reader = writer.stdout.getReader();
    let read = 0;
    while (read < 4 * 2 ** 20) read += (await reader.read()).value?.byteLength ?? 0;
    expect(await blocks()).toBeGreaterThan(stalled);
    writer.close();
  }, BOOT_TIMEOUT_MS);

  test("an exec the OOM killer ends is said to be OOM-killed; the workload and the channel go on", async () => {
    // No zram on this guest: tail keeps its endless "line" in memory until the OOM killer takes it.
    const hog = await guest.client.exec(["tail", "-n", "1", "/dev/zero"]);
    expect({ signal: hog.signal, oomKilled: hog.oomKilled }).toEqual({ signal: 9, oomKilled: true });
    expect((await guest.client.info()).workload.state).toBe("running");
  }, BOOT_TIMEOUT_MS);

  test("files: 100 MiB of random bytes put and got back, the same sha256, the mode kept", async () => {
    const data = randomBytes(100 * 2 ** 20);
    const sum = createHash("sha256").update(data).digest("hex");
    await guest.client.writeFile("/tmp/big.bin", data, { mode: 0o600 });
    const inside = await guest.client.exec(["/bin/sh", "-c", "sha256sum /tmp/big.bin; stat -c %a /tmp/big.bin; ls /tmp | grep -c burrow-put || true"]);
    expect(text(inside.stdout).split("\n")).toEqual([`${sum}  /tmp/big.bin`, "600", "0", ""]);
    const back = await guest.client.readFile("/tmp/big.bin");
    expect(createHash("sha256").update(back).digest("hex")).toBe(sum);
    const missing = await guest.client.readFile("/nonexistent").then(() => null, (error: unknown) => error);
    expect(missing).toBeInstanceOf(GuestError);
  }, BOOT_TIMEOUT_MS);

  test("the orderly stop: an exec asked for during it is refused, a running one ends like the workload, the VM reports 143", async () => {
    const { client } = guest;
    const sleeper = client.spawn(["sleep", "1000"]);
    await sleeper.pid;
    await client.stop();
    const late = await client.exec(["true"]).then(() => null, (error: unknown) => error as GuestError);
    expect(late?.code).toBe(ErrorCode.STOPPING);
    expect((await sleeper.exited).signal).toBe(15);
    const result = await guest.ended;
    expect(result.exitCode, tail(result)).toBe(143);
  }, BOOT_TIMEOUT_MS);
});

describe("hostile frames into a running guest's port", () => {
  test("junk, an oversized length, an unknown type, a host gone mid-frame: typed errors, the next host is served, the workload runs on", async () => {
    const socketDir = mkdtempSync(join(work, "raw-"));
    const path = join(socketDir, "control");
    let output = "";
    let kill: (() => void) | null = null;
    const ended = runVm({ ...guestOptions({ append: 'burrow.agent=/bin/sh -- -c "echo workload: up; exec sleep 100000"' }), controlSocket: path, rawControl: true, onSpawn: (vm) => (kill = () => vm.kill()) }, (chunk) => (output += chunk));
    const connectRaw = async () => {
      const reader = new FrameReader();
      const frames: Frame[] = [];
      const socket: Socket<undefined> = await (async () => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await Bun.connect({ unix: path, socket: { data: (_s, data) => void frames.push(...reader.push(data)) } });
          } catch (error) {
            if (attempt > 500) throw error;
            await Bun.sleep(20);
          }
        }
      })();
      const next = async (type: number, session: number) => {
        for (let waited = 0; waited < 120_000; waited += 50) {
          const index = frames.findIndex((frame) => frame.type === type && frame.session === session);
          if (index >= 0) return frames.splice(index, 1)[0]!;
          await Bun.sleep(50);
        }
        throw new Error(`no frame ${type} on session ${session}\n${output.slice(-4000)}`);
      };
      return { socket, next };
    };
    try {
      const first = await connectRaw();
      first.socket.write(encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION)));
      await first.next(FrameType.HELLO_ACK, 0);
      first.socket.write(new TextEncoder().encode("junk junk junk junk"));
      expect(decodeError((await first.next(FrameType.ERROR, 0)).body).code).toBe(ErrorCode.BAD_FRAME);
      const huge = encodeFrame(FrameType.PING, 1);
      new DataView(huge.buffer).setUint32(8, MAX_BODY_BYTES * 100, true);
      first.socket.write(huge);
      first.socket.write(encodeFrame(0x30, 2));
      expect(decodeError((await first.next(FrameType.ERROR, 2)).body).code).toBe(ErrorCode.UNKNOWN_TYPE);
      // Half a frame, then the host is gone.
      first.socket.write(encodeFrame(FrameType.EXEC, 3, new Uint8Array(200)).subarray(0, 60));
      first.socket.end();
      await Bun.sleep(500);
      const second = await connectRaw();
      second.socket.write(encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION)));
      await second.next(FrameType.HELLO_ACK, 0);
      second.socket.write(encodeFrame(FrameType.INFO, 4));
      const info = JSON.parse(text((await second.next(FrameType.INFO_REPLY, 4)).body));
      expect(info.workload.state).toBe("running");
      second.socket.write(encodeFrame(FrameType.PING, 5));
      await second.next(FrameType.PONG, 5);
      second.socket.end();
    } finally {
      (kill as (() => void) | null)?.();
      await ended;
    }
    expect(output).toContain("workload: up");
    expect(output).toMatch(/control: a malformed frame from the host \(bad frame magic\)/);
  }, BOOT_TIMEOUT_MS);
});

describe("clones of one snapshot", () => {
  test("two clones at once: each answers exec with its own instance and randomness; one serves a forwarded port from its saved NIC", async () => {
    const dir = join(work, "snap");
    await saveSnapshot({ ...guestOptions(), net: { forwards: [] } }, dir);
    const hostPort = await freePort();
    const clones = [0, 1].map((index) => {
      let control: Promise<ControlMux> | null = null;
      const ended = restoreSnapshot(dir, { instance: `clone-${index}`, timeoutSeconds: 300, forwards: index === 0 ? [{ protocol: "tcp", hostPort, guestPort: 8080 }] : [], onControl: (promise) => (control = promise) });
      return { ended, channel: async () => {
        while (control === null) await Bun.sleep(10);
        return ControlClient.over((await control).local());
      } };
    });
    try {
      const clients = await Promise.all(clones.map((clone) => clone.channel()));
      const answers = await Promise.all(clients.map((client) => client.exec(["/bin/sh", "-c", "echo $BURROW_INSTANCE; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'"])));
      const [first, second] = answers.map((answer) => text(answer.stdout).split("\n"));
      expect([first![0], second![0]]).toEqual(["clone-0", "clone-1"]);
      expect(first![1]).toMatch(/^[0-9a-f]{32}$/);
      expect(first![1]).not.toBe(second![1]);
      // The NIC came with the snapshot; this clone's own user network forwards hostPort to it.
      const server = clients[0]!.spawn(["/bin/sh", "-c", "ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; echo from-clone-0 | nc -l -p 8080"]);
      let reply = "";
      for (let attempt = 0; attempt < 100 && !reply.includes("from-clone-0"); attempt++) {
        reply = await fetchReply(hostPort);
        if (!reply) await Bun.sleep(200);
      }
      expect(reply.trim()).toBe("from-clone-0");
      await server.exited;
      for (const client of clients) await client.stop();
    } finally {
      const results = await Promise.all(clones.map((clone) => clone.ended.catch((error: Error) => error)));
      for (const result of results) expect(result instanceof Error ? result.message : result.exitCode).toBe(143);
    }
    // The TypeScript API's pool over the same snapshot: a clone is restored ahead and handed out answering.
    const pool = new Pool({ snapshot: dir, size: 1, restoreOptions: { timeoutSeconds: 300 } });
    try {
      const vm = await pool.take();
      const answer = await vm.exec(["/bin/sh", "-c", "echo pooled $BURROW_INSTANCE"]);
      expect(text(answer.stdout)).toMatch(/^pooled \S+\n$/);
      await vm.writeFile("/tmp/from-host", "bytes");
      expect(text(await vm.readFile("/tmp/from-host"))).toBe("bytes");
      expect((await vm.stop()).exitCode).toBe(143);
    } finally {
      await pool.close();
    }
  }, BOOT_TIMEOUT_MS);
});
