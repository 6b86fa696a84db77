// microvm mode end to end: the micro kernel (the default) or Debian's where modules are the point,
// under QEMU (TCG), burrow as PID 1 from the initramfs,
// the demo root disk; assertions on what the guest agent (the resident supervisor's child, or PID 1
// with burrow.supervise=0) reports, or on the one-line cause and the fallback when boot cannot complete.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "bun";
import { buildImage } from "../../src/image/build";
import { BURROW, INITRAMFS, INITRAMFS_DEBIAN, KERNEL, KERNEL_MICRO, requireArtifacts, ROOT, ROOTFS } from "../helpers/artifacts";
import { boot, tail, type BootResult } from "../helpers/boot";

const BOOT_TIMEOUT_MS = 150_000;
/** Debian's kernel and an image with its microvm module set: for what only modules can show. */
const DEBIAN = { kernel: KERNEL, initrd: INITRAMFS_DEBIAN };

function values(result: BootResult, key: string): string[] {
  return result.agent.get(key) ?? [];
}

function meminfo(result: BootResult): Record<string, number> {
  return Object.fromEntries(values(result, "meminfo").map((entry) => entry.split("=")).map(([k, v]) => [k!, Number(v)]));
}

function explain(result: BootResult): string {
  return `outcome ${result.outcome} (${result.reason})\n${tail(result, 80)}`;
}

type StepStatus = "ok" | "skipped" | "failed";

/** Each step's status in a completed boot: all ok, but the network step needs burrow.net, the overlay burrow.overlay and the snapshot point burrow.snapshot. */
const HEALTHY_STEPS: Record<string, StepStatus> = {
  mounts: "ok", console: "ok", uevents: "ok", modules: "ok", zram: "ok", "root-device": "ok", "virtio-ports": "ok",
  network: "skipped", nic: "skipped", root: "ok", overlay: "skipped", "container-mounts": "skipped", harden: "ok", "switch-root": "ok", snapshot: "skipped", "start-workload": "ok",
};

/**
 * What every completed boot must show: the agent as the supervisor's child (supervise mode, the
 * default) or as PID 1 (`exec`: burrow.supervise=0), a clean handover, a full report with each
 * step's status (HEALTHY_STEPS, with this boot's `statuses` over it), and the VM's end: the
 * supervisor's status line after the agent's exit, or the agent's own power-off.
 */
function expectHealthyAgent(result: BootResult, args: string[], statuses: Record<string, StepStatus> = {}, mode: "supervise" | "exec" = "supervise"): void {
  if (!result.agent.has("done")) throw new Error(`the agent did not finish:\n${explain(result)}`);
  const pid = values(result, "pid")[0] ?? "";
  if (mode === "exec") expect(pid).toBe("1 ppid=0");
  else expect(pid).toMatch(/^([2-9]|\d{2,}) ppid=1$/);
  expect(values(result, "argc")).toEqual([String(args.length)]);
  args.forEach((arg, index) => expect(values(result, `arg[${index + 1}]`)).toEqual([arg]));

  const env = values(result, "env");
  expect(env).toContain("HOME=/root");
  expect(env).toContain("TERM=linux");
  expect(env).toContain("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  expect(env.some((line) => /^KERNEL_BOOT_TIME=\d{6,}$/.test(line))).toBe(true);
  expect(env.filter((line) => /^(BUN_|JSC_|NODE_|LD_)/.test(line))).toEqual([]);

  // Nothing blocked or ignored crosses the exec (Bun ignores SIGPIPE and SIGXFSZ).
  expect(values(result, "sigign")).toEqual(["0000000000000000"]);
  expect(values(result, "sigblk")).toEqual(["0000000000000000"]);

  // fds at the agent's start: 0-2 on the console; besides, only the shell's own (its script, the listing file).
  const fds = values(result, "fd").map((line) => line.split(" -> ") as [string, string]);
  const console = fds.filter(([fd]) => ["0", "1", "2"].includes(fd));
  expect(console.map(([fd]) => fd).sort()).toEqual(["0", "1", "2"]);
  const leaked = fds.filter(([fd, target]) => Number(fd) >= 3 && !["/usr/local/bin/guest-agent", "/tmp/agent-fds"].includes(target) && !/^\/dev\/(ttyS0|hvc0|console)$/.test(target));
  expect(leaked).toEqual([]);

  const report = JSON.parse(values(result, "boot-report")[0] ?? "null") as { steps: { name: string; status: string; startMs: number; endMs: number }[] };
  expect(report).not.toBeNull();
  const steps = report.steps.map((step) => step.name);
  expect(steps).toEqual(["mounts", "console", "uevents", "modules", "zram", "root-device", "virtio-ports", "network", "nic", "root", "overlay", "container-mounts", "harden", "switch-root", "snapshot", "start-workload"]);
  expect(Object.fromEntries(report.steps.map((step) => [step.name, step.status]))).toEqual({ ...HEALTHY_STEPS, ...statuses });
  for (const step of report.steps) expect(step.endMs).toBeGreaterThanOrEqual(step.startMs);
  expect(result.output).not.toMatch(/Kernel panic/);
  if (mode === "exec") {
    // The agent powers off itself (poweroff -f): no exit-status line, nothing else.
    expect(result.output).not.toMatch(/burrow: guest exit status/);
    expect(result.outcome).toBe("poweroff");
  } else {
    // The agent exits; the supervisor reports it (the pid the agent saw), stops in order and powers off.
    expect(result.burrow).toContain(`burrow: workload (pid ${pid.split(" ")[0]}) exited with status 0`);
    expect(result.burrow.some((line) => /^burrow: teardown: .*\/ read-only, synced/.test(line))).toBe(true);
    expect(result.output).toMatch(/reboot: Power down/);
    expect(result.outcome).toBe("exit-status");
  }
  expect(result.exitCode).toBe(0);
}

describe("microvm mode: complete boot", () => {
  test("-machine microvm (Debian's kernel): root, zram, ports, modules + parameters, clean exec, initramfs reclaimed", async () => {
    const result = await boot({
      ...DEBIAN,
      machine: "microvm",
      disks: [ROOTFS],
      ports: [{ name: "demo.port", file: null }, { name: "org.example.events", file: null }],
      append: "zram.num_devices=2 virtio_blk.queue_depth=128 burrow.modules=virtio_balloon -- hello \"two words\"",
    });
    expectHealthyAgent(result, ["hello", "two words"]);

    expect(values(result, "mount")).toContain("/ ext4 /dev/vda rw,noatime");
    for (const api of ["/dev devtmpfs", "/proc proc", "/sys sysfs", "/tmp tmpfs", "/run tmpfs", "/dev/pts devpts", "/dev/shm tmpfs"]) {
      expect(values(result, "mount").some((line) => line.startsWith(api))).toBe(true);
    }

    // zram: 50% of MemTotal by default, priority 100, lz4 first in the default list.
    const mem = meminfo(result);
    const swap = values(result, "swap");
    expect(swap).toHaveLength(1);
    const [, sizeKib, prio] = /^\/dev\/zram0 type=partition size_kib=(\d+) prio=(-?\d+)$/.exec(swap[0]!) ?? [];
    // The kernel reports the area minus its header page.
    expect(Math.abs(Number(sizeKib) + 4 - Math.floor(mem.MemTotal! / 2 / 4) * 4)).toBeLessThanOrEqual(4);
    expect(prio).toBe("100");
    expect(values(result, "zram")[0]).toContain("[lz4]");
    expect(values(result, "sysctl")).toEqual(["page-cluster=0 swappiness=100 watermark_boost_factor=0"]);

    // Modules: the base set, the requested one, parameters from the command line.
    const modules = values(result, "modules")[0]!.split(" ");
    for (const name of ["virtio_mmio", "virtio_blk", "virtio_console", "ext4", "zram", "lz4", "virtio_balloon"]) expect(modules).toContain(name);
    expect(values(result, "param")).toContain("virtio_blk.queue_depth=128");
    expect(values(result, "block")[0]).toContain("zram1");

    const ports = values(result, "port");
    expect(ports).toContain("demo.port -> ../vport1p1");
    expect(ports).toContain("org.example.events -> ../vport1p2");

    // 512 MiB guest, ~112 MiB initramfs: kept, it would cost >100 MiB of MemAvailable.
    expect(mem.MemAvailable!).toBeGreaterThan(mem.MemTotal! - 100 * 1024);
  }, BOOT_TIMEOUT_MS);

  test("-machine q35 (PCI, Debian's kernel): root by LABEL=, zram size and priority from the command line", async () => {
    const result = await boot({
      ...DEBIAN,
      machine: "q35",
      disks: [ROOTFS],
      ports: [{ name: "demo.port", file: null }],
      append: "root=LABEL=burrow-root burrow.zram=64M burrow.zram.prio=7 burrow.swappiness=60 -- q35",
    });
    expectHealthyAgent(result, ["q35"]);
    expect(result.output).toMatch(/burrow: root device LABEL=burrow-root is \/dev\/vda/);
    expect(values(result, "mount")).toContain("/ ext4 /dev/vda rw,noatime");
    expect(values(result, "swap")).toEqual([`/dev/zram0 type=partition size_kib=${64 * 1024 - 4} prio=7`]);
    expect(values(result, "sysctl")).toEqual(["page-cluster=0 swappiness=60 watermark_boost_factor=0"]);
    expect(values(result, "port")).toContain("demo.port -> ../vport1p1");
    expect(values(result, "modules")[0]).toContain("virtio_pci");
    const mem = meminfo(result);
    expect(mem.MemAvailable!).toBeGreaterThan(mem.MemTotal! - 100 * 1024);
  }, BOOT_TIMEOUT_MS);
});

/** A failed boot: the one-line cause, then the fallback (power off, exit status 1). */
function expectPoweredOffWith(result: BootResult, cause: RegExp): void {
  if (!cause.test(result.output)) throw new Error(`cause ${cause} not on the console:\n${explain(result)}`);
  expect(result.output).toMatch(/burrow: guest exit status 1/);
  expect(result.outcome).toBe("exit-status");
  expect(result.exitCode).toBe(1);
  expect(result.agent.has("start")).toBe(false);
  expect(result.output).not.toMatch(/Kernel panic/);
}

describe("microvm mode: failures end in the fallback with one clear line", () => {
  test("no root disk: the wait times out (burrow.rootwait) and the VM powers off", async () => {
    const result = await boot({ machine: "microvm", append: "burrow.rootwait=1500" });
    expectPoweredOffWith(result, /boot failed: root-device: root device \/dev\/vda did not appear within 1500 ms \(ENODEV; fs types to try: ext4/);
  }, BOOT_TIMEOUT_MS);

  test("wrong rootfstype: names the device, the type tried and the errno", async () => {
    const result = await boot({ machine: "microvm", disks: [ROOTFS], append: "rootfstype=xfs" });
    expectPoweredOffWith(result, /boot failed: root: cannot mount root \/dev\/vda on \/sysroot rw: tried xfs: ENODEV/);
  }, BOOT_TIMEOUT_MS);

  test("missing agent: found before the initramfs is emptied; path and errno, then the fallback", async () => {
    const result = await boot({ machine: "microvm", disks: [ROOTFS], append: "burrow.agent=/nope burrow.zram=off" });
    expectPoweredOffWith(result, /boot failed: switch-root: cannot switch root to \/sysroot: agent \/nope does not exist on the new root \(ENOENT\) \(initramfs kept\)/);
    expect(result.output).not.toMatch(/switched root/);
  }, BOOT_TIMEOUT_MS);

  test("bad zram size: one warning naming the value, boot continues with the 50 % default swap", async () => {
    const result = await boot({ machine: "microvm", disks: [ROOTFS], append: "burrow.zram=12QB" });
    expectHealthyAgent(result, []);
    const warnings = result.burrow.filter((line) => line.includes("12QB"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/burrow\.zram=12QB: not a size .*; keeping 50% of RAM/);
    expect(values(result, "swap")).toEqual([expect.stringMatching(/^\/dev\/zram0 type=partition /)]);
  }, BOOT_TIMEOUT_MS);

  test("burrow.net=1 with no network device (Debian's kernel): virtio_net loads, one warning, the step fails and the boot goes on", async () => {
    const result = await boot({ ...DEBIAN, machine: "microvm", disks: [ROOTFS], append: "burrow.net=1 burrow.zram=off" });
    expectHealthyAgent(result, [], { zram: "skipped", network: "failed" });
    expect(values(result, "modules")[0]).toContain("virtio_net");
    const warnings = result.burrow.filter((line) => /network/.test(line));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/burrow\.net=1 but no network interface appeared/);
    const report = JSON.parse(values(result, "boot-report")[0]!) as { steps: { name: string; startMs: number; endMs: number; status: string }[] };
    const network = report.steps.find((step) => step.name === "network")!;
    expect(network.status).toBe("failed");
  }, BOOT_TIMEOUT_MS);

  test("agent not executable (variant rootfs built here with make-rootfs.sh): found before the switch, then the fallback", async () => {
    // An agent that is present but not executable: refused while the initramfs (and its shell) is still there.
    const dir = mkdtempSync(join(tmpdir(), "burrow-rootfs-"));
    try {
      const agent = join(dir, "agent");
      await Bun.write(agent, "not a program\n");
      const disk = join(dir, "rootfs.ext4");
      const made = spawnSync([join(ROOT, "scripts/make-rootfs.sh"), disk, agent, "16M"], { stdout: "pipe", stderr: "pipe", env: { ...process.env, AGENT_MODE: "0644" } });
      expect(made.exitCode).toBe(0);
      const result = await boot({ machine: "microvm", disks: [disk], append: "burrow.zram=off" });
      expectPoweredOffWith(result, /boot failed: switch-root: cannot switch root to \/sysroot: agent \/usr\/local\/bin\/guest-agent is not executable \(mode 644\)/);
      expect(result.output).not.toMatch(/switched root/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, BOOT_TIMEOUT_MS);
});

describe("microvm mode on the micro kernel (kernel-config/: drivers built in, no modules)", () => {
  const work = mkdtempSync(join(tmpdir(), "burrow-micro-"));
  const initramfs = join(work, "initramfs.img");
  const bootDisk = join(work, "boot.ext4");
  beforeAll(async () => {
    requireArtifacts(KERNEL_MICRO, BURROW);
    await buildImage({ binary: BURROW, out: bootDisk, kernelDir: null, modules: [], add: [], compress: "none", mtime: 0, format: "ext4" });
  }, 120_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test("from an initramfs with no modules: root, zram, ports, clean exec, initramfs reclaimed", async () => {
    requireArtifacts(KERNEL_MICRO, BURROW);
    await buildImage({ binary: BURROW, out: initramfs, kernelDir: null, modules: [], add: [], compress: "none", mtime: 0 });
    const result = await boot({ kernel: KERNEL_MICRO, initrd: initramfs, machine: "microvm", disks: [ROOTFS], ports: [{ name: "demo.port", file: null }], append: "burrow.zram=25% -- micro" });
    expectHealthyAgent(result, ["micro"]);
    expect(values(result, "mount")).toContain("/ ext4 /dev/vda rw,noatime");
    expect(values(result, "swap")[0]).toMatch(/^\/dev\/zram0 type=partition size_kib=\d+ prio=100$/);
    expect(values(result, "sysctl")).toEqual(["page-cluster=0 swappiness=100 watermark_boost_factor=0"]);
    expect(values(result, "port")).toContain("demo.port -> ../vport1p1");
    expect(values(result, "modules")[0]?.trim() ?? "").toBe("");
    const mem = meminfo(result);
    expect(mem.MemAvailable!).toBeGreaterThan(mem.MemTotal! - 100 * 1024);
  }, BOOT_TIMEOUT_MS);

  test("burrow.supervise=0 (an agent that is itself an init, such as systemd): the agent replaces burrow as PID 1", async () => {
    const result = await boot({ kernel: KERNEL_MICRO, initrd: INITRAMFS, machine: "microvm", disks: [ROOTFS], ports: [{ name: "demo.port", file: null }], append: "burrow.supervise=0 burrow.zram=25% -- exec" });
    expectHealthyAgent(result, ["exec"], {}, "exec");
    expect(result.burrow.some((line) => /^burrow: exec "\/usr\/local\/bin\/guest-agent" "exec" \(/.test(line))).toBe(true);
    // No supervisor to ask, so the host adds no stop port.
    expect(values(result, "port")).toContain("demo.port -> ../vport1p1");
    expect(values(result, "port").filter((line) => line.startsWith("burrow.stop "))).toEqual([]);
  }, BOOT_TIMEOUT_MS);

  test("without an initramfs: the kernel mounts burrow's ext4 boot disk, burrow moves to the real root", async () => {
    const result = await boot({ kernel: KERNEL_MICRO, initrd: null, machine: "microvm", disks: [bootDisk, ROOTFS], readOnlyDisks: [bootDisk], append: "root=/dev/vda init=/init burrow.root=/dev/vdb -- disk" });
    expect(result.output).toMatch(/VFS: Mounted root \(ext4 filesystem\) readonly/);
    expectHealthyAgent(result, ["disk"]);
    expect(values(result, "mount")).toContain("/ ext4 /dev/vdb rw,noatime");
    expect(result.output).toMatch(/burrow: switched root: old root detached \(its disk and page cache are freed at exec\)/);
    // The boot disk's filesystem is gone once the agent runs: only the real root is mounted ext4.
    expect(values(result, "ext4")[0]?.trim()).toBe("vdb");
    expect(values(result, "mount").find((line) => line.startsWith("/dev devtmpfs"))).toMatch(/nosuid/);
  }, BOOT_TIMEOUT_MS);

  test("boot disk and a tmpfs overlay: pivot_root onto the overlay; the boot disk is gone, the root disk stays as its lower layer", async () => {
    const result = await boot({ kernel: KERNEL_MICRO, initrd: null, machine: "microvm", disks: [bootDisk, ROOTFS], readOnlyDisks: [bootDisk], append: "root=/dev/vda init=/init burrow.root=/dev/vdb burrow.overlay=tmpfs -- overlaid" });
    expectHealthyAgent(result, ["overlaid"], { overlay: "ok" });
    expect(values(result, "mount").find((line) => line.startsWith("/ "))).toMatch(/^\/ overlay overlay rw,noatime,lowerdir=\/sysroot\/lower,upperdir=\/sysroot\/rw\/upper/);
    expect(result.output).toMatch(/burrow: switched root: old root detached/);
    expect(values(result, "ext4")[0]?.trim()).toBe("vdb");
  }, BOOT_TIMEOUT_MS);
});
