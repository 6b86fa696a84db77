// The guest's nic step (src/modes/microvm/nic.ts over src/sys/rtnetlink.ts) on a real kernel, in a
// throw-away network namespace (unshare --net, with a mount namespace for its sysfs; root): the settings as the host writes them parsed
// by the guest's config and applied to a veth, then read back with `ip -j`; a refusal names the
// request, its arguments and the errno. The host's own interfaces are never touched.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
let work: string;
let script: string;

beforeAll(() => {
  // Never skip: a privileged test that did not run must show up as a failure.
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (a network namespace)");
  work = mkdtempSync(join(tmpdir(), "burrow-nic-"));
  script = join(work, "apply.ts");
  // In the new namespace: a veth pair (v0 gets the NIC's MAC, v1 is its peer, up), then the step.
  writeFileSync(
    script,
    `import { parseConfig } from ${JSON.stringify(join(ROOT, "src/config/config.ts"))};
import { configureNetwork } from ${JSON.stringify(join(ROOT, "src/modes/microvm/nic.ts"))};
const run = (argv) => { const r = Bun.spawnSync(argv); if (r.exitCode !== 0) throw new Error(argv.join(" ") + ": " + r.stderr.toString()); return r.stdout.toString(); };
run(["ip", "link", "add", "v0", "address", "02:00:00:00:00:01", "type", "veth", "peer", "name", "v1"]);
run(["ip", "link", "set", "v1", "up"]);
const config = parseConfig(process.argv[2]);
let done = null, error = null;
try { done = configureNetwork(config.nic, config.loopback); } catch (e) { error = e.message; }
const json = (args) => JSON.parse(run(["ip", "-j", ...args]));
console.log(JSON.stringify({ problems: config.problems.map((p) => p.message), done, error, links: json(["addr"]), routes4: json(["-4", "route"]), routes6: json(["-6", "route"]) }));
`,
  );
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Applied {
  problems: string[];
  done: string[] | null;
  error: string | null;
  links: { ifname: string; flags: string[]; mtu: number; addr_info: { family: string; local: string; prefixlen: number; broadcast?: string; scope: string; tentative?: boolean }[] }[];
  routes4: { dst: string; gateway?: string; dev: string; metric?: number; flags: string[]; scope?: string }[];
  routes6: { dst: string; gateway?: string; dev: string; metric?: number; flags: string[] }[];
}

function apply(cmdline: string): Applied {
  // sysfs shows the namespace that mounted it: a fresh one in a mount namespace of its own, where the step reads interfaces.
  const enter = 'mount -t sysfs sysfs /sys && exec "$@"';
  const result = Bun.spawnSync(["unshare", "--net", "--mount", "--", "sh", "-c", enter, "sh", process.execPath, script, cmdline], { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`unshare … apply.ts failed (status ${result.exitCode}): ${result.stderr.toString()}`);
  return JSON.parse(result.stdout.toString()) as Applied;
}

const NIC = "burrow.net.mac=02:00:00:00:00:01 burrow.net.mtu=1400 burrow.net.addr=10.50.0.2/24 burrow.net.addr=fd00:50::2/64";

describe("the nic step on a veth in a new network namespace", () => {
  test("loopback and the NIC up with the MTU, IPv4 with its broadcast, IPv6 usable at once (no DAD), the routes", () => {
    const routes = "burrow.net.route=0.0.0.0/0,via=10.50.0.1,metric=100 burrow.net.route=192.168.7.0/24,via=10.50.0.9 burrow.net.route=169.254.1.1 burrow.net.route=::/0,via=fd00:50::1";
    const applied = apply(`burrow.net.lo=1 ${NIC} ${routes}`);
    expect(applied.problems).toEqual([]);
    expect(applied.error).toBeNull();
    expect(applied.done).toEqual(["lo up", "v0 (02:00:00:00:00:01) up mtu 1400: 10.50.0.2/24 fd00:50::2/64, routes 0.0.0.0/0,via=10.50.0.1,metric=100 192.168.7.0/24,via=10.50.0.9 169.254.1.1/32 ::/0,via=fd00:50::1"]);
    const lo = applied.links.find((link) => link.ifname === "lo")!;
    expect(lo.flags).toContain("UP");
    const v0 = applied.links.find((link) => link.ifname === "v0")!;
    expect(v0.flags).toContain("UP");
    expect(v0.mtu).toBe(1400);
    const v4 = v0.addr_info.find((info) => info.family === "inet")!;
    expect({ local: v4.local, prefixlen: v4.prefixlen, broadcast: v4.broadcast, scope: v4.scope }).toEqual({ local: "10.50.0.2", prefixlen: 24, broadcast: "10.50.0.255", scope: "global" });
    const v6 = v0.addr_info.find((info) => info.family === "inet6" && info.scope === "global")!;
    expect({ local: v6.local, prefixlen: v6.prefixlen, tentative: v6.tentative ?? false }).toEqual({ local: "fd00:50::2", prefixlen: 64, tentative: false });
    const route = (dst: string) => applied.routes4.find((entry) => entry.dst === dst);
    expect(route("default")).toMatchObject({ gateway: "10.50.0.1", dev: "v0", metric: 100 });
    expect(route("192.168.7.0/24")).toMatchObject({ gateway: "10.50.0.9", dev: "v0" });
    expect(route("169.254.1.1")).toMatchObject({ dev: "v0", scope: "link" });
    expect(applied.routes6.find((entry) => entry.dst === "default")).toMatchObject({ gateway: "fd00:50::1", dev: "v0" });
  });

  test("a gateway no address reaches is refused by the kernel, named with the request and the errno; with onlink it is taken", () => {
    const refused = apply(`${NIC} burrow.net.route=0.0.0.0/0,via=10.9.9.1`);
    expect(refused.error).toBe('RTM_NEWROUTE(dev="v0", route="0.0.0.0/0,via=10.9.9.1") failed: ENETUNREACH (network is unreachable)');
    const onlink = apply(`${NIC} burrow.net.route=0.0.0.0/0,via=10.9.9.1,onlink`);
    expect(onlink.error).toBeNull();
    expect(onlink.routes4.find((entry) => entry.dst === "default")).toMatchObject({ gateway: "10.9.9.1", dev: "v0", flags: ["onlink"] });
  });

  test("no interface with the MAC: ENODEV, nothing configured", () => {
    const applied = apply("burrow.net.mac=02:00:00:00:00:99 burrow.net.addr=10.50.0.2/24");
    expect(applied.error).toBe("burrow.net.mac=02:00:00:00:00:99 but no network interface has that MAC address (ENODEV; no virtio-net device?)");
    expect(applied.links.find((link) => link.ifname === "v0")!.addr_info).toEqual([]);
  });
});
