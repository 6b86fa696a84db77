// The preload constructor (image/early-mounts.c) as PID 1 of a throw-away PID namespace: words
// of the kernel command line that steer the runtime or the loader never reach the program.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUNTIME_ENV_PREFIXES } from "../../src/config/environment";
import { compileEarlyMounts } from "../../src/image/preload";

let dir: string;
let library: string;

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (PID namespaces)");
  dir = mkdtempSync(join(tmpdir(), "burrow-early-mounts-"));
  library = join(dir, "early-mounts.so");
  // The image's own build (its generated header included), as burrow image compiles it.
  const scratch = join(dir, "build");
  mkdirSync(scratch);
  writeFileSync(library, compileEarlyMounts(scratch));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** burrow's own runtime settings, appended after the scrub: the GC timer off, then the JIT policy (NAME=VALUE). */
async function ownSettings(): Promise<string[]> {
  const source = await Bun.file("image/early-mounts.c").text();
  const table = /jsc_boot_options\[\] = \{([^}]*)\}/.exec(source)![1]!;
  const strings = [...table.matchAll(/"([^"]+)"/g)].map((match) => match[1]!);
  const pairs: string[] = [];
  for (let i = 0; i < strings.length; i += 2) pairs.push(`${strings[i]}=${strings[i + 1]}`);
  return ["BUN_GC_TIMER_DISABLE=1", ...pairs];
}

/**
 * `printenv` as PID 1 of new PID and mount namespaces, started with exactly `env`, the library named
 * in /etc/ld.so.preload as in the image (so a re-executed PID 1 loads it again).
 */
function environmentOfPid1(env: string[]): string[] {
  // The host has no /etc/ld.so.preload: an overlay adds one to /etc inside the mount namespace only.
  const upper = join(dir, "etc-upper");
  const work = join(dir, "etc-work");
  rmSync(upper, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
  mkdirSync(upper);
  mkdirSync(work);
  writeFileSync(join(upper, "ld.so.preload"), `${library}\n`);
  const script = `mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc && shift 2 && exec env -i "$@" printenv`;
  const run = Bun.spawnSync(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "unshare", "--fork", "--pid", "--mount", "--mount-proc", "--propagation", "private", "sh", "-c", script, "sh", upper, work, ...env], { stderr: "pipe" });
  if (run.exitCode !== 0) throw new Error(`unshare failed: ${run.stderr.toString()}`);
  return run.stdout.toString().trim().split("\n").filter(Boolean);
}

describe("early-mounts constructor", () => {
  test("PID 1 re-executes itself without BUN_*, JSC_*, NODE_*, LD_*, GLIBC_TUNABLES, MALLOC_*; the rest stays in order", async () => {
    const hostile = ["BUN_BE_BUN=1", "BUN_OPTIONS=--preload=/x.js", "JSC_useJIT=0", "BUN_JSC_useRegExpJIT=1", "NODE_OPTIONS=-r /x", "__BUN_X=1", "BUNFS_ROOT=/", "GLIBC_TUNABLES=glibc.malloc.check=3", "MALLOC_ARENA_MAX=1"];
    // burrow's own settings come last (no idle-GC timer, the JIT policy); a hostile copy of one is gone.
    expect(environmentOfPid1(["HOME=/", ...hostile, "LD_LIBRARY_PATH=/nope", "TERM=linux", "APP_MODE=fast"])).toEqual(["HOME=/", "TERM=linux", "APP_MODE=fast", ...(await ownSettings())]);
  });

  test("every prefix of the TypeScript list (the C copy is generated from it) is dropped by the built library", async () => {
    const steering = RUNTIME_ENV_PREFIXES.map((prefix) => `${prefix}PROBE=1`);
    expect(environmentOfPid1(["HOME=/", ...steering, "TERM=linux"])).toEqual(["HOME=/", "TERM=linux", ...(await ownSettings())]);
  });

  test("a clean environment only gains burrow's own settings, and a process that is not PID 1 is never touched", async () => {
    const own = await ownSettings();
    expect(own).toContain("BUN_JSC_useRegExpJIT=0");
    expect(environmentOfPid1(["A=1", "B=2"])).toEqual(["A=1", "B=2", ...own]);
    const child = Bun.spawnSync(["env", "-i", "BUN_X=1", `LD_PRELOAD=${library}`, "printenv"]);
    expect(child.stdout.toString().trim().split("\n")).toEqual(["BUN_X=1", `LD_PRELOAD=${library}`]);
  });
});
