// The modules step's time budget, on a fake clock: microvm's loadModules and paravisor's loader.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config";
import { ModuleIndex } from "../../src/modules";
import { MODULES_STEP_BUDGET_MS, notTriedReason } from "../../src/modules/load";
import { loadModules } from "../../src/modes/microvm/modules";
import type { ModuleFile } from "../../src/modes/paravisor/module-files";
import { loadAll, moduleLoaderSteps, notTriedMessage, type LoaderMessage } from "../../src/modes/paravisor/module-loader";

test("the reason names the budget", () => {
  expect(notTriedReason(30_000)).toBe("not tried: modules step exceeded its 30000 ms budget");
  expect(MODULES_STEP_BUDGET_MS).toBe(30_000);
});

describe("microvm loadModules", () => {
  // A chain c ← b ← a, and d alone: the order is c, b, a, d.
  const index = ModuleIndex.parse({ dep: "k/a.ko: k/b.ko k/c.ko\nk/b.ko: k/c.ko\nk/c.ko:\nk/d.ko:\n" });
  const request = { required: ["a", "d"], optional: [] };

  /** Each load takes `msPerLoad` on the fake clock. */
  function run(msPerLoad: number, budgetMs?: number) {
    let clock = 1_000;
    const calls: string[] = [];
    const result = loadModules(index, request, parseConfig(""), (node) => {
      calls.push(node.name);
      clock += msPerLoad;
    }, () => clock, budgetMs);
    return { calls, result };
  }

  test("within the budget everything is tried", () => {
    const { calls, result } = run(10, 100);
    expect(calls).toEqual(["c", "b", "a", "d"]);
    expect(result.loaded).toEqual(["c", "b", "a", "d"]);
    expect(result.failed.size).toBe(0);
  });

  test("modules not tried before the deadline fail with the budget reason", () => {
    // Loads end at 10, 20, 30 ms: the check before the third module sees 20 ms < 25, the one
    // before the fourth sees 30 ms.
    const { calls, result } = run(10, 25);
    expect(calls).toEqual(["c", "b", "a"]);
    expect(result.loaded).toEqual(["c", "b", "a"]);
    expect([...result.failed]).toEqual([["d", "not tried: modules step exceeded its 25 ms budget"]]);
  });

  test("a budget used up by the first module leaves the rest untried", () => {
    const { calls, result } = run(60_000);
    expect(calls).toEqual(["c"]);
    expect([...result.failed.keys()]).toEqual(["b", "a", "d"]);
    expect(result.failed.get("a")).toBe(notTriedReason(MODULES_STEP_BUDGET_MS));
  });

  test("optional modules count against the budget too", () => {
    let clock = 0;
    const result = loadModules(index, { required: ["c"], optional: ["d"] }, parseConfig(""), () => void (clock += 50), () => clock, 50);
    expect(result.loaded).toEqual(["c"]);
    expect(result.failed.get("d")).toBe(notTriedReason(50));
  });
});

describe("paravisor loader", () => {
  const files: ModuleFile[] = ["ttyprintk", "zsmalloc", "zram", "hv_storvsc"].map((name, i) => ({ name, path: `/nonexistent/00${i}/${name}.ko`, params: "", flags: 0 }));

  function run(msPerLoad: number, budgetMs: number | undefined, root = "/nonexistent-burrow-root") {
    let clock = 0;
    const messages: LoaderMessage[] = [];
    const loader = moduleLoaderSteps({ modules: files, root, budgetMs }, (message) => messages.push(message), () => clock, (module, post) => {
      clock += msPerLoad;
      post({ type: "loaded", name: module.name, path: module.path, params: "", result: "loaded", ms: msPerLoad });
      return true;
    });
    while (loader.step());
    return messages;
  }

  test("within the budget: all loaded, then the directory is removed", () => {
    const root = mkdtempSync(join(tmpdir(), "burrow-modules-budget-"));
    try {
      const messages = run(5, 100, root);
      expect(messages.map((message) => message.type)).toEqual(["loaded", "loaded", "loaded", "loaded", "done"]);
      expect(messages.at(-1)).toEqual({ type: "done", removed: true });
      expect(existsSync(root)).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("past the deadline the rest is reported not tried, and the directory stays", () => {
    const messages = run(10, 15);
    expect(messages.map((message) => (message.type === "loaded" ? message.name : message.type))).toEqual(["ttyprintk", "zsmalloc", "not-tried"]);
    const notTried = messages.at(-1)!;
    expect(notTried).toEqual({ type: "not-tried", names: ["zram", "hv_storvsc"], reason: "not tried: modules step exceeded its 15 ms budget" });
    expect(notTriedMessage(notTried as Extract<LoaderMessage, { type: "not-tried" }>)).toBe(
      "2 kernel modules zram, hv_storvsc failed: not tried: modules step exceeded its 15 ms budget",
    );
    expect(notTriedMessage({ type: "not-tried", names: ["zram"], reason: notTriedReason(1) })).toBe("kernel module zram failed: not tried: modules step exceeded its 1 ms budget");
  });

  test("the default budget applies when the request names none", () => {
    const messages = run(MODULES_STEP_BUDGET_MS, undefined);
    expect(messages.at(-1)).toEqual({ type: "not-tried", names: ["zsmalloc", "zram", "hv_storvsc"], reason: notTriedReason(MODULES_STEP_BUDGET_MS) });
  });

  test("loadAll with no budget left tries nothing (no finit_module call)", () => {
    const messages: LoaderMessage[] = [];
    loadAll({ modules: files, root: "/nonexistent-burrow-root", budgetMs: 0 }, (message) => messages.push(message), () => 7);
    expect(messages).toEqual([{ type: "not-tried", names: files.map((file) => file.name), reason: notTriedReason(0) }]);
  });
});
