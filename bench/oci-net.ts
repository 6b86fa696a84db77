// bench-oci's network part: a stream between the host and a container, each way, three ways:
// - burrow-oci on Podman's bridge network (netavark's default `podman` network, 10.88.0.0/16 on
//   podman0): QEMU in the container's netns, the guest's NIC a tap mirrored to the netns's veth
//   with tc (src/oci/network.ts), restored from a template with a NIC as every create is by default;
// - the same guest (dist/oci's kernel and boot disk, the image's files as a 9p root, 1 vCPU,
//   256 MiB, sandboxed QEMU) booted with runVm on a plain tap on the host, no veth, bridge or
//   mirror, its NIC configured by the same burrow.net.* words;
// - runc on Podman's bridge network.
// The peer runs busybox nc (the image's): `nc -l -p IN` reading what the host sends, then a
// `dd … | nc -l -p OUT` sending to the host. The host side is this process (node:net), timed on
// the host's clock from the first byte to the peer's EOF.
import { existsSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { nicWords } from "../src/config/nic";
import { TAP_NAME as MIRROR_TAP } from "../src/oci/network";
import { withBootDisk } from "../src/host/boot-disk";
import { writeTestRootfs } from "../test/helpers/oci-image";
import {
  checkNoContainersLeft, type Guest, guestSh, lastLines, log, median, OCI_BOOT_DISK, OCI_KERNEL, onCleanUp, podmanAsync, podmanWith, range, startGuest, stopGuest,
  TEST_IMAGE, ULIMITS, verdict, within, work,
} from "./oci-common";

export const NET_VARIANTS = ["burrow-oci", "tap", "runc"] as const;
export type NetVariant = (typeof NET_VARIANTS)[number];
const NET_TITLES: Record<NetVariant, string> = {
  "burrow-oci": "burrow-oci on Podman's bridge (tap mirrored to the veth; from the template)",
  tap: "the same guest on a plain tap (no veth, bridge or mirror)",
  runc: "runc on Podman's bridge",
};
/** The goal (issue 30): burrow-oci at least this share of the plain tap's throughput, each way. */
export const NET_GOAL = 0.8;

const PORT_IN = 5001;
const PORT_OUT = 5002;
/** The network the containers join: Podman's default bridge network. */
const PODMAN_NETWORK = "podman";
/** The plain-tap guest's memory: what burrow-oci gives a container without a memory limit (docs/oci/README.md). */
const GUEST_MEM = "256M";
const ROOT_TAG = "benchroot";
/** Connecting, and each stream, give up after these (the peer still booting; a stalled path). */
const CONNECT_TIMEOUT_MS = 120_000;
const STREAM_TIMEOUT_MS = 600_000;

/**
 * inFrames/inFrameBytes: what the VM's tap handed QEMU while the host → container stream ran (its
 * tx counters), a frame being one skb: ~MTU-sized ones mean the stream reached the guest
 * segmented, larger ones that it kept the host's GSO. Absent for runc (no tap).
 */
export interface NetSamples { inMs: number[]; outMs: number[]; inFrames?: number[]; inFrameBytes?: number[] }
interface TapCounters { packets: number; bytes: number }
interface Timed { inMs: number; outMs: number; inFrames: number | null; inFrameBytes: number | null }
export interface NetData { runs: number; mib: number; script: string; tap: { subnet: string; mtu: number }; samples: Record<NetVariant, NetSamples> }

/**
 * The peer's side, the same shell line in every variant. busybox nc shuts its sending side at its
 * stdin's EOF and exits at the socket's: the receiving nc's stdin is a FIFO it holds open itself
 * (never data, never EOF), so its EOF to the host comes only after it has read the whole stream.
 */
function peerScript(mib: number): string {
  const blocks = mib * 16;
  return `rm -f /tmp/bench-hold && busybox mkfifo /tmp/bench-hold && nc -l -p ${PORT_IN} 0<>/tmp/bench-hold > /dev/null && dd if=/dev/zero bs=65536 count=${blocks} 2>/dev/null | nc -l -p ${PORT_OUT}`;
}

// ---- the host's side of the streams ------------------------------------------------------------------

/** A connection to host:port, tried again while the peer is not listening yet (refused, no route while its NIC comes up). */
async function connectRetrying(host: string, port: number): Promise<Socket> {
  const deadline = performance.now() + CONNECT_TIMEOUT_MS;
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        // allowHalfOpen: the peer's EOF must not end our sending side.
        const socket = connect({ host, port, allowHalfOpen: true });
        socket.once("connect", () => {
          socket.removeAllListeners("error");
          resolve(socket);
        });
        socket.once("error", (error) => {
          socket.destroy();
          reject(error);
        });
      });
    } catch (error) {
      if (performance.now() > deadline) throw new Error(`cannot connect to ${host}:${port} in ${CONNECT_TIMEOUT_MS / 1000} s: ${(error as Error).message}`);
      await Bun.sleep(20);
    }
  }
}

/** Host → peer: `bytes` written, our side shut; the time from the first write to the peer's EOF (it read all and closed). */
async function sendStream(host: string, port: number, bytes: number): Promise<number> {
  const socket = await connectRetrying(host, port);
  try {
    const chunk = Buffer.alloc(1 << 20);
    const peerEnd = new Promise<number>((resolve, reject) => {
      socket.on("data", () => {}); // the peer sends nothing; read anyway so its EOF is seen
      socket.once("end", () => resolve(performance.now()));
      socket.once("error", reject);
      socket.once("close", () => reject(new Error(`${host}:${port} closed before its EOF`)));
    });
    peerEnd.catch(() => {});
    const started = performance.now();
    const timed = (async () => {
      for (let sent = 0; sent < bytes; sent += chunk.length) {
        if (!socket.write(chunk.subarray(0, Math.min(chunk.length, bytes - sent)))) await Promise.race([new Promise((resolve) => socket.once("drain", resolve)), peerEnd]);
      }
      socket.end();
      return (await peerEnd) - started;
    })();
    return await within(timed, STREAM_TIMEOUT_MS, () => {
      throw new Error(`${host}:${port}: the stream to the peer did not end in ${STREAM_TIMEOUT_MS / 1000} s`);
    });
  } finally {
    socket.destroy();
  }
}

/** Peer → host: the time from the first byte to the peer's EOF, the byte count checked. */
async function receiveStream(host: string, port: number, bytes: number): Promise<number> {
  const socket = await connectRetrying(host, port);
  try {
    let got = 0;
    let first = NaN;
    const ended = new Promise<number>((resolve, reject) => {
      socket.on("data", (data: Buffer) => {
        if (got === 0) first = performance.now();
        got += data.length;
      });
      socket.once("end", () => resolve(performance.now()));
      socket.once("error", reject);
    });
    const last = await within(ended, STREAM_TIMEOUT_MS, () => {
      throw new Error(`${host}:${port}: the stream from the peer did not end in ${STREAM_TIMEOUT_MS / 1000} s (${got} bytes)`);
    });
    if (got !== bytes) throw new Error(`${host}:${port}: the peer sent ${got} bytes, not ${bytes}`);
    socket.end();
    return last - first;
  } finally {
    socket.destroy();
  }
}

/** Both streams with the peer at `host`; the peer runs peerScript. `tap`: the VM's tap's counters, read around the first stream. */
async function streams(host: string, bytes: number, tap: (() => TapCounters) | null): Promise<Timed> {
  const before = tap?.() ?? null;
  const inMs = await sendStream(host, PORT_IN, bytes);
  const after = tap?.() ?? null;
  const outMs = await receiveStream(host, PORT_OUT, bytes);
  return { inMs, outMs, inFrames: before && after ? after.packets - before.packets : null, inFrameBytes: before && after ? after.bytes - before.bytes : null };
}

/** A tap's transmit counters (frames it handed the VMM), from `ip -j -s link`, inside `netns` when given. */
function tapCounters(name: string, netns: string | null): TapCounters {
  const argv = ["ip", "-j", "-s", "link", "show", "dev", name];
  const links = JSON.parse(run(netns === null ? argv : ["nsenter", `--net=${netns}`, "--", ...argv])) as { stats64?: { tx?: { packets?: number; bytes?: number } } }[];
  const tx = links[0]?.stats64?.tx;
  if (typeof tx?.packets !== "number" || typeof tx.bytes !== "number") throw new Error(`no transmit counters for ${name}${netns ? ` in ${netns}` : ""}`);
  return { packets: tx.packets, bytes: tx.bytes };
}

// ---- host network state: the plain tap, and what netavark leaves -----------------------------------

function run(argv: string[], stdin?: string): string {
  const result = Bun.spawnSync(argv, { stdin: stdin === undefined ? "ignore" : Buffer.from(stdin), stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`\`${argv.join(" ")}\`: exit ${result.exitCode}: ${lastLines(result.stderr.toString())}`);
  return result.stdout.toString();
}

const ipv4Number = (address: string) => address.split(".").reduce((value, part) => value * 256 + Number(part), 0);

/** Whether any IPv4 route of the host (every table) overlaps base/prefix; the default routes aside. */
function subnetInUse(base: string, prefix: number): boolean {
  const routes = JSON.parse(run(["ip", "-j", "-4", "route", "show", "table", "all"]) || "[]") as { dst?: string }[];
  const start = ipv4Number(base);
  const end = start + 2 ** (32 - prefix) - 1;
  return routes.some(({ dst }) => {
    if (!dst || dst === "default") return false;
    const [address, bits = "32"] = dst.split("/");
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(address!)) return false;
    const first = ipv4Number(address!);
    const last = first + 2 ** (32 - Number(bits)) - 1;
    return first <= end && start <= last;
  });
}

interface Tap { name: string; hostAddress: string; guestAddress: string; prefix: number; subnet: string; mac: string; mtu: number }

/**
 * A tap on the host with a /30 of its own (10.253.X.0/30, X drawn until no route of the host
 * overlaps it): the host's end of the plain-tap guest. Made as burrow-oci makes its tap in a
 * container's netns (ip tuntap, addrgenmode none, the MTU Podman's bridge has), plus an address.
 */
function makeTap(mtu: number): Tap {
  for (let attempt = 0; attempt < 50; attempt++) {
    const third = randomBytes(1)[0]!;
    const subnet = `10.253.${third}.0`;
    if (subnetInUse(subnet, 30)) continue;
    const name = `bbench${randomBytes(3).toString("hex")}`;
    const mac = `02:${[...randomBytes(5)].map((byte) => byte.toString(16).padStart(2, "0")).join(":")}`;
    const tap: Tap = { name, hostAddress: `10.253.${third}.1`, guestAddress: `10.253.${third}.2`, prefix: 30, subnet: `${subnet}/30`, mac, mtu };
    onCleanUp(() => removeTap(tap));
    run(["ip", "tuntap", "add", "dev", name, "mode", "tap"]);
    try {
      run(["ip", "-batch", "-"], [`link set dev ${name} addrgenmode none`, `address add ${tap.hostAddress}/30 dev ${name}`, `link set dev ${name} mtu ${mtu} up`].join("\n") + "\n");
    } catch (error) {
      removeTap(tap);
      throw error;
    }
    return tap;
  }
  throw new Error("no free 10.253.X.0/30 for the plain tap");
}

function removeTap(tap: Tap): void {
  if (existsSync(`/sys/class/net/${tap.name}`)) run(["ip", "link", "del", "dev", tap.name]);
}

/** netavark's iptables chains (it names them NETAVARK…) per table, and the IPv4 forwarding switch it turns on. */
interface NetavarkTraces { chains: Record<"filter" | "nat", Set<string>>; ipForward: string }

function iptablesSave(table: "filter" | "nat"): string {
  return run(["iptables-save", "-t", table]);
}

function netavarkTraces(): NetavarkTraces | null {
  if (!Bun.which("iptables-save")) return null;
  const chains = (table: "filter" | "nat") => new Set([...iptablesSave(table).matchAll(/^:(NETAVARK\S*)/gm)].map((match) => match[1]!));
  return { chains: { filter: chains("filter"), nat: chains("nat") }, ipForward: readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim() };
}

/**
 * What netavark set up for this part's containers and keeps after the last one is gone: its
 * iptables chains (with the jumps to them) and net.ipv4.ip_forward=1. Undone only when it was not
 * there before this part and netavark serves no container now (its forward chain holds no rule, no
 * port is mapped, no netavark runs), so another Podman's network on this host is never touched;
 * each table's removal is one iptables-restore transaction. Returns what it did, for the log.
 */
function removeNetavarkTraces(before: NetavarkTraces): string {
  const now = netavarkTraces();
  if (now === null) return "no iptables";
  const filter = iptablesSave("filter");
  const nat = iptablesSave("nat");
  const busy = /^-A NETAVARK_FORWARD /m.test(filter) || /^-A NETAVARK-HOSTPORT-DNAT /m.test(nat) || Bun.spawnSync(["pgrep", "-x", "netavark"]).exitCode === 0;
  if (busy) return "netavark serves other containers: its chains are left as they are";
  const done: string[] = [];
  for (const [table, saved] of [["filter", filter], ["nat", nat]] as const) {
    const added = [...now.chains[table]].filter((chain) => !before.chains[table].has(chain));
    if (added.length === 0) continue;
    const jumps = saved.split("\n").filter((line) => {
      const match = /^-A (\S+) .*-j (\S+)$/.exec(line);
      return match !== null && !added.includes(match[1]!) && added.includes(match[2]!);
    });
    const script = [`*${table}`, ...jumps.map((line) => `-D${line.slice(2)}`), ...added.map((chain) => `-F ${chain}`), ...added.map((chain) => `-X ${chain}`), "COMMIT", ""].join("\n");
    run(["iptables-restore", "--noflush"], script);
    done.push(`${table}: ${added.join(" ")}`);
  }
  if (before.ipForward === "0" && now.ipForward === "1") {
    run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]);
    done.push("net.ipv4.ip_forward back to 0");
  }
  return done.length ? `removed netavark's ${done.join("; ")}` : "netavark left nothing new";
}

// ---- the three variants -----------------------------------------------------------------------------

async function containerStreams(runtime: "burrow-oci" | "runc", script: string, bytes: number): Promise<Timed> {
  const podman = podmanWith(runtime);
  const id = await podmanAsync([...podman, "run", "-d", "--network", PODMAN_NETWORK, ...ULIMITS, TEST_IMAGE, "sh", "-c", script], `run -d --network ${PODMAN_NETWORK} (${runtime})`);
  try {
    const address = await podmanAsync([...podman, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id], "inspect");
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(address)) throw new Error(`${runtime}: the container has no IPv4 address on ${PODMAN_NETWORK} (${JSON.stringify(address)})`);
    // burrow-oci's tap is in the container's netns (Podman's SandboxKey), made by the holder before QEMU starts.
    const netns = runtime === "burrow-oci" ? await podmanAsync([...podman, "inspect", "--format", "{{.NetworkSettings.SandboxKey}}", id], "inspect") : null;
    const timed = await streams(address, bytes, netns ? () => tapCounters(MIRROR_TAP, netns) : null);
    const status = await within(podmanAsync([...podman, "wait", id], "wait"), 60_000, () => "(still running after 60 s)");
    if (status !== "0") throw new Error(`${runtime}: the container's nc script ended with ${status}: ${lastLines(await podmanAsync([...podman, "logs", id], "logs").catch(() => ""))}`);
    return timed;
  } finally {
    await within(podmanAsync([...podman, "rm", "--force", "--time", "0", id], "rm -f"), 60_000, () => "");
  }
}

async function tapStreams(tap: Tap, rootfs: string, script: string, bytes: number): Promise<Timed> {
  const words = [
    `burrow.root=9p:${ROOT_TAG}`,
    "burrow.net.lo=1",
    ...nicWords({ mac: tap.mac, mtu: tap.mtu, addresses: [{ family: 4, address: tap.guestAddress, prefix: tap.prefix }], routes: [] }),
    "quiet",
  ];
  const options = withBootDisk({
    kernel: OCI_KERNEL, initrd: null, disks: [], ports: [], mem: GUEST_MEM, smp: 1, machine: "microvm", accel: "tcg",
    append: `${words.join(" ")} burrow.agent=/bin/sh -- -c "exec sleep 100000"`, timeoutSeconds: 3600,
    shares: [{ tag: ROOT_TAG, path: rootfs, readOnly: false }], sandbox: true, net: { tap: { ifname: tap.name, mac: tap.mac } },
  }, OCI_BOOT_DISK);
  const guest: Guest = await startGuest(options, "plain-tap");
  try {
    const peer = guestSh(guest, script);
    peer.catch(() => {});
    const timed = await Promise.race([streams(tap.guestAddress, bytes, () => tapCounters(tap.name, null)), peer.then(() => Promise.reject(new Error("the guest's nc script ended before the streams")))]);
    await within(peer, 60_000, () => {
      throw new Error("the guest's nc script did not end 60 s after the streams");
    });
    return timed;
  } finally {
    await stopGuest(guest);
  }
}

export async function measureNet(runs: number, mib: number): Promise<NetData> {
  const samples = Object.fromEntries(NET_VARIANTS.map((variant) => [variant, { inMs: [], outMs: [] } as NetSamples])) as Record<NetVariant, NetSamples>;
  const bytes = mib * 2 ** 20;
  const script = peerScript(mib);
  const rootfs = join(work, "net-rootfs");
  await writeTestRootfs(rootfs);
  const traces = netavarkTraces();
  // In the bench's clean-up, on every way out: after `podman rm --all`, when no container of this run holds a netavark rule.
  if (traces !== null) onCleanUp(() => log(`net: ${removeNetavarkTraces(traces)}`));
  // Podman's bridge (podman0) has netavark's default MTU, 1500: the plain tap gets the same.
  const tap = makeTap(1500);
  try {
    for (let run = 1; run <= runs; run++) {
      const order = NET_VARIANTS.map((_, index) => NET_VARIANTS[(index + run - 1) % NET_VARIANTS.length]!);
      for (const variant of order) {
        const timed = variant === "tap" ? await tapStreams(tap, rootfs, script, bytes) : await containerStreams(variant, script, bytes);
        samples[variant].inMs.push(timed.inMs);
        samples[variant].outMs.push(timed.outMs);
        if (timed.inFrames !== null && timed.inFrameBytes !== null) {
          (samples[variant].inFrames ??= []).push(timed.inFrames);
          (samples[variant].inFrameBytes ??= []).push(timed.inFrameBytes);
        }
      }
      const rate = (ms: number) => (mib / (ms / 1000)).toFixed(1);
      log(`net run ${run}: ${NET_VARIANTS.map((variant) => `${variant} in ${rate(samples[variant].inMs.at(-1)!)}, out ${rate(samples[variant].outMs.at(-1)!)} MiB/s`).join("; ")}`);
    }
    checkNoContainersLeft("the network containers' rm -f");
  } finally {
    removeTap(tap);
  }
  return { runs, mib, script, tap: { subnet: tap.subnet, mtu: tap.mtu }, samples };
}

// ---- the table --------------------------------------------------------------------------------------

export function netSection(data: NetData): string[] {
  const rates = (xs: number[]) => xs.map((ms) => data.mib / (ms / 1000));
  // The median time beside the rate: each stream should last a second or more.
  const cell = (xs: number[]) => (xs.length ? `${range(rates(xs), 1)} MiB/s, ${(median(xs) / 1000).toFixed(1)} s` : "—");
  /** burrow-oci's throughput over the plain tap's, paired per run (the same run interleaves both). */
  const ratios = (pick: (samples: NetSamples) => number[]) => {
    const tap = pick(data.samples.tap);
    return pick(data.samples["burrow-oci"]).map((ms, index) => tap[index]! / ms).filter(Number.isFinite);
  };
  const ratioCell = (pick: (samples: NetSamples) => number[]) => {
    const xs = ratios(pick);
    return xs.length ? `${(median(xs) * 100).toFixed(0)} % (${(Math.min(...xs) * 100).toFixed(0)}–${(Math.max(...xs) * 100).toFixed(0)}): ${verdict(median(xs) >= NET_GOAL)}` : "—";
  };
  const frames = (samples: NetSamples) => {
    const counts = samples.inFrames ?? [];
    const sizes = counts.map((count, index) => samples.inFrameBytes![index]! / count);
    return counts.length ? `${range(counts)}, ${median(sizes).toFixed(0)} B` : "—";
  };
  const row = (what: string, pick: (samples: NetSamples) => number[]) => `| ${what} | ${NET_VARIANTS.map((variant) => cell(pick(data.samples[variant]))).join(" | ")} | ${ratioCell(pick)} |`;
  return [
    `${data.runs} runs, the three interleaved (the order turned each run), a fresh container or VM each time. Its process runs \`${data.script}\` (the image's busybox nc and dd). The host (this bench, node:net) connects to its address, retrying until it listens, writes ${data.mib} MiB and shuts its sending side (**host → container**), then reads from the second port until the peer's EOF, the byte count checked (**container → host**). Times are the host's clock from the first byte written or read to the peer's EOF: host → container ends when the peer's nc has read everything and exits (its stdin a FIFO it holds open itself, so it never ends its side sooner). Around the host → container stream the VM's tap's transmit counters are read (\`ip -j -s link\`; burrow-oci's tap in the container's netns): the frames the tap handed QEMU for the guest, and their mean size.`,
    `- **burrow-oci**: \`podman run -d --network ${PODMAN_NETWORK} ${ULIMITS.join(" ")} IMAGE sh -c …\` through the burrow-oci wrapper described under podman run; \`${PODMAN_NETWORK}\` is Podman's default bridge network (netavark, podman0, 10.88.0.0/16, MTU 1500). The host reaches the container's address over podman0 and the netns's veth, whose frames tc mirrors to and from the tap QEMU (run in that netns) serves the guest's virtio-net NIC with (src/oci/network.ts). Restored from a template with a NIC, as a create is by default (docs/oci/templates.md; the template was built on a tap, so its guest has the offloads a cold boot's has). Podman's \`--network-config-dir\` is in the run's directory too, so nothing is written under /etc/containers.`,
    `- **plain tap**: the same guest — dist/oci's kernel and boot disk, microvm, 1 vCPU, ${GUEST_MEM.replace(/M$/, " MiB")}, QEMU TCG with -sandbox, the image's files (test/helpers/oci-image.ts) as its 9p root, its NIC set by the same burrow.net.mac/mtu/addr words — booted by runVm (src/host/qemu.ts) on a tap made on the host (\`ip tuntap add … mode tap\`, addrgenmode none, MTU ${data.tap.mtu}, a free ${data.tap.subnet}: the host .1, the guest .2), no veth, bridge or mirror; removed at the end. The peer's line runs over burrow's control channel (exec) rather than as the container's process.`,
    `- **runc**: the same \`podman run -d --network ${PODMAN_NETWORK}\` with runc: the container's process behind the same bridge and veth, no VM.`,
    "",
    `Under TCG the guest's one vCPU, which runs its TCP stack, virtio-net and nc, is the limit for both VM columns; runc's column is the host's own stack. netavark's iptables chains and net.ipv4.ip_forward, when this part added them, are undone at its end unless netavark serves another container by then. Medians (min–max).`,
    "",
    `| measurement (${data.mib} MiB; host clock, first byte → the peer's EOF; MiB/s = ${data.mib} MiB over that time) | ${NET_VARIANTS.map((variant) => NET_TITLES[variant]).join(" | ")} | goal: burrow-oci ≥ ${NET_GOAL * 100} % of the plain tap (median of the per-run ratios) |`,
    `|---|${NET_VARIANTS.map(() => "---").join("|")}|---|`,
    row(`host → container: the host writes, the peer's \`nc -l -p ${PORT_IN} > /dev/null\` reads`, (samples) => samples.inMs),
    `| frames the VM's tap handed QEMU during host → container: their number, and the mean size (bytes ÷ frames; the MTU is ${data.tap.mtu}) | ${NET_VARIANTS.map((variant) => frames(data.samples[variant])).join(" | ")} | — |`,
    row(`container → host: the peer's \`dd if=/dev/zero bs=64k \\| nc -l -p ${PORT_OUT}\` writes, the host reads`, (samples) => samples.outMs),
  ];
}
