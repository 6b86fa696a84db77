// A template-started container's NIC (src/oci/template-nic.ts writes the requests, image/supervisor/
// nic.c sends them) on a real kernel, in a throw-away network namespace (root): nic.c compiled
// alone with a harness (test/fixtures/nic-harness.c) against a veth that has the template's
// name and MAC, then the result read back with `ip -j`. The host's own interfaces are never touched.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseIpPrefix, parseNicRoute, type IpPrefix, type NicRoute } from "../../src/config/nic";
import { SUPERVISOR_CFLAGS, supervisorSources } from "../../src/image/supervisor";
import type { NetworkPlan } from "../../src/oci/network";
import { TEMPLATE_NIC, templateNicLines } from "../../src/oci/template-nic";

const ROOT = resolve(import.meta.dir, "../..");
let work: string;
let harness: string;

beforeAll(() => {
  // Never skip: a privileged test that did not run must show up as a failure.
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (a network namespace)");
  work = mkdtempSync(join(tmpdir(), "burrow-template-nic-"));
  const sources = join(work, "src");
  mkdirSync(sources);
  for (const [name, text] of Object.entries(supervisorSources())) writeFileSync(join(sources, name), text);
  writeFileSync(join(sources, "harness.c"), readFileSync(join(ROOT, "test/fixtures/nic-harness.c")));
  harness = join(work, "nic-harness");
  // The harness uses a few of text.c's helpers: the others are not an error here.
  const built = Bun.spawnSync(["gcc", ...SUPERVISOR_CFLAGS, "-Wno-unused-function", "-o", harness, join(sources, "harness.c")], { stderr: "pipe" });
  if (built.exitCode !== 0) throw new Error(`building the harness: ${built.stderr.toString()}`);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const prefix = (text: string): IpPrefix => {
  const parsed = parseIpPrefix(text);
  if ("problem" in parsed) throw new Error(parsed.problem);
  return parsed;
};
const route = (text: string): NicRoute => {
  const parsed = parseNicRoute(text);
  if ("problem" in parsed) throw new Error(parsed.problem);
  return parsed;
};

const network = (changes: Partial<NetworkPlan> = {}): NetworkPlan => ({
  netns: "/run/netns/unused",
  veth: "eth0",
  tap: "tap0_burrow",
  mac: "0a:58:0a:58:00:07",
  mtu: 1400,
  addresses: [prefix("10.88.0.7/16"), prefix("fd00:88::7/64")],
  routes: [route("0.0.0.0/0,via=10.88.0.1"), route("::/0,via=fd00:88::1")],
  ...changes,
});

interface Applied {
  status: number;
  stderr: string;
  links: { ifname: string; address: string; flags: string[]; mtu: number; addr_info: { family: string; local: string; prefixlen: number; broadcast?: string }[] }[];
  routes4: { dst: string; gateway?: string; dev: string }[];
  routes6: { dst: string; gateway?: string; dev: string }[];
}

/** In a new network namespace: a veth `name` with `mac` (its peer up), then the harness with the plan's NIC lines. */
function apply(lines: string[], name: string = TEMPLATE_NIC.name, mac: string = TEMPLATE_NIC.mac): Applied {
  const fields = lines.flatMap((line) => line.split(" ").slice(1));
  const script = `ip link add "$1" address "$2" type veth peer name peer0 && ip link set peer0 up && shift 2 && "$@"; status=$?; echo "status $status"; ip -j addr; echo; ip -j -4 route; echo; ip -j -6 route`;
  const result = Bun.spawnSync(["unshare", "--net", "--", "sh", "-c", script, "sh", name, mac, harness, ...fields], { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`unshare … failed (status ${result.exitCode}): ${result.stderr.toString()}`);
  const [statusLine, links, routes4, routes6] = result.stdout.toString().split("\n").filter((line) => line !== "");
  return {
    status: Number(statusLine!.split(" ")[1]),
    stderr: result.stderr.toString(),
    links: JSON.parse(links!),
    routes4: JSON.parse(routes4!),
    routes6: JSON.parse(routes6!),
  };
}

describe("nic.c on a veth in a new network namespace", () => {
  test("the container's MAC and MTU, up, its addresses and routes, as the cold boot's nic step makes them", () => {
    const applied = apply(templateNicLines(network()));
    expect(applied.stderr).toBe("");
    expect(applied.status).toBe(0);
    const nic = applied.links.find((link) => link.ifname === TEMPLATE_NIC.name)!;
    expect(nic.address).toBe("0a:58:0a:58:00:07");
    expect(nic.mtu).toBe(1400);
    expect(nic.flags).toContain("UP");
    const v4 = nic.addr_info.find((info) => info.family === "inet")!;
    expect(v4).toMatchObject({ local: "10.88.0.7", prefixlen: 16, broadcast: "10.88.255.255" });
    expect(nic.addr_info.some((info) => info.family === "inet6" && info.local === "fd00:88::7" && info.prefixlen === 64)).toBe(true);
    expect(applied.routes4.find((entry) => entry.dst === "default")).toMatchObject({ gateway: "10.88.0.1", dev: TEMPLATE_NIC.name });
    expect(applied.routes6.find((entry) => entry.dst === "default")).toMatchObject({ gateway: "fd00:88::1", dev: TEMPLATE_NIC.name });
  });

  test("an interface without the template's MAC is not touched: ENODEV, named", () => {
    const applied = apply(templateNicLines(network()), TEMPLATE_NIC.name, "02:00:00:00:00:09");
    expect(applied.status).toBe(1);
    expect(applied.stderr).toBe(`the template's NIC has another MAC address: ${TEMPLATE_NIC.name}: ENODEV\n`);
    const nic = applied.links.find((link) => link.ifname === TEMPLATE_NIC.name)!;
    expect(nic.address).toBe("02:00:00:00:00:09");
    expect(nic.addr_info).toEqual([]);
  });

  test("a request the kernel refuses is named with its errno, and stops the rest", () => {
    // A gateway no address reaches, without onlink: the kernel refuses the route.
    const applied = apply(templateNicLines(network({ addresses: [prefix("10.88.0.7/16")], routes: [route("0.0.0.0/0,via=192.168.9.1")] })));
    expect(applied.status).toBe(1);
    expect(applied.stderr).toBe(`RTM_NEWROUTE ${TEMPLATE_NIC.name}: ENETUNREACH\n`);
    expect(applied.routes4.some((entry) => entry.dst === "default")).toBe(false);
  });
});
