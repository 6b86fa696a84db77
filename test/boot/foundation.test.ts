// The foundation boot: the default (micro) kernel, burrow's initramfs, burrow as PID 1 under QEMU (TCG).
import { describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { BURROW, KERNEL } from "../helpers/artifacts";
import { boot, tail } from "../helpers/boot";

describe("boot: burrow as PID 1", () => {
  test("starts under a real kernel, logs its boot line to console and kmsg, powers off cleanly", async () => {
    // No disk: the root-device step fails after burrow.rootwait, and burrow.onfail=poweroff ends the VM with status 1.
    const result = await boot({ append: "burrow.zram=off burrow.rootwait=100 burrow.onfail=poweroff" });
    const text = result.output;
    if (result.outcome !== "exit-status") console.error(tail(result));
    expect(text).toMatch(/Run \/init as init process/);
    expect(text).toMatch(/burrow: burrow \d+\.\d+\.\d+ starting as PID 1: mode microvm, kernel 6\.1\.\d+, uptime \d+\.\d+ s/);
    // the kmsg copy carries the kernel's timestamp prefix
    expect(text).toMatch(/^\[\s*\d+\.\d+\] burrow: burrow .* starting as PID 1/m);
    expect(text).toMatch(/reboot: Power down/);
    expect(text).not.toMatch(/Kernel panic/);
    // The preload's JIT policy (BUN_JSC_* names) is one Bun knows: it would print this otherwise.
    expect(text).not.toMatch(/invalid JSC environment variable/);
    expect(text).toMatch(/burrow: guest exit status 1/);
    expect(result.outcome).toBe("exit-status");
    expect(result.exitCode).toBe(1);
  }, 120_000);

  test("burrow run reports missing inputs before starting QEMU", () => {
    const result = spawnSync([BURROW, "run", "--kernel", KERNEL, "--initrd", "/nonexistent/initrd.img", "--disk", "/nonexistent/disk.img"], { stderr: "pipe", stdout: "pipe" });
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr.toString()).toContain("not found: initrd /nonexistent/initrd.img, disk /nonexistent/disk.img");
  });
});
