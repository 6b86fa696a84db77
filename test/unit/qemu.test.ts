import { describe, expect, test } from "bun:test";
import { exitStatusLine, RUN_ID_PATTERN } from "../../src/exit-marker";
import { hostTscKhz, kernelCommandLine, parsePortSpec, qemuArgs } from "../../src/host/qemu-argv";
import { spawnArgv } from "../../src/host/qemu-process";
import { checkRunInputs, guestStopWaitMs } from "../../src/host/run-checks";
import { newRunId } from "../../src/host/run-id";
import { classify, HALTED_EXIT_CODE } from "../../src/host/verdict";
import { withKernelWords } from "../../src/host/snapshot";
import { hostStopWaitMs } from "../../src/stop-port";

const ID = "Q7xk2Lm9Pz4Rt8Vb1Nc5Hd3F";
const OTHER = "Zz0Yy1Xx2Ww3Vv4Uu5Tt6Ss7";
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
  const end = { qemuStatus: 0, timedOut: false, timeoutSeconds: 10, runId: ID, stoppedBy: null };
  test("clean power-off", () => {
    expect(classify(`${exitStatusLine(0, ID)}\nreboot: Power down\n`, end)).toMatchObject({ outcome: "exit-status", exitCode: 0 });
    expect(classify("reboot: Power down\n", end)).toMatchObject({ outcome: "poweroff", exitCode: 0 });
  });
  test("guest exit status passes through", () => {
    expect(classify(`${exitStatusLine(7, ID)}\n`, end)).toMatchObject({ outcome: "exit-status", exitCode: 7 });
    expect(classify(`${exitStatusLine(7, ID)}\r\n`, end)).toMatchObject({ outcome: "exit-status", exitCode: 7 });
  });
  test("init exit code from the kernel panic line", () => {
    const text = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000700\n";
    expect(classify(text, end)).toMatchObject({ outcome: "init-exited", exitCode: 7 });
  });
  test("other panics, timeouts and qemu failures are non-zero with a reason", () => {
    expect(classify("Kernel panic - not syncing: VFS: Unable to mount root fs\n", end)).toMatchObject({ outcome: "panic", exitCode: 125, reason: "kernel panic: VFS: Unable to mount root fs" });
    // The OOM killer with nothing left to kill (an exec'd agent as PID 1 is unkillable): said as out of memory.
    expect(classify("Out of memory and no killable processes...\r\nKernel panic - not syncing: System is deadlocked on memory\r\n", end)).toMatchObject({
      outcome: "panic", exitCode: 125, reason: "kernel panic: System is deadlocked on memory (the guest ran out of memory)",
    });
    expect(classify("Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled\n", end).reason).toBe("kernel panic: Out of memory: system-wide panic_on_oom is enabled (the guest ran out of memory)");
    expect(classify("", { ...end, qemuStatus: null, timedOut: true })).toMatchObject({ outcome: "timeout", exitCode: 124 });
    expect(classify("", { ...end, qemuStatus: 1 })).toMatchObject({ outcome: "qemu-failed", exitCode: 126 });
    // A trusted marker does not hide a QEMU failure or a panic.
    expect(classify(`${exitStatusLine(0, ID)}\n`, { ...end, qemuStatus: 1 })).toMatchObject({ outcome: "qemu-failed" });
    expect(classify(`${exitStatusLine(0, ID)}\n`, { ...end, timedOut: true })).toMatchObject({ outcome: "timeout" });
  });
});

describe("only this run's exit-status line counts, and the last one", () => {
  const end = { qemuStatus: 0, timedOut: false, timeoutSeconds: 10, runId: ID, stoppedBy: null };
  test("a forged line without the id before the real one does not hide the failure", () => {
    const text = `agent: burrow: guest exit status 0\nburrow: guest exit status 0\n${exitStatusLine(1, ID)}\nreboot: Power down\n`;
    expect(classify(text, end)).toMatchObject({ outcome: "exit-status", exitCode: 1 });
  });
  test("a line with a wrong id after the real one is ignored", () => {
    const text = `${exitStatusLine(5, ID)}\n${exitStatusLine(0, OTHER)}\n${exitStatusLine(0, `${ID}X`)}\n`;
    expect(classify(text, end)).toMatchObject({ outcome: "exit-status", exitCode: 5 });
  });
  test("of several lines with the id, the last wins", () => {
    expect(classify(`${exitStatusLine(0, ID)}\n${exitStatusLine(9, ID)}\n`, end)).toMatchObject({ exitCode: 9 });
  });
  test("the id must end the line (no prefix of a longer id, no trailing text)", () => {
    expect(classify(`${exitStatusLine(0, ID)}junk\n`, end)).toMatchObject({ outcome: "poweroff" });
  });
  test("no id on the line, or no id for the run: no exit-status outcome, and the reason says a line was ignored", () => {
    const untokened = "burrow: guest exit status 4\nreboot: Power down\n";
    const result = classify(untokened, end);
    expect(result).toMatchObject({ outcome: "poweroff", exitCode: 0 });
    expect(result.reason).toMatch(/ignored .* without this run's id/);
    expect(classify(`${exitStatusLine(4, ID)}\n`, { ...end, runId: null })).toMatchObject({ outcome: "poweroff" });
  });
  test("a status beyond 255 cannot wrap to success", () => {
    expect(classify(`burrow: guest exit status 256 run ${ID}\n`, end)).toMatchObject({ exitCode: 255 });
  });
});

describe("a halted guest", () => {
  const end = { qemuStatus: null, timedOut: false, timeoutSeconds: 10, runId: ID, stoppedBy: null };
  test("reports the guest's status when it gave one", () => {
    const text = `burrow: boot failed: root-device: …\n${exitStatusLine(1, ID)}\n[    3.141592] reboot: System halted\n`;
    expect(classify(text, end)).toMatchObject({ outcome: "halted", exitCode: 1, reason: "guest halted with exit status 1" });
  });
  test("otherwise a fixed non-zero code", () => {
    expect(classify("reboot: System halted\r\n", end)).toMatchObject({ outcome: "halted", exitCode: HALTED_EXIT_CODE });
    expect(HALTED_EXIT_CODE).not.toBe(0);
  });
  test("the halt line counts only alone on its line", () => {
    expect(classify("agent: echo reboot: System halted\n", { ...end, qemuStatus: 0 })).toMatchObject({ outcome: "poweroff" });
  });
  test("a timeout still reads as a timeout", () => {
    expect(classify("reboot: System halted\n", { ...end, timedOut: true })).toMatchObject({ outcome: "timeout" });
  });
});

describe("run ids", () => {
  test("random, alphanumeric, accepted by the guest's pattern, on the kernel command line before --", () => {
    const ids = new Set(Array.from({ length: 200 }, () => newRunId()));
    expect(ids.size).toBe(200);
    for (const id of ids) {
      expect(id).toMatch(RUN_ID_PATTERN);
      expect(id.length).toBeGreaterThanOrEqual(16);
    }
    expect(kernelCommandLine("burrow.log=debug -- a b", "q35", null, ID)).toBe(`console=ttyS0 panic=-1 burrow.log=debug burrow.runid=${ID} -- a b`);
    expect(kernelCommandLine("", "q35", null, ID)).toBe(`console=ttyS0 panic=-1 burrow.runid=${ID}`);
    expect(qemuArgs({ ...base, machine: "q35", runId: ID }).join(" ")).toContain(`burrow.runid=${ID}`);
  });
  test("the user cannot choose the id", () => {
    expect(() => checkRunInputs({ ...base, kernel: "/dev/null", initrd: null, disks: [], machine: "q35", append: "burrow.runid=AAAAAAAAAAAA" })).toThrow(/burrow.runid= is set by burrow run/);
    // After "--" it is only an init argument.
    expect(() => checkRunInputs({ ...base, kernel: "/dev/null", initrd: null, disks: [], machine: "q35", append: "-- burrow.runid=AAAAAAAAAAAA" })).not.toThrow();
  });
});

describe("a run stopped by a signal", () => {
  const end = { qemuStatus: null, timedOut: false, timeoutSeconds: 10, runId: ID, stoppedBy: "SIGTERM" as const };
  test("the guest's status when it reported one on the way down, with the signal in the reason", () => {
    expect(classify(`${exitStatusLine(143, ID)}\nreboot: Power down\n`, { ...end, qemuStatus: 0 })).toEqual({ outcome: "exit-status", exitCode: 143, reason: "guest reported exit status 143 (stopped by SIGTERM)" });
    expect(classify(`${exitStatusLine(0, ID)}\n`, end)).toMatchObject({ exitCode: 0, reason: "guest reported exit status 0 (stopped by SIGTERM)" });
    expect(classify(`${exitStatusLine(1, ID)}\nreboot: System halted\n`, end)).toMatchObject({ outcome: "halted", exitCode: 1 });
  });
  test("no trusted status: 128 + the signal's number", () => {
    expect(classify("", end)).toEqual({ outcome: "stopped", exitCode: 143, reason: "stopped by SIGTERM" });
    expect(classify("", { ...end, stoppedBy: "SIGINT" })).toMatchObject({ exitCode: 130, reason: "stopped by SIGINT" });
    expect(classify("", { ...end, stoppedBy: "SIGHUP" })).toMatchObject({ exitCode: 129, reason: "stopped by SIGHUP" });
    // A clean QEMU exit, a line without this run's id: still not the guest's word.
    expect(classify(`burrow: guest exit status 0\nreboot: Power down\n`, { ...end, qemuStatus: 0 })).toMatchObject({ outcome: "stopped", exitCode: 143 });
    expect(classify("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000\n", end)).toMatchObject({ outcome: "stopped", exitCode: 143, reason: "stopped by SIGTERM (kernel panic: Attempted to kill init! exitcode=0x00000000)" });
  });
  test("the signal came first: a timeout while the guest stopped is not the verdict", () => {
    expect(classify(`${exitStatusLine(143, ID)}\n`, { ...end, timedOut: true })).toMatchObject({ exitCode: 143 });
    expect(classify("", { ...end, timedOut: true })).toMatchObject({ outcome: "stopped", exitCode: 143 });
  });
});

describe("the control port", () => {
  const devices = (args: string[]) => args.flatMap((arg, index) => (args[index - 1] === "-device" || args[index - 1] === "-chardev" ? [arg] : []));
  test("after the user ports, on the one serial bus; no separate stop port", () => {
    const args = qemuArgs({ ...base, machine: "q35", ports: [{ name: "a", file: null }, { name: "b", file: "/tmp/b" }], controlSocket: "/tmp/s/control" });
    expect(devices(args).filter((arg) => /vser0|port|control|stop/.test(arg))).toEqual([
      "virtio-serial-pci,id=vser0",
      "null,id=port0", "virtserialport,bus=vser0.0,chardev=port0,name=a",
      "file,id=port1,path=/tmp/b", "virtserialport,bus=vser0.0,chardev=port1,name=b",
      "socket,id=control,path=/tmp/s/control,server=on,wait=off", "virtserialport,bus=vser0.0,chardev=control,name=burrow.control",
    ]);
    expect(args.join(" ")).not.toContain("burrow.stop");
  });
  test("the only port: the serial bus is made for it; absent: no control chardev", () => {
    const alone = qemuArgs({ ...base, machine: "microvm", ports: [], controlSocket: "/tmp/s/control" }).join(" ");
    expect(alone).toContain("-device virtio-serial-device,id=vser0 -chardev socket,id=control,path=/tmp/s/control,server=on,wait=off -device virtserialport,bus=vser0.0,chardev=control,name=burrow.control");
    expect(alone).not.toContain("burrow.stop");
    expect(qemuArgs({ ...base, machine: "microvm", ports: [] }).join(" ")).not.toContain("vser0");
    const without = qemuArgs({ ...base, machine: "microvm" }).join(" ");
    expect(without).not.toContain("id=control");
    expect(without).not.toContain("burrow.control");
  });
  test("a path with a comma is escaped (QEMU's option syntax), not cut", () => {
    expect(qemuArgs({ ...base, machine: "microvm", ports: [], controlSocket: "/tmp/a,b/control" })).toContain("socket,id=control,path=/tmp/a,,b/control,server=on,wait=off");
  });
  test("only a supervised guest gets one (supervise mode is the default); the wait covers its stop timeout", () => {
    expect(guestStopWaitMs("")).toBe(hostStopWaitMs(5000));
    expect(guestStopWaitMs("burrow.supervise=0")).toBeNull();
    expect(guestStopWaitMs("burrow.supervise=1")).toBe(hostStopWaitMs(5000));
    expect(guestStopWaitMs("burrow.stop-timeout=30000 -- agent args")).toBe(hostStopWaitMs(30000));
    // After "--" it is only an init argument.
    expect(guestStopWaitMs("burrow.supervise=0 -- burrow.supervise=1")).toBeNull();
    // paravisor's supervisor serves no control port.
    expect(guestStopWaitMs("burrow.mode=paravisor")).toBeNull();
  });
  test("a snapshot keeps it: the saved command line (what restores boot with) is still supervised", () => {
    expect(guestStopWaitMs(withKernelWords("burrow.supervise=1 -- x", ["burrow.snapshot=1", "ro"]))).toBe(hostStopWaitMs(5000));
    // And an exec-mode guest's stays one without the port.
    expect(guestStopWaitMs(withKernelWords("burrow.supervise=0 -- x", ["burrow.snapshot=1", "ro"]))).toBeNull();
  });
});

describe("spawning QEMU", () => {
  test("under setpriv --pdeathsig SIGKILL when the host has it, QEMU's argv unchanged after --", () => {
    const argv = qemuArgs({ ...base, machine: "q35" });
    expect(spawnArgv(argv, "/usr/bin/setpriv")).toEqual(["/usr/bin/setpriv", "--pdeathsig", "SIGKILL", "--", ...argv]);
    expect(spawnArgv(argv, null)).toEqual(argv);
  });
});

describe("QEMU's last words", () => {
  test("the last prefixed message with its continuation lines, on one line", async () => {
    const { qemuLastWords, qemuFailure } = await import("../../src/host/verdict");
    expect(qemuLastWords("")).toBeNull();
    expect(qemuLastWords("qemu-system-x86_64: cannot set up guest memory 'microvm.ram': Cannot allocate memory\n")).toBe("cannot set up guest memory 'microvm.ram': Cannot allocate memory");
    expect(qemuLastWords("qemu-system-x86_64: warning: old\nqemu-system-x86_64: -drive id=disk0: Failed to get \"write\" lock\nIs another process using the image [/d]?\n")).toBe('-drive id=disk0: Failed to get "write" lock Is another process using the image [/d]?');
    expect(qemuLastWords("no prefix here\nlast line\n")).toBe("last line");
    expect(qemuFailure({ qemuStatus: null, qemuSignal: "SIGKILL", qemuLastWords: null })).toBe("qemu was killed by SIGKILL");
    expect(qemuFailure({ qemuStatus: 1, qemuSignal: null, qemuLastWords: "x" })).toBe("qemu exited with status 1: x");
  });
});

describe("RAM in a file", () => {
  const options = { kernel: "/k", initrd: null, disks: [], ports: [], mem: "512M", smp: 1, machine: "microvm" as const, accel: "tcg" as const, append: "", timeoutSeconds: 10 };
  test("a file backend with the machine's memory-backend; a deferred incoming stream", () => {
    const saving = qemuArgs({ ...options, ramFile: { path: "/s/a,b/ram.partial", shared: true } });
    expect(saving[saving.indexOf("-machine") + 1]).toBe("microvm,rtc=on,memory-backend=ram0");
    expect(saving[saving.indexOf("-object") + 1]).toBe("memory-backend-file,id=ram0,size=512M,mem-path=/s/a,,b/ram.partial,share=on");
    const restoring = qemuArgs({ ...options, machine: "q35", ramFile: { path: "/s/ram", shared: false }, incomingFile: "/s/state", incomingDeferred: true });
    expect(restoring[restoring.indexOf("-machine") + 1]).toBe("q35,memory-backend=ram0");
    expect(restoring[restoring.indexOf("-object") + 1]).toEndWith("share=off");
    expect(restoring[restoring.indexOf("-incoming") + 1]).toBe("defer");
    expect(qemuArgs({ ...options, incomingFile: "/s/state" }).join(" ")).toContain("-incoming fd:3");
    expect(qemuArgs(options)).not.toContain("-object");
  });
});
