// switchRoot from a mounted old root (the boot disk's case) against the real kernel:
// test/fixtures/privileged/switch-root.ts runs in a private mount namespace (needs root).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers/artifacts";

interface Run {
  outcome: { oldRoot: string; keptReason?: string; moved: string[]; deleted: number };
  before: number;
  mounts: string[];
  marker: string;
  cwd: string;
}

let base: string;
const runs = new Map<string, Run>();

beforeAll(() => {
  // Never skip: a privileged test that did not run must show up as a failure.
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (mount namespaces)");
  base = mkdtempSync(join(tmpdir(), "burrow-switch-root-"));
  for (const mode of ["pivot", "shared"]) {
    const result = Bun.spawnSync(
      ["unshare", "--mount", "--propagation", "private", process.execPath, join(ROOT, "test/fixtures/privileged/switch-root.ts"), mode, join(base, mode)],
      { stdout: "pipe", stderr: "pipe", timeout: 30_000 },
    );
    if (result.exitCode !== 0) throw new Error(`namespace run ${mode} failed (${result.exitCode}): ${result.stderr.toString()}`);
    runs.set(mode, JSON.parse(result.stdout.toString()) as Run);
  }
});

afterAll(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

describe("switchRoot from a mounted old root, in a private mount namespace", () => {
  test("pivot_root and detach: only the new root and the moved mounts are left", () => {
    const run = runs.get("pivot")!;
    expect(run.outcome).toMatchObject({ oldRoot: "detached", moved: ["/proc"], deleted: 0 });
    expect(run.outcome.keptReason).toBeUndefined();
    expect(run.marker).toBe("the new root");
    expect(run.cwd).toBe("/");
    // Nothing of the old root is left: "/" is the new tmpfs, everything else came with /proc.
    expect(run.mounts).toContain("/ tmpfs");
    expect(run.mounts.filter((mount) => mount !== "/ tmpfs" && !mount.startsWith("/proc"))).toEqual([]);
    expect(run.before).toBeGreaterThan(2);
  });

  test("a shared new root: pivot_root refuses (EINVAL), the old root stays beneath and the switch still happens", () => {
    const run = runs.get("shared")!;
    expect(run.outcome).toMatchObject({ oldRoot: "kept", keptReason: "pivot_root: EINVAL", moved: ["/proc"] });
    expect(run.marker).toBe("the new root");
    expect(run.cwd).toBe("/");
  });
});
