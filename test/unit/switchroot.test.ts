import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkNewRoot, resolveInRoot } from "../../src/modes/microvm/switchroot";

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "burrow-newroot-"));
  mkdirSync(join(root, "usr/bin"), { recursive: true });
  writeFileSync(join(root, "usr/bin/agent"), "#!/bin/sh\n", { mode: 0o755 });
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("paths on the new root", () => {
  test("absolute symlinks and .. resolve inside the new root, never on the current one", () => {
    symlinkSync("/usr/bin/agent", join(root, "usr/bin/abs"));
    symlinkSync("../bin/agent", join(root, "usr/bin/rel"));
    symlinkSync("/usr", join(root, "u"));
    expect(resolveInRoot(root, "/usr/bin/abs")).toEqual({ path: `${root}/usr/bin/agent` });
    expect(resolveInRoot(root, "/usr/bin/rel")).toEqual({ path: `${root}/usr/bin/agent` });
    expect(resolveInRoot(root, "/u/bin/../../../../u/bin/agent")).toEqual({ path: `${root}/usr/bin/agent` });
    symlinkSync("/etc/hostname", join(root, "escape"));
    expect(resolveInRoot(root, "/escape")).toEqual({ path: `${root}/etc/hostname` });
  });

  test("loops and files used as directories are named", () => {
    symlinkSync("/loop", join(root, "loop"));
    expect(resolveInRoot(root, "/loop/x")).toEqual({ problem: "too many levels of symbolic links (ELOOP) at /loop" });
    expect(resolveInRoot(root, "/usr/bin/agent/x")).toEqual({ problem: "/usr/bin/agent is not a directory" });
  });
});

describe("checks before the initramfs is emptied", () => {
  test("an executable agent and creatable mount points pass, and the mount points now exist", () => {
    expect(checkNewRoot(root, "/usr/bin/agent", ["/proc", "/run"])).toBeNull();
    expect(existsSync(join(root, "proc"))).toBe(true);
  });

  test("missing, not a file, not executable: one line each", () => {
    expect(checkNewRoot(root, "/nope", [])).toBe("agent /nope does not exist on the new root (ENOENT)");
    expect(checkNewRoot(root, "/usr/bin", [])).toBe("agent /usr/bin is not a regular file");
    chmodSync(join(root, "usr/bin/agent"), 0o644);
    expect(checkNewRoot(root, "/usr/bin/agent", [])).toBe("agent /usr/bin/agent is not executable (mode 644)");
  });

  test("a mount point that cannot be made is reported before anything is deleted", () => {
    writeFileSync(join(root, "proc"), "a file where a directory must go");
    expect(checkNewRoot(root, "/usr/bin/agent", ["/proc"])).toMatch(/^cannot create mount point \/proc on the new root: /);
  });
});
