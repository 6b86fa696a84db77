// The container's cgroup on this host's real hierarchies (root): a throw-away cgroup made in every
// one (this host's hybrid layout: the v1 controllers, name=systemd and cgroup2), its limits
// written (cpuset v1 copied down first), a child process joined and seen in /proc/PID/cgroup, the
// removal refused while the child lives and complete once it is gone; a cgroup that existed is
// joined and left; a write the kernel refuses names file, value and errno and leaves nothing.
// Only cgroups named burrow-test-cg-* are made; afterAll removes any a failure left.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { type CgroupMounts, parseCgroupMounts } from "../../src/oci/cgroup-mounts";
import { NO_RESOURCES, type HostResources } from "../../src/oci/cgroup-resources";
import { joinCgroup, removeCgroup, setUpCgroup } from "../../src/oci/cgroups";

const PREFIX = "burrow-test-cg-";
const name = `${PREFIX}${randomBytes(4).toString("hex")}`;
let mounts: CgroupMounts;

const mountPointOf = (controller: string) => mounts.hierarchies.find((hierarchy) => hierarchy.controllers.includes(controller))?.mountPoint;
const read = (path: string) => readFileSync(path, "utf8").trim();
const limits = (path: string, change: Partial<HostResources> = {}): HostResources => ({ ...NO_RESOURCES, cgroup: { path, relative: false }, ...change });

/** Every directory named PREFIX* at the top of any hierarchy, children first. */
function removeLeftovers(): void {
  for (const { mountPoint } of mounts?.hierarchies ?? []) {
    for (const entry of readdirSync(mountPoint).filter((entry) => entry.startsWith(PREFIX))) {
      const top = join(mountPoint, entry);
      for (const child of readdirSync(top, { withFileTypes: true }).filter((dirent) => dirent.isDirectory())) rmdirSync(join(top, child.name));
      rmdirSync(top);
    }
  }
}

beforeAll(() => {
  // Never skip: a privileged test that did not run must show up as a failure.
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (cgroups)");
  const parsed = parseCgroupMounts(readFileSync("/proc/self/mountinfo", "utf8"));
  if (parsed === null) throw new Error("no cgroup hierarchy is mounted on this host");
  mounts = parsed;
});

afterAll(() => removeLeftovers());

describe("a container's cgroup on this host", () => {
  test("made in every hierarchy with its limits, a child joined, removed once the child is gone", async () => {
    const path = `/${name}/c1`;
    const memoryLimit = 64 << 20;
    const setup = setUpCgroup(limits(path, { memoryLimit, cpu: { quota: 50000, period: 100000, cpus: "0", mems: null } }));
    expect(setup.join).toEqual(mounts.hierarchies.map((hierarchy) => join(hierarchy.mountPoint, path)));
    // Made: the parent and the leaf in each hierarchy, deepest first.
    expect(setup.made.filter((entry) => entry.leaf).map((entry) => entry.dir).sort()).toEqual([...setup.join].sort());
    expect(setup.made.filter((entry) => !entry.leaf).map((entry) => entry.dir).sort()).toEqual(mounts.hierarchies.map((hierarchy) => join(hierarchy.mountPoint, name)).sort());
    for (const dir of setup.join) expect(existsSync(dir)).toBe(true);
    expect(setup.notes[0]).toBe(`cgroup ${path} (${mounts.layout} layout): the holder and QEMU join ${setup.join.join(", ")}`);
    const memory = mountPointOf("memory");
    const cpu = mountPointOf("cpu");
    const cpuset = mountPointOf("cpuset");
    if (mounts.layout === "unified") {
      const dir = join(mounts.hierarchies[0]!.mountPoint, path);
      expect(read(join(dir, "memory.max"))).toBe(String(memoryLimit));
      expect(read(join(dir, "cpu.max"))).toBe("50000 100000");
      expect(read(join(dir, "cpuset.cpus"))).toBe("0");
    } else {
      expect(read(join(memory!, path, "memory.limit_in_bytes"))).toBe(String(memoryLimit));
      expect(read(join(cpu!, path, "cpu.cfs_quota_us"))).toBe("50000");
      expect(read(join(cpu!, path, "cpu.cfs_period_us"))).toBe("100000");
      expect(read(join(cpuset!, path, "cpuset.cpus"))).toBe("0");
      // cpuset v1: the made parent got its parent's CPUs and memory nodes, the leaf the nodes.
      expect(read(join(cpuset!, name, "cpuset.cpus"))).toBe(read(join(cpuset!, "cpuset.cpus")));
      expect(read(join(cpuset!, path, "cpuset.mems"))).toBe(read(join(cpuset!, "cpuset.mems")));
    }
    const child = Bun.spawn(["sleep", "60"], { stdio: ["ignore", "ignore", "ignore"] });
    try {
      joinCgroup(setup.join, child.pid);
      const seen = read(`/proc/${child.pid}/cgroup`).split("\n");
      for (const hierarchy of mounts.hierarchies) {
        const controllers = hierarchy.version === 2 ? "" : hierarchy.controllers.join(",");
        expect(seen).toContainEqual(expect.stringMatching(new RegExp(`^\\d+:${controllers}:${path.replaceAll("/", "\\/")}$`)));
      }
      for (const dir of setup.join) expect(read(join(dir, "cgroup.procs")).split("\n")).toContain(String(child.pid));
      // While the child is in it, the leaf will not go: one line naming the errno and who is inside.
      const refused = await removeCgroup(setup.made, 100);
      expect(refused.length).toBe(mounts.hierarchies.length);
      expect(refused[0]).toMatch(new RegExp(`^cgroup: cannot remove .*/${name}/c1: EBUSY \\(processes still in it: ${child.pid}\\)$`));
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
    expect(await removeCgroup(setup.made)).toEqual([]);
    for (const hierarchy of mounts.hierarchies) expect(existsSync(join(hierarchy.mountPoint, name))).toBe(false);
  }, 30_000);

  test("a cgroup the engine made is joined as it is and left; only what was made is removed", async () => {
    const existing = join(mountPointOf("memory") ?? mounts.hierarchies[0]!.mountPoint, name);
    mkdirSync(existing);
    try {
      const setup = setUpCgroup(limits(`/${name}`));
      expect(setup.join).toContain(existing);
      expect(setup.made.map((entry) => entry.dir)).not.toContain(existing);
      expect(setup.made.length).toBe(mounts.hierarchies.length - 1);
      expect(setup.notes).toContain(`cgroup: ${existing} existed already (the engine's): joined and limited, left at delete`);
      expect(await removeCgroup(setup.made)).toEqual([]);
      expect(existsSync(existing)).toBe(true);
      for (const entry of setup.made) expect(existsSync(entry.dir)).toBe(false);
    } finally {
      rmdirSync(existing);
    }
  });

  test("a value the kernel refuses: file, value and errno in one line, and nothing is left in any hierarchy", () => {
    const cpuset = mountPointOf("cpuset") ?? mounts.hierarchies.find((hierarchy) => hierarchy.version === 2)!.mountPoint;
    const path = `/${name}/c2`;
    // CPU 4095 is no CPU of this host's (ERANGE beyond the kernel's CPU count, EINVAL within it).
    let line = "";
    try {
      setUpCgroup(limits(path, { memoryLimit: 64 << 20, cpu: { quota: null, period: null, cpus: "4095", mems: null } }));
    } catch (error) {
      line = (error as Error).message;
    }
    expect(line).toMatch(new RegExp(`^cgroup: cannot write "4095" to ${join(cpuset, path, "cpuset.cpus")}: (ERANGE|EINVAL)$`));
    for (const hierarchy of mounts.hierarchies) expect(existsSync(join(hierarchy.mountPoint, name))).toBe(false);
  });
});
