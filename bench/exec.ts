// `just bench-exec`: the control channel (src/control) against what a QEMU user has without it, side
// by side in one run on the micro kernel, one boot per run, every figure measured on the same guest:
// - exec round trip of `true` (call → exit status): ControlClient.exec against qemu-guest-agent's
//   guest-exec + guest-exec-status polled every 1 ms (qemu-ga copied onto this run's root disk and
//   started by the workload), interleaved;
// - stdout, file put and file get throughput against the bare port's limit: the same bytes through
//   one extra virtio-serial port the bench reads and writes itself;
// - 64 concurrent `true`; the supervisor's RSS idle and with 64 sessions open; PID 1's wake-ups per
//   second while idle;
// - a Pool's take() against a plain restore, when src/api.ts's Pool is there and works.
// Writes bench/results/exec.md (the table) and bench/results/exec.json (every raw sample).
import { spawnSync } from "bun";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ControlClient, type GuestProcess } from "../src/control/client";
import type { ControlMux } from "../src/control/mux";
import { runVm, type RunOptions, type RunResult } from "../src/host/qemu";
import { saveSnapshot } from "../src/host/snapshot";
import { INITRAMFS, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../test/helpers/artifacts";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    // Exec round trips per boot and per side (after a warm-up: TCG translates the paths once).
    execs: { type: "string", default: "20" },
    // The 256 MiB for dd; busybox's head copies at ~7 MiB/s under TCG, so it gets less.
    "stream-mib": { type: "string", default: "256" },
    "head-mib": { type: "string", default: "32" },
    "file-mib": { type: "string", default: "64" },
    "idle-seconds": { type: "string", default: "10" },
    only: { type: "string", default: "guest,pool" },
  },
});
const runs = Number(values.runs);
const execs = Number(values.execs);
const streamBytes = Number(values["stream-mib"]) * 2 ** 20;
const headBytes = Number(values["head-mib"]) * 2 ** 20;
const fileBytes = Number(values["file-mib"]) * 2 ** 20;
const idleSeconds = Number(values["idle-seconds"]);
const only = new Set(values.only!.split(","));
requireArtifacts(KERNEL_MICRO, INITRAMFS, ROOTFS);

const QGA = "/usr/sbin/qemu-ga";
const QGA_PORT = "org.qemu.guest_agent.0";
const RAW_PORT = "bench.raw";
/** A tmpfs the guest mounts for the files: the demo root disk (32 MiB) cannot hold them, and a disk would measure the disk. */
const GUEST_DIR = "/run/bench";
const POLL_MS = 1;
/** dd's block: the channel's data chunk size (64 KiB); the port's reads come in pieces, hence iflag=fullblock. */
const BLOCK = 65536;

const log = (line: string) => console.error(`bench: ${line}`);
const median = (xs: number[]) => {
  const sorted = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const mibps = (bytes: number, ms: number) => bytes / 2 ** 20 / (ms / 1000);

// ---- qemu-ga on the guest's root disk ------------------------------------------------------------

/** Debian's qemu-guest-agent on the host, installed once if absent (its binary is copied into the guest). */
function ensureQemuGa(): void {
  if (existsSync(QGA)) return;
  log("installing Debian's qemu-guest-agent (its qemu-ga goes into the guest)");
  const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
  const install = spawnSync([...sudo, "apt-get", "install", "-y", "-qq", "qemu-guest-agent"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, stdout: "inherit", stderr: "inherit" });
  if (install.exitCode !== 0 || !existsSync(QGA)) throw new Error("could not install qemu-guest-agent (apt-get install -y qemu-guest-agent)");
}

/**
 * A copy of the demo root with qemu-ga, its libraries under their sonames and the dynamic loader at
 * the paths the host's ldd names, written with debugfs (no mount: nothing to leave behind).
 */
function qgaRoot(dir: string): string {
  const image = join(dir, "root-qga.ext4");
  copyFileSync(ROOTFS, image);
  const ldd = spawnSync(["ldd", QGA]).stdout.toString();
  // "libx.so.1 => /lib/…/libx.so.1 (0x…)" and the loader's "/lib64/ld-linux-x86-64.so.2 (0x…)".
  const files = [...ldd.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((match) => match[1]!);
  if (!files.some((file) => file.includes("ld-linux"))) throw new Error(`no dynamic loader in ldd ${QGA}:\n${ldd}`);
  const dirs = new Set<string>();
  for (const file of [QGA, ...files]) for (let at = file.indexOf("/", 1); at > 0; at = file.indexOf("/", at + 1)) dirs.add(file.slice(0, at));
  const commands = [
    ...[...dirs].sort((a, b) => a.length - b.length).map((path) => `mkdir ${path}`),
    // The library's own file under the name ldd gave (a soname link on the host).
    ...[QGA, ...files].map((file) => `write ${realpathSync(file)} ${file}`),
  ];
  const script = join(dir, "debugfs.cmds");
  writeFileSync(script, commands.join("\n") + "\n");
  const run = spawnSync(["debugfs", "-w", "-f", script, image]);
  const errors = run.stderr.toString().split("\n").filter((line) => /error|No space|not found/i.test(line) && !/File exists/.test(line));
  if (run.exitCode !== 0 || errors.length) throw new Error(`debugfs could not write qemu-ga into ${image}:\n${run.stderr.toString()}`);
  // debugfs write keeps the host file's mode; say so if the executable is not executable.
  const stat = spawnSync(["debugfs", "-R", `stat ${QGA}`, image]).stdout.toString();
  if (!/Mode:\s+0?755/.test(stat)) throw new Error(`qemu-ga on ${image} is not mode 755:\n${stat}`);
  return image;
}

// ---- qemu-ga's client (QMP-style JSON over its port) -----------------------------------------------

class QgaClient {
  private buffer = "";
  private synced = false;
  private waiting: ((value: unknown) => void) | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay?.(true);
    socket.on("data", (chunk: Buffer) => this.receive(chunk.toString("latin1")));
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new Error("qemu-ga's socket closed")));
  }

  static async connect(path: string): Promise<QgaClient> {
    const socket = await connectUnix(path);
    const client = new QgaClient(socket);
    await client.sync();
    return client;
  }

  /**
   * guest-sync-delimited until answered: the agent may not run yet, and the port may still hold a
   * half reply from before; the answer comes after a 0xFF byte, which ends what came before.
   */
  private async sync(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const id = Math.floor(Math.random() * 2 ** 31);
      this.synced = false;
      this.buffer = "";
      this.socket.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(JSON.stringify({ execute: "guest-sync-delimited", arguments: { id } }) + "\n")]));
      const answer = await Promise.race([this.next(), Bun.sleep(1000).then(() => null)]);
      if (answer && (answer as { return?: number }).return === id) return;
      this.waiting = null;
      if (attempt > 120) throw new Error("qemu-ga never answered guest-sync-delimited");
    }
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    if (!this.synced) {
      const at = this.buffer.indexOf("\xff");
      if (at < 0) return void (this.buffer = "");
      this.buffer = this.buffer.slice(at + 1);
      this.synced = true;
    }
    for (let newline = this.buffer.indexOf("\n"); newline >= 0; newline = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (!line) continue;
      const wake = this.waiting;
      this.waiting = null;
      wake?.(JSON.parse(line));
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const wake = this.waiting;
    this.waiting = null;
    wake?.({ error: { desc: error.message } });
  }

  private next(): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  /** One command, one reply (qemu-ga answers in order; this client never has two out). */
  async execute<T>(command: string, args?: Record<string, unknown>): Promise<T> {
    const reply = this.next();
    this.socket.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + "\n");
    const answer = (await reply) as { return?: T; error?: { desc: string } };
    if (answer.error || answer.return === undefined) throw new Error(`qemu-ga ${command}: ${answer.error?.desc ?? JSON.stringify(answer)}`);
    return answer.return;
  }

  /** guest-exec, then guest-exec-status every POLL_MS until it exited: how a client learns the status. */
  async run(path: string): Promise<number> {
    const { pid } = await this.execute<{ pid: number }>("guest-exec", { path, "capture-output": true });
    for (;;) {
      const status = await this.execute<{ exited: boolean; exitcode?: number }>("guest-exec-status", { pid });
      if (status.exited) return status.exitcode ?? -1;
      await Bun.sleep(POLL_MS);
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A unix socket QEMU serves (wait=off: it may not listen yet right after spawn). */
async function connectUnix(path: string): Promise<Socket> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        const socket = createConnection(path);
        socket.once("connect", () => {
          socket.off("error", reject);
          resolve(socket);
        });
        socket.once("error", reject);
      });
    } catch (error) {
      if (attempt > 500) throw error;
      await Bun.sleep(20);
    }
  }
}

// ---- the bare port: one extra virtio-serial port the bench drives itself ----------------------------

class RawPort {
  private received = 0;
  private target = Infinity;
  private kept: Buffer[] | null = null;
  private reached: (() => void) | null = null;

  constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.received += chunk.byteLength;
      this.kept?.push(chunk);
      if (this.received >= this.target) this.reached?.();
    });
    socket.on("error", () => {});
  }

  /**
   * Resolves once `bytes` more have arrived: counted, as the stdout reader counts, or kept (`keep`)
   * as readFile keeps a file, to be compared.
   */
  expect(bytes: number, keep = false): Promise<Buffer | null> {
    this.received = 0;
    this.target = bytes;
    this.kept = keep ? [] : null;
    return new Promise((resolve) => (this.reached = () => resolve(this.kept && Buffer.concat(this.kept))));
  }

  /** Writes `data` into the port; the guest takes it when it opens the port. */
  send(data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (error) => (error ? reject(error) : resolve())));
  }

  close(): void {
    this.socket.destroy();
  }
}

// ---- one boot ----------------------------------------------------------------------------------

interface Samples {
  execBurrowMs: number[];
  execQgaMs: number[];
  stdoutHeadChannelMiBps: number[];
  stdoutHeadRawMiBps: number[];
  stdoutDdChannelMiBps: number[];
  stdoutDdRawMiBps: number[];
  putChannelMiBps: number[];
  putRawMiBps: number[];
  getChannelMiBps: number[];
  getRawMiBps: number[];
  concurrent64Ms: number[];
  rssIdleKiB: number[];
  rssIdleGrepKiB: number[];
  rss64KiB: number[];
  rss64GrepKiB: number[];
  readingCostSwitches: number[];
  idleWakeupsPerSecond: number[];
  poolTakeMs: number[];
  poolTakeSyncMs: number[];
  poolTakeToExecMs: number[];
  restoreToExecMs: number[];
}
const samples: Samples = {
  execBurrowMs: [], execQgaMs: [], stdoutHeadChannelMiBps: [], stdoutHeadRawMiBps: [], stdoutDdChannelMiBps: [], stdoutDdRawMiBps: [], putChannelMiBps: [], putRawMiBps: [], getChannelMiBps: [], getRawMiBps: [],
  concurrent64Ms: [], rssIdleKiB: [], rssIdleGrepKiB: [], rss64KiB: [], rss64GrepKiB: [], readingCostSwitches: [], idleWakeupsPerSecond: [],
  poolTakeMs: [], poolTakeSyncMs: [], poolTakeToExecMs: [], restoreToExecMs: [],
};
/** Per-run medians of the rows sampled many times per boot (the table's min–max is over these). */
const perRun = { execBurrowMs: [] as number[], execQgaMs: [] as number[] };

/** The stdout producers, each run through the channel and into the bare port. */
const producers = [
  { command: `head -c ${headBytes} /dev/zero`, bytes: headBytes, channel: samples.stdoutHeadChannelMiBps, raw: samples.stdoutHeadRawMiBps },
  { command: `dd if=/dev/zero bs=${BLOCK} count=${streamBytes / BLOCK}`, bytes: streamBytes, channel: samples.stdoutDdChannelMiBps, raw: samples.stdoutDdRawMiBps },
];

/** Every QEMU this process started and has not seen end, with its run: killed and awaited on any way out. */
const live = new Map<AbortController, Promise<unknown>>();
/** The pool while it runs, closed on any way out. */
let openPool: { close(): Promise<void> } | null = null;

/** Tracks a run (runVm, saveSnapshot) so a signal can kill it and wait for its own clean-up. */
function track<T>(abort: AbortController, run: Promise<T>): Promise<T> {
  live.set(abort, run);
  void run.finally(() => live.delete(abort)).catch(() => {});
  return run;
}

interface Guest {
  client: ControlClient;
  qga: QgaClient;
  raw: RawPort;
  ended: Promise<RunResult>;
  abort: AbortController;
  output(): string;
}

async function bootGuest(work: string, template: string, run: number): Promise<Guest> {
  const disk = join(work, `root-${run}.ext4`);
  copyFileSync(template, disk);
  const qgaSocket = join(work, `qga-${run}.sock`);
  const rawSocket = join(work, `raw-${run}.sock`);
  // qemu-ga's pid and state files under /tmp: the demo root has no /var.
  const agent = `mkdir -p ${GUEST_DIR} && mount -t tmpfs -o size=400M bench ${GUEST_DIR}; ${QGA} -m virtio-serial -p /dev/virtio-ports/${QGA_PORT} -f /tmp/qemu-ga.pid -t /tmp & echo workload: up; exec sleep 100000`;
  const options: RunOptions = {
    kernel: KERNEL_MICRO, initrd: INITRAMFS, disks: [disk], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "tcg",
    append: `burrow.agent=/bin/sh -- -c "${agent}"`, timeoutSeconds: 3600,
    // Both ports on burrow's virtio-serial device (vser0, there for the control port).
    extraArgs: [
      "-chardev", `socket,id=qga,path=${qgaSocket},server=on,wait=off`, "-device", `virtserialport,bus=vser0.0,chardev=qga,name=${QGA_PORT}`,
      "-chardev", `socket,id=raw,path=${rawSocket},server=on,wait=off`, "-device", `virtserialport,bus=vser0.0,chardev=raw,name=${RAW_PORT}`,
    ],
  };
  const abort = new AbortController();
  let output = "";
  let control: Promise<ControlMux> | null = null;
  const ended = track(abort, runVm({ ...options, signal: abort.signal, onSpawn: (vm) => (control = vm.control) }, (chunk) => (output = (output + chunk).slice(-65536))));
  try {
    const gone = ended.then((result) => Promise.reject(new Error(`the guest ended before it answered: ${result.reason}\n${output.slice(-3000)}`)));
    gone.catch(() => {});
    while (control === null) await Promise.race([Bun.sleep(10), gone]);
    const mux = await Promise.race([control as Promise<ControlMux>, gone]);
    const client = await ControlClient.over(mux.local());
    const qga = await Promise.race([QgaClient.connect(qgaSocket), gone]);
    const raw = new RawPort(await connectUnix(rawSocket));
    return { client, qga, raw, ended, abort, output: () => output };
  } catch (error) {
    abort.abort();
    await ended.catch(() => {});
    throw error;
  }
}

/** `grep` of PID 1's status through the channel: a named field's number. */
async function pid1Status(client: ControlClient, fields: string[]): Promise<Record<string, number>> {
  const result = await client.exec(["grep", "-E", `^(${fields.join("|")}):`, "/proc/1/status"]);
  const values: Record<string, number> = {};
  for (const line of text(result.stdout).split("\n")) {
    const match = /^(\w+):\s+(\d+)/.exec(line);
    if (match) values[match[1]!] = Number(match[2]);
  }
  return values;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.byteLength;
  return bytes;
}

async function measureGuest(guest: Guest, run: number): Promise<void> {
  const { client, qga, raw } = guest;
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new Error(`${what}\n${guest.output().slice(-3000)}`);
  };

  // 1. Exec round trips, interleaved, the order swapped each pair; warm-up first.
  for (let warm = 0; warm < 3; warm++) {
    await client.exec(["/bin/true"]);
    await qga.run("/bin/true");
  }
  const burrowMs: number[] = [];
  const qgaMs: number[] = [];
  const timeBurrow = async () => {
    const started = performance.now();
    const result = await client.exec(["/bin/true"]);
    burrowMs.push(performance.now() - started);
    check(result.exitCode === 0, `burrow exec true: ${JSON.stringify(result)}`);
  };
  const timeQga = async () => {
    const started = performance.now();
    const code = await qga.run("/bin/true");
    qgaMs.push(performance.now() - started);
    check(code === 0, `qemu-ga exec true: exit ${code}`);
  };
  for (let index = 0; index < execs; index++) {
    if (index % 2) { await timeBurrow(); await timeQga(); } else { await timeQga(); await timeBurrow(); }
  }
  samples.execBurrowMs.push(...burrowMs);
  samples.execQgaMs.push(...qgaMs);
  perRun.execBurrowMs.push(median(burrowMs));
  perRun.execQgaMs.push(median(qgaMs));
  log(`run ${run}: exec true median burrow ${median(burrowMs).toFixed(1)} ms, qemu-ga ${median(qgaMs).toFixed(1)} ms`);

  // 2. stdout: the channel's stream against the bare port, order swapped each run, with two
  // producers: the busybox `head -c` (it copies at a few MiB/s under TCG, so it is the
  // limit on both sides) and dd with 64 KiB blocks (the transports' own limit).
  for (const producer of producers) {
    const streamChannel = async () => {
      const started = performance.now();
      const child: GuestProcess = client.spawn(["/bin/sh", "-c", `${producer.command} 2>/dev/null`]);
      const [bytes, , exited] = await Promise.all([readAll(child.stdout), readAll(child.stderr), child.exited]);
      const ms = performance.now() - started;
      check(bytes === producer.bytes && exited.exitCode === 0, `channel stdout of ${producer.command}: ${bytes} of ${producer.bytes} bytes, exit ${exited.exitCode}`);
      producer.channel.push(mibps(bytes, ms));
    };
    const streamRaw = async () => {
      const started = performance.now();
      const arrived = raw.expect(producer.bytes);
      const result = await client.exec(["/bin/sh", "-c", `${producer.command} > /dev/virtio-ports/${RAW_PORT}`]);
      check(result.exitCode === 0, `raw stdout: ${text(result.stderr)}`);
      await arrived;
      producer.raw.push(mibps(producer.bytes, performance.now() - started));
    };
    for (const step of run % 2 ? [streamChannel, streamRaw] : [streamRaw, streamChannel]) await step();
    log(`run ${run}: ${producer.command}: ${producer.channel.at(-1)!.toFixed(1)} MiB/s channel, ${producer.raw.at(-1)!.toFixed(1)} MiB/s bare port`);
  }

  // 3. Files: random bytes put into the guest's tmpfs, got back and compared on the host, then
  // removed, one way after the other (order swapped each run): only one file in the guest at a time.
  const data = randomBytes(fileBytes);
  const same = (back: Uint8Array | null) => back !== null && Buffer.compare(Buffer.from(back.buffer, back.byteOffset, back.byteLength), data) === 0;
  const viaChannel = async () => {
    const path = `${GUEST_DIR}/put.bin`;
    let started = performance.now();
    await client.writeFile(path, data);
    samples.putChannelMiBps.push(mibps(fileBytes, performance.now() - started));
    started = performance.now();
    const back = await client.readFile(path);
    samples.getChannelMiBps.push(mibps(back.byteLength, performance.now() - started));
    check(same(back), `the file through the channel came back different (${back.byteLength} of ${fileBytes} bytes)`);
    await client.exec(["rm", "-f", path]);
  };
  const viaRaw = async () => {
    const path = `${GUEST_DIR}/raw.bin`;
    let started = performance.now();
    const sent = raw.send(data);
    const put = await client.exec(["/bin/sh", "-c", `dd if=/dev/virtio-ports/${RAW_PORT} of=${path} bs=${BLOCK} count=${fileBytes / BLOCK} iflag=fullblock`]);
    await sent;
    samples.putRawMiBps.push(mibps(fileBytes, performance.now() - started));
    check(put.exitCode === 0, `raw put: ${text(put.stderr)}`);
    started = performance.now();
    const arrived = raw.expect(fileBytes, true);
    const get = await client.exec(["/bin/sh", "-c", `dd if=${path} of=/dev/virtio-ports/${RAW_PORT} bs=${BLOCK}`]);
    check(get.exitCode === 0, `raw get: ${text(get.stderr)}`);
    const back = await arrived;
    samples.getRawMiBps.push(mibps(fileBytes, performance.now() - started));
    check(same(back), "the file through the bare port came back different");
    await client.exec(["rm", "-f", path]);
  };
  const available = (await client.info()).memory.availableKiB;
  for (const step of run % 2 ? [viaChannel, viaRaw] : [viaRaw, viaChannel]) await step();
  log(`run ${run}: put ${samples.putChannelMiBps.at(-1)!.toFixed(1)} / ${samples.putRawMiBps.at(-1)!.toFixed(1)}, get ${samples.getChannelMiBps.at(-1)!.toFixed(1)} / ${samples.getRawMiBps.at(-1)!.toFixed(1)} MiB/s (channel / bare port; guest MemAvailable before ${(available / 1024).toFixed(0)} MiB)`);

  // 4. 64 concurrent `true`.
  {
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 64 }, () => client.exec(["/bin/true"])));
    samples.concurrent64Ms.push(performance.now() - started);
    check(results.every((result) => result.exitCode === 0), "64 concurrent true: not all exited 0");
    log(`run ${run}: 64 concurrent true ${samples.concurrent64Ms.at(-1)!.toFixed(0)} ms`);
  }

  // 5. The supervisor's RSS idle, then with 64 sleeping sessions open; its own figure and /proc/1's.
  {
    samples.rssIdleKiB.push((await client.info()).supervisorRssKiB);
    samples.rssIdleGrepKiB.push((await pid1Status(client, ["VmRSS"])).VmRSS!);
    const sleepers = Array.from({ length: 64 }, () => client.spawn(["sleep", "1000"]));
    await Promise.all(sleepers.map((sleeper) => sleeper.pid));
    const info = await client.info();
    check(info.sessions >= 64, `64 sleepers open, the supervisor counts ${info.sessions} sessions`);
    samples.rss64KiB.push(info.supervisorRssKiB);
    samples.rss64GrepKiB.push((await pid1Status(client, ["VmRSS"])).VmRSS!);
    for (const sleeper of sleepers) void sleeper.kill("SIGKILL").catch(() => {});
    await Promise.all(sleepers.map((sleeper) => sleeper.exited.catch(() => {})));
    log(`run ${run}: supervisor RSS idle ${samples.rssIdleKiB.at(-1)} KiB (grep ${samples.rssIdleGrepKiB.at(-1)}), 64 sessions ${samples.rss64KiB.at(-1)} KiB (grep ${samples.rss64GrepKiB.at(-1)})`);
  }

  // 6. PID 1's context switches: two readings back to back (what one reading costs), then one after idling.
  {
    const fields = ["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"];
    const switches = async () => {
      const status = await pid1Status(client, fields);
      return status.voluntary_ctxt_switches! + status.nonvoluntary_ctxt_switches!;
    };
    await Bun.sleep(1000); // the sleepers' ends and their frames settle first
    const first = await switches();
    const second = await switches();
    await Bun.sleep(idleSeconds * 1000);
    const third = await switches();
    const cost = second - first;
    samples.readingCostSwitches.push(cost);
    samples.idleWakeupsPerSecond.push((third - second - cost) / idleSeconds);
    log(`run ${run}: PID 1 switches: one reading ${cost}, over ${idleSeconds} s idle ${third - second} → ${samples.idleWakeupsPerSecond.at(-1)!.toFixed(2)}/s`);
  }
}

async function stopGuest(guest: Guest): Promise<void> {
  guest.qga.close();
  guest.raw.close();
  try {
    await Promise.race([guest.client.stop(), Bun.sleep(10_000)]);
    await Promise.race([guest.ended, Bun.sleep(30_000)]);
  } finally {
    guest.abort.abort();
    await guest.ended.catch(() => {});
  }
}

// ---- the pool row (src/api.ts, when it is there and works) ------------------------------------------

/** Why the pool row was not measured, or null once measured. */
async function measurePool(work: string): Promise<string | null> {
  let api: typeof import("../src/api");
  try {
    api = await import("../src/api");
    if (typeof api.Pool !== "function" || typeof api.restore !== "function") return "src/api.ts has no Pool or restore";
  } catch (error) {
    return `src/api.ts did not load: ${error instanceof Error ? error.message : String(error)}`;
  }
  const dir = join(work, "snapshot");
  const disk = join(work, "root-snapshot.ext4");
  copyFileSync(ROOTFS, disk);
  // A supervised guest at the snapshot point: every restore's supervisor answers the channel.
  const saveOptions: RunOptions = {
    kernel: KERNEL_MICRO, initrd: INITRAMFS, disks: [disk], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "tcg",
    append: 'burrow.agent=/bin/sh -- -c "echo workload: up; exec sleep 100000"', timeoutSeconds: 600,
  };
  const saving = new AbortController();
  await track(saving, saveSnapshot({ ...saveOptions, signal: saving.signal }, dir));
  log("pool: snapshot saved");
  const pool = new api.Pool({ snapshot: dir, size: 2, restoreOptions: { timeoutSeconds: 600 }, onError: (error) => log(`pool: ${error.message}`) });
  openPool = pool;
  const readyBoth = async () => {
    for (let waited = 0; pool.counts.ready < 2; waited += 50) {
      if (waited > 300_000) throw new Error(`the pool never had 2 ready: ${JSON.stringify(pool.counts)}`);
      await Bun.sleep(50);
    }
  };
  try {
    for (let run = 1; run <= runs; run++) {
      // Both clones ready (none restoring): take() hands one over, then its first exec.
      await readyBoth();
      const started = performance.now();
      const taking = pool.take();
      // take() starts the replacement's restore before it returns: how much of the hand-out that is.
      samples.poolTakeSyncMs.push(performance.now() - started);
      const vm = await taking;
      const taken = performance.now();
      const result = await vm.exec(["/bin/true"]);
      const executed = performance.now();
      await vm.stop();
      if (result.exitCode !== 0) throw new Error(`a pool clone's true exited ${result.exitCode}`);
      samples.poolTakeMs.push(taken - started);
      samples.poolTakeToExecMs.push(executed - started);
      // The plain restore once the pool is quiet again (its replacement restored), so only one QEMU works.
      await readyBoth();
      const restoreStarted = performance.now();
      const plainAbort = new AbortController();
      const plain = await track(plainAbort, api.restore(dir, { timeoutSeconds: 600, signal: plainAbort.signal }));
      track(plainAbort, plain.ended);
      try {
        const first = await plain.exec(["/bin/true"]);
        samples.restoreToExecMs.push(performance.now() - restoreStarted);
        if (first.exitCode !== 0) throw new Error(`a restored clone's true exited ${first.exitCode}`);
      } finally {
        await plain.stop();
      }
      log(`run ${run}: pool take ${samples.poolTakeMs.at(-1)!.toFixed(2)} ms (the call ${samples.poolTakeSyncMs.at(-1)!.toFixed(2)} ms) (to first exec ${samples.poolTakeToExecMs.at(-1)!.toFixed(1)} ms), plain restore to first exec ${samples.restoreToExecMs.at(-1)!.toFixed(0)} ms`);
    }
  } finally {
    await pool.close();
    openPool = null;
  }
  return null;
}

// ---- the table ----------------------------------------------------------------------------------

const range = (xs: number[], digits: number) => (xs.length ? `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})` : "—");

function table(commandLine: string, poolNote: string | null, notes: string[]): string {
  const ratio = (a: number[], b: number[]) => median(a) / median(b);
  const execRatio = ratio(perRun.execBurrowMs, perRun.execQgaMs);
  const verdict = (ok: boolean) => (ok ? "met" : "**not met**");
  const throughputRow = (what: string, channel: number[], rawSide: number[]) => {
    const share = ratio(channel, rawSide);
    return `| ${what} | ${range(channel, 1)} MiB/s | ${range(rawSide, 1)} MiB/s (bare port) | ${(share * 100).toFixed(0)} % of the bare port | ≥ 80 %: ${verdict(share >= 0.8)} |`;
  };
  const rss64 = median(samples.rss64KiB);
  const wakeups = median(samples.idleWakeupsPerSecond);
  const rows = [
    `| exec round trip of \`true\` (call → exit status) | ${range(perRun.execBurrowMs, 2)} ms | ${range(perRun.execQgaMs, 2)} ms (qemu-ga guest-exec + guest-exec-status every ${POLL_MS} ms) | ${execRatio.toFixed(2)}× | ≤ 0.25×: ${verdict(execRatio <= 0.25)} |`,
    throughputRow(`stdout: \`head -c ${headBytes / 2 ** 20}M /dev/zero\` read by the host (the issue's command; ${headBytes / 2 ** 20} MiB, not 256: busybox head copies at a few MiB/s under TCG and is the limit on both sides)`, samples.stdoutHeadChannelMiBps, samples.stdoutHeadRawMiBps),
    throughputRow(`stdout: \`dd if=/dev/zero bs=64k\`, ${streamBytes / 2 ** 20} MiB, read by the host (a producer faster than both transports)`, samples.stdoutDdChannelMiBps, samples.stdoutDdRawMiBps),
    throughputRow(`file put (writeFile, ${fileBytes / 2 ** 20} MiB random, to a tmpfs)`, samples.putChannelMiBps, samples.putRawMiBps),
    throughputRow(`file get (readFile, the same ${fileBytes / 2 ** 20} MiB)`, samples.getChannelMiBps, samples.getRawMiBps),
    `| 64 concurrent \`true\` (wall time for all) | ${range(samples.concurrent64Ms, 0)} ms | — | — | — |`,
    `| supervisor RSS, idle (info: its mappings' resident pages by mincore; grep VmRSS /proc/1/status, which Linux 6.1 updates from a process's own faults only every 64) | ${range(samples.rssIdleKiB, 0)} KiB; grep ${range(samples.rssIdleGrepKiB, 0)} KiB | — | — | — |`,
    `| supervisor RSS, 64 sessions open (each \`sleep\`ing) | ${range(samples.rss64KiB, 0)} KiB; grep ${range(samples.rss64GrepKiB, 0)} KiB | — | — | ≤ 1024 KiB: ${verdict(rss64 <= 1024 && median(samples.rss64GrepKiB) <= 1024)} |`,
    // One switch over the wait is 1/idleSeconds per second: the figure's step; the reading's own cost varies by a switch or two.
    `| PID 1 wake-ups per second idle (ctxt switches over ${idleSeconds} s, less one reading's ${range(samples.readingCostSwitches, 0)}; one switch = ${(1 / idleSeconds).toFixed(2)} /s) | ${range(samples.idleWakeupsPerSecond, 2)} /s | — | — | 0: ${verdict(wakeups <= 0)}${wakeups > 0 && wakeups <= (Math.max(...samples.readingCostSwitches) - Math.min(...samples.readingCostSwitches)) / idleSeconds ? " (within the reading cost's spread)" : ""} |`,
    poolNote === null
      ? `| pool hand-out: take() with 2 clones ready, of it the synchronous call (which starts the replacement's restore); take → its clone's first exec status | ${range(samples.poolTakeMs, 2)} ms, of it ${range(samples.poolTakeSyncMs, 2)} ms; ${range(samples.poolTakeToExecMs, 1)} ms | ${range(samples.restoreToExecMs, 0)} ms (plain restore → first exec's status) | ${ratio(samples.poolTakeToExecMs, samples.restoreToExecMs).toFixed(3)}× | ≤ 10 ms: ${verdict(median(samples.poolTakeMs) <= 10)} |`
      : `| pool hand-out | not measured: ${poolNote.replaceAll("|", "\\|").replaceAll("\n", " ")} | — | — | — |`,
  ];
  return [
    "# Control channel: exec, streams, files, sessions, idle cost",
    "",
    `${new Date().toISOString()} — \`${commandLine}\`. QEMU TCG (no KVM), -machine microvm, 1 vCPU, 512 MiB, the micro kernel (build/kernel-micro/vmlinuz) and dist/test/initramfs-micro.img, a fresh copy of dist/rootfs.ext4 (with Debian's qemu-ga and its libraries written in) per boot; ${runs} boots, each measuring every row on the same guest; medians (min–max over the ${runs} runs; the exec rows: of each run's median of ${execs} interleaved samples). Raw samples: bench/results/exec.json.`,
    "",
    "| row | burrow's channel | baseline, same guest, same run | burrow ÷ baseline | goal (the issue) |",
    "|---|---|---|---|---|",
    ...rows,
    "",
    ...notes.map((note) => `- ${note}`),
    "",
  ].join("\n");
}

// ---- main ---------------------------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), "burrow-bench-exec-"));
const cleanUp = async () => {
  for (const abort of live.keys()) abort.abort();
  // runVm removes its own socket directory once QEMU is gone: wait for that (bounded).
  await Promise.race([Promise.allSettled([openPool?.close(), ...live.values()]), Bun.sleep(15_000)]);
  rmSync(work, { recursive: true, force: true });
};
// Ctrl-C or a kill mid-run: the QEMUs go (runVm kills on abort) and so do their sockets and disks.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void cleanUp().finally(() => process.exit(130));
  });
}

const commandLine = `RUNS=${runs} npx just bench-exec`;
let poolNote: string | null = "not run (--only without pool)";
const notes = [
  `qemu-ga: Debian's ${basename(QGA)} (${spawnSync(["dpkg-query", "-W", "-f", "${Version}", "qemu-guest-agent"]).stdout.toString() || "version unknown"}) on its own virtio-serial port (${QGA_PORT}), synced once per boot with guest-sync-delimited; each sample is guest-exec {"path":"/bin/true","capture-output":true}, then guest-exec-status every ${POLL_MS} ms until exited — the tightest a client polls. burrow's sample is ControlClient.exec(["/bin/true"]) (stdout and stderr collected). The two alternate, the order swapped each pair, after 3 warm-up calls of each.`,
  `The bare port: one more virtio-serial port (${RAW_PORT}) on the same virtio-serial device, a unix chardev socket the bench reads (counting bytes) or writes; in the guest the same producer as the channel's with \`> /dev/virtio-ports/${RAW_PORT}\`, \`dd if=/dev/virtio-ports/${RAW_PORT} of=${GUEST_DIR}/raw.bin bs=64k count=N iflag=fullblock\` and \`dd if=${GUEST_DIR}/raw.bin of=/dev/virtio-ports/${RAW_PORT} bs=64k\`, each started through the channel's exec and timed like the channel's transfer (from the request to the last byte counted on the host, or to the guest's dd exiting for a put). The files live on a tmpfs the workload mounts (${GUEST_DIR}); each is put, got back and compared with what was sent on the host, then removed before the other way's (one file in the guest at a time; the order of the two ways swapped each run).`,
  "PID 1 is burrow's resident supervisor; its RSS is what info() reports — the resident pages of its own mappings (/proc/self/maps, mincore(2)) — and VmRSS of /proc/1/status read with grep through an exec, which under-counts: Linux 6.1 folds a process's page-fault counts into VmRSS every 64 faults, and a supervisor starting processes with clone(CLONE_VM) takes few. The goal is judged on both. Wake-ups: voluntary + nonvoluntary context switches of /proc/1, read by an exec before and after the idle wait, less what one reading costs (two readings back to back); qemu-ga idles in the guest meanwhile (it is not PID 1).",
];
try {
  if (only.has("guest")) {
    ensureQemuGa();
    const template = qgaRoot(work);
    for (let run = 1; run <= runs; run++) {
      const guest = await bootGuest(work, template, run);
      try {
        await measureGuest(guest, run);
      } finally {
        await stopGuest(guest);
        rmSync(join(work, `root-${run}.ext4`), { force: true });
      }
    }
  }
  if (only.has("pool")) {
    try {
      poolNote = await measurePool(work);
    } catch (error) {
      poolNote = `the pool run failed: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`;
      log(poolNote);
    }
  }
} finally {
  await cleanUp();
}

const markdown = table(commandLine, poolNote, notes);
mkdirSync(join(ROOT, "bench/results"), { recursive: true });
writeFileSync(join(ROOT, "bench/results/exec.md"), markdown);
writeFileSync(join(ROOT, "bench/results/exec.json"), JSON.stringify({ date: new Date().toISOString(), commandLine, runs, execsPerRun: execs, streamBytes, headBytes, fileBytes, idleSeconds, pollMs: POLL_MS, perRunMedians: perRun, samples, pool: poolNote ?? "measured" }, null, 2) + "\n");
process.stdout.write(markdown);
