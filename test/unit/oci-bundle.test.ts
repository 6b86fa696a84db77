// readBundle against a bundle laid out as Podman 4.3 writes one (root.path an overlay's merged
// directory, its API mounts, file binds for /etc/hosts and /etc/resolv.conf, volumes): what becomes
// shares, file copies and guest mounts, what the guest already has, the workload's kernel words,
// and every bad field named by its JSON path.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUNDLE_TAG, readBundle, ROOT_TAG, type ContainerPlan } from "../../src/oci/bundle";
import { parseGuestPlan, serializeGuestPlan, SHARE_TAG } from "../../src/oci/guest-plan";

let bundle: string;
let rootfs: string;
let userdata: string;
let volume: string;
let readOnlyVolume: string;

beforeEach(() => {
  bundle = mkdtempSync(join(tmpdir(), "burrow-oci-bundle-"));
  rootfs = join(bundle, "merged");
  userdata = join(bundle, "userdata");
  volume = join(bundle, "volumes", "data");
  readOnlyVolume = join(bundle, "volumes", "config");
  for (const dir of [rootfs, userdata, volume, readOnlyVolume, join(userdata, "shm")]) mkdirSync(dir, { recursive: true });
  writeFileSync(join(userdata, "hosts"), "127.0.0.1 localhost\n");
  writeFileSync(join(userdata, "resolv.conf"), "nameserver 10.88.0.1\n");
});
afterEach(() => rmSync(bundle, { recursive: true, force: true }));

type Json = Record<string, unknown>;

/** Podman 4.3's config.json for `podman run -v DATA:/data -v CONFIG:/config:ro --hostname web …` (trimmed). */
function podmanConfig(): Json {
  return {
    ociVersion: "1.0.2-dev",
    process: {
      user: { uid: 0, gid: 0 },
      args: ["/bin/sh", "-c", "echo hi"],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "container=podman", "HOSTNAME=web"],
      cwd: "/",
      capabilities: {
        bounding: ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"],
        effective: ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"],
        permitted: ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"],
      },
      rlimits: [
        { type: "RLIMIT_NOFILE", hard: 1048576, soft: 1048576 },
        { type: "RLIMIT_NPROC", hard: 4194304, soft: 4194304 },
      ],
      noNewPrivileges: true,
      oomScoreAdj: 0,
    },
    root: { path: rootfs },
    hostname: "web",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
      { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"] },
      { destination: "/dev/shm", type: "bind", source: join(userdata, "shm"), options: ["bind", "private", "nodev", "noexec", "nosuid"] },
      { destination: "/etc/hosts", type: "bind", source: join(userdata, "hosts"), options: ["bind", "rprivate"] },
      { destination: "/etc/resolv.conf", type: "bind", source: join(userdata, "resolv.conf"), options: ["bind", "rprivate", "ro"] },
      { destination: "/data", type: "bind", source: volume, options: ["rbind", "rw", "rprivate"] },
      { destination: "/config", type: "bind", source: readOnlyVolume, options: ["ro", "rbind", "nosuid", "nodev", "rprivate"] },
    ],
    annotations: { "io.container.manager": "libpod", "org.opencontainers.image.stopSignal": "15" },
    linux: {
      resources: { memory: { limit: 536870912 }, pids: { limit: 2048 } },
      namespaces: [{ type: "pid" }, { type: "network", path: "/run/netns/netns-5c1d2e3f-aaaa-bbbb-cccc-0123456789ab" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      seccomp: { defaultAction: "SCMP_ACT_ERRNO", syscalls: [] },
      maskedPaths: ["/proc/acpi"],
    },
  };
}

function plan(config: Json): ContainerPlan {
  const result = readBundle(JSON.stringify(config), bundle);
  if (!result.ok) throw new Error(result.error);
  return result.plan;
}

function refused(config: Json): string {
  const result = readBundle(JSON.stringify(config), bundle);
  if (result.ok) throw new Error(`accepted ${JSON.stringify(config)}`);
  expect(result.error).not.toContain("\n");
  return result.error;
}

/** Podman's config with its mounts replaced. */
function withMounts(...mounts: unknown[]): Json {
  return { ...podmanConfig(), mounts };
}

const PROC = { destination: "/proc", type: "proc", source: "proc", options: ["nosuid"] };
const TMP = { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["mode=1777"] };

describe("a Podman bundle", () => {
  test("the process: argv, env split at the first =, cwd, user, terminal", () => {
    const { process: workload } = plan(podmanConfig());
    expect(workload).toEqual({
      args: ["/bin/sh", "-c", "echo hi"],
      env: [
        ["PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        ["TERM", "xterm"],
        ["container", "podman"],
        ["HOSTNAME", "web"],
      ],
      cwd: "/",
      user: "0:0",
      terminal: false,
      rlimits: { nofile: { soft: 1048576, hard: 1048576 }, nproc: { soft: 4194304, hard: 4194304 } },
    });
    const config = podmanConfig();
    (config.process as Json).terminal = true;
    (config.process as Json).env = ["A=b=c", "EMPTY="];
    (config.process as Json).user = { uid: 1000, gid: 100 };
    (config.process as Json).cwd = "/home/app";
    expect(plan(config).process).toMatchObject({ terminal: true, env: [["A", "b=c"], ["EMPTY", ""]], user: "1000:100", cwd: "/home/app" });
  });

  test("the root share: root.path, read-write (the guest remounts it when root.readonly)", () => {
    const result = plan(podmanConfig());
    expect(result.root).toEqual({ tag: ROOT_TAG, path: rootfs, readOnly: false });
    expect(result.guestPlan.readonlyRoot).toBe(false);
    const config = podmanConfig();
    config.root = { path: rootfs, readonly: true };
    expect(plan(config).guestPlan.readonlyRoot).toBe(true);
    expect(plan(config).root.readOnly).toBe(false);
  });

  test("a relative root.path is the bundle's", () => {
    const config = podmanConfig();
    config.root = { path: "merged" };
    expect(plan(config).root.path).toBe(rootfs);
  });

  test("directory binds become shares burrow.v0, burrow.v1 …; ro ones read-only", () => {
    const result = plan(podmanConfig());
    expect(result.shares).toEqual([
      { tag: "burrow.v0", path: volume, readOnly: false },
      { tag: "burrow.v1", path: readOnlyVolume, readOnly: true },
    ]);
    for (const share of result.shares) expect(share.tag).toMatch(SHARE_TAG);
    expect(SHARE_TAG.test(ROOT_TAG) && SHARE_TAG.test(BUNDLE_TAG)).toBe(true);
  });

  test("file binds are copied under files/ by number", () => {
    expect(plan(podmanConfig()).files).toEqual([
      { from: join(userdata, "hosts"), name: "0" },
      { from: join(userdata, "resolv.conf"), name: "1" },
    ]);
  });

  test("the guest plan: what the guest makes, in config order, with bind and propagation words dropped", () => {
    const { guestPlan } = plan(podmanConfig());
    expect(guestPlan).toEqual({
      version: 1,
      readonlyRoot: false,
      mounts: [
        { kind: "fs", type: "mqueue", source: "mqueue", destination: "/dev/mqueue", options: ["nosuid", "noexec", "nodev"] },
        { kind: "file", file: "files/0", destination: "/etc/hosts", options: [] },
        { kind: "file", file: "files/1", destination: "/etc/resolv.conf", options: ["ro"] },
        { kind: "share", tag: "burrow.v0", destination: "/data", options: ["rw"] },
        { kind: "share", tag: "burrow.v1", destination: "/config", options: ["ro", "nosuid", "nodev"] },
      ],
    });
    // What the host writes is what the guest reads back.
    expect(parseGuestPlan(serializeGuestPlan(guestPlan))).toEqual({ ok: true, plan: guestPlan });
  });

  test("the guest's own mounts are skipped, each with a note saying why", () => {
    const { notes } = plan(podmanConfig());
    expect(notes).toContain("mounts[0] (proc on /proc) not made: the guest's own proc");
    expect(notes).toContain("mounts[1] (tmpfs on /dev) not made: the guest's devtmpfs holds the VM's devices");
    expect(notes).toContain("mounts[2] (devpts on /dev/pts) not made: the guest's own devpts");
    expect(notes).toContain("mounts[4] (sysfs on /sys) not made: the guest's own sysfs");
    expect(notes).toContain("mounts[5] (cgroup on /sys/fs/cgroup) not made: the guest's cgroup2 is burrow's: mounted there when the container has a memory or pids limit, for the workload's own group");
    expect(notes).toContain("mounts[6] (bind on /dev/shm) not made: the guest's own tmpfs (a host shm directory is no use across a VM)");
  });

  test("a writable file bind is noted as a copy; a read-only one is not", () => {
    const { notes } = plan(podmanConfig());
    expect(notes).toContain(`mounts[7] (/etc/hosts): a copy of ${join(userdata, "hosts")}; the guest's writes to it stay in the VM`);
    expect(notes.filter((note) => note.includes("resolv.conf"))).toEqual([]);
  });

  test("what is not applied is noted: seccomp, the other capability sets; the pids limit is (in the guest)", () => {
    const { notes } = plan(podmanConfig());
    expect(notes).toContain("linux.seccomp is not applied");
    expect(notes).toContain("process.capabilities.effective is not applied");
    expect(notes.filter((note) => note.includes("linux.resources"))).toEqual([]);
  });

  test("no linux.cgroupsPath: no cgroup, said once; one given is read as the driver writes it", () => {
    const none = readBundle(JSON.stringify(podmanConfig()), bundle);
    if (!none.ok) throw new Error(none.error);
    expect(none.resources.cgroup).toBeNull();
    expect(none.plan.notes).toContain("linux.cgroupsPath is not set: no cgroup is made, the VM's host processes stay in the engine's cgroup and no host limit is written");
    const config = podmanConfig();
    (config.linux as Json).cgroupsPath = "/libpod_parent/libpod-0123abcd";
    (config.linux as Json).resources = { memory: { limit: 268435456 }, cpu: { quota: 200000, period: 100000, cpus: "0-1" } };
    const made = readBundle(JSON.stringify(config), bundle);
    if (!made.ok) throw new Error(made.error);
    expect(made.resources).toEqual({ cgroup: { path: "/libpod_parent/libpod-0123abcd", relative: false }, memoryLimit: 268435456, cpu: { quota: 200000, period: 100000, cpus: "0-1", mems: null } });
    expect(made.plan.notes.filter((note) => note.includes("cgroupsPath"))).toEqual([]);
    (config.linux as Json).cgroupsPath = "machine.slice:libpod:0123abcd";
    const systemd = readBundle(JSON.stringify(config), bundle, "systemd");
    expect(systemd.ok && systemd.resources.cgroup).toEqual({ path: "/machine.slice/libpod-0123abcd.scope", relative: false });
    expect(readBundle(JSON.stringify(config), bundle)).toEqual({ ok: true, plan: expect.anything(), resources: expect.objectContaining({ cgroup: { path: "machine.slice:libpod:0123abcd", relative: true } }) });
  });

  test("a bad cgroupsPath or CPU limit is named by its path", () => {
    const config = podmanConfig();
    (config.linux as Json).cgroupsPath = "/libpod_parent/../escape";
    expect(refused(config)).toBe('config.json: linux.cgroupsPath: "/libpod_parent/../escape" must not hold a .. component');
    (config.linux as Json).cgroupsPath = "/libpod_parent/libpod-1";
    expect(readBundle(JSON.stringify(config), bundle, "systemd")).toEqual({ ok: false, error: 'config.json: linux.cgroupsPath: expected "slice:prefix:name" for the systemd cgroup driver (--systemd-cgroup), got "/libpod_parent/libpod-1"' });
    (config.linux as Json).resources = { cpu: { quota: 500, cpus: "3-1" } };
    expect(refused(config)).toBe('config.json: linux.resources.cpu.quota: 500 µs is below the kernel\'s 1000 µs; linux.resources.cpu.cpus: expected a cpuset list like "0-3,5" (numbers up to 8191)');
  });

  test("the engine's network namespace is the plan's netns, with no note (create inspects it)", () => {
    const { netns, notes } = plan(podmanConfig());
    expect(netns).toBe("/run/netns/netns-5c1d2e3f-aaaa-bbbb-cccc-0123456789ab");
    expect(notes.filter((note) => note.includes("network"))).toEqual([]);
  });

  test("no NIC, one note each: a new namespace (--network none), none at all (the host's network)", () => {
    const config = podmanConfig();
    (config.linux as Json).namespaces = [{ type: "pid" }, { type: "network" }];
    const none = plan(config);
    expect(none.netns).toBeNull();
    expect(none.notes.filter((note) => note.includes("network"))).toEqual(["a new network namespace (no path): the container gets no NIC, loopback only"]);
    (config.linux as Json).namespaces = [{ type: "pid" }];
    const host = plan(config);
    expect(host.netns).toBeNull();
    expect(host.notes.filter((note) => note.includes("network"))).toEqual(["linux.namespaces has no network namespace (the host's network): a VM cannot share it, the container gets no NIC"]);
  });

  test("a bad network namespace entry is named by its path", () => {
    const config = podmanConfig();
    (config.linux as Json).namespaces = [{ type: "pid" }, { type: "network", path: "netns/relative" }];
    expect(readBundle(JSON.stringify(config), bundle)).toEqual({ ok: false, error: "config.json: linux.namespaces[1].path: expected an absolute path" });
    (config.linux as Json).namespaces = { type: "network" };
    expect(readBundle(JSON.stringify(config), bundle)).toEqual({ ok: false, error: "config.json: linux.namespaces: expected an array" });
  });

  test("the kernel words: hostname, no-new-privs, caps, rlimits, oom score, the workload's memory and pids limits", () => {
    expect(plan(podmanConfig()).kernelWords).toEqual([
      "burrow.hostname=web",
      "burrow.no-new-privs=1",
      "burrow.caps=chown,dac_override,kill,setgid,setuid,net_bind_service",
      "burrow.rlimit.nofile=1048576:1048576",
      "burrow.rlimit.nproc=4194304:4194304",
      "burrow.oom-score-adj=0",
      // The 512 MiB limit's VM holds 432 MiB, of which the workload may use 387.
      `burrow.memory-max=${387 * 1024 * 1024}`,
      "burrow.pids-max=2048",
    ]);
  });

  test("kernel words: none when the config says nothing; an empty bounding set is caps=none; RLIM_INFINITY is unlimited", () => {
    const bare = { ociVersion: "1.0.2", process: { args: ["/bin/true"] }, root: { path: rootfs } };
    expect(plan(bare).kernelWords).toEqual([]);
    expect(plan({ ...bare, process: { args: ["/bin/true"], capabilities: { bounding: [] } } }).kernelWords).toEqual(["burrow.caps=none"]);
    expect(plan({ ...bare, process: { args: ["/bin/true"], rlimits: [{ type: "RLIMIT_CORE", soft: 0, hard: 18446744073709551615 }] } }).kernelWords).toEqual([
      "burrow.rlimit.core=0:unlimited",
    ]);
  });

  test("memory: linux.resources.memory.limit in bytes; -1, 0 or none is no size", () => {
    expect(plan(podmanConfig()).memoryBytes).toBe(536870912);
    for (const limit of [-1, 0, undefined]) {
      const config = podmanConfig();
      (config.linux as Json).resources = limit === undefined ? {} : { memory: { limit } };
      expect(plan(config).memoryBytes).toBeNull();
    }
  });
});

describe("mounts", () => {
  test("tags count directories only; file names count files only", () => {
    const second = join(bundle, "volumes", "second");
    mkdirSync(second);
    const result = plan(
      withMounts(
        { destination: "/etc/hosts", type: "bind", source: join(userdata, "hosts"), options: ["bind", "ro"] },
        { destination: "/a", type: "bind", source: volume, options: ["rbind"] },
        { destination: "/etc/resolv.conf", type: "bind", source: join(userdata, "resolv.conf"), options: ["bind", "ro"] },
        { destination: "/b", type: "bind", source: second, options: ["rbind", "ro"] },
      ),
    );
    expect(result.guestPlan.mounts).toEqual([
      { kind: "file", file: "files/0", destination: "/etc/hosts", options: ["ro"] },
      { kind: "share", tag: "burrow.v0", destination: "/a", options: [] },
      { kind: "file", file: "files/1", destination: "/etc/resolv.conf", options: ["ro"] },
      { kind: "share", tag: "burrow.v1", destination: "/b", options: ["ro"] },
    ]);
  });

  test("a bind is known by its options too (type none with rbind); a relative source is the bundle's", () => {
    const result = plan(withMounts({ destination: "/data", type: "none", source: "volumes/data", options: ["rbind", "rprivate"] }));
    expect(result.shares).toEqual([{ tag: "burrow.v0", path: volume, readOnly: false }]);
    expect(result.guestPlan.mounts).toEqual([{ kind: "share", tag: "burrow.v0", destination: "/data", options: [] }]);
  });

  test("a filesystem mount with no source takes its type as the source; no options is none", () => {
    expect(plan(withMounts({ destination: "/run", type: "tmpfs" })).guestPlan.mounts).toEqual([{ kind: "fs", type: "tmpfs", source: "tmpfs", destination: "/run", options: [] }]);
  });

  test("the guest's own filesystems elsewhere are made; another type at /proc is made too", () => {
    const result = plan(withMounts({ destination: "/proc2", type: "proc", source: "proc" }, { destination: "/dev", type: "devpts", source: "devpts" }));
    expect(result.guestPlan.mounts.map((mount) => mount.destination)).toEqual(["/proc2", "/dev"]);
    expect(result.notes.filter((note) => note.includes("not made"))).toEqual([]);
  });

  test("a tmpfs /dev/shm (containerd's) is skipped as the guest's own", () => {
    const result = plan(withMounts({ destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] }));
    expect(result.guestPlan.mounts).toEqual([]);
    expect(result.notes).toContain("mounts[0] (tmpfs on /dev/shm) not made: the guest's own tmpfs (a host shm directory is no use across a VM)");
  });

  test("mounts absent or null: none", () => {
    const config = podmanConfig();
    delete config.mounts;
    expect(plan(config).guestPlan.mounts).toEqual([]);
    expect(plan({ ...podmanConfig(), mounts: null }).guestPlan.mounts).toEqual([]);
  });
});

describe("bad fields, named by JSON path", () => {
  test("config.json that is not JSON, or not an object", () => {
    expect(readBundle("{", bundle)).toMatchObject({ ok: false, error: expect.stringMatching(/^config\.json: not JSON/) });
    expect(readBundle("[]", bundle)).toEqual({ ok: false, error: "config.json: expected a JSON object" });
  });

  test("root missing, root.path missing, not there, not a directory", () => {
    const config = podmanConfig();
    delete config.root;
    expect(refused(config)).toBe("config.json: root: required (an object with path)");
    expect(refused({ ...podmanConfig(), root: {} })).toBe("config.json: root.path: expected a path");
    expect(refused({ ...podmanConfig(), root: { path: "" } })).toBe("config.json: root.path: expected a path");
    expect(refused({ ...podmanConfig(), root: { path: join(bundle, "nowhere") } })).toBe(`config.json: root.path: ${join(bundle, "nowhere")}: ENOENT`);
    expect(refused({ ...podmanConfig(), root: { path: join(userdata, "hosts") } })).toBe(`config.json: root.path: ${join(userdata, "hosts")} is not a directory`);
    expect(refused({ ...podmanConfig(), root: { path: rootfs, readonly: "yes" } })).toBe("config.json: root.readonly: expected true or false");
  });

  test("a mount destination that is relative or holds ..", () => {
    const mounts = podmanConfig().mounts as Json[];
    const at2 = (destination: unknown) => withMounts(mounts[0], mounts[1], { ...mounts[3], destination });
    expect(refused(at2("dev/mqueue"))).toBe("config.json: mounts[2].destination: expected an absolute path");
    expect(refused(at2("/dev/../etc"))).toBe("config.json: mounts[2].destination: must not hold a .. component");
    expect(refused(at2(".."))).toBe("config.json: mounts[2].destination: expected an absolute path");
    expect(refused(at2(undefined))).toBe("config.json: mounts[2].destination: expected a string");
    expect(refused(at2(""))).toBe("config.json: mounts[2].destination: expected a string");
    expect(refused(at2("/a\0b"))).toBe("config.json: mounts[2].destination: holds a NUL byte");
  });

  test("a bind with no source, or a source that is not there or is neither a file nor a directory", () => {
    expect(refused(withMounts(PROC, { destination: "/data", type: "bind", options: ["rbind"] }))).toBe("config.json: mounts[1].source: a bind mount needs a source");
    expect(refused(withMounts({ destination: "/data", type: "bind", source: "", options: ["rbind"] }))).toBe("config.json: mounts[0].source: a bind mount needs a source");
    const missing = join(bundle, "gone");
    expect(refused(withMounts({ destination: "/data", type: "bind", source: missing }))).toBe(`config.json: mounts[0].source: ${missing}: ENOENT`);
    const link = join(bundle, "dangling");
    symlinkSync(join(bundle, "nothing-here"), link);
    expect(refused(withMounts({ destination: "/data", type: "bind", source: link }))).toBe(`config.json: mounts[0].source: ${link}: ENOENT`);
    expect(refused(withMounts({ destination: "/null", type: "bind", source: "/dev/null", options: ["bind"] }))).toBe(
      "config.json: mounts[0].source: /dev/null is neither a directory nor a regular file (a VM can share only those)",
    );
  });

  test("a mount's type, source and options of the wrong kind; a mount that is no object; no type at all", () => {
    expect(refused(withMounts(PROC, TMP, { destination: "/x", type: 7 }))).toBe("config.json: mounts[2].type: expected a string");
    expect(refused(withMounts({ destination: "/x", type: "tmpfs", source: ["a"] }))).toBe("config.json: mounts[0].source: expected a string");
    expect(refused(withMounts({ destination: "/x", type: "tmpfs", options: "ro" }))).toBe("config.json: mounts[0].options: expected an array of strings");
    expect(refused(withMounts({ destination: "/x", type: "tmpfs", options: ["ro", 1] }))).toBe("config.json: mounts[0].options[1]: expected an option string");
    // A comma would smuggle a second option into the mount's data string.
    expect(refused(withMounts({ destination: "/x", type: "tmpfs", options: ["size=1m,exec"] }))).toBe("config.json: mounts[0].options[0]: expected an option string");
    expect(refused(withMounts(PROC, "proc"))).toBe("config.json: mounts[1]: expected an object");
    expect(refused(withMounts({ destination: "/x" }))).toBe("config.json: mounts[0].type: expected a filesystem type or a bind mount");
    expect(refused({ ...podmanConfig(), mounts: {} })).toBe("config.json: mounts: expected an array");
  });

  test("process: missing, args missing or empty, terminal not a boolean", () => {
    const config = podmanConfig();
    delete config.process;
    expect(refused(config)).toBe("config.json: process: required (burrow-oci starts the container's process from it)");
    const noArgs = podmanConfig();
    delete (noArgs.process as Json).args;
    expect(refused(noArgs)).toBe("config.json: process.args: required");
    const emptyArgs = podmanConfig();
    (emptyArgs.process as Json).args = [];
    expect(refused(emptyArgs)).toBe("config.json: process.args: expected at least one string");
    const terminal = podmanConfig();
    (terminal.process as Json).terminal = "yes";
    expect(refused(terminal)).toBe("config.json: process.terminal: expected true or false");
  });

  test("the workload spec's own errors come through by path", () => {
    const config = podmanConfig();
    (config.process as Json).env = ["NOEQUALS"];
    expect(refused(config)).toBe('config.json: process.env[0]: expected "NAME=value"');
    const memory = podmanConfig();
    (memory.linux as Json).resources = { memory: { limit: 4096 } };
    expect(refused(memory)).toBe("config.json: linux.resources.memory.limit: below 1 MiB, the workload could not start");
  });

  test("annotations must be an object of strings", () => {
    expect(refused({ ...podmanConfig(), annotations: { a: 1 } })).toBe("config.json: annotations: expected an object of strings");
    expect(refused({ ...podmanConfig(), annotations: ["a"] })).toBe("config.json: annotations: expected an object of strings");
  });

  test("several problems: the first four, then a count", () => {
    const config = {
      ...withMounts({ destination: "a" }, { destination: "b" }, { destination: "c" }, { destination: "d" }, { destination: "e" }),
      root: {},
    };
    expect(refused(config)).toBe(
      "config.json: root.path: expected a path; mounts[0].destination: expected an absolute path; mounts[1].destination: expected an absolute path; mounts[2].destination: expected an absolute path; and 2 more",
    );
  });
});
