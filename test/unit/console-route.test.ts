// routeConsole skips a device that opens but fails writes (ttyS0 on arm64's virt: a 16550 slot
// with no UART, EIO). /dev/full stands in for it: every write fails (ENOSPC). It runs in a child
// process because routeConsole points fds 0-2 at what it picks.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function routeIn(candidates: string[]): { device: string; fd1: string } {
  const work = mkdtempSync(join(tmpdir(), "burrow-console-"));
  try {
    const out = join(work, "out.json");
    const script = `
      import { routeConsole } from ${JSON.stringify(join(import.meta.dir, "../../src/modes/microvm/mounts.ts"))};
      import { readlinkSync, writeFileSync } from "node:fs";
      const device = routeConsole(${JSON.stringify(candidates)});
      writeFileSync(${JSON.stringify(out)}, JSON.stringify({ device, fd1: readlinkSync("/proc/self/fd/1") }));`;
    const child = Bun.spawnSync([process.execPath, "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    if (child.exitCode !== 0) throw new Error(child.stderr.toString());
    return JSON.parse(readFileSync(out, "utf8"));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

test("a console device whose writes fail is skipped for the next one", () => {
  expect(routeIn(["/dev/nonexistent-console", "/dev/full", "/dev/null"])).toEqual({ device: "/dev/null", fd1: "/dev/null" });
});

test("the first working device wins", () => {
  expect(routeIn(["/dev/null", "/dev/full"])).toEqual({ device: "/dev/null", fd1: "/dev/null" });
});
