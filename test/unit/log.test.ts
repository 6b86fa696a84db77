import { describe, expect, test } from "bun:test";
import { formatLogArgs } from "../../src/log";

describe("log record formatting", () => {
  test("strings pass through, errors show their message", () => {
    expect(formatLogArgs(["root", "mounted"])).toBe("root mounted");
    expect(formatLogArgs([new Error("ENOENT: /dev/vdb")])).toBe("ENOENT: /dev/vdb");
  });

  test("objects and long arrays stay on one line (one console line, one kmsg record)", () => {
    const line = formatLogArgs(["ms:", { zram: 12.5, nested: { a: { b: { c: { d: { e: 1 } } } } } }, Array.from({ length: 150 }, (_, i) => i)]);
    expect(line).not.toContain("\n");
    expect(line.startsWith("ms: { zram: 12.5, nested: {")).toBe(true);
    expect(line).toContain("99, ... 50 more items ]");
  });
});

describe("PID 1's runtime modules", () => {
  // Each runtime builtin module PID 1 imports is JavaScript the runtime compiles on first import,
  // under emulation tens of ms each (node:util alone measured 30–80 ms): PID 1's bundle imports only these.
  test("the PID 1 entry point imports no runtime modules beyond fs, path and bun:ffi", async () => {
    const built = await Bun.build({ entrypoints: [new URL("../../src/pid1.ts", import.meta.url).pathname], target: "bun", format: "esm" });
    expect(built.success).toBe(true);
    const code = await built.outputs[0]!.text();
    const imported = new Set([...code.matchAll(/^import\s[^;]*?from\s+"([^"./][^"]*)"/gm)].map((match) => match[1]!.replace(/^node:/, "")));
    expect(imported.size).toBeGreaterThan(0);
    expect([...imported].sort()).toEqual(["bun:ffi", "fs", "path"]);
  });
});
