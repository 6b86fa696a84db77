// A container's root and mounts on the micro kernel: the root is a host directory shared over
// virtio-9p (burrow.root=9p:TAG), the mounts come from a bundle share's mounts.json
// (burrow.bundle=TAG), booted from burrow's ext4 boot disk under QEMU's seccomp sandbox. One boot
// checks every kind of mount, the read-only root, a volume that sees the host's writes while it
// runs, and symlinks the guest plants in a volume: stored as symlinks, never followed on the host.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawnSync } from "bun";
import { buildImage } from "../../src/image/build";
import { runVm, type RunResult } from "../../src/host/qemu";
import { GUEST_PLAN_FILE, serializeGuestPlan, type GuestPlan } from "../../src/oci/guest-plan";
import { BURROW, KERNEL_MICRO, requireArtifacts } from "../helpers/artifacts";
import { parseConsole, tail } from "../helpers/boot";

const BOOT_TIMEOUT_MS = 240_000;
/** BURROW_TEST_BINARY: boot a freshly compiled burrow instead of dist/burrow. */
const BINARY = process.env.BURROW_TEST_BINARY ?? BURROW;
const TOKEN = randomBytes(6).toString("hex");

/** The container's entry point: busybox sh reporting what it sees as "agent: key value" lines. */
const AGENT = `#!/bin/sh
say() { echo "agent: $*"; }
token=$1
say "root $(awk '$2 == "/" { print $3, $4 }' /proc/mounts | tail -1)"
for m in /proc /dev /dev/pts /dev/mqueue /dev/shm /sys /scratch /data /etc/hosts /run/.containerenv /escaped-up /escaped-abs; do
  say "mount $m $(awk -v m=$m '$2 == m { print $1, $3, $4 }' /proc/mounts | tail -1)"
done
say "scratch-mode $(stat -c %a /scratch)"
say "cgroups $(grep -c cgroup /proc/mounts)"
say "staging $(grep -c burrow-bundle /proc/mounts) $(ls -a /dev | grep -c burrow)"
say "vol-host $(cat /data/host.txt)"
echo "written by the guest" > /data/guest.txt && say "vol-write ok"
say "hosts $(cat /etc/hosts)"
echo "10.0.0.1 added" >> /etc/hosts && say "hosts-append $(tail -1 /etc/hosts)"
say "containerenv $(cat /run/.containerenv)"
if (echo x > /run/.containerenv) 2>/dev/null; then say "containerenv-write ok"; else say "containerenv-write refused"; fi
if touch /newfile 2>/tmp/err; then say "root-write ok"; else say "root-write $(cat /tmp/err)"; fi
say "live-before $(cat /data/live.txt)"
say "waiting-for-host"
i=0
while [ "$(cat /data/live.txt)" != "changed" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
say "live-after $(cat /data/live.txt)"
ln -s / /data/escape && ln -s ../../.. /data/up && say "symlinks made"
echo abs > /data/escape/tmp/escape-abs-$token && say "escape-abs written"
echo up > /data/up/tmp/escape-up-$token && say "escape-up written"
say "guest-tmp $(ls /tmp | grep "escape-.*-$token" | sort | tr '\\n' ' ')"
say "done"
`;

const PLAN: GuestPlan = {
  version: 1,
  readonlyRoot: true,
  mounts: [
    { kind: "fs", type: "proc", source: "proc", destination: "/proc", options: ["nosuid", "noexec", "nodev"] },
    { kind: "fs", type: "tmpfs", source: "tmpfs", destination: "/dev", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { kind: "fs", type: "devpts", source: "devpts", destination: "/dev/pts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { kind: "fs", type: "mqueue", source: "mqueue", destination: "/dev/mqueue", options: ["nosuid", "noexec", "nodev"] },
    { kind: "fs", type: "tmpfs", source: "shm", destination: "/dev/shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { kind: "fs", type: "sysfs", source: "sysfs", destination: "/sys", options: ["nosuid", "noexec", "nodev", "ro"] },
    { kind: "fs", type: "cgroup", source: "cgroup", destination: "/sys/fs/cgroup", options: ["nosuid", "noexec", "nodev", "relatime", "ro"] },
    { kind: "fs", type: "tmpfs", source: "tmpfs", destination: "/scratch", options: ["nosuid", "nodev", "mode=1777", "size=1m"] },
    // Through the image's own symlinks (/evil -> ../../.., /abs -> /): resolved inside the root.
    { kind: "fs", type: "tmpfs", source: "up", destination: "/evil/escaped-up", options: ["size=64k"] },
    { kind: "fs", type: "tmpfs", source: "abs", destination: "/abs/escaped-abs", options: ["size=64k"] },
    { kind: "share", tag: "vol0", destination: "/data", options: ["rbind", "rprivate", "rw", "nosuid"] },
    { kind: "file", file: "files/hosts", destination: "/etc/hosts", options: ["bind", "rprivate"] },
    { kind: "file", file: "files/containerenv", destination: "/run/.containerenv", options: ["bind", "ro", "nosuid", "nodev"] },
  ],
};

const HOSTS = "127.0.0.1 localhost container";

describe("a container root on a 9p share with a bundle's mounts (micro kernel, boot disk)", () => {
  const work = mkdtempSync(join(tmpdir(), "burrow-container-root-"));
  const bootDisk = join(work, "boot.ext4");
  const root = join(work, "root");
  const bundle = join(work, "bundle");
  const volume = join(work, "vol");

  beforeAll(async () => {
    requireArtifacts(KERNEL_MICRO, BINARY);
    await buildImage({ binary: BINARY, out: bootDisk, kernelDir: null, modules: [], add: [], compress: "none", mtime: 0, format: "ext4" });
    // The image: Debian's busybox-static and its applets, the agent, empty mount points for the VM's API filesystems.
    const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((path) => existsSync(path) && /statically linked/.test(spawnSync(["file", "-L", path]).stdout.toString()));
    if (!busybox) throw new Error("no static busybox on the host (busybox-static; `npx just deps` installs it)");
    for (const dir of ["bin", "etc", "proc", "sys", "dev", "run", "tmp"]) mkdirSync(join(root, dir), { recursive: true });
    copyFileSync(busybox, join(root, "bin/busybox"));
    chmodSync(join(root, "bin/busybox"), 0o755);
    for (const applet of spawnSync([busybox, "--list"]).stdout.toString().split("\n").filter((name) => name && name !== "busybox")) symlinkSync("busybox", join(root, "bin", applet));
    writeFileSync(join(root, "agent"), AGENT, { mode: 0o755 });
    symlinkSync("../../..", join(root, "evil"));
    symlinkSync("/", join(root, "abs"));
    mkdirSync(join(bundle, "files"), { recursive: true });
    writeFileSync(join(bundle, GUEST_PLAN_FILE), serializeGuestPlan(PLAN));
    writeFileSync(join(bundle, "files/hosts"), `${HOSTS}\n`);
    writeFileSync(join(bundle, "files/containerenv"), "engine=\"burrow-test\"\n");
    mkdirSync(volume);
    writeFileSync(join(volume, "host.txt"), "from the host\n");
    writeFileSync(join(volume, "live.txt"), "initial\n");
  }, BOOT_TIMEOUT_MS);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test("every mount kind, a read-only root, a live volume, planted symlinks stay symlinks", async () => {
    const before = readdirSync(work).sort();
    let output = "";
    let told = false;
    const result: RunResult = await runVm({
      kernel: KERNEL_MICRO, initrd: null, disks: [bootDisk], readOnlyDisks: [bootDisk], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "tcg",
      append: `root=/dev/vda init=/init burrow.root=9p:rootfs burrow.bundle=bundle burrow.agent=/agent burrow.zram=off -- ${TOKEN}`,
      timeoutSeconds: 180,
      sandbox: true,
      shares: [
        { tag: "rootfs", path: root, readOnly: false },
        { tag: "bundle", path: bundle, readOnly: true },
        { tag: "vol0", path: volume, readOnly: false },
      ],
    }, (chunk) => {
      output += chunk;
      if (process.env.BURROW_TEST_CONSOLE) process.stderr.write(chunk);
      // The guest has read the file once; now the host changes it under the running guest.
      if (!told && output.includes("agent: waiting-for-host")) {
        told = true;
        writeFileSync(join(volume, "live.txt"), "changed\n");
      }
    });
    const { agent, burrow } = parseConsole(result.output);
    const value = (key: string) => agent.get(key) ?? [];
    const explain = `outcome ${result.outcome} (${result.reason})\n${tail(result, 80)}`;
    if (!agent.has("done")) throw new Error(`the agent did not finish:\n${explain}`);
    expect(result, explain).toMatchObject({ outcome: "exit-status", exitCode: 0 });

    // The root: the share, read-only once the mount points were made.
    expect(burrow.some((line) => /^burrow: root 9p:rootfs mounted on \/sysroot rw,noatime \(trans=virtio,version=9p2000\.L,msize=\d+,cache=loose\)$/.test(line)), explain).toBe(true);
    expect(value("root")[0]).toMatch(/^9p ro,/);
    expect(value("root-write")).toEqual(["touch: /newfile: Read-only file system"]);
    expect(existsSync(join(root, "newfile"))).toBe(false);

    // Each mount as the workload sees it (the last line for a path is the one on top).
    const mounts = new Map(value("mount").map((line) => [line.split(" ")[0]!, line.split(" ").slice(1).join(" ")]));
    expect(mounts.get("/proc")).toMatch(/^proc proc rw,nosuid,nodev,noexec,.*hidepid=/);
    expect(mounts.get("/dev")).toMatch(/^devtmpfs devtmpfs /);
    expect(mounts.get("/dev/pts")).toMatch(/^devpts devpts rw,nosuid,noexec,.*gid=5,mode=620,ptmxmode=666/);
    expect(mounts.get("/dev/mqueue")).toMatch(/^mqueue mqueue rw,nosuid,nodev,noexec/);
    expect(mounts.get("/dev/shm")).toMatch(/^shm tmpfs rw,nosuid,nodev,noexec,.*size=65536k/);
    expect(mounts.get("/sys")).toMatch(/^sysfs sysfs ro,nosuid,nodev,noexec/);
    expect(mounts.get("/scratch")).toMatch(/^tmpfs tmpfs rw,nosuid,nodev,.*size=1024k/);
    expect(value("scratch-mode")).toEqual(["1777"]);
    expect(mounts.get("/data")).toMatch(/^vol0 9p rw,.*nosuid.*mmap/);
    expect(mounts.get("/etc/hosts")).toMatch(/^burrow-files tmpfs rw,/);
    // The image's symlinks led the mount points into the root itself, where the workload finds the mounts.
    expect(mounts.get("/escaped-up")).toMatch(/^up tmpfs /);
    expect(mounts.get("/escaped-abs")).toMatch(/^abs tmpfs /);
    expect(lstatSync(join(root, "escaped-up")).isDirectory()).toBe(true);
    expect(lstatSync(join(root, "escaped-abs")).isDirectory()).toBe(true);
    expect(mounts.get("/run/.containerenv")).toMatch(/^burrow-files tmpfs ro,nosuid,nodev,/);
    // The micro kernel has cgroups now (the workload's limits): the plan's cgroup mount is made, nothing skipped.
    expect(value("cgroups")).toEqual(["1"]);
    expect(burrow.filter((line) => /container mount \/sys\/fs\/cgroup .*skipped/.test(line))).toEqual([]);
    expect(burrow.some((line) => /container mount \/dev \(tmpfs\): the VM's own devtmpfs stays there; skipped/.test(line))).toBe(true);
    // The staging mounts are gone before the workload starts.
    expect(value("staging")).toEqual(["0 0"]);

    // Files: copies of the bundle's, the writable one takes a line, the read-only one refuses; the host's stay as they were.
    expect(value("hosts")).toEqual([HOSTS]);
    expect(value("hosts-append")).toEqual(["10.0.0.1 added"]);
    expect(value("containerenv")).toEqual(['engine="burrow-test"']);
    expect(value("containerenv-write")).toEqual(["refused"]);
    expect(readFileSync(join(bundle, "files/hosts"), "utf8")).toBe(`${HOSTS}\n`);

    // The volume: host → guest at boot and while running, guest → host.
    expect(value("vol-host")).toEqual(["from the host"]);
    expect(value("vol-write")).toEqual(["ok"]);
    expect(readFileSync(join(volume, "guest.txt"), "utf8")).toBe("written by the guest\n");
    expect(value("live-before")).toEqual(["initial"]);
    expect(value("live-after")).toEqual(["changed"]);

    // Planted symlinks: plain symlinks on the host; what was written through them went to the guest's own /tmp.
    expect(value("symlinks")).toEqual(["made"]);
    expect(value("escape-abs")).toEqual(["written"]);
    expect(value("escape-up")).toEqual(["written"]);
    expect(value("guest-tmp")[0]?.trim()).toBe(`escape-abs-${TOKEN} escape-up-${TOKEN}`);
    expect(lstatSync(join(volume, "escape")).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(volume, "escape"))).toBe("/");
    expect(readlinkSync(join(volume, "up"))).toBe("../../..");
    for (const path of [`/tmp/escape-abs-${TOKEN}`, resolve(volume, "../../..", `tmp/escape-up-${TOKEN}`), join(root, "tmp", `escape-abs-${TOKEN}`), join(root, "tmp", `escape-up-${TOKEN}`)]) {
      expect(existsSync(path), path).toBe(false);
    }
    expect(readdirSync(volume).sort()).toEqual(["escape", "guest.txt", "host.txt", "live.txt", "up"]);
    expect(readdirSync(work).sort()).toEqual(before);
  }, BOOT_TIMEOUT_MS);

  test("a plan mount that cannot be made ends the boot with one line naming it (destination, type, errno, the tags there)", async () => {
    const broken = join(work, "bundle-broken");
    mkdirSync(broken);
    writeFileSync(join(broken, GUEST_PLAN_FILE), serializeGuestPlan({ version: 1, readonlyRoot: false, mounts: [{ kind: "share", tag: "missing", destination: "/data", options: ["rbind"] }] }));
    const result = await runVm({
      kernel: KERNEL_MICRO, initrd: null, disks: [bootDisk], readOnlyDisks: [bootDisk], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "tcg",
      append: "root=/dev/vda init=/init burrow.root=9p:rootfs burrow.bundle=bundle burrow.agent=/agent burrow.zram=off", timeoutSeconds: 180,
      shares: [{ tag: "rootfs", path: root, readOnly: false }, { tag: "bundle", path: broken, readOnly: true }],
    });
    const explain = `outcome ${result.outcome} (${result.reason})\n${tail(result, 40)}`;
    const { agent, burrow } = parseConsole(result.output);
    const lines = burrow.filter((line) => line.includes("container mount"));
    expect(lines, explain).toEqual(['burrow: boot failed: container-mounts: container mount /data (9p share missing): mount: ENOENT (no virtio-9p share tagged "missing"; tags present: bundle, rootfs)']);
    expect(agent.size).toBe(0);
    expect(result.outcome, explain).toBe("exit-status");
    expect(result.exitCode).not.toBe(0);
  }, BOOT_TIMEOUT_MS);
});
