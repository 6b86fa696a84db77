// The host's half of a template start, without QEMU: the container.plan text the supervisor reads
// after the restore (flags, data and placement computed here), the spec words the resume carries,
// which containers may use a template, and the template's fixed set of shares.
import { describe, expect, test } from "bun:test";
import { MountFlags } from "../../src/sys/constants";
import type { ContainerPlan } from "../../src/oci/bundle";
import { filesTmpfsBytes, templatePlanText, templateSpecWords } from "../../src/oci/template-plan";
import { restoreRun, TEMPLATE_VOLUMES, templateAppend, templateCgroupWords, templateKey, templateProblem, templateShares } from "../../src/oci/template";
import { TEMPLATE_NIC, templateNicLines } from "../../src/oci/template-nic";
import type { NetworkPlan } from "../../src/oci/network";
import type { StoredRun } from "../../src/host/run-options";
import { NetlinkMessage } from "../../src/sys/rtnetlink";

const hex = (text: string) => Buffer.from(text).toString("hex");
const unhex = (field: string) => (field === "-" ? "" : Buffer.from(field, "hex").toString());

function plan(overrides: Partial<ContainerPlan> = {}): ContainerPlan {
  return {
    process: { args: ["true"], env: [], cwd: "/", user: "0:0", terminal: false, rlimits: {} },
    root: { tag: "burrow.root", path: "/rootfs", readOnly: false },
    shares: [],
    files: [],
    guestPlan: { version: 1, readonlyRoot: false, mounts: [] },
    kernelWords: [],
    netns: null,
    memoryBytes: null,
    notes: [],
    ...overrides,
  };
}

function lines(text: string): string[][] {
  return text.trim().split("\n").map((line) => line.split(" "));
}

describe("templatePlanText", () => {
  test("the header and the root line: the root share's tag, noatime, its 9p data; no read-only remount, no files", () => {
    const [header, root] = lines(templatePlanText(plan(), []).text);
    expect(header).toEqual(["burrow-container", "1"]);
    expect(root![0]).toBe("root");
    expect(unhex(root![1]!)).toBe("burrow.root");
    expect(Number(root![2])).toBe(MountFlags.NOATIME);
    expect(unhex(root![3]!)).toContain("cache=loose");
    expect(root!.slice(4)).toEqual(["0", "0"]);
  });

  test("root.readonly: the remount's flags are bind, remount, read-only and the root's own", () => {
    const root = lines(templatePlanText(plan({ guestPlan: { version: 1, readonlyRoot: true, mounts: [] } }), []).text)[1]!;
    expect(Number(root[4])).toBe(MountFlags.REMOUNT | MountFlags.BIND | MountFlags.RDONLY | MountFlags.NOATIME);
  });

  test("each mount with its options parsed and its place decided: a share is 9p, a file a copy, a path under /tmp on the VM's tree, /sys the VM's own remounted", () => {
    const { text, skipped } = templatePlanText(plan({
      guestPlan: {
        version: 1,
        readonlyRoot: false,
        mounts: [
          { kind: "share", tag: "burrow.v0", destination: "/data", options: ["ro", "nosuid"] },
          { kind: "file", file: "files/0", destination: "/etc/hosts", options: ["ro"] },
          { kind: "fs", type: "tmpfs", source: "tmpfs", destination: "/tmp/scratch", options: ["nodev", "size=1m", "rprivate"] },
          { kind: "fs", type: "sysfs", source: "sysfs", destination: "/sys", options: ["ro"] },
          { kind: "fs", type: "tmpfs", source: "tmpfs", destination: "/proc", options: [] },
        ],
      },
    }), [100]);
    const mounts = lines(text).slice(2);
    expect(mounts.map((line) => [line[1], line[2]])).toEqual([["f", "root"], ["b", "root"], ["f", "vm"], ["o", "vm"]]);
    expect(Number(mounts[0]![3])).toBe(MountFlags.RDONLY | MountFlags.NOSUID);
    expect(mounts[0]!.slice(5, 9).map(unhex)).toEqual(["burrow.v0", "9p", expect.stringContaining("cache=mmap"), "/data"]);
    expect(unhex(mounts[1]![5]!)).toBe("files/0");
    expect(Number(mounts[1]![3])).toBe(MountFlags.RDONLY);
    expect(Number(mounts[2]![4])).toBe(MountFlags.PRIVATE | MountFlags.REC);
    expect(mounts[2]!.slice(5, 9).map(unhex)).toEqual(["tmpfs", "tmpfs", "size=1m", "/tmp/scratch"]);
    expect(mounts[3]![8]).toBe(hex("/sys"));
    // Another type on the VM's own /proc is not made, as at a cold boot.
    expect(skipped).toEqual([expect.stringContaining("/proc (tmpfs): the VM's own proc stays there")]);
    // The root line sizes the files' tmpfs.
    expect(Number(lines(text)[1]![5])).toBe(filesTmpfsBytes([100]));
  });

  test("a mount the plan cannot make is refused on the host, as at a cold boot", () => {
    expect(() => templatePlanText(plan({ guestPlan: { version: 1, readonlyRoot: false, mounts: [{ kind: "fs", type: "tmpfs", source: "tmpfs", destination: "/x", options: ["remount"] }] } }), [])).toThrow(/remount/);
  });
});

describe("templateSpecWords", () => {
  test("the spec's kernel words become the supervisor's words the resume carries", () => {
    const result = templateSpecWords(["burrow.hostname=box", "burrow.no-new-privs=1", "burrow.rlimit.nofile=1024:2048"]);
    expect(result).toEqual({ words: expect.arrayContaining(["hostname=box", "nnp=1", expect.stringMatching(/^rlimit=7:1024:2048$/)]) });
  });

  test("a bad word is a reason for a cold boot, not a start with less confinement", () => {
    expect(templateSpecWords(["burrow.caps=nonsense"])).toEqual({ problem: expect.any(String) });
  });
});

describe("templateProblem and the template's shares", () => {
  test("too many volumes and BURROW_OCI_TEMPLATE=0 boot cold; the engine's network does not", () => {
    expect(templateProblem(plan({ netns: "/run/netns/n" }), {})).toBeNull();
    expect(templateProblem(plan(), { BURROW_OCI_TEMPLATE: "0" })).toMatch(/BURROW_OCI_TEMPLATE=0/);
    const shares = Array.from({ length: TEMPLATE_VOLUMES + 1 }, (_, index) => ({ tag: `burrow.v${index}`, path: `/v${index}`, readOnly: false }));
    expect(templateProblem(plan({ shares }), {})).toMatch(/volumes/);
  });

  test("every template has the root, the bundle and every volume tag, in one order; unused ones name the empty directory read-only", () => {
    const shares = templateShares("/empty", [{ tag: "burrow.v1", path: "/data", readOnly: false }, { tag: "burrow.root", path: "/rootfs", readOnly: false }]);
    expect(shares.map((share) => share.tag)).toEqual(["burrow.root", "burrow.bundle", ...Array.from({ length: TEMPLATE_VOLUMES }, (_, index) => `burrow.v${index}`)]);
    expect(shares[0]).toEqual({ tag: "burrow.root", path: "/rootfs", readOnly: false });
    expect(shares[1]).toEqual({ tag: "burrow.bundle", path: "/empty", readOnly: true });
    expect(shares[3]).toEqual({ tag: "burrow.v1", path: "/data", readOnly: false });
  });

  test("the template's command line waits at the point with no container words; quiet unless --debug", () => {
    expect(templateAppend(false).split(" ")).toEqual(expect.arrayContaining(["burrow.start=host", "burrow.template=1", "burrow.bundle=burrow.bundle", "quiet"]));
    expect(templateAppend(true)).not.toContain("quiet");
  });
});

describe("burrow.template=1 on the kernel command line", () => {
  test("taken with burrow.start=host, burrow.snapshot=1 and burrow.bundle; alone it is one problem and ignored", async () => {
    const { parseConfig } = await import("../../src/config/config");
    expect(parseConfig("burrow.template=1 burrow.start=host burrow.snapshot=1 burrow.bundle=b").template).toBe(true);
    const alone = parseConfig("burrow.template=1");
    expect(alone.template).toBe(false);
    expect(alone.problems.map((problem) => problem.message)).toEqual([expect.stringContaining("burrow.template=1 needs")]);
  });
});

describe("a template on the engine's network", () => {
  const network: NetworkPlan = {
    netns: "/run/netns/n1",
    veth: "eth0",
    tap: "tap0_burrow",
    mac: "0a:58:0a:58:00:07",
    mtu: 1500,
    addresses: [{ family: 4, address: "10.88.0.7", prefix: 16 }],
    routes: [{ destination: { family: 4, address: "0.0.0.0", prefix: 0 }, via: "10.88.0.1", onlink: false, metric: null }],
  };
  const request = (line: string) => {
    const [kind, offset, bytes] = line.split(" ");
    return { kind, offset: Number(offset), bytes: Buffer.from(bytes!, "hex") };
  };

  test("the NIC lines: the template's NIC, then the link, the address and the route, sequenced, the index left at its offset", () => {
    const text = templatePlanText(plan(), [], network).text.trim().split("\n");
    const nicAt = text.findIndex((line) => line.startsWith("nic "));
    expect(text[nicAt]).toBe(`nic ${hex(TEMPLATE_NIC.name)} ${TEMPLATE_NIC.mac.replaceAll(":", "")}`);
    const requests = text.slice(nicAt + 1).map(request);
    expect(requests.map((r) => r.kind)).toEqual(["netlink", "netlink", "netlink"]);
    expect(requests.map((r) => r.bytes.readUInt16LE(4))).toEqual([NetlinkMessage.RTM_NEWLINK, NetlinkMessage.RTM_NEWADDR, NetlinkMessage.RTM_NEWROUTE]);
    for (const [position, r] of requests.entries()) {
      expect(r.bytes.readUInt32LE(0)).toBe(r.bytes.length);
      expect(r.bytes.readUInt32LE(8)).toBe(position + 1);
      expect(r.bytes.readUInt32LE(r.offset)).toBe(0);
    }
    // The route's index is RTA_OIF's payload: the attribute header (length 8, type 4) right before it.
    const route = requests[2]!;
    expect([route.bytes.readUInt16LE(route.offset - 4), route.bytes.readUInt16LE(route.offset - 2)]).toEqual([8, 4]);
    // The link request carries the veth's MAC (IFLA_ADDRESS) and MTU.
    expect(requests[0]!.bytes.includes(Buffer.from("0a580a580007", "hex"))).toBe(true);
    // A MAC the guest's NIC cannot take is the host's one line, before any VM.
    expect(() => templateNicLines({ ...network, mac: "01:00:00:00:00:01" })).toThrow(/multicast/);
  });

  test("the container's network has its own template (the key has the NIC); a restore puts the template's NIC on the container's tap in its netns", () => {
    const run = { arch: "x86_64", kernel: "/k", disks: [], ports: [], mem: "256M", smp: 1, machine: "microvm", accel: "tcg", append: "a", timeoutSeconds: 60 } as unknown as StoredRun;
    expect(templateKey({ ...run, kernel: import.meta.path })).not.toBe(templateKey({ ...run, kernel: import.meta.path, net: { tap: { ifname: "tap0_burrow", mac: TEMPLATE_NIC.mac } } }));
    const template = { dir: "/state/burrow-templates/k", run: { ...run, net: { tap: { ifname: "tap0_burrow", mac: TEMPLATE_NIC.mac } } }, append: "a", runId: "r", words: [], instance: "c1" };
    const restored = restoreRun(template, { ...run, net: { tap: { ifname: "tap0_burrow", mac: network.mac } }, netns: network.netns });
    expect(restored.net).toEqual({ tap: { ifname: "tap0_burrow", mac: TEMPLATE_NIC.mac } });
    expect(restored.netns).toBe(network.netns);
    const isolated = restoreRun({ ...template, run }, run);
    expect(isolated.net).toBeUndefined();
    expect(isolated.netns).toBeUndefined();
  });
});

describe("a template with the workload's cgroup limits", () => {
  test("the limits a container's command line carries (Podman's default pids.limit among them) become the template's own words; the spec words still ride on the resume", () => {
    const append = "root=/dev/vda burrow.root=9p:burrow.root burrow.pids-max=2048 burrow.memory-max=100663296 burrow.hostname=web quiet";
    expect(templateCgroupWords(append)).toEqual(["burrow.pids-max=2048", "burrow.memory-max=100663296"]);
    expect(templateCgroupWords("root=/dev/vda quiet")).toEqual([]);
    const spec = templateSpecWords(["burrow.pids-max=2048", "burrow.hostname=web"]);
    expect(spec).toEqual({ words: expect.arrayContaining(["hostname=web"]) });
  });
});
