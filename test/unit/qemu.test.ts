import { describe, expect, test } from "bun:test";
import { classify, hostTscKhz, kernelCommandLine, parsePortSpec, qemuArgs } from "../../src/host/qemu";

const base = { kernel: "k", initrd: "i", disks: ["d.img"], ports: [{ name: "p", file: null }], mem: "512M", smp: 2, accel: "tcg" as const, append: "", timeoutSeconds: 10 };

describe("qemu command line", () => {
  test("microvm uses virtio-mmio devices, q35 virtio-pci", () => {
    const micro = qemuArgs({ ...base, machine: "microvm" }).join(" ");
    expect(micro).toContain("-machine microvm");
    expect(micro).toContain("virtio-blk-device,drive=disk0");
    expect(micro).toContain("virtio-serial-device,id=vser0");
    expect(micro).toContain("virtserialport,bus=vser0.0,chardev=port0,name=p");
    const q35 = qemuArgs({ ...base, machine: "q35", accel: "kvm" }).join(" ");
    expect(q35).toContain("virtio-blk-pci");
    expect(q35).toContain("-accel kvm -cpu host");
  });

  test("kernel command line gets console/panic defaults, init args stay last", () => {
    expect(kernelCommandLine("burrow.log=debug -- a b", "microvm")).toBe("console=ttyS0 panic=-1 reboot=t burrow.log=debug -- a b");
    expect(kernelCommandLine("console=hvc0 panic=5", "q35")).toBe("console=hvc0 panic=5");
    expect(kernelCommandLine('-- --setup-script "echo A=1"', "q35")).toBe('console=ttyS0 panic=-1 -- --setup-script "echo A=1"');
  });

  test("the host TSC rate is passed only when the host knows it exactly", () => {
    const known = "cpu MHz\t\t: 2445.406\nflags\t\t: fpu tsc constant_tsc nonstop_tsc tsc_known_freq\n";
    expect(hostTscKhz(known)).toBe(2445406);
    expect(hostTscKhz("cpu MHz\t\t: 2445.406\nflags\t\t: fpu tsc constant_tsc\n")).toBeNull();
    expect(kernelCommandLine("", "microvm", 2445406)).toBe("console=ttyS0 panic=-1 reboot=t tsc_early_khz=2445406 tsc=reliable");
    expect(kernelCommandLine("tsc_early_khz=1000", "microvm", 2445406)).toBe("console=ttyS0 panic=-1 reboot=t tsc=reliable tsc_early_khz=1000");
  });

  test("port specs", () => {
    expect(parsePortSpec("a.b=/tmp/x")).toEqual({ name: "a.b", file: "/tmp/x" });
    expect(parsePortSpec("x")).toEqual({ name: "x", file: null });
    expect(() => parsePortSpec("bad name")).toThrow(/bad port name/);
  });
});

describe("how a run ended", () => {
  test("clean power-off", () => {
    expect(classify("burrow: guest exit status 0\nreboot: Power down\n", 0, false, 10)).toMatchObject({ outcome: "exit-status", exitCode: 0 });
    expect(classify("reboot: Power down\n", 0, false, 10)).toMatchObject({ outcome: "poweroff", exitCode: 0 });
  });
  test("guest exit status passes through", () => {
    expect(classify("burrow: guest exit status 7\n", 0, false, 10)).toMatchObject({ exitCode: 7 });
  });
  test("init exit code from the kernel panic line", () => {
    const text = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000700\n";
    expect(classify(text, 0, false, 10)).toMatchObject({ outcome: "init-exited", exitCode: 7 });
  });
  test("other panics, timeouts and qemu failures are non-zero with a reason", () => {
    expect(classify("Kernel panic - not syncing: VFS: Unable to mount root fs\n", 0, false, 10)).toMatchObject({ outcome: "panic", exitCode: 125, reason: "kernel panic: VFS: Unable to mount root fs" });
    expect(classify("", null, true, 10)).toMatchObject({ outcome: "timeout", exitCode: 124 });
    expect(classify("", 1, false, 10)).toMatchObject({ outcome: "qemu-failed", exitCode: 126 });
  });
});
