// The engine's network for a container VM, on the host. Podman (netavark), containerd and CNI hand
// the runtime a network namespace with a veth already configured; as kata-containers' tcfilter
// model does, QEMU runs inside that namespace with a tap, and tc mirrors every frame between the
// veth and the tap both ways (an ingress qdisc on each, a u32 match-all filter redirecting to the
// other's egress). The guest's NIC takes the veth's MAC, addresses, routes and MTU (kernel command
// line words, config/nic.ts; burrow configures them before the workload), so the engine's bridge,
// port mappings and firewall see the container where they put it. The veth keeps its addresses:
// the ingress redirect takes every frame before the namespace's own stack could see it, and a
// create again in the same namespace reads them as the first one did.
//
// What goes away, and when: the holder removes the tap (its qdisc and filter with it) and the
// veth's ingress qdisc (its filter with it) when the VM ends; a holder killed with SIGKILL leaves
// them, and `delete` removes them while the namespace exists (a marker file in the container's
// directory says they may still be there); and everything in the namespace goes with it when the
// engine removes it (Podman at the container's cleanup; the tap is inside it, never on the host's).
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { formatIpPrefix, formatNicRoute, type IpPrefix, type NicRoute, nicWords, parseIpPrefix, parseMac } from "../config/nic";

/** The tap burrow makes in the engine's namespace; one per namespace (kata: tap0_kata). */
export const TAP_NAME = "tap0_burrow";

export interface NetworkPlan {
  /** config.json's network namespace path: QEMU runs in it, the tap is made in it. */
  netns: string;
  /** The namespace's interface the guest takes over. */
  veth: string;
  tap: string;
  /** The veth's: the guest's NIC answers to it. */
  mac: string;
  mtu: number;
  addresses: IpPrefix[];
  routes: NicRoute[];
}

/** What `ip -j addr` and `ip -j route` say about a namespace, as parsed JSON. */
export interface NetnsView {
  links: unknown;
  routes4: unknown;
  routes6: unknown;
}

type JsonObject = Record<string, unknown>;
const isObject = (value: unknown): value is JsonObject => typeof value === "object" && value !== null && !Array.isArray(value);
const objects = (value: unknown): JsonObject[] => (Array.isArray(value) ? value.filter(isObject) : []);
const text = (object: JsonObject, key: string): string | null => (typeof object[key] === "string" ? (object[key] as string) : null);

/** The interface's addresses the guest takes: global ones (link-local ones the guest's kernel makes itself from the same MAC). */
function globalAddresses(link: JsonObject): IpPrefix[] {
  const out: IpPrefix[] = [];
  for (const info of objects(link.addr_info)) {
    if ((info.family !== "inet" && info.family !== "inet6") || info.scope !== "global" || info.dadfailed === true) continue;
    const local = text(info, "local");
    if (local === null || typeof info.prefixlen !== "number") continue;
    const parsed = parseIpPrefix(`${local}/${info.prefixlen}`);
    if (!("problem" in parsed)) out.push(parsed);
  }
  return out;
}

/** The namespace's routes through `dev` that the guest needs: not the kernel's own (made again from the addresses), not link-local. */
function routesThrough(dev: string, routes: unknown, family: 4 | 6, notes: string[]): NicRoute[] {
  const out: NicRoute[] = [];
  for (const route of objects(routes)) {
    const dst = text(route, "dst") ?? "";
    if (route.protocol === "kernel") continue;
    if (family === 6 && (dst.startsWith("fe80:") || dst.startsWith("ff00:") || dst.startsWith("ff02:"))) continue;
    if (route.type !== undefined && route.type !== "unicast") continue;
    if (text(route, "dev") !== dev) {
      notes.push(`route ${dst} ${route.gateway ? `via ${route.gateway} ` : ""}dev ${text(route, "dev") ?? "?"} is not carried into the VM (not through ${dev})`);
      continue;
    }
    const destination = parseIpPrefix(dst === "default" ? (family === 4 ? "0.0.0.0/0" : "::/0") : dst, true);
    const gateway = text(route, "gateway");
    const via = gateway === null ? null : parseIpPrefix(gateway, true);
    if ("problem" in destination || (via !== null && "problem" in via) || (via !== null && via.family !== destination.family)) {
      notes.push(`route ${JSON.stringify(route).slice(0, 120)} is not understood; not carried into the VM`);
      continue;
    }
    const flags = Array.isArray(route.flags) ? route.flags : [];
    out.push({ destination, via: via === null ? null : via.address, onlink: flags.includes("onlink"), metric: typeof route.metric === "number" ? route.metric : null });
  }
  return out;
}

/**
 * The VM's network from what the namespace holds: the first Ethernet interface with a global
 * address (loopback aside), or null with a note saying why the container gets no NIC. Throws when
 * the namespace is already another burrow VM's.
 */
export function planNetwork(netns: string, view: NetnsView): { network: NetworkPlan | null; notes: string[] } {
  const notes: string[] = [];
  const links = objects(view.links);
  if (links.some((link) => link.ifname === TAP_NAME)) {
    throw new Error(`the network namespace ${netns} already holds ${TAP_NAME}: another burrow container's VM uses its interface (each VM needs a network namespace of its own)`);
  }
  const candidates = links.filter((link) => link.link_type === "ether" && link.ifname !== "lo" && globalAddresses(link).length > 0);
  const chosen = candidates[0];
  if (chosen === undefined) {
    notes.push(`the network namespace ${netns} has no interface with an address: the container gets no NIC`);
    return { network: null, notes };
  }
  const veth = text(chosen, "ifname")!;
  for (const other of candidates.slice(1)) notes.push(`interface ${text(other, "ifname")} of ${netns} is not bridged into the VM (one NIC per container)`);
  const mac = parseMac(text(chosen, "address") ?? "");
  if (typeof mac !== "string") throw new Error(`interface ${veth} of ${netns} has MAC ${JSON.stringify(chosen.address)}: ${mac.problem}`);
  const mtu = typeof chosen.mtu === "number" ? chosen.mtu : 1500;
  const routes = [...routesThrough(veth, view.routes4, 4, notes), ...routesThrough(veth, view.routes6, 6, notes)];
  const network: NetworkPlan = { netns, veth, tap: TAP_NAME, mac, mtu, addresses: globalAddresses(chosen), routes };
  notes.push(`network: ${veth} of ${netns} mirrored to ${TAP_NAME}; the guest takes ${mac} mtu ${mtu}, ${network.addresses.map(formatIpPrefix).join(" ")}${routes.length ? `, routes ${routes.map(formatNicRoute).join(" ")}` : ""}`);
  return { network, notes };
}

/** The kernel command line words that hand the NIC to the guest (with burrow.net.lo=1, added for every container). */
export function networkWords(network: NetworkPlan): string[] {
  return nicWords({ mac: network.mac, mtu: network.mtu, addresses: network.addresses, routes: network.routes });
}

/** Whether `path` is this process's own network namespace (a VM cannot share the host's: its interfaces would be taken). */
function isOwnNetns(path: string): boolean {
  try {
    const theirs = statSync(path);
    const ours = statSync("/proc/self/ns/net");
    return theirs.dev === ours.dev && theirs.ino === ours.ino;
  } catch {
    return false;
  }
}

/** Runs a command inside the namespace; its stdout, or a thrown line naming it with its stderr. */
export function inNetns(netns: string, argv: string[], stdin?: string): string {
  const nsenter = Bun.which("nsenter");
  if (nsenter === null) throw new Error("nsenter not found (install util-linux)");
  let result;
  try {
    result = Bun.spawnSync([nsenter, `--net=${netns}`, "--", ...argv], { stdin: stdin === undefined ? "ignore" : Buffer.from(stdin), stdout: "pipe", stderr: "pipe" });
  } catch (error) {
    throw new Error(`cannot run ${argv[0]} in ${netns}: ${(error as Error).message}`);
  }
  if (result.exitCode !== 0) {
    const why = result.stderr.toString().trim().split("\n").slice(-2).join("; ") || `status ${result.exitCode}`;
    throw new Error(`\`${argv.join(" ")}\`${stdin === undefined ? "" : ` (${stdin.trim().split("\n").join("; ")})`} in ${netns} failed: ${why}`);
  }
  return result.stdout.toString();
}

function ipJson(netns: string, args: string[]): unknown {
  const out = inNetns(netns, ["ip", "-j", ...args]);
  try {
    return JSON.parse(out.trim() || "[]");
  } catch {
    throw new Error(`\`ip -j ${args.join(" ")}\` in ${netns} printed no JSON (iproute2 too old?)`);
  }
}

/** What create decides for config.json's network namespace: the plan, or null, and the lines for --debug. */
export function inspectNetwork(netns: string): { network: NetworkPlan | null; notes: string[] } {
  if (!existsSync(netns)) throw new Error(`the network namespace ${netns} (linux.namespaces) does not exist`);
  if (isOwnNetns(netns)) return { network: null, notes: [`the network namespace ${netns} is the host's own: a VM cannot share it, the container gets no NIC`] };
  return planNetwork(netns, { links: ipJson(netns, ["addr", "show"]), routes4: ipJson(netns, ["-4", "route", "show", "table", "main"]), routes6: ipJson(netns, ["-6", "route", "show", "table", "main"]) });
}

/**
 * The commands that make the mirror, in order: the veth's ingress qdisc alone first (tc refuses to
 * add one that exists: the claim on the interface), then the tap (ip -batch), then the redirects
 * and the tap's qdisc (tc -batch).
 */
export function mirrorCommands(network: NetworkPlan): { claim: string[]; ip: string; tc: string } {
  const { veth, tap, mtu } = network;
  // addrgenmode none: the tap never gets an IPv6 link-local address, so the namespace's stack sends
  // nothing of its own (router solicitations, DAD) through it to the guest.
  const ip = [`tuntap add dev ${tap} mode tap`, `link set dev ${tap} addrgenmode none`, `link set dev ${tap} mtu ${mtu} up`].join("\n") + "\n";
  const redirect = (from: string, to: string) => `filter add dev ${from} parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev ${to}`;
  const tc = [redirect(veth, tap), `qdisc add dev ${tap} ingress`, redirect(tap, veth)].join("\n") + "\n";
  return { claim: ["tc", "qdisc", "add", "dev", veth, "ingress"], ip, tc };
}

/** Marker beside the container's state: the mirror may still be in the namespace (removed once it is taken down). */
export function mirrorMarker(containerDir: string): string {
  return `${containerDir}/net-mirror`;
}

/** What the marker holds: the plan, and whether the veth's ingress qdisc is ours (the claim succeeded). */
interface MirrorMarker {
  network: NetworkPlan;
  claimed: boolean;
}

function readMarker(marker: string): MirrorMarker | null {
  try {
    return JSON.parse(readFileSync(marker, "utf8")) as MirrorMarker;
  } catch {
    return null; // no marker: the holder took it down, or never made it
  }
}

/**
 * What a holder killed with SIGKILL left (its marker names the plan): removed by `delete` while
 * the namespace exists. Returns what could not be removed.
 */
export function tearDownLeftMirror(containerDir: string): string[] {
  const marker = mirrorMarker(containerDir);
  const left = readMarker(marker);
  return left === null ? [] : tearDownMirror(left.network, marker);
}

/** Whether the interface has an ingress qdisc. */
function hasIngress(netns: string, dev: string): boolean {
  const out = inNetns(netns, ["tc", "-j", "qdisc", "show", "dev", dev, "ingress"]);
  try {
    return objects(JSON.parse(out.trim() || "[]")).some((qdisc) => qdisc.kind === "ingress");
  } catch {
    throw new Error(`\`tc -j qdisc show dev ${dev} ingress\` in ${netns} printed no JSON`);
  }
}

/**
 * Makes the tap and the mirror; on failure removes what it made and throws one line. The veth's
 * ingress qdisc is added first and alone: when it exists already it is someone else's (another
 * VM's in the same namespace, a CNI plugin's policing), nothing is made and nothing of theirs is
 * removed; once it is ours the marker says so, and every teardown removes it.
 */
export function setUpMirror(network: NetworkPlan, marker: string): void {
  const { claim, ip, tc } = mirrorCommands(network);
  const fail = (error: unknown) => new Error(`cannot bridge ${network.veth} to the VM: ${(error as Error).message}`);
  writeFileSync(marker, `${JSON.stringify({ network, claimed: false } satisfies MirrorMarker)}\n`, { mode: 0o600 });
  try {
    inNetns(network.netns, claim);
  } catch (error) {
    rmSync(marker, { force: true });
    const taken = (() => {
      try {
        return hasIngress(network.netns, network.veth);
      } catch {
        return false;
      }
    })();
    throw fail(taken ? new Error(`${network.veth} already has an ingress qdisc (another VM's in this namespace, or a CNI plugin's); burrow mirrors the interface through one of its own`) : error);
  }
  writeFileSync(marker, `${JSON.stringify({ network, claimed: true } satisfies MirrorMarker)}\n`, { mode: 0o600 });
  try {
    inNetns(network.netns, ["ip", "-batch", "-"], ip);
    inNetns(network.netns, ["tc", "-batch", "-"], tc);
  } catch (error) {
    tearDownMirror(network, marker);
    throw fail(error);
  }
}

/**
 * Removes the tap (its qdisc and filter go with it) and the veth's ingress qdisc (its filter with
 * it), and the marker once both are gone; returns what could not be removed. A namespace the
 * engine already removed took everything with it.
 */
export function tearDownMirror(network: NetworkPlan, marker: string): string[] {
  // Without a claimed marker nothing was made: a qdisc there is someone else's.
  const state = readMarker(marker);
  if (state === null) return [];
  const problems: string[] = [];
  if (state.claimed && existsSync(network.netns)) {
    try {
      const names = objects(ipJson(network.netns, ["link", "show"])).map((link) => link.ifname);
      if (names.includes(network.tap)) inNetns(network.netns, ["ip", "link", "del", "dev", network.tap]);
      if (names.includes(network.veth) && hasIngress(network.netns, network.veth)) inNetns(network.netns, ["tc", "qdisc", "del", "dev", network.veth, "ingress"]);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (problems.length === 0) rmSync(marker, { force: true });
  return problems;
}
