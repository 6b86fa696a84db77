// The engine's network on the host side, without a namespace: what planNetwork makes of what
// `ip -j` says inside Podman's (netavark's) namespace, the tap and mirror commands, the kernel
// words and the run the holder gets (the tap NIC, QEMU in the namespace under setpriv).
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config";
import { kernelCommandLine, qemuArgs, tapNicArgs } from "../../src/host/qemu-argv";
import { spawnArgv } from "../../src/host/qemu-process";
import { checkRunInputs } from "../../src/host/run-checks";
import { readBundle } from "../../src/oci/bundle";
import { containerPaths } from "../../src/oci/container-dir";
import { launchPlan } from "../../src/oci/launch";
import { inspectNetwork, mirrorCommands, mirrorMarker, type NetnsView, networkWords, planNetwork, TAP_NAME, tearDownLeftMirror, tearDownMirror } from "../../src/oci/network";

const NETNS = "/run/netns/netns-3eabbf5c-7ccc-d527-d893-5ab92b64c01a";

/** `ip -j addr`, `ip -j -4 route` and `ip -j -6 route` as netavark 1.4 leaves a container's namespace (a dual-stack network). */
function podmanView(): NetnsView {
  return {
    links: [
      { ifindex: 1, ifname: "lo", flags: ["LOOPBACK", "UP", "LOWER_UP"], mtu: 65536, link_type: "loopback", address: "00:00:00:00:00:00", addr_info: [{ family: "inet", local: "127.0.0.1", prefixlen: 8, scope: "host" }, { family: "inet6", local: "::1", prefixlen: 128, scope: "host" }] },
      {
        ifindex: 2, link_index: 10, ifname: "eth0", flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], mtu: 1500, qdisc: "noqueue", link_type: "ether", address: "a6:9c:89:ce:e6:11",
        addr_info: [
          { family: "inet", local: "10.88.0.4", prefixlen: 16, broadcast: "10.88.255.255", scope: "global", label: "eth0" },
          { family: "inet6", local: "fd42:b::2", prefixlen: 64, scope: "global" },
          { family: "inet6", local: "fe80::a49c:89ff:fece:e611", prefixlen: 64, scope: "link" },
        ],
      },
    ],
    routes4: [
      { dst: "default", gateway: "10.88.0.1", dev: "eth0", protocol: "static", metric: 100, flags: [] },
      { dst: "10.88.0.0/16", dev: "eth0", protocol: "kernel", scope: "link", prefsrc: "10.88.0.4", flags: [] },
    ],
    routes6: [
      { dst: "fd42:b::/64", dev: "eth0", protocol: "kernel", metric: 256, flags: [], pref: "medium" },
      { dst: "fe80::/64", dev: "eth0", protocol: "kernel", metric: 256, flags: [], pref: "medium" },
      { dst: "default", gateway: "fd42:b::1", dev: "eth0", protocol: "static", metric: 100, flags: [], pref: "medium" },
    ],
  };
}

describe("planNetwork", () => {
  test("Podman's namespace: the veth's MAC, MTU, global addresses and its non-kernel routes; one note", () => {
    const { network, notes } = planNetwork(NETNS, podmanView());
    expect(network).toEqual({
      netns: NETNS,
      veth: "eth0",
      tap: TAP_NAME,
      mac: "a6:9c:89:ce:e6:11",
      mtu: 1500,
      addresses: [{ family: 4, address: "10.88.0.4", prefix: 16 }, { family: 6, address: "fd42:b::2", prefix: 64 }],
      routes: [
        { destination: { family: 4, address: "0.0.0.0", prefix: 0 }, via: "10.88.0.1", onlink: false, metric: 100 },
        { destination: { family: 6, address: "::", prefix: 0 }, via: "fd42:b::1", onlink: false, metric: 100 },
      ],
    });
    expect(notes).toEqual([`network: eth0 of ${NETNS} mirrored to ${TAP_NAME}; the guest takes a6:9c:89:ce:e6:11 mtu 1500, 10.88.0.4/16 fd42:b::2/64, routes 0.0.0.0/0,via=10.88.0.1,metric=100 ::/0,via=fd42:b::1,metric=100`]);
  });

  test("the words it makes are what the guest's config parses back, without a problem", () => {
    const { network } = planNetwork(NETNS, podmanView());
    const config = parseConfig(networkWords(network!).join(" "));
    expect(config.problems).toEqual([]);
    expect(config.nic).toEqual({ mac: network!.mac, mtu: network!.mtu, addresses: network!.addresses, routes: network!.routes });
  });

  test("loopback only (or an interface without an address): no NIC, one note", () => {
    const view = podmanView();
    const links = view.links as Record<string, unknown>[];
    expect(planNetwork(NETNS, { ...view, links: [links[0]] })).toEqual({ network: null, notes: [`the network namespace ${NETNS} has no interface with an address: the container gets no NIC`] });
    const linkLocalOnly = { ...links[1], addr_info: [{ family: "inet6", local: "fe80::1", prefixlen: 64, scope: "link" }] };
    expect(planNetwork(NETNS, { ...view, links: [links[0], linkLocalOnly] }).network).toBeNull();
  });

  test("a second interface is noted, not bridged; a route through it is noted, not carried", () => {
    const view = podmanView();
    const links = view.links as Record<string, unknown>[];
    const second = { ...links[1], ifname: "eth1", address: "6e:00:00:00:00:02", addr_info: [{ family: "inet", local: "10.89.0.2", prefixlen: 24, scope: "global" }] };
    const routes4 = [...(view.routes4 as unknown[]), { dst: "192.168.5.0/24", gateway: "10.89.0.1", dev: "eth1", protocol: "static", flags: [] }];
    const { network, notes } = planNetwork(NETNS, { ...view, links: [...links, second], routes4 });
    expect(network?.veth).toBe("eth0");
    expect(notes).toContain(`interface eth1 of ${NETNS} is not bridged into the VM (one NIC per container)`);
    expect(notes).toContain("route 192.168.5.0/24 via 10.89.0.1 dev eth1 is not carried into the VM (not through eth0)");
  });

  test("Calico's shape: a link route to the gateway, then the default route onlink through it", () => {
    const view = podmanView();
    const routes4 = [{ dst: "169.254.1.1", dev: "eth0", scope: "link", flags: [] }, { dst: "default", gateway: "169.254.1.1", dev: "eth0", flags: ["onlink"] }];
    const { network } = planNetwork(NETNS, { ...view, routes4, routes6: [] });
    expect(networkWords(network!).filter((word) => word.startsWith("burrow.net.route="))).toEqual(["burrow.net.route=169.254.1.1/32", "burrow.net.route=0.0.0.0/0,via=169.254.1.1,onlink"]);
  });

  test("a namespace that already holds burrow's tap is another VM's: refused", () => {
    const view = podmanView();
    const tap = { ifindex: 3, ifname: TAP_NAME, link_type: "ether", address: "ae:bc:5b:1a:e7:93", addr_info: [] };
    expect(() => planNetwork(NETNS, { ...view, links: [...(view.links as unknown[]), tap] })).toThrow(`the network namespace ${NETNS} already holds ${TAP_NAME}: another burrow container's VM uses its interface (each VM needs a network namespace of its own)`);
  });

  test("the mirror: the veth's ingress qdisc first and alone (the claim), the tap without IPv6 at the veth's MTU, each side's ingress redirected to the other", () => {
    const { network } = planNetwork(NETNS, podmanView());
    expect(mirrorCommands(network!)).toEqual({
      claim: ["tc", "qdisc", "add", "dev", "eth0", "ingress"],
      ip: `tuntap add dev ${TAP_NAME} mode tap\nlink set dev ${TAP_NAME} addrgenmode none\nlink set dev ${TAP_NAME} mtu 1500 up\n`,
      tc:
        `filter add dev eth0 parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev ${TAP_NAME}\n` +
        `qdisc add dev ${TAP_NAME} ingress\nfilter add dev ${TAP_NAME} parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev eth0\n`,
    });
  });

  test("the host's own namespace (--network container:ID names the holder's) is never taken: no NIC, one note; a path that is not there is an error", () => {
    expect(inspectNetwork("/proc/self/ns/net")).toEqual({ network: null, notes: ["the network namespace /proc/self/ns/net is the host's own: a VM cannot share it, the container gets no NIC"] });
    expect(() => inspectNetwork("/run/netns/burrow-no-such-netns")).toThrow("the network namespace /run/netns/burrow-no-such-netns (linux.namespaces) does not exist");
  });

  test("a teardown without a marker, or with one whose claim never succeeded, touches nothing in the namespace", () => {
    const { network } = planNetwork(NETNS, podmanView());
    expect(tearDownMirror(network!, "/nonexistent/marker")).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), "burrow-oci-net-"));
    try {
      // The host's own namespace: were anything attempted in it, the test host's eth0 would be the one touched.
      const marker = mirrorMarker(dir);
      writeFileSync(marker, JSON.stringify({ network: { ...network!, netns: "/proc/self/ns/net" }, claimed: false }));
      expect(tearDownLeftMirror(dir)).toEqual([]);
      expect(existsSync(marker)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the holder's run", () => {
  const assets = { kernel: "/k/vmlinuz", bootDisk: "/k/boot.ext4" };
  const paths = containerPaths("/run/burrow-oci", "c1");

  function containerPlan() {
    const bundle = "/";
    const config = { ociVersion: "1.0.2", process: { args: ["/bin/sh"], cwd: "/" }, root: { path: "/" }, linux: { namespaces: [{ type: "network", path: NETNS }] } };
    const read = readBundle(JSON.stringify(config), bundle);
    if (!read.ok) throw new Error(read.error);
    return read.plan;
  }

  test("with the network: QEMU in the namespace on the tap, the NIC's words and loopback on the command line", () => {
    const { network } = planNetwork(NETNS, podmanView());
    const launch = launchPlan(containerPlan(), paths, assets, false, network);
    expect(launch.network).toEqual(network);
    expect(launch.run.net).toEqual({ tap: { ifname: TAP_NAME, mac: "a6:9c:89:ce:e6:11" } });
    expect(launch.run.netns).toBe(NETNS);
    const words = launch.run.append.split(" ");
    expect(words).toContain("burrow.net.lo=1");
    for (const word of networkWords(network!)) expect(words).toContain(word);
    const args = qemuArgs({ ...launch.run, controlSocket: "/tmp/c.sock" });
    expect(args.join(" ")).toContain(`-netdev tap,id=net0,ifname=${TAP_NAME},script=no,downscript=no -device virtio-net-device,netdev=net0,mac=a6:9c:89:ce:e6:11`);
    // burrow.net=1: the guest reports the interface (and Debian's kernel loads virtio_net).
    expect(args[args.indexOf("-append") + 1]).toContain("burrow.net=1");
  });

  test("without it: no NIC, no namespace, loopback still up", () => {
    const launch = launchPlan(containerPlan(), paths, assets, false, null);
    expect(launch.network).toBeNull();
    expect(launch.run.net).toBeUndefined();
    expect(launch.run.netns).toBeUndefined();
    expect(launch.run.append.split(" ")).toContain("burrow.net.lo=1");
    expect(launch.run.append).not.toContain("burrow.net.mac");
    expect(qemuArgs({ ...launch.run }).join(" ")).not.toContain("-netdev");
  });
});

describe("QEMU on a tap, in a namespace", () => {
  test("tapNicArgs: pci on q35/virt; a bad name or MAC refused", () => {
    const pci = (device: string) => `${device}-pci`;
    expect(tapNicArgs({ ifname: "tap0_burrow", mac: "A6:9C:89:CE:E6:11" }, pci)).toEqual(["-netdev", "tap,id=net0,ifname=tap0_burrow,script=no,downscript=no", "-device", "virtio-net-pci,netdev=net0,mac=a6:9c:89:ce:e6:11"]);
    expect(() => tapNicArgs({ ifname: "tap,script=/bin/evil", mac: "a6:9c:89:ce:e6:11" }, pci)).toThrow('bad tap device name "tap,script=/bin/evil" (1 to 15 of A-Z a-z 0-9 . _ -)');
    expect(() => tapNicArgs({ ifname: "a-name-too-long-x", mac: "a6:9c:89:ce:e6:11" }, pci)).toThrow("bad tap device name");
    expect(() => tapNicArgs({ ifname: "tap0", mac: "a6:9c:89:ce:e6:11,romfile=x" }, pci)).toThrow('bad MAC address "a6:9c:89:ce:e6:11,romfile=x" for the NIC');
  });

  test("a tap NIC adds burrow.net=1 like the user network does", () => {
    expect(kernelCommandLine("", "microvm", null, null, true)).toBe("console=ttyS0 panic=-1 reboot=t burrow.net=1");
  });

  test("spawnArgv: setpriv's death signal first, then nsenter into the namespace, then QEMU unchanged", () => {
    const argv = ["qemu-system-x86_64", "-machine", "microvm"];
    const netns = { nsenter: "/usr/bin/nsenter", path: NETNS };
    expect(spawnArgv(argv, "/usr/bin/setpriv", netns)).toEqual(["/usr/bin/setpriv", "--pdeathsig", "SIGKILL", "--", "/usr/bin/nsenter", `--net=${NETNS}`, "--", ...argv]);
    expect(spawnArgv(argv, null, netns)).toEqual(["/usr/bin/nsenter", `--net=${NETNS}`, "--", ...argv]);
    expect(spawnArgv(argv, "/usr/bin/setpriv", null)).toEqual(["/usr/bin/setpriv", "--pdeathsig", "SIGKILL", "--", ...argv]);
  });

  test("a namespace path that is not there is refused before QEMU starts", () => {
    const run = { kernel: "/", initrd: null, disks: [], ports: [], mem: "256M", smp: 1, machine: "microvm" as const, accel: "tcg" as const, append: "", timeoutSeconds: 10 };
    expect(() => checkRunInputs({ ...run, netns: "/run/netns/burrow-no-such-netns" })).toThrow("not found: network namespace /run/netns/burrow-no-such-netns");
    expect(() => checkRunInputs({ ...run, netns: "/proc/self/ns/net" })).not.toThrow();
  });
});
