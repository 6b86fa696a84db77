// arm64 guests end to end: burrow cross-built for aarch64 (dist/arm64/burrow in the image), Debian's
// arm64 kernel with its drivers as modules, qemu-system-aarch64 -machine virt -cpu max under TCG
// (slow: few boots, generous timeouts), and a snapshot saved and restored there. `just test` builds
// the artifacts; a missing one is an error naming it, as for every boot test, never a skip.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildImage } from "../../src/image/build";
import { restoreSnapshot, saveSnapshot } from "../../src/host/snapshot";
import { BUSYBOX_ARM64, BURROW_ARM64, INITRAMFS_ARM64, KERNEL_ARM64, KERNEL_ARM64_DIR, KERNEL_MICRO_ARM64, requireArtifacts, ROOT, ROOTFS_ARM64 } from "../helpers/artifacts";
import { boot, keyedLines, parseConsole, tail, type BootResult } from "../helpers/boot";
import { elfHeader, oneModuleImage } from "../helpers/module-image";

const BOOT_TIMEOUT_MS = 600_000;
const ARTIFACTS = [KERNEL_ARM64, INITRAMFS_ARM64, ROOTFS_ARM64, BURROW_ARM64, BUSYBOX_ARM64];
const arm64 = { arch: "arm64", machine: "virt", kernel: KERNEL_ARM64, initrd: INITRAMFS_ARM64, timeoutSeconds: 500 } as const;

function values(result: BootResult, key: string): string[] {
  return result.agent.get(key) ?? [];
}

function explain(result: BootResult): string {
  return `outcome ${result.outcome} (${result.reason})\n${tail(result, 80)}`;
}

describe("arm64 microvm (qemu-system-aarch64 -machine virt, Debian's arm64 kernel)", () => {
  beforeAll(() => requireArtifacts(...ARTIFACTS));

  test("root by label on the second disk, console on ttyAMA0, modules with dependencies and parameters, zram, ports, switch_root, clean exec (burrow.supervise=0: the agent is PID 1)", async () => {
    const work = mkdtempSync(join(tmpdir(), "burrow-arm64-"));
    try {
      // A blank disk first: the root is then not /dev/vda and only its label can find it.
      const blank = join(work, "blank.img");
      writeFileSync(blank, new Uint8Array(4 << 20));
      const result = await boot({
        ...arm64,
        disks: [blank, ROOTFS_ARM64],
        ports: [{ name: "demo.port", file: null }, { name: "org.example.events", file: null }],
        append: "burrow.supervise=0 root=LABEL=burrow-root burrow.zram=64M burrow.zram.prio=7 virtio_blk.queue_depth=128 burrow.modules=virtio_balloon -- hello arm64",
      });
      if (!result.agent.has("done")) throw new Error(`the agent did not finish:\n${explain(result)}`);

      // burrow itself ran as the aarch64 build, on the arm64 kernel.
      expect(result.output).toMatch(/burrow: burrow \S+ starting as PID 1: mode microvm, kernel \S+-arm64/);
      expect(result.output).toMatch(/burrow: root device LABEL=burrow-root is \/dev\/vdb/);
      expect(values(result, "mount")).toContain("/ ext4 /dev/vdb rw,noatime");
      for (const api of ["/dev devtmpfs", "/proc proc", "/sys sysfs", "/tmp tmpfs", "/run tmpfs", "/dev/pts devpts", "/dev/shm tmpfs"]) {
        expect(values(result, "mount").some((line) => line.startsWith(api))).toBe(true);
      }

      // The console: the kernel's on the PL011, and burrow routed the agent's stdout/stderr there
      // (the shell keeps copies of them on fds >= 10), not on the dead 16550 slot ttyS0.
      expect(values(result, "cmdline")[0]).toMatch(/^console=ttyAMA0 /);
      const fds = values(result, "fd").map((line) => line.split(" -> ") as [string, string]);
      expect(fds.filter(([fd, target]) => Number(fd) >= 10 && target === "/dev/ttyAMA0").length).toBeGreaterThanOrEqual(1);
      expect(fds.filter(([, target]) => /ttyS\d/.test(target))).toEqual([]);
      const leaked = fds.filter(([fd, target]) => Number(fd) >= 3 && !["/usr/local/bin/guest-agent", "/tmp/agent-fds", "/dev/ttyAMA0"].includes(target));
      expect(leaked).toEqual([]);

      // Modules: virtio over PCI and ext4 with their dependencies, the extra one, a parameter.
      const modules = values(result, "modules")[0]!.trim().split(" ");
      for (const name of ["virtio_pci", "virtio_pci_modern_dev", "virtio_blk", "virtio_console", "ext4", "jbd2", "mbcache", "crc16", "zram", "zsmalloc", "virtio_balloon"]) expect(modules).toContain(name);
      expect(values(result, "param")).toContain("virtio_blk.queue_depth=128");

      expect(values(result, "swap")).toEqual([`/dev/zram0 type=partition size_kib=${64 * 1024 - 4} prio=7`]);
      expect(values(result, "zram")[0]).toContain("[lz4]");
      // vportNpM: N is the virtio-serial device's index, after the two disks here.
      const ports = values(result, "port").sort();
      expect(ports).toHaveLength(2);
      expect(ports[0]).toMatch(/^demo\.port -> \.\.\/vport\d+p1$/);
      expect(ports[1]).toMatch(/^org\.example\.events -> \.\.\/vport\d+p2$/);

      // switch_root: the initramfs is gone from /, its memory given back; the agent is PID 1 with a clean slate.
      expect(values(result, "initramfs-left")[0]!.split(" ")).not.toContain("init");
      const mem = Object.fromEntries(values(result, "meminfo").map((entry) => entry.split("=")).map(([k, v]) => [k!, Number(v)]));
      expect(mem.MemAvailable!).toBeGreaterThan(mem.MemTotal! - 100 * 1024);
      expect(values(result, "pid")[0]).toBe("1 ppid=0");
      expect(values(result, "argc")).toEqual(["2"]);
      expect(values(result, "arg[1]")).toEqual(["hello"]);
      expect(values(result, "arg[2]")).toEqual(["arm64"]);
      expect(values(result, "env").filter((line) => /^(BUN_|JSC_|NODE_|LD_)/.test(line))).toEqual([]);
      expect(values(result, "sigign")).toEqual(["0000000000000000"]);
      expect(values(result, "sigblk")).toEqual(["0000000000000000"]);
      const report = JSON.parse(values(result, "boot-report")[0] ?? "null") as { steps: { name: string; status: string }[] };
      const statuses = Object.fromEntries(report.steps.map((step) => [step.name, step.status]));
      for (const step of ["mounts", "console", "uevents", "modules", "zram", "root-device", "virtio-ports", "root", "harden", "switch-root", "start-workload"]) expect(statuses[step]).toBe("ok");

      expect(result.output).not.toMatch(/Kernel panic/);
      expect(result.outcome).toBe("poweroff");
      expect(result.exitCode).toBe(0);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, BOOT_TIMEOUT_MS);

  test("fallback: a root label no disk carries fails after burrow.rootwait with one line, and the VM powers off with status 1", async () => {
    const result = await boot({ ...arm64, disks: [ROOTFS_ARM64], append: "root=LABEL=nowhere burrow.rootwait=1500 burrow.zram=off" });
    if (!/boot failed: root-device: root device LABEL=nowhere did not appear within 1500 ms \(ENODEV/.test(result.output)) throw new Error(`no cause line:\n${explain(result)}`);
    expect(result.output).toMatch(/burrow: guest exit status 1/);
    expect(result.outcome).toBe("exit-status");
    expect(result.exitCode).toBe(1);
    expect(result.agent.has("start")).toBe(false);
    expect(result.output).not.toMatch(/Kernel panic/);
  }, BOOT_TIMEOUT_MS);
});

describe("arm64 paravisor plan (Debian's arm64 kernel, ordered modules)", () => {
  let work = "";
  let image = "";

  beforeAll(async () => {
    requireArtifacts(...ARTIFACTS);
    work = mkdtempSync(join(tmpdir(), "burrow-arm64-paravisor-"));
    image = join(work, "paravisor.img");
    // The x86_64 paravisor tests' worker, run by the arm64 busybox.
    symlinkSync("busybox", join(work, "sh"));
    await buildImage({
      binary: BURROW_ARM64, arch: "arm64", out: image, kernelDir: KERNEL_ARM64_DIR, modules: [], mode: "paravisor",
      add: [[BUSYBOX_ARM64, "/bin/busybox"], [join(work, "sh"), "/bin/sh"], [join(ROOT, "test/fixtures/paravisor/openvmm_hcl.sh"), "/bin/openvmm_hcl"], [join(ROOT, "test/fixtures/partitions/none.json"), "/partition.json"]],
      compress: "none", mtime: 0,
    });
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("runs the worker (stderr on ttyprintk) and passes its exit code 7 to the host", async () => {
    const result = await boot({ ...arm64, initrd: image, append: "burrow.mode=paravisor -- --foo" });
    const hcl = keyedLines(result.output, "[U] hcl: ");
    if (result.exitCode !== 7 || !hcl.has("end")) throw new Error(`the worker did not end with 7:\n${explain(result)}`);
    expect(hcl.get("arg")).toEqual(["--pid", "/run/underhill.pid", "--foo"]);
    expect(hcl.get("ppid")).toEqual(["1"]);
    expect(hcl.get("stdin")?.[0]).toBe("/dev/null stdout /dev/null stderr /dev/ttyprintk");
    // burrow.onexit=exit (the default): PID 1 exits with the worker's status, as underhill_init does.
    expect(result.outcome).toBe("init-exited");
  }, BOOT_TIMEOUT_MS);

  test("lower-VTL memory: one line saying it is x86_64 only, then the fallback", async () => {
    const result = await boot({ ...arm64, initrd: image, append: "burrow.mode=paravisor burrow.partition=/partition.json" });
    // The plan ran on arm64 up to the memory step (its module loaded, limits set), then one line.
    expect(result.output).toMatch(/burrow: loaded kernel module ttyprintk/);
    const lines = result.output.split("\n").filter((line) => line.includes("lower-VTL"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/burrow: (error: )?boot failed: memory: lower-VTL memory is x86_64 only \(this is arm64\); burrow\.partition=\/partition\.json cannot be set up/);
    expect(keyedLines(result.output, "[U] hcl: ").has("start")).toBe(false);
    expect(result.outcome).toBe("init-exited");
    expect(result.exitCode).toBe(1);
  }, BOOT_TIMEOUT_MS);
});

describe("arm64 snapshot point (qemu-system-aarch64 saves and restores -machine virt)", () => {
  let work = "";
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("save once, restore twice at once: the manifest names arm64, each restore its own entropy, args and instance", async () => {
    requireArtifacts(...ARTIFACTS);
    work = mkdtempSync(join(tmpdir(), "burrow-arm64-snapshot-"));
    // The snapshot records its disks' identities: a private copy no other test touches.
    const disk = join(work, "rootfs.ext4");
    copyFileSync(ROOTFS_ARM64, disk);
    const dir = join(work, "snap");
    const saved = await saveSnapshot({
      arch: "arm64", machine: "virt", kernel: KERNEL_ARM64, initrd: INITRAMFS_ARM64, disks: [disk], ports: [{ name: "demo.port", file: null }],
      mem: "512M", smp: 1, accel: "tcg", append: "root=LABEL=burrow-root burrow.zram=64M -- saved-args", timeoutSeconds: 500,
    }, dir);
    expect(saved.manifest.options.arch).toBe("arm64");
    expect(saved.run.output).toMatch(/burrow: snapshot point: ready on burrow\.control/);

    const before = Date.now();
    const [first, second] = await Promise.all([
      restoreSnapshot(dir, { args: ["one", "a b"], instance: "first", timeoutSeconds: 300 }),
      restoreSnapshot(dir, { args: ["two"], instance: "second", timeoutSeconds: 300 }),
    ]);
    const agents = [first, second].map((result) => {
      const { agent } = parseConsole(result.output);
      if (!agent.has("done")) throw new Error(`arm64 restore ${result.instance} did not reach the agent's end: outcome ${result.outcome} (${result.reason})\n${result.output.split("\n").slice(-60).join("\n")}`);
      // Supervise mode (the default): the agent exits, the supervisor reports status 0.
      expect(agent.get("pid")![0]).toMatch(/^\d+ ppid=1$/);
      expect(result.outcome).toBe("exit-status");
      expect(result.exitCode).toBe(0);
      expect(agent.get("env")).toContain(`BURROW_INSTANCE=${result.instance}`);
      expect(Math.abs(Number(agent.get("clock")![0]) * 1000 - before)).toBeLessThan(120_000);
      expect(agent.get("cmdline")![0]).toMatch(/^console=ttyAMA0 /);
      return agent;
    });
    expect(agents[0]!.get("argc")).toEqual(["2"]);
    expect(agents[0]!.get("arg[2]")).toEqual(["a b"]);
    expect(agents[1]!.get("arg[1]")).toEqual(["two"]);
    expect(agents[0]!.get("urandom")![0]).toMatch(/^[0-9a-f]{32}$/);
    expect(agents[0]!.get("urandom")).not.toEqual(agents[1]!.get("urandom"));
    console.log(`arm64 restore: resumed after ${first.timings?.resumedMs.toFixed(0)} / ${second.timings?.resumedMs.toFixed(0)} ms (two at once), state ${(saved.manifest.saved.state.size / 2 ** 20).toFixed(1)} MiB, RAM file ${(saved.manifest.ramAllocatedBytes / 2 ** 20).toFixed(1)} MiB written`);
  }, BOOT_TIMEOUT_MS);
});

describe("arm64 micro kernel (kernel-config/common.config + arm64.config: drivers built in) from burrow's ext4 boot disk", () => {
  let work = "";
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("no initramfs, no modules: root by label, zram, ports, the boot disk detached, the agent supervised (the default)", async () => {
    requireArtifacts(KERNEL_MICRO_ARM64, BURROW_ARM64, ROOTFS_ARM64);
    work = mkdtempSync(join(tmpdir(), "burrow-arm64-micro-"));
    const bootDisk = join(work, "boot.ext4");
    await buildImage({ binary: BURROW_ARM64, arch: "arm64", out: bootDisk, kernelDir: null, modules: [], add: [], compress: "none", mtime: 0, format: "ext4" });
    const result = await boot({
      ...arm64, kernel: KERNEL_MICRO_ARM64, initrd: null, disks: [bootDisk, ROOTFS_ARM64], readOnlyDisks: [bootDisk], ports: [{ name: "demo.port", file: null }],
      append: "root=/dev/vda init=/init burrow.root=LABEL=burrow-root burrow.zram=64M -- micro arm64",
    });
    if (!result.agent.has("done")) throw new Error(`the agent did not finish:\n${explain(result)}`);
    expect(result.output).toMatch(/VFS: Mounted root \(ext4 filesystem\) readonly/);
    expect(result.output).toMatch(/burrow: burrow \S+ starting as PID 1: mode microvm, kernel 6\.1\.\d+, /);
    expect(result.output).toMatch(/burrow: root device LABEL=burrow-root is \/dev\/vdb/);
    expect(result.output).toMatch(/burrow: switched root: old root detached/);
    // Detached at the switch, freed at the exec: the kernel unmounts the boot disk's filesystem.
    expect(result.output).toMatch(/EXT4-fs \(vda\): unmounting filesystem/);
    expect(values(result, "mount")).toContain("/ ext4 /dev/vdb rw,noatime");
    expect(values(result, "ext4")[0]?.trim()).toBe("vdb");
    expect(values(result, "modules")[0]?.trim() ?? "").toBe("");
    expect(values(result, "swap")).toEqual([`/dev/zram0 type=partition size_kib=${64 * 1024 - 4} prio=100`]);
    expect(values(result, "port").some((line) => /^demo\.port -> \.\.\/vport\d+p1$/.test(line))).toBe(true);
    expect(values(result, "cmdline")[0]).toMatch(/^console=ttyAMA0 /);
    expect(values(result, "argc")).toEqual(["2"]);
    // The resident supervisor's child; it exits and the supervisor reports its status 0.
    expect(values(result, "pid")[0]).toMatch(/^\d+ ppid=1$/);
    expect(result.burrow.some((line) => /^burrow: workload \(pid \d+\) exited with status 0$/.test(line))).toBe(true);
    expect(result.outcome).toBe("exit-status");
    expect(result.exitCode).toBe(0);
  }, BOOT_TIMEOUT_MS);
});

// test/unit/arch.test.ts checks modules against an image of this host's architecture; here the
// arm64 image's supervisor is cross-compiled (aarch64-linux-gnu-gcc, which `just test` installs).
describe("an arm64 image from any host: arm64 modules taken, plain and compressed", () => {
  test("each compression's module is read as arm64 and goes in; an x86_64 one is refused", async () => {
    const work = mkdtempSync(join(tmpdir(), "burrow-arm64-modules-"));
    try {
      const packs: [string, (bytes: Uint8Array<ArrayBuffer>) => Uint8Array][] = [
        ["ko", (bytes) => bytes],
        ["ko.zst", (bytes) => Bun.zstdCompressSync(bytes)],
        ["ko.gz", (bytes) => Bun.gzipSync(bytes)],
        ["ko.xz", (bytes) => new Uint8Array(Bun.spawnSync(["xz", "--stdout"], { stdin: bytes }).stdout)],
      ];
      for (const [extension, pack] of packs) {
        const image = oneModuleImage(work, `foo.${extension}`, pack(elfHeader(183)), "arm64");
        const summary = await image.build();
        expect(summary.modules).toEqual(["foo"]);
        expect(summary.arch).toBe("arm64");
        expect(existsSync(image.out)).toBe(true);
      }
      await expect(oneModuleImage(work, "foo.ko.zst", Bun.zstdCompressSync(elfHeader(62)), "arm64").build()).rejects.toThrow(/is for x86_64, but the image is for arm64/);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
