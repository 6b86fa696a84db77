// The engine's network through burrow-oci (issue 30): Podman (netavark) hands the runtime a network
// namespace with a veth; QEMU runs in it, the veth is mirrored to a tap, and burrow configures the
// guest's NIC with the veth's MAC, addresses, routes and MTU before the workload starts (the
// supervisor after a template's restore, the default; burrow's nic step on a cold boot). Cases:
// `-p HOST:80` served from the host, the container at its own addresses (IPv4 and IPv6, a network
// with MTU 1400), two containers on one network reaching each other by address and by name and
// the host outside, `--network none` still NIC-less; and every path taking the tap and the mirror
// down (the holder at the VM's end, `delete` after a holder killed with SIGKILL, the namespace's
// end under Podman); a Podman pod, whose infra container runs no VM. One httpd container is
// shared by the cases; nothing is left after the file.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Engine, explain, processAlive, qemuUnder, runCommand, startPodman, TEST_IMAGE, testRuntime } from "../helpers/oci-engines";
import { writeTestRootfs } from "../helpers/oci-image";
import { freePort } from "../helpers/net";
import { TAP_NAME } from "../../src/oci/network";

const TIMEOUT_MS = 180_000;
const runtime = testRuntime();
const burrow = runtime.kind === "burrow";
let podman: Engine;
let work: string;
const ids: string[] = [];
/** The test's own network: dual stack, MTU 1400, a bridge name no other test uses. */
const suffix = randomBytes(3).toString("hex");
const NETWORK = `burrow-net-${suffix}`;
const BRIDGE = `bt${suffix}`;
const octet = 200 + (randomBytes(1)[0]! % 40);
const third = randomBytes(1)[0]!;
const SUBNET4 = `10.${octet}.${third}.0/24`;
const GATEWAY4 = `10.${octet}.${third}.1`;
const SUBNET6 = `fd42:${octet.toString(16)}:${third.toString(16)}::/64`;
const MTU = 1400;
/** The shared server: busybox httpd on :80 serving a page that names it. */
let web: { id: string; ip: string; ip6: string; mac: string; hostPort: number };
const PAGE = "hello from the web container\n";
const HTTPD = `mkdir -p /tmp/www && echo '${PAGE.trim()}' > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www`;
/** The runtime-alone case's namespace, host veth and state root: removed in afterAll too, should the case time out. */
const direct = { netns: `burrow-nt-${suffix}`, hostSide: `bh${suffix}`, subnet: `10.251.${third}`, root: "" };

async function podmanOk(args: string[]): Promise<string> {
  const result = await podman.cli(args);
  expect(result.code, `podman ${args.join(" ")}: ${explain(result)}`).toBe(0);
  return result.stdout.trim();
}

async function inspect(id: string, format: string): Promise<string> {
  return podmanOk(["inspect", "--format", format, id]);
}

/** A page over HTTP from the host, or the error's text (a refused connection is an answer too). */
async function fetchText(url: string): Promise<string> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    return await response.text();
  } catch (error) {
    return `error: ${(error as Error).message}`;
  }
}

/** Retries while the server inside is still starting (the container runs before httpd listens). */
async function fetchEventually(url: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = await fetchText(url);
  while (last !== PAGE && Date.now() < deadline) {
    await Bun.sleep(200);
    last = await fetchText(url);
  }
  return last;
}

/** `ip -j …` inside a namespace (by path), as JSON. */
function ipIn(netns: string, args: string[]): Record<string, unknown>[] {
  const result = Bun.spawnSync(["nsenter", `--net=${netns}`, "--", "ip", "-j", ...args], { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`ip -j ${args.join(" ")} in ${netns}: ${result.stderr.toString()}`);
  return JSON.parse(result.stdout.toString() || "[]") as Record<string, unknown>[];
}

function hasIngress(netns: string, dev: string): boolean {
  const result = Bun.spawnSync(["nsenter", `--net=${netns}`, "--", "tc", "qdisc", "show", "dev", dev, "ingress"], { stdout: "pipe", stderr: "pipe" });
  return result.stdout.toString().includes("ingress");
}

/** runVm's temporary socket directories (src/host/qemu.ts) there before this file: any other one is a leak. */
const controlDirs = () => new Set(readdirSync(tmpdir()).filter((name) => name.startsWith("burrow-control-")));
let controlDirsBefore: Set<string>;

beforeAll(async () => {
  controlDirsBefore = controlDirs();
  if (process.getuid?.() !== 0) throw new Error("the network tests need root (Podman's bridge networks, network namespaces)");
  work = mkdtempSync(join(tmpdir(), "burrow-oci-net-test-"));
  podman = await startPodman(runtime);
  await podmanOk(["network", "create", "--ipv6", "--subnet", SUBNET4, "--subnet", SUBNET6, "--opt", `mtu=${MTU}`, NETWORK]);
  // Podman 4.3 has no --interface-name: the bridge's name set in its file (network_config_dir is the
  // engine's own), so a Podman of another test never picks the same podmanN.
  const file = join(podman.dir, "networks", `${NETWORK}.json`);
  const config = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...config, network_interface: BRIDGE }, null, 2));
  const hostPort = await freePort();
  const id = await podmanOk(["run", "-d", "--name", "web", "--network", NETWORK, "-p", `${hostPort}:80`, TEST_IMAGE, "sh", "-c", HTTPD]);
  ids.push(id);
  web = {
    id,
    hostPort,
    ip: await inspect(id, `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`),
    ip6: await inspect(id, `{{(index .NetworkSettings.Networks "${NETWORK}").GlobalIPv6Address}}`),
    mac: await inspect(id, `{{(index .NetworkSettings.Networks "${NETWORK}").MacAddress}}`),
  };
}, TIMEOUT_MS);

/** The runtime's own containers in `direct.root`, deleted (their holders and QEMUs killed), then its namespace and veth. */
async function removeDirect(): Promise<void> {
  if (direct.root !== "") {
    for (const id of ["n1", "n2", "n3"]) if (existsSync(join(direct.root, id))) await runCommand([runtime.path, "--root", direct.root, "delete", "--force", id], { timeoutMs: 30_000 });
  }
  await runCommand(["ip", "link", "del", direct.hostSide]);
  await runCommand(["ip", "netns", "del", direct.netns]);
}

afterAll(async () => {
  await removeDirect();
  // -f removes the containers on it first; the bridge and the port rules go with the last one.
  if (podman) await podman.cli(["network", "rm", "-f", NETWORK]);
  await podman?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, TIMEOUT_MS);

describe("a container on a Podman network", () => {
  test("-p HOST:80: the container's server answers the host on 127.0.0.1 and at the container's own address", async () => {
    expect(await fetchEventually(`http://127.0.0.1:${web.hostPort}/`)).toBe(PAGE);
    expect(await fetchText(`http://${web.ip}/`)).toBe(PAGE);
    expect(await fetchText(`http://[${web.ip6}]/`)).toBe(PAGE);
  }, TIMEOUT_MS);

  test("the guest's NIC is the veth's: its MAC, addresses, MTU and routes; QEMU runs in the engine's namespace beside the tap", async () => {
    const view = await podmanOk(["exec", web.id, "sh", "-c", "cat /sys/class/net/eth0/address /sys/class/net/eth0/mtu; ip -o addr show dev eth0 scope global; ip route; ip -6 route show default; cat /sys/class/net/lo/flags"]);
    const lines = view.split("\n");
    expect(lines[0]).toBe(web.mac);
    expect(lines[1]).toBe(String(MTU));
    expect(view).toContain(`inet ${web.ip}/24 brd 10.${octet}.${third}.255 scope global eth0`);
    expect(view).toContain(`inet6 ${web.ip6}/64 scope global`);
    expect(view).toContain(`default via ${GATEWAY4} dev eth0`);
    expect(view).toMatch(/default via fd42:[0-9a-f:]+::1 dev eth0/);
    // IFF_UP (0x1) on loopback.
    expect(Number(lines.at(-1)) & 1).toBe(1);
    if (!burrow) return;
    // Restored from a template built on a tap: the device still has the checksum offloads (virtio-net's
    // feature bits 0 and 1, CSUM and GUEST_CSUM), which a backend without a vnet header never offers.
    const features = await podmanOk(["exec", web.id, "cat", "/sys/class/net/eth0/device/features"]);
    expect(features.slice(0, 2)).toBe("11");
    expect(readFileSync(join(podman.runtimeRoot, web.id, "holder.log"), "utf8")).toContain("template: restored");
    const netns = await inspect(web.id, "{{.NetworkSettings.SandboxKey}}");
    const holder = Number(await inspect(web.id, "{{.State.Pid}}"));
    const qemu = qemuUnder(holder);
    expect(qemu).toHaveLength(1);
    expect(statSync(`/proc/${qemu[0]}/ns/net`).ino).toBe(statSync(netns).ino);
    const links = ipIn(netns, ["link", "show"]);
    expect(links.map((link) => link.ifname).sort()).toEqual(["eth0", "lo", TAP_NAME]);
    expect(links.find((link) => link.ifname === TAP_NAME)?.mtu).toBe(MTU);
    expect(hasIngress(netns, "eth0")).toBe(true);
  }, TIMEOUT_MS);

  test("two containers on the network reach each other by address and by name; the host outside sees the container's address", async () => {
    const seen: string[] = [];
    const server = Bun.serve({
      hostname: GATEWAY4,
      port: 0,
      fetch(request, self) {
        seen.push(self.requestIP(request)?.address ?? "?");
        return new Response("hello from the host\n");
      },
    });
    try {
      const script = [`wget -q -O - http://${web.ip}/`, "wget -q -O - http://web/", `wget -q -O - "http://[${web.ip6}]/"`, `wget -q -O - http://${GATEWAY4}:${server.port}/`, "ip -o -4 addr show dev eth0 scope global"].join("; ");
      const result = await podman.cli(["run", "--rm", "--network", NETWORK, TEST_IMAGE, "sh", "-c", script]);
      expect(result.code, explain(result)).toBe(0);
      const out = result.stdout.split("\n");
      expect(out.slice(0, 4)).toEqual([PAGE.trim(), PAGE.trim(), PAGE.trim(), "hello from the host"]);
      const client = /inet ([0-9.]+)\//.exec(out[4] ?? "")?.[1];
      expect(client).toBeDefined();
      expect(seen).toEqual([client!]);
    } finally {
      server.stop(true);
    }
  }, TIMEOUT_MS);

  test("--network none: no NIC, loopback up, and the runtime says why", async () => {
    const result = await podman.cli(["run", "-d", "--network", "none", TEST_IMAGE, "sleep", "1000"]);
    expect(result.code, explain(result)).toBe(0);
    const id = result.stdout.trim();
    ids.push(id);
    try {
      const view = await podmanOk(["exec", id, "sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags; ip -o -4 addr"]);
      expect(view.split("\n").filter((name) => /^(eth|en)/.test(name))).toEqual([]);
      // IFF_UP (0x1) on loopback, with its address.
      expect(Number(view.split("\n").find((line) => line.startsWith("0x"))) & 1).toBe(1);
      expect(view).toContain("inet 127.0.0.1/8");
      if (burrow) {
        const log = readFileSync(join(podman.runtimeRoot, id, "holder.log"), "utf8");
        expect(log).toContain("note: a new network namespace (no path): the container gets no NIC, loopback only");
      }
    } finally {
      await podmanOk(["rm", "-f", "-t", "0", id]);
    }
  }, TIMEOUT_MS);
});

describe("a Podman pod", () => {
  test("the infra container runs no VM, its holder in the pod's namespace; the pod's container joins it by /proc/PID/ns/net, takes the NIC and serves the pod's published port", async () => {
    const hostPort = await freePort();
    const pod = `burrow-pod-${suffix}`;
    await podmanOk(["pod", "create", "--name", pod, "--network", NETWORK, "-p", `${hostPort}:80`]);
    try {
      const id = await podmanOk(["run", "-d", "--pod", pod, TEST_IMAGE, "sh", "-c", HTTPD]);
      ids.push(id);
      expect(await fetchEventually(`http://127.0.0.1:${hostPort}/`)).toBe(PAGE);
      const infra = await podmanOk(["pod", "inspect", "--format", "{{.InfraContainerID}}", pod]);
      ids.push(infra);
      const netns = await inspect(infra, "{{.NetworkSettings.SandboxKey}}");
      const infraPid = Number(await inspect(infra, "{{.State.Pid}}"));
      expect(statSync(`/proc/${infraPid}/ns/net`).ino).toBe(statSync(netns).ino);
      // The pod's address is the container's: the page from inside the pod's namespace.
      const address = (ipIn(netns, ["-4", "addr", "show", "dev", "eth0"])[0]?.addr_info as { local: string }[] | undefined)?.[0]?.local;
      expect(await fetchText(`http://${address}/`)).toBe(PAGE);
      if (!burrow) return;
      expect(qemuUnder(infraPid)).toEqual([]);
      expect(readFileSync(join(podman.runtimeRoot, infra, "holder.log"), "utf8")).toContain("a pod's sandbox (Podman's infra command (catatonit -P)): no VM");
      const qemu = qemuUnder(Number(await inspect(id, "{{.State.Pid}}")));
      expect(qemu).toHaveLength(1);
      expect(statSync(`/proc/${qemu[0]}/ns/net`).ino).toBe(statSync(netns).ino);
    } finally {
      await podmanOk(["pod", "rm", "-f", "-t", "0", pod]);
    }
  }, TIMEOUT_MS);
});

describe.skipIf(!burrow)("the tap and the mirror go on every path", () => {
  test("the runtime alone, a namespace it does not own: a veth with someone else's qdisc refused; the holder takes the mirror down at the VM's end; delete after a SIGKILLed holder does", async () => {
    // A namespace of the test's with a veth to the host, as an engine would leave it.
    const { netns: name, hostSide, subnet } = direct;
    const netns = `/run/netns/${name}`;
    const run = async (argv: string[]) => {
      const result = await runCommand(argv);
      expect(result.code, `${argv.join(" ")}: ${explain(result)}`).toBe(0);
      return result.stdout;
    };
    const root = join(work, "runtime-root");
    direct.root = root;
    const bundle = join(work, "bundle");
    mkdirSync(join(bundle, "rootfs"), { recursive: true });
    await writeTestRootfs(join(bundle, "rootfs"));
    writeFileSync(
      join(bundle, "config.json"),
      JSON.stringify({
        ociVersion: "1.0.2",
        process: { user: { uid: 0, gid: 0 }, args: ["sh", "-c", HTTPD], env: ["PATH=/bin"], cwd: "/" },
        root: { path: "rootfs" },
        linux: { namespaces: [{ type: "pid" }, { type: "network", path: netns }, { type: "mount" }] },
      }),
    );
    const oci = (args: string[]) => runCommand([runtime.path, "--root", root, ...args], { timeoutMs: 60_000 });
    // create's stdio becomes the container's, which the holder keeps: not pipes the test would wait on to close.
    const create = async (id: string, env: Record<string, string> = {}) => {
      const errors = join(work, `create-${id}.stderr`);
      const fd = openSync(errors, "w");
      try {
        // --debug: burrow-oci says whether the VM came from a template or a cold boot.
        const child = Bun.spawn([runtime.path, "--root", root, ...(burrow ? ["--debug"] : []), "create", "--bundle", bundle, id], { stdin: "ignore", stdout: "ignore", stderr: fd, env: { ...process.env, ...env } });
        const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
        const code = await child.exited;
        clearTimeout(timer);
        return { code, stdout: "", stderr: readFileSync(errors, "utf8") };
      } finally {
        closeSync(fd);
      }
    };
    try {
      await run(["ip", "netns", "add", name]);
      await run(["ip", "link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", name]);
      await run(["ip", "addr", "add", `${subnet}.1/24`, "dev", hostSide]);
      await run(["ip", "link", "set", hostSide, "up"]);
      await run(["ip", "-n", name, "addr", "add", `${subnet}.2/24`, "dev", "eth0"]);
      await run(["ip", "-n", name, "link", "set", "eth0", "up"]);

      // An ingress qdisc already on the veth is someone else's: create refuses, and leaves it there.
      await run(["tc", "-n", name, "qdisc", "add", "dev", "eth0", "ingress"]);
      const taken = await create("n1");
      expect(taken.code).not.toBe(0);
      expect(taken.stderr).toContain("cannot bridge eth0 to the VM: eth0 already has an ingress qdisc (another VM's in this namespace, or a CNI plugin's)");
      expect(hasIngress(netns, "eth0")).toBe(true);
      expect(ipIn(netns, ["link", "show"]).map((link) => link.ifname).sort()).toEqual(["eth0", "lo"]);
      expect(existsSync(join(root, "n1"))).toBe(false);
      await run(["tc", "-n", name, "qdisc", "del", "dev", "eth0", "ingress"]);

      // From the network template (built on this first use): the NIC configured by the supervisor after the restore.
      const created = await create("n1");
      expect(created.code, explain(created)).toBe(0);
      if (burrow) expect(created.stderr).toContain("debug: start: from the template");
      expect((await oci(["start", "n1"])).code).toBe(0);
      expect(await fetchEventually(`http://${subnet}.2/`)).toBe(PAGE);
      expect(ipIn(netns, ["link", "show"]).map((link) => link.ifname)).toContain(TAP_NAME);
      // The workload ends: the holder removes the tap and the veth's qdisc, the namespace stays.
      expect((await oci(["kill", "n1", "KILL"])).code).toBe(0);
      for (const deadline = Date.now() + 30_000; Date.now() < deadline && !(await oci(["state", "n1"])).stdout.includes('"stopped"'); ) await Bun.sleep(100);
      expect(ipIn(netns, ["link", "show"]).map((link) => link.ifname).sort()).toEqual(["eth0", "lo"]);
      expect(hasIngress(netns, "eth0")).toBe(false);
      expect((await oci(["delete", "n1"])).code).toBe(0);

      // Booted cold (burrow's own nic step configures the NIC), served the same; then its holder
      // killed with SIGKILL: QEMU goes (its death signal), the tap stays until delete.
      const second = await create("n2", { BURROW_OCI_TEMPLATE: "0" });
      expect(second.code, explain(second)).toBe(0);
      if (burrow) expect(second.stderr).toContain("debug: start: cold boot (no template: BURROW_OCI_TEMPLATE=0)");
      expect((await oci(["start", "n2"])).code).toBe(0);
      expect(await fetchEventually(`http://${subnet}.2/`)).toBe(PAGE);
      const holder = Number((JSON.parse((await oci(["state", "n2"])).stdout) as { pid: number }).pid);
      const qemu = qemuUnder(holder);
      expect(qemu).toHaveLength(1);
      process.kill(holder, "SIGKILL");
      for (const deadline = Date.now() + 10_000; Date.now() < deadline && processAlive(qemu[0]!); ) await Bun.sleep(50);
      expect(processAlive(qemu[0]!)).toBe(false);
      expect(ipIn(netns, ["link", "show"]).map((link) => link.ifname)).toContain(TAP_NAME);
      // The namespace is another VM's until then: a create in it is refused.
      const refused = await create("n3");
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`already holds ${TAP_NAME}`);
      expect((await oci(["delete", "--force", "n2"])).code).toBe(0);
      expect(ipIn(netns, ["link", "show"]).map((link) => link.ifname).sort()).toEqual(["eth0", "lo"]);
      expect(hasIngress(netns, "eth0")).toBe(false);
    } finally {
      await removeDirect();
    }
  }, TIMEOUT_MS);

  test("under Podman, the holder killed with SIGKILL: its QEMU goes, and the namespace with the tap in it at Podman's cleanup", async () => {
    const netns = await inspect(web.id, "{{.NetworkSettings.SandboxKey}}");
    const holder = Number(await inspect(web.id, "{{.State.Pid}}"));
    const qemu = qemuUnder(holder);
    expect(qemu).toHaveLength(1);
    process.kill(holder, "SIGKILL");
    const waited = await podman.cli(["wait", web.id]);
    expect(waited.code, explain(waited)).toBe(0);
    expect(processAlive(qemu[0]!)).toBe(false);
    for (const deadline = Date.now() + 15_000; Date.now() < deadline && existsSync(netns); ) await Bun.sleep(100);
    expect(existsSync(netns)).toBe(false);
    expect(await fetchText(`http://127.0.0.1:${web.hostPort}/`)).toStartWith("error:");
    await podmanOk(["rm", web.id]);
  }, TIMEOUT_MS);
});

test("after every case: podman ps -a is empty, no process names a container, no state directory is left", async () => {
  const listed = await podman.cli(["ps", "-a", "-q"]);
  expect(listed.stdout, explain(listed)).toBe("");
  expect(await podman.settledLeftovers(ids)).toEqual([]);
  // Holders killed with SIGKILL above: a container's sockets live in its own directory, never in a temporary one left behind.
  expect([...controlDirs()].filter((name) => !controlDirsBefore.has(name))).toEqual([]);
}, TIMEOUT_MS);
