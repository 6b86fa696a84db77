// The preload constructor (image/early-mounts.c) as PID 1 of a throw-away PID namespace: words
// of the kernel command line that steer the runtime or the loader never reach the program.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUNTIME_ENV_PREFIXES } from "../../src/config/environment";

let dir: string;
let library: string;

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (PID namespaces)");
  dir = mkdtempSync(join(tmpdir(), "burrow-early-mounts-"));
  library = join(dir, "early-mounts.so");
  const build = Bun.spawnSync(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", library, "image/early-mounts.c"], { stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(build.stderr.toString());
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `printenv` as PID 1 of a new PID namespace with the library preloaded and exactly `env`. */
function environmentOfPid1(env: string[]): string[] {
  const run = Bun.spawnSync(["unshare", "--fork", "--pid", "--mount-proc", "env", "-i", ...env, `LD_PRELOAD=${library}`, "printenv"], { stderr: "pipe" });
  if (run.exitCode !== 0) throw new Error(`unshare failed: ${run.stderr.toString()}`);
  return run.stdout.toString().trim().split("\n").filter(Boolean);
}

describe("early-mounts constructor", () => {
  test("PID 1 re-executes itself without BUN_*, JSC_*, NODE_*, LD_*, GLIBC_TUNABLES, MALLOC_*; the rest stays in order", () => {
    const hostile = ["BUN_BE_BUN=1", "BUN_OPTIONS=--preload=/x.js", "JSC_useJIT=0", "NODE_OPTIONS=-r /x", "__BUN_X=1", "BUNFS_ROOT=/", "GLIBC_TUNABLES=glibc.malloc.check=3", "MALLOC_ARENA_MAX=1"];
    expect(environmentOfPid1(["HOME=/", ...hostile, "TERM=linux", "APP_MODE=fast"])).toEqual(["HOME=/", "TERM=linux", "APP_MODE=fast"]);
  });

  test("the C list and the TypeScript list name the same prefixes", async () => {
    const source = await Bun.file("image/early-mounts.c").text();
    const list = /runtime_prefixes\[\] = \{([^}]*)\}/.exec(source)![1]!;
    const names = [...list.matchAll(/"([^"]+)"/g)].map((match) => match[1]);
    expect(names).toEqual([...RUNTIME_ENV_PREFIXES]);
  });

  test("a clean environment is left alone, and a process that is not PID 1 is never touched", () => {
    expect(environmentOfPid1(["A=1", "B=2"])).toEqual(["A=1", "B=2"]);
    const child = Bun.spawnSync(["env", "-i", "BUN_X=1", `LD_PRELOAD=${library}`, "printenv"]);
    expect(child.stdout.toString().trim().split("\n")).toEqual(["BUN_X=1", `LD_PRELOAD=${library}`]);
  });
});
