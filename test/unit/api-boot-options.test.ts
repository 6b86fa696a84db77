// boot()'s options become the run `burrow run` would make: its defaults (RUN_DEFAULTS,
// DEFAULT_BOOT_FILES), its boot-disk rewrite, its parsers and its memory floor.
import { expect, test } from "bun:test";
import { bootRunOptions } from "../../src/api/boot";
import { DEFAULT_BOOT_FILES, RUN_DEFAULTS } from "../../src/host/options";

test("unset options take the CLI's defaults", () => {
  const run = bootRunOptions({ arch: "x86_64" });
  expect(run).toMatchObject({
    kernel: DEFAULT_BOOT_FILES.x86_64.kernel, initrd: DEFAULT_BOOT_FILES.x86_64.initrd, disks: [], ports: [],
    mem: RUN_DEFAULTS.mem, smp: RUN_DEFAULTS.smp, accel: RUN_DEFAULTS.accel, machine: "microvm", append: "", timeoutSeconds: RUN_DEFAULTS.timeoutSeconds,
  });
  expect(run.net).toBeUndefined();
  expect(bootRunOptions({ arch: "aarch64" }).machine).toBe("virt");
});

test("a boot disk, the agent's args, forwards and ports go through the CLI's own code", () => {
  const run = bootRunOptions({ arch: "x86_64", bootDisk: "/b.ext4", disks: ["/r.ext4"], append: "burrow.agent=/bin/sh", args: ["-c", "sleep 1000"], forwards: ["8080:80"], ports: ["agent.0=/tmp/a.log"], mem: "256m" });
  expect(run.initrd).toBeNull();
  expect(run.disks).toEqual(["/b.ext4", "/r.ext4"]);
  expect(run.readOnlyDisks).toEqual(["/b.ext4"]);
  expect(run.append).toBe(`root=/dev/vda init=/init burrow.root=/dev/vdb burrow.agent=/bin/sh -- -c "sleep 1000"`);
  expect(run.net).toEqual({ forwards: [{ protocol: "tcp", hostPort: 8080, guestPort: 80 }] });
  expect(run.ports).toEqual([{ name: "agent.0", file: "/tmp/a.log" }]);
  expect(run.mem).toBe("256M");
});

test("bad values are refused in the CLI's words", () => {
  expect(() => bootRunOptions({ arch: "sparc" })).toThrow(`--arch must be x86_64 (amd64) or arm64 (aarch64), got "sparc"`);
  expect(() => bootRunOptions({ forwards: ["80"] })).toThrow(`--forward needs [tcp:|udp:]HOSTPORT:GUESTPORT, got "80"`);
  expect(() => bootRunOptions({ bootDisk: "/b.ext4", append: "init=/x" })).toThrow("--boot-disk runs the boot disk's /init: remove init= from --append");
  expect(() => bootRunOptions({ bootDisk: "/b.ext4", mem: "16M" })).toThrow("--mem 16M is below the smallest guest burrow boots");
  expect(() => bootRunOptions({ args: ['say "hi"'] })).toThrow("the kernel command line cannot carry a double quote");
});
