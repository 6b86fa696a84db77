// The container's cgroup without root: mountinfo of the three layouts (this host's hybrid one, a
// pure cgroup2 one, a legacy v1 one) and of a container's partial view, read into hierarchies;
// cgroupsPath under both drivers mapped to each hierarchy's directory; the limit files for v1 and
// v2 and which hierarchy gets each; the VM sized from the limits; the launch plan carrying it; and
// the undo of a half-made cgroup and the removal rules, on plain directories.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readBundle } from "../../src/oci/bundle";
import { type CgroupMounts, parseCgroupMounts, parseOwnCgroups } from "../../src/oci/cgroup-mounts";
import { type CgroupDir, cgroupDirs, type ContainerCgroup, expandSlice, isProblem, readCgroupsPath } from "../../src/oci/cgroup-paths";
import { type HostResources, limitWrites, NO_RESOURCES, parseCpuList, placeLimits, readHostResources } from "../../src/oci/cgroup-resources";
import { DEFAULT_GUEST_MIB, GUEST_FLOOR_MIB, guestCpus, guestMemoryMiB, LIMITED_TB_MIB, VMM_OVERHEAD_MIB, vmSize, workloadMemoryBytes } from "../../src/oci/cgroup-sizing";
import { readCgroupRecord, removeCgroup, setUpCgroup, writeCgroupRecord } from "../../src/oci/cgroups";
import { containerPaths } from "../../src/oci/container-dir";
import { launchPlan } from "../../src/oci/launch";

const FIXTURES = join(import.meta.dir, "../fixtures/oci-cgroups");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const MIB = 1 << 20;

function mounts(name: string): CgroupMounts {
  const parsed = parseCgroupMounts(fixture(name));
  if (parsed === null) throw new Error(`${name}: no cgroup mounts`);
  return parsed;
}

function dirsOf(name: string, cgroup: ContainerCgroup, own: Map<string, string> | null = null): CgroupDir[] {
  const dirs = cgroupDirs(mounts(name), cgroup, own);
  if (isProblem(dirs)) throw new Error(dirs.problem);
  return dirs;
}

function cgroupOf(value: string, driver: "cgroupfs" | "systemd"): ContainerCgroup {
  const cgroup = readCgroupsPath(value, driver);
  if (isProblem(cgroup)) throw new Error(cgroup.problem);
  return cgroup;
}

const resources = (change: Partial<HostResources> = {}): HostResources => ({ ...NO_RESOURCES, ...change, cpu: { ...NO_RESOURCES.cpu, ...change.cpu } });

describe("mountinfo → hierarchies", () => {
  test("this host's hybrid layout: every v1 hierarchy (name=systemd too) in mount order, cgroup2 at /sys/fs/cgroup/unified last", () => {
    const hybrid = mounts("hybrid.mountinfo");
    expect(hybrid.layout).toBe("hybrid");
    expect(hybrid.hierarchies.map((hierarchy) => [hierarchy.version, hierarchy.controllers.join(","), hierarchy.mountPoint])).toEqual([
      [1, "cpu", "/sys/fs/cgroup/cpu"],
      [1, "cpuacct", "/sys/fs/cgroup/cpuacct"],
      [1, "cpuset", "/sys/fs/cgroup/cpuset"],
      [1, "memory", "/sys/fs/cgroup/memory"],
      [1, "devices", "/sys/fs/cgroup/devices"],
      [1, "freezer", "/sys/fs/cgroup/freezer"],
      [1, "blkio", "/sys/fs/cgroup/blkio"],
      [1, "pids", "/sys/fs/cgroup/pids"],
      [1, "name=systemd", "/sys/fs/cgroup/systemd"],
      [2, "", "/sys/fs/cgroup/unified"],
    ]);
    expect(hybrid.hierarchies.every((hierarchy) => hierarchy.root === "/")).toBe(true);
  });

  test("pure cgroup2: the one hierarchy at /sys/fs/cgroup", () => {
    expect(mounts("unified.mountinfo")).toEqual({ layout: "unified", hierarchies: [{ version: 2, controllers: [], mountPoint: "/sys/fs/cgroup", root: "/" }] });
  });

  test("legacy v1: controllers bound together stay one hierarchy (sorted), mount options are not controllers", () => {
    const legacy = mounts("legacy.mountinfo");
    expect(legacy.layout).toBe("legacy");
    expect(legacy.hierarchies.map((hierarchy) => hierarchy.controllers.join(","))).toEqual(["name=systemd", "net_cls,net_prio", "cpu,cpuacct", "memory", "cpuset", "pids", "devices", "freezer", "blkio", "hugetlb", "perf_event"]);
    expect(legacy.hierarchies.find((hierarchy) => hierarchy.controllers.includes("cpu"))!.mountPoint).toBe("/sys/fs/cgroup/cpu,cpuacct");
  });

  test("a hierarchy mounted twice is taken where its whole tree is; a mount point's \\040 is a space", () => {
    const nested = mounts("nested.mountinfo");
    expect(nested.layout).toBe("legacy");
    expect(nested.hierarchies).toEqual([
      { version: 1, controllers: ["memory"], mountPoint: "/mnt/whole memory", root: "/" },
      { version: 1, controllers: ["cpuset"], mountPoint: "/sys/fs/cgroup/cpuset", root: "/docker/4f1e" },
    ]);
  });

  test("no cgroup mount, or only a named hierarchy other than systemd's: none", () => {
    expect(parseCgroupMounts("22 1 254:1 / / rw - ext4 /dev/vda1 rw\n")).toBeNull();
    expect(parseCgroupMounts("")).toBeNull();
    expect(parseCgroupMounts("40 31 0:37 / /sys/fs/cgroup/x rw - cgroup cgroup rw,name=x\nmalformed line\n")).toBeNull();
  });

  test("/proc/self/cgroup: each hierarchy's own path, keyed by its sorted controllers, cgroup2 by \"\"", () => {
    const own = parseOwnCgroups(fixture("hybrid.cgroup"));
    expect(own.get("memory")).toBe("/user.slice");
    expect(own.get("name=systemd")).toBe("/user.slice/session-1.scope");
    expect(own.get("")).toBe("/user.slice/session-1.scope");
    expect(parseOwnCgroups("4:cpuacct,cpu:/a\n").get("cpu,cpuacct")).toBe("/a");
  });
});

describe("cgroupsPath → the container's cgroup", () => {
  test("cgroupfs: the engines' absolute paths, cleaned; a relative one is below burrow-oci's own", () => {
    expect(readCgroupsPath("/libpod_parent/libpod-0123", "cgroupfs")).toEqual({ path: "/libpod_parent/libpod-0123", relative: false });
    expect(readCgroupsPath("/default/redis-1", "cgroupfs")).toEqual({ path: "/default/redis-1", relative: false });
    expect(readCgroupsPath("//docker/./9d2f//", "cgroupfs")).toEqual({ path: "/docker/9d2f", relative: false });
    expect(readCgroupsPath("mine/c1", "cgroupfs")).toEqual({ path: "mine/c1", relative: true });
  });

  test("cgroupfs: .., the root itself and a NUL are refused in one line", () => {
    expect(readCgroupsPath("/a/../b", "cgroupfs")).toEqual({ problem: '"/a/../b" must not hold a .. component' });
    expect(readCgroupsPath("/", "cgroupfs")).toEqual({ problem: '"/" is the root cgroup, which holds the whole host' });
    expect(readCgroupsPath("/a\0b", "cgroupfs")).toEqual({ problem: "holds a NUL byte" });
  });

  test("systemd: slice:prefix:name → the slice's path and PREFIX-NAME.scope; a slice name is the unit itself; no slice is system.slice", () => {
    expect(readCgroupsPath("machine.slice:libpod:0123", "systemd")).toEqual({ path: "/machine.slice/libpod-0123.scope", relative: false });
    expect(readCgroupsPath("system.slice:docker:9d2f", "systemd")).toEqual({ path: "/system.slice/docker-9d2f.scope", relative: false });
    expect(readCgroupsPath("kubepods-burstable-pod42.slice:cri-containerd:abc", "systemd")).toEqual({
      path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod42.slice/cri-containerd-abc.scope",
      relative: false,
    });
    expect(readCgroupsPath(":runc:c1", "systemd")).toEqual({ path: "/system.slice/runc-c1.scope", relative: false });
    expect(readCgroupsPath("-.slice:x:c1", "systemd")).toEqual({ path: "/x-c1.scope", relative: false });
    expect(readCgroupsPath("machine.slice::mine.slice", "systemd")).toEqual({ path: "/machine.slice/mine.slice", relative: false });
  });

  test("systemd: a path, a bad slice or a name with / refused", () => {
    expect(readCgroupsPath("/libpod_parent/libpod-1", "systemd")).toEqual({ problem: 'expected "slice:prefix:name" for the systemd cgroup driver (--systemd-cgroup), got "/libpod_parent/libpod-1"' });
    expect(readCgroupsPath("machine:libpod:1", "systemd")).toEqual({ problem: '"machine" is not a slice name (NAME.slice, no "/")' });
    expect(readCgroupsPath("a--b.slice:x:1", "systemd")).toEqual({ problem: '"a--b.slice" is not a slice name (an empty part between "-")' });
    expect(readCgroupsPath("machine.slice:x:../1", "systemd")).toEqual({ problem: '"machine.slice:x:../1": the prefix and name must be names, not paths' });
    expect(readCgroupsPath("machine.slice:x:", "systemd")).toMatchObject({ problem: expect.stringContaining("must be names") });
  });

  test("expandSlice as runc's: nesting by -, the root slice, no empty parts", () => {
    expect(expandSlice("a-b.slice")).toBe("/a.slice/a-b.slice");
    expect(expandSlice("a-b-c.slice")).toBe("/a.slice/a-b.slice/a-b-c.slice");
    expect(expandSlice("-.slice")).toBe("/");
    for (const bad of ["-a.slice", "a-.slice", ".slice", "a.scope", "a/b.slice"]) expect(isProblem(expandSlice(bad))).toBe(true);
  });
});

describe("the container's cgroup in each hierarchy", () => {
  const podman = cgroupOf("/libpod_parent/libpod-0123", "cgroupfs");
  const systemd = cgroupOf("machine.slice:libpod:0123", "systemd");

  test("cgroupfs on the hybrid host: the path under every v1 mount and under cgroup2's", () => {
    expect(dirsOf("hybrid.mountinfo", podman).map((dir) => dir.dir)).toEqual(
      ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd", "unified"].map((name) => `/sys/fs/cgroup/${name}/libpod_parent/libpod-0123`),
    );
  });

  test("systemd on the hybrid host, and both drivers on pure cgroup2", () => {
    expect(dirsOf("hybrid.mountinfo", systemd).map((dir) => dir.dir)).toContain("/sys/fs/cgroup/memory/machine.slice/libpod-0123.scope");
    expect(dirsOf("hybrid.mountinfo", systemd).map((dir) => dir.dir)).toContain("/sys/fs/cgroup/unified/machine.slice/libpod-0123.scope");
    expect(dirsOf("unified.mountinfo", systemd).map((dir) => [dir.cgroup, dir.dir])).toEqual([["/machine.slice/libpod-0123.scope", "/sys/fs/cgroup/machine.slice/libpod-0123.scope"]]);
    expect(dirsOf("unified.mountinfo", podman).map((dir) => dir.dir)).toEqual(["/sys/fs/cgroup/libpod_parent/libpod-0123"]);
  });

  test("legacy: combined controllers under their one mount", () => {
    const dirs = dirsOf("legacy.mountinfo", cgroupOf("/default/redis-1", "cgroupfs"));
    expect(dirs.map((dir) => dir.dir)).toContain("/sys/fs/cgroup/cpu,cpuacct/default/redis-1");
    expect(dirs.map((dir) => dir.dir)).toContain("/sys/fs/cgroup/net_cls,net_prio/default/redis-1");
  });

  test("a relative path below burrow-oci's own cgroup in each hierarchy; one missing from /proc/self/cgroup is named", () => {
    const own = parseOwnCgroups(fixture("hybrid.cgroup"));
    const dirs = dirsOf("hybrid.mountinfo", cgroupOf("mine/c1", "cgroupfs"), own);
    expect(dirs.find((dir) => dir.hierarchy.controllers.includes("memory"))).toMatchObject({ cgroup: "/user.slice/mine/c1", dir: "/sys/fs/cgroup/memory/user.slice/mine/c1" });
    expect(dirs.find((dir) => dir.hierarchy.version === 2)!.dir).toBe("/sys/fs/cgroup/unified/user.slice/session-1.scope/mine/c1");
    expect(dirs.find((dir) => dir.hierarchy.controllers.includes("cpu"))!.dir).toBe("/sys/fs/cgroup/cpu/mine/c1");
    expect(cgroupDirs(mounts("hybrid.mountinfo"), cgroupOf("mine/c1", "cgroupfs"), new Map())).toEqual({
      problem: "burrow-oci's own cgroup in the cpu hierarchy is not in /proc/self/cgroup (a relative linux.cgroupsPath is read below it)",
    });
  });

  test("a partial mount (a container's view): the path below its root, one outside it or at its top refused", () => {
    expect(dirsOf("nested.mountinfo", cgroupOf("/docker/4f1e/c1", "cgroupfs")).map((dir) => dir.dir)).toEqual(["/mnt/whole memory/docker/4f1e/c1", "/sys/fs/cgroup/cpuset/c1"]);
    expect(cgroupDirs(mounts("nested.mountinfo"), cgroupOf("/other/c1", "cgroupfs"), null)).toEqual({
      problem: "the cgroup /other/c1 is outside the part of the cpuset hierarchy mounted at /sys/fs/cgroup/cpuset (its /docker/4f1e)",
    });
    expect(cgroupDirs(mounts("nested.mountinfo"), cgroupOf("/docker/4f1e", "cgroupfs"), null)).toMatchObject({ problem: expect.stringContaining("is the top of the cpuset hierarchy") });
  });
});

describe("the limits' files", () => {
  const limited = resources({ memoryLimit: 256 * MIB, cpu: { quota: 200000, period: 100000, cpus: "0-1", mems: "0" } });

  test("v1: memory.limit_in_bytes, the period before the quota, cpuset.cpus and mems", () => {
    expect(limitWrites(limited, 1)).toEqual([
      { controller: "memory", file: "memory.limit_in_bytes", value: "268435456" },
      { controller: "cpu", file: "cpu.cfs_period_us", value: "100000" },
      { controller: "cpu", file: "cpu.cfs_quota_us", value: "200000" },
      { controller: "cpuset", file: "cpuset.cpus", value: "0-1" },
      { controller: "cpuset", file: "cpuset.mems", value: "0" },
    ]);
  });

  test("v2: memory.max, cpu.max QUOTA PERIOD (max for none, the kernel's period when only a quota is set)", () => {
    expect(limitWrites(limited, 2).map((write) => `${write.file}=${write.value}`)).toEqual(["memory.max=268435456", "cpu.max=200000 100000", "cpuset.cpus=0-1", "cpuset.mems=0"]);
    expect(limitWrites(resources({ memoryLimit: "max", cpu: { quota: "max", period: 50000, cpus: null, mems: null } }), 2).map((write) => `${write.file}=${write.value}`)).toEqual(["memory.max=max", "cpu.max=max 50000"]);
    expect(limitWrites(resources({ memoryLimit: "max", cpu: { quota: "max", period: null, cpus: null, mems: null } }), 1).map((write) => `${write.file}=${write.value}`)).toEqual(["memory.limit_in_bytes=-1", "cpu.cfs_quota_us=-1"]);
    expect(limitWrites(resources({ cpu: { quota: 150000, period: null, cpus: null, mems: null } }), 2)).toEqual([{ controller: "cpu", file: "cpu.max", value: "150000 100000" }]);
    expect(limitWrites(NO_RESOURCES, 1)).toEqual([]);
  });

  test("hybrid: each limit in the v1 hierarchy bound to its controller, none in cgroup2 (it has no controllers there)", () => {
    const placed = placeLimits(dirsOf("hybrid.mountinfo", cgroupOf("/c", "cgroupfs")), limited, []);
    if (isProblem(placed)) throw new Error(placed.problem);
    const byName = Object.fromEntries(placed.map((entry) => [entry.dir.hierarchy.controllers.join(",") || "cgroup2", entry.writes.map((write) => write.file)]));
    expect(byName).toMatchObject({ memory: ["memory.limit_in_bytes"], cpu: ["cpu.cfs_period_us", "cpu.cfs_quota_us"], cpuset: ["cpuset.cpus", "cpuset.mems"], cpuacct: [], "name=systemd": [], cgroup2: [] });
    expect(placed.find((entry) => entry.dir.hierarchy.version === 2)!.needs).toEqual([]);
  });

  test("pure cgroup2: every limit there, with the controllers its ancestors must enable; one it does not offer is named", () => {
    const dirs = dirsOf("unified.mountinfo", cgroupOf("/c", "cgroupfs"));
    const placed = placeLimits(dirs, limited, ["cpuset", "cpu", "io", "memory", "pids"]);
    if (isProblem(placed)) throw new Error(placed.problem);
    expect(placed).toEqual([{ dir: dirs[0]!, writes: limitWrites(limited, 2), needs: ["memory", "cpu", "cpuset"] }]);
    expect(placeLimits(dirs, limited, ["memory", "pids"])).toEqual({ problem: "no cgroup hierarchy has the cpu, cpuset controllers (cgroup2 offers: memory pids), which the container's limits need" });
    expect(placeLimits(dirsOf("nested.mountinfo", cgroupOf("/docker/4f1e/c", "cgroupfs")), limited, [])).toEqual({ problem: "no cgroup hierarchy has the cpu controller (no v1 hierarchy binds it), which the container's limits need" });
  });
});

describe("linux.resources read for the host", () => {
  test("the CPU limits, the fields not applied noted by path, bad ones refused by path", () => {
    const read = readHostResources({ cgroupsPath: "/c", resources: { cpu: { quota: 150000, period: 100000, shares: 1024, cpus: "0-1", mems: "" }, devices: [{ allow: false, access: "rwm" }], blockIO: { weight: 10 }, memory: { limit: 1 << 28, swappiness: 0 } } }, "cgroupfs", 1 << 28);
    expect(read.errors).toEqual([]);
    expect(read.resources).toEqual({ cgroup: { path: "/c", relative: false }, memoryLimit: 1 << 28, cpu: { quota: 150000, period: 100000, cpus: "0-1", mems: null } });
    expect(read.notes).toEqual([
      "linux.resources.devices is not applied (host device rules do not reach into a VM, which has its own devices)",
      "linux.resources.cpu.shares is not applied (only the quota, period and cpuset are applied)",
      "linux.resources.blockIO is not applied (the VM's disk and share I/O is QEMU's)",
    ]);
    const bad = readHostResources({ cgroupsPath: 7, resources: { cpu: { quota: 1.5, period: 2_000_000, cpus: [0] } } }, "cgroupfs", null);
    expect(bad.errors).toEqual([
      "linux.resources.cpu.quota: expected a whole number from -1 to 9007199254740991",
      "linux.resources.cpu.period: expected a whole number from 0 to 1000000",
      'linux.resources.cpu.cpus: expected a cpuset list like "0-3,5" (numbers up to 8191)',
      "linux.cgroupsPath: expected a string",
    ]);
  });

  test("0 and -1 as runc reads them: a quota of 0 is none, -1 is no quota; an empty path is no cgroup", () => {
    expect(readHostResources({ cgroupsPath: "", resources: { cpu: { quota: 0, period: 0 } } }, "cgroupfs", null).resources).toEqual(NO_RESOURCES);
    expect(readHostResources({ resources: { cpu: { quota: -1 } } }, "cgroupfs", null).resources.cpu.quota).toBe("max");
  });

  test("parseCpuList: ranges and lists, a backwards range or junk is not one", () => {
    expect(parseCpuList("0-3,5,7-8")).toEqual([0, 1, 2, 3, 5, 7, 8]);
    expect(parseCpuList("1,1")).toEqual([1]);
    for (const bad of ["", "3-1", "a", "0-", ",1", "1 2", "9000"]) expect(parseCpuList(bad)).toBeNull();
  });
});

describe("the VM's size", () => {
  test("memory: no limit or -1 is the default; a limit less the VMM's overhead; the floor with one note when that is too little", () => {
    const notes: string[] = [];
    expect(guestMemoryMiB(null, notes)).toBe(DEFAULT_GUEST_MIB);
    expect(guestMemoryMiB("max", notes)).toBe(DEFAULT_GUEST_MIB);
    expect(guestMemoryMiB(256 * MIB, notes)).toBe(256 - VMM_OVERHEAD_MIB);
    expect(guestMemoryMiB(1024 * MIB + 12345, notes)).toBe(1024 - VMM_OVERHEAD_MIB);
    expect(guestMemoryMiB((GUEST_FLOOR_MIB + VMM_OVERHEAD_MIB) * MIB, notes)).toBe(GUEST_FLOOR_MIB);
    expect(notes).toEqual([]);
    expect(guestMemoryMiB(64 * MIB, notes)).toBe(GUEST_FLOOR_MIB);
    expect(notes).toEqual([`linux.resources.memory.limit 64 MiB leaves 0 MiB for the guest after the VMM's ${VMM_OVERHEAD_MIB} MiB; the VM gets ${GUEST_FLOOR_MIB} MiB, the floor for a container VM, and the host cgroup's limit stays 64 MiB (a guest that uses all its RAM may have QEMU killed by the host's OOM killer)`]);
  });

  test("the workload's limit in the guest: the VM's RAM less the guest's own 38 MiB and 1/64 of the RAM", () => {
    // --memory 256m: a 176 MiB VM, 135 MiB for the workload (what the boot test's guest reads in memory.max).
    expect(workloadMemoryBytes(256 * MIB)).toBe((256 - VMM_OVERHEAD_MIB - 38 - 3) * MIB);
    expect(workloadMemoryBytes(2048 * MIB)).toBe((2048 - VMM_OVERHEAD_MIB - 38 - 31) * MIB);
    // At the floor the workload still has room.
    expect(workloadMemoryBytes(1 * MIB)).toBe((GUEST_FLOOR_MIB - 38 - 1) * MIB);
    expect(workloadMemoryBytes(1 * MIB)).toBeGreaterThanOrEqual(16 * MIB);
  });

  test("vCPUs: ceil(quota/period), the cpuset's count, the smaller of the two, at most the host's; 1 without a limit", () => {
    const cpus = (cpu: Partial<HostResources["cpu"]>, host = 8, notes: string[] = []) => guestCpus({ ...NO_RESOURCES.cpu, ...cpu }, host, notes);
    expect(cpus({})).toBe(1);
    expect(cpus({ quota: 200000, period: 100000 })).toBe(2);
    expect(cpus({ quota: 150000, period: 100000 })).toBe(2);
    expect(cpus({ quota: 50000, period: 100000 })).toBe(1);
    expect(cpus({ quota: 300000 })).toBe(3);
    expect(cpus({ quota: "max", period: 100000 })).toBe(1);
    expect(cpus({ cpus: "0-3" })).toBe(4);
    expect(cpus({ quota: 400000, period: 100000, cpus: "2,5" })).toBe(2);
    const notes: string[] = [];
    expect(cpus({ quota: 400000, period: 100000 }, 2, notes)).toBe(2);
    expect(notes).toEqual(["linux.resources.cpu.quota 400000 per period 100000 asks for 4 CPUs; the host has 2: the VM gets 2 vCPUs"]);
  });

  test("the translation buffer is bounded only under a memory limit", () => {
    expect(vmSize(NO_RESOURCES, 2, [])).toEqual({ memMiB: DEFAULT_GUEST_MIB, cpus: 1, tcgTbSizeMiB: null });
    expect(vmSize(resources({ memoryLimit: 512 * MIB, cpu: { quota: 200000, period: 100000, cpus: null, mems: null } }), 2, [])).toEqual({ memMiB: 512 - VMM_OVERHEAD_MIB, cpus: 2, tcgTbSizeMiB: LIMITED_TB_MIB });
  });

  test("the launch plan's run carries the size; the holder's cgroups are create's to fill", () => {
    const config = { ociVersion: "1.0.2", process: { args: ["/bin/sh"], cwd: "/" }, root: { path: "/" }, linux: { cgroupsPath: "/c", resources: { memory: { limit: 512 * MIB }, cpu: { quota: 200000, period: 100000 } } } };
    const read = readBundle(JSON.stringify(config), "/");
    if (!read.ok) throw new Error(read.error);
    const launch = launchPlan(read.plan, containerPaths("/run/burrow-oci", "c1"), { kernel: "/k/vmlinuz", bootDisk: "/k/boot.ext4" }, false, null, read.resources, 2);
    expect(launch.run).toMatchObject({ mem: `${512 - VMM_OVERHEAD_MIB}M`, smp: 2, tcgTbSizeMiB: LIMITED_TB_MIB });
    expect(launch.run.append).toContain(`burrow.memory-max=${workloadMemoryBytes(512 * MIB)}`);
    expect(launch.cgroups).toEqual([]);
    const plain = launchPlan(read.plan, containerPaths("/run/burrow-oci", "c1"), { kernel: "/k/vmlinuz", bootDisk: "/k/boot.ext4" }, false, null);
    expect(plain.run).toMatchObject({ mem: `${DEFAULT_GUEST_MIB}M`, smp: 1 });
    expect(plain.run.tcgTbSizeMiB).toBeUndefined();
  });
});

describe("making and removing, on plain directories", () => {
  let work: string;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), "burrow-oci-cgroups-"));
  });
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  test("no cgroupsPath: nothing is read or made", () => {
    expect(setUpCgroup(NO_RESOURCES, { mountinfo: join(work, "absent") })).toEqual({ join: [], made: [], notes: [] });
  });

  test("no cgroup mounted: one line naming mountinfo", () => {
    writeFileSync(join(work, "mountinfo"), "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n");
    expect(() => setUpCgroup(resources({ cgroup: { path: "/c1", relative: false } }), { mountinfo: join(work, "mountinfo") })).toThrow(
      `cgroup: no cgroup hierarchy is mounted (no cgroup or cgroup2 mount in ${join(work, "mountinfo")}), so linux.cgroupsPath /c1 cannot be made`,
    );
  });

  test("a limit that cannot be written: the file, the value and the errno in one line; what was made is undone, what existed stays", () => {
    // A "memory hierarchy" that is a plain directory: mkdir works, its limit file does not exist.
    const hierarchy = join(work, "memory");
    mkdirSync(join(hierarchy, "parent"), { recursive: true });
    writeFileSync(join(work, "mountinfo"), `35 31 0:32 / ${hierarchy} rw,relatime - cgroup cgroup rw,memory\n`);
    const recorded: string[][] = [];
    const attempt = () => setUpCgroup(resources({ cgroup: { path: "/parent/mid/c1", relative: false }, memoryLimit: 256 * MIB }), { mountinfo: join(work, "mountinfo"), onMade: (made) => recorded.push(made.map((entry) => entry.dir)) });
    expect(attempt).toThrow(`cgroup: cannot write "268435456" to ${hierarchy}/parent/mid/c1/memory.limit_in_bytes: ENOENT`);
    expect(existsSync(join(hierarchy, "parent", "mid"))).toBe(false);
    expect(existsSync(join(hierarchy, "parent"))).toBe(true);
    // Recorded deepest first, as each was made.
    expect(recorded).toEqual([[`${hierarchy}/parent/mid`], [`${hierarchy}/parent/mid/c1`, `${hierarchy}/parent/mid`]]);
  });

  test("the record round-trips; none is nothing to remove", () => {
    expect(readCgroupRecord(work)).toEqual([]);
    writeCgroupRecord(work, [{ dir: "/sys/fs/cgroup/memory/c1", leaf: true }]);
    expect(readCgroupRecord(work)).toEqual([{ dir: "/sys/fs/cgroup/memory/c1", leaf: true }]);
  });

  test("removal: deepest first; gone already is fine; an ancestor another container still uses is left; a leaf that will not go is one line", async () => {
    mkdirSync(join(work, "a", "b", "c"), { recursive: true });
    mkdirSync(join(work, "shared", "ours"), { recursive: true });
    mkdirSync(join(work, "shared", "theirs"));
    const left = await removeCgroup([
      { dir: join(work, "a", "b", "c"), leaf: true },
      { dir: join(work, "a", "b"), leaf: false },
      { dir: join(work, "gone"), leaf: true },
      { dir: join(work, "shared", "ours"), leaf: true },
      { dir: join(work, "shared"), leaf: false },
    ], 0);
    expect(left).toEqual([]);
    expect(existsSync(join(work, "a", "b"))).toBe(false);
    expect(existsSync(join(work, "shared", "theirs"))).toBe(true);
    mkdirSync(join(work, "busy", "child"), { recursive: true });
    expect(await removeCgroup([{ dir: join(work, "busy"), leaf: true }], 0)).toEqual([`cgroup: cannot remove ${join(work, "busy")}: ENOTEMPTY`]);
  });
});
