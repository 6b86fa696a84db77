// `burrow run --boot-disk`: the kernel's root= and init= go to the boot disk, the user's root to burrow.root=.
import { describe, expect, test } from "bun:test";
import { withBootDisk } from "../../src/host/boot-disk";
import type { RunOptions } from "../../src/host/qemu";
import { qemuArgs } from "../../src/host/qemu-argv";

const base: RunOptions = { kernel: "k", initrd: "i.img", disks: ["root.ext4"], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "tcg", append: "", timeoutSeconds: 10 };

describe("withBootDisk", () => {
  test("the boot disk goes first, no initrd, burrow's root defaults to the first user disk", () => {
    const run = withBootDisk({ ...base, append: "burrow.zram=25% -- hello world" }, "boot.ext4");
    expect(run.initrd).toBeNull();
    expect(run.disks).toEqual(["boot.ext4", "root.ext4"]);
    expect(run.append).toBe("root=/dev/vda init=/init burrow.root=/dev/vdb burrow.zram=25% -- hello world");
  });

  test("the user's root= becomes burrow.root=; burrow.root= wins over root= and the extra root= is dropped", () => {
    expect(withBootDisk({ ...base, append: "root=LABEL=data ro" }, "b").append).toBe("root=/dev/vda init=/init burrow.root=LABEL=data ro");
    expect(withBootDisk({ ...base, append: "root=/dev/vdc burrow.root=SERIAL=base" }, "b").append).toBe("root=/dev/vda init=/init burrow.root=SERIAL=base");
  });

  test("words after -- stay the agent's, even when they look like root= or init=", () => {
    expect(withBootDisk({ ...base, append: "-- root=x init=y" }, "b").append).toBe("root=/dev/vda init=/init burrow.root=/dev/vdb -- root=x init=y");
  });

  test("the boot disk is attached read-only (the user's disks are not): no boot writes to the image", () => {
    const run = withBootDisk(base, "boot.ext4");
    expect(run.readOnlyDisks).toEqual(["boot.ext4"]);
    const drives = qemuArgs(run).filter((_, index, args) => args[index - 1] === "-drive");
    expect(drives[0]).toContain(",readonly=on,");
    expect(drives[0]).toContain("file.filename=boot.ext4");
    expect(drives[1]).not.toContain("readonly");
  });

  test("an init= of the user's is refused with one line", () => {
    expect(() => withBootDisk({ ...base, append: "init=/bin/sh" }, "b")).toThrow("--boot-disk runs the boot disk's /init: remove init= from --append");
  });
});
