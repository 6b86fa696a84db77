import { describe, expect, test } from "bun:test";
import { cli } from "../../src/cli";

const BUN = process.execPath;

function runCli(args: string[], env: Record<string, string> = {}): { stdout: string; stderr: string; code: number } {
  const run = Bun.spawnSync([BUN, "src/main.ts", ...args], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  return { stdout: run.stdout.toString(), stderr: run.stderr.toString(), code: run.exitCode ?? -1 };
}

describe("CLI", () => {
  test("usage written to a pipe carries no colour codes", () => {
    const { stdout, code } = runCli(["--help"]);
    expect(code).toBe(0);
    expect(stdout).toContain("USAGE");
    expect(stdout).not.toContain("\u001b[");
    expect(runCli(["image", "--help"]).stdout).not.toContain("\u001b[");
  });

  test("a command named like an Object.prototype member is an unknown command", async () => {
    for (const name of ["toString", "constructor", "__proto__", "hasOwnProperty"]) expect(await cli([name])).toBe(2);
  });

  test("burrow cmdline prints every problem as a warning, zram included", () => {
    const { stdout, stderr, code } = runCli(["cmdline", "burrow.zram=101% constructor.x=1 BUN_BE_BUN=1"]);
    expect(code).toBe(0);
    expect(stderr).toContain("burrow.zram=101%: a percentage must be above 0 and at most 100; no zram swap");
    expect(stderr).toContain("BUN_BE_BUN=1 would steer the runtime");
    expect(JSON.parse(stdout).moduleParams).toEqual({ constructor: ["x=1"] });
  });
});
