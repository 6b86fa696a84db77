// A command line as a hostile host might write it: words named like Object.prototype members,
// variables that steer Bun, JavaScriptCore, Node and glibc's loader, an absurd module name and an
// unbalanced quote. PID 1 must still reach the agent, with a clean environment, and name each.
import { describe, expect, test } from "bun:test";
import { ROOTFS } from "../helpers/artifacts";
import { boot, tail } from "../helpers/boot";

const HOSTILE = [
  "constructor.x=1", "__proto__.y=2", "toString=3", "hasOwnProperty", "burrow.valueOf=1",
  "BUN_BE_BUN=1", "BUN_OPTIONS=--preload=/init", "JSC_useJIT=0", "NODE_OPTIONS=--require=/x",
  "LD_LIBRARY_PATH=/nope", "GLIBC_TUNABLES=glibc.malloc.check=3", "APP_MARK=kept",
  `burrow.modules=${"a".repeat(1400)}`, "burrow.zram=off",
  "--", "hello", '"unbalanced',
].join(" ");

describe("hostile command line", () => {
  test("reaches the agent with a clean environment and names every hostile word", async () => {
    const result = await boot({ machine: "microvm", disks: [ROOTFS], append: HOSTILE, timeoutSeconds: 120 });
    if (!result.agent.has("done")) throw new Error(`the agent did not finish: ${result.reason}\n${tail(result, 80)}`);
    expect(result.agent.get("argc")).toEqual(["2"]);
    expect(result.agent.get("arg[1]")).toEqual(["hello"]);
    expect(result.agent.get("arg[2]")).toEqual(["unbalanced"]);
    const env = result.agent.get("env") ?? [];
    expect(env).toContain("APP_MARK=kept");
    expect(env.filter((line) => /^(BUN_|JSC_|NODE_|LD_|GLIBC_|__BUN)/.test(line))).toEqual([]);

    const warnings = result.burrow.filter((line) => line.includes("command line: "));
    for (const name of ["BUN_BE_BUN", "BUN_OPTIONS", "JSC_useJIT", "NODE_OPTIONS", "LD_LIBRARY_PATH", "GLIBC_TUNABLES"]) {
      expect(warnings.some((line) => line.includes(`${name}=`) && line.includes("would steer the runtime"))).toBe(true);
    }
    expect(warnings.some((line) => line.includes("unknown key burrow.valueOf"))).toBe(true);
    expect(warnings.some((line) => /burrow\.modules=a{80}…: module name "a{40}"… is not a module name/.test(line))).toBe(true);
    expect(result.output).not.toMatch(/uncaught error|Kernel panic|Script not found/);
    // The agent exits under the supervisor (the default), which reports its status 0.
    expect(result).toMatchObject({ outcome: "exit-status", exitCode: 0 });
  }, 200_000);
});
