// ensureMount (src/boot/mounts.ts) against the real kernel: test/fixtures/privileged/ensure-mount.ts
// runs in a private mount namespace (needs root), so nothing it mounts reaches the host.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers/artifacts";

interface Step {
  call: string;
  outcome?: string;
  error?: string;
  dirExists: boolean;
  mode?: string;
  entry: { mountPoint: string; fstype: string; source: string; options: string } | null;
}

let base: string;
let steps: Map<string, Step>;

beforeAll(() => {
  // Never skip: a privileged test that did not run must show up as a failure.
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (mount namespaces)");
  base = mkdtempSync(join(tmpdir(), "burrow-mounts-"));
  const result = Bun.spawnSync(
    ["unshare", "--mount", "--propagation", "private", process.execPath, join(ROOT, "test/fixtures/privileged/ensure-mount.ts"), base],
    { stdout: "pipe", stderr: "pipe", timeout: 30_000 },
  );
  if (result.exitCode !== 0) throw new Error(`namespace run failed (${result.exitCode}): ${result.stderr.toString()}`);
  steps = new Map((JSON.parse(result.stdout.toString()) as Step[]).map((step) => [step.call, step]));
});

afterAll(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

const options = (step: Step) => step.entry!.options.split(",");

describe("ensureMount in a private mount namespace", () => {
  test("a fresh tmpfs on a missing target: the directories are created, 'mounted'", () => {
    const step = steps.get("fresh tmpfs, flags 0")!;
    expect(step).toMatchObject({ outcome: "mounted", dirExists: true, entry: { mountPoint: join(base, "missing/deeper"), fstype: "tmpfs", source: "tmpfs" } });
    expect(options(step)).not.toContain("nosuid");
  });

  test("the same type again with flags: 'remounted', and the flags show in mountinfo", () => {
    const step = steps.get("same type, nosuid|nodev")!;
    expect(step.outcome).toBe("remounted");
    expect(options(step)).toEqual(expect.arrayContaining(["nosuid", "nodev"]));
  });

  test("the same type with flags 0: 'already', nothing changed", () => {
    const step = steps.get("same type, flags 0")!;
    expect(step.outcome).toBe("already");
    expect(step.entry).toEqual(steps.get("same type, nosuid|nodev")!.entry);
  });

  test("a remount sets exactly the requested per-mount flags (earlier ones are dropped)", () => {
    const step = steps.get("same type, noexec only")!;
    expect(step.outcome).toBe("remounted");
    expect(options(step)).toContain("noexec");
    expect(options(step)).not.toContain("nosuid");
    expect(options(step)).not.toContain("nodev");
  });

  test("another type on a mounted target is mounted over it, with its flags", () => {
    const step = steps.get("another type over it")!;
    expect(step).toMatchObject({ outcome: "mounted", entry: { fstype: "proc" } });
    expect(options(step)).toEqual(expect.arrayContaining(["nosuid", "nodev", "noexec"]));
  });

  test("a first mount takes its flags and data at once", () => {
    const step = steps.get("fresh tmpfs with flags and data")!;
    expect(step).toMatchObject({ outcome: "mounted", entry: { fstype: "tmpfs" }, mode: "700" });
    expect(options(step)).toEqual(expect.arrayContaining(["nosuid", "noexec"]));
  });

  test("a target with a space (\\040 in mountinfo) is recognised the second time", () => {
    expect(steps.get("target with a space")).toMatchObject({ outcome: "mounted", entry: { mountPoint: join(base, "with space"), fstype: "tmpfs" } });
    expect(steps.get("target with a space, again")!.outcome).toBe("already");
  });

  test("a failing mount throws the SysError, naming the call and errno", () => {
    const step = steps.get("bad type")!;
    expect(step.outcome).toBeUndefined();
    expect(step.error).toMatch(/^mount\(.*fstype="no-such-fs".*\) failed: ENODEV/);
    expect(step.entry).toBeNull();
  });

  test("nothing leaked to the host's mount table", () => {
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(base);
  });
});
