import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { warmAgent } from "../../src/modes/microvm/snapshot";
import { encodePointResume, encodeWarmResume, instanceProblem, MAX_SUPERVISOR_RESUME_BYTES, MIN_ENTROPY_BYTES } from "../../src/snapshot/protocol";

const entropy = new Uint8Array(MIN_ENTROPY_BYTES).map((_, index) => index);
const NOW_NS = 1_764_400_000_000_000_000n;

/** The point line read back by the grammar src/snapshot/protocol.ts documents (image/supervisor/snapshot.c reads it the same way). */
function readPointLine(line: string): { instance: string; realtimeNs: bigint; entropy: Uint8Array; args: string[] | null; env: string[] } {
  const fields = line.replace(/\n$/, "").split(" ");
  expect(fields).toHaveLength(7);
  expect(fields.slice(0, 2)).toEqual(["burrow-resume", "1"]);
  const list = (field: string) => {
    const [count, items] = [field.slice(0, field.indexOf(":")), field.slice(field.indexOf(":") + 1)];
    const decoded = Number(count) === 0 ? [] : items.split(",").map((hex) => Buffer.from(hex, "hex").toString("utf8"));
    expect(decoded).toHaveLength(Number(count));
    return decoded;
  };
  return { instance: fields[2]!, realtimeNs: BigInt(fields[3]!), entropy: new Uint8Array(Buffer.from(fields[4]!, "hex")), args: fields[5] === "-" ? null : list(fields[5]!), env: list(fields[6]!) };
}

describe("snapshot control protocol", () => {
  test("the point line: fields split on spaces, arguments and variables in hex, '-' for the saved arguments", () => {
    const line = encodePointResume({ instance: "vm-1", entropy, realtimeNs: NOW_NS, args: ["--serve", "a b", ""], env: [["APP", "1 2"]] });
    expect(line).toBe(`burrow-resume 1 vm-1 ${NOW_NS} ${Buffer.from(entropy).toString("hex")} 3:2d2d7365727665,612062, 1:4150503d312032\n`);
    expect(encodePointResume({ instance: "vm-1", entropy, realtimeNs: NOW_NS, args: null, env: [] })).toEndWith(" - 0:\n");
    expect(encodePointResume({ instance: "vm-1", entropy, realtimeNs: NOW_NS, args: [], env: [] })).toEndWith(" 0: 0:\n");
  });

  test("any arguments and variables the host accepts come back whole (property)", () => {
    const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,20}$/).filter((n) => instanceProblem({ instance: "x", args: null, env: [[n, ""]] }) === null);
    const text = fc.string({ unit: "binary", maxLength: 40 }).filter((t) => !t.includes("\0"));
    fc.assert(fc.property(fc.option(fc.array(text, { maxLength: 8 })), fc.uniqueArray(fc.tuple(name, text), { maxLength: 6, selector: ([n]) => n }), (args, env) => {
      const message = { instance: "vm-1", entropy, realtimeNs: NOW_NS, args, env };
      const back = readPointLine(encodePointResume(message));
      expect(back).toEqual({ instance: "vm-1", realtimeNs: NOW_NS, entropy, args, env: env.map(([n, v]) => `${n}=${v}`) });
    }), { seed: 23, numRuns: 500 });
  });

  test("what the guest would refuse is refused on the host, before anything starts", () => {
    const problem = (args: string[] | null, env: [string, string][], instance = "vm-1") => instanceProblem({ instance, args, env });
    expect(problem(["a"], [["APP", "1"]])).toBeNull();
    expect(problem(null, [], "a/b")).toBe(`instance "a/b": expected 1 to 64 letters, digits, '.', '_' or '-'`);
    expect(problem(["a\0b"], [])).toBe("an argument holds a NUL byte");
    expect(problem(Array.from({ length: 257 }, () => "x"), [])).toBe("257 arguments, at most 256");
    expect(problem(null, [["PATH", "/evil"]])).toBe("env: PATH is burrow's or the runtime's and cannot be set");
    expect(problem(null, [["LD_PRELOAD", "/evil.so"]])).toBe("env: LD_PRELOAD is burrow's or the runtime's and cannot be set");
    expect(problem(null, [["1X", ""]])).toBe('env: "1X" is not a variable name');
    expect(problem(null, [["A", "x\0"]])).toBe("env: A holds a NUL byte");
    expect(problem(null, [["A", "1"], ["A", "2"]])).toBe("env: a variable is named twice");
    expect(() => encodePointResume({ instance: "vm-1", entropy, realtimeNs: NOW_NS, args: null, env: [["BUN_BE_BUN", "1"]] })).toThrow("the resume message cannot carry this: env: BUN_BE_BUN is burrow's or the runtime's and cannot be set");
    expect(() => encodePointResume({ instance: "vm-1", entropy, realtimeNs: NOW_NS, args: ["x".repeat(MAX_SUPERVISOR_RESUME_BYTES / 2)], env: [] })).toThrow(/more than the guest's supervisor reads \(70000\)/);
  });
});

describe("the warm resume", () => {
  test("a header the supervisor splits on spaces, then the workload's line without the entropy", () => {
    const text = encodeWarmResume({ instance: "vm-1", entropy, realtimeNs: NOW_NS, args: ["a b"], env: [["APP", "1"]] });
    const [header, workload, rest] = text.split("\n");
    expect(header).toBe(`burrow-warm-resume 1 vm-1 ${NOW_NS} ${Buffer.from(entropy).toString("hex")}`);
    expect(JSON.parse(workload!)).toEqual({ burrow: "snapshot", version: 1, type: "resume", instance: "vm-1", realtimeNs: String(NOW_NS), args: ["a b"], env: { APP: "1" } });
    expect(rest).toBe("");
    expect(() => encodeWarmResume({ instance: "vm-1", entropy, realtimeNs: NOW_NS, args: ["x".repeat(MAX_SUPERVISOR_RESUME_BYTES)], env: [] })).toThrow(/more than the guest's supervisor reads/);
  });
});

describe("host side of snapshots", () => {
  test("snapshot boots add burrow.snapshot=1 and ro before --, unless the line says otherwise", async () => {
    const { withKernelWords } = await import("../../src/host/snapshot");
    expect(withKernelWords("burrow.zram=64M -- a b", ["burrow.snapshot=1", "ro"])).toBe("burrow.zram=64M burrow.snapshot=1 ro -- a b");
    expect(withKernelWords("rw burrow.snapshot=1", ["burrow.snapshot=1", "ro"])).toBe("rw burrow.snapshot=1");
  });

  test("the migration URI's path is quoted for the shell QEMU runs it with", async () => {
    const { shellQuote } = await import("../../src/host/snapshot");
    expect(shellQuote("/tmp/a b/it's")).toBe(`'/tmp/a b/it'\\''s'`);
    const echoed = Bun.spawnSync(["sh", "-c", `printf %s ${shellQuote("x'; touch /tmp/pwned; '$(id)")}`]).stdout.toString();
    expect(echoed).toBe("x'; touch /tmp/pwned; '$(id)");
  });

  test("a file's identity notices size, time and content changes", async () => {
    const { fileIdentity, identityChange } = await import("../../src/host/snapshot-files");
    const { mkdtempSync, rmSync, writeFileSync, utimesSync } = await import("node:fs");
    const dir = mkdtempSync("/tmp/burrow-identity-");
    try {
      const path = `${dir}/f`;
      writeFileSync(path, "a".repeat(3 << 20));
      const saved = fileIdentity(path);
      expect(identityChange(saved)).toBeNull();
      writeFileSync(path, "b".repeat(3 << 20));
      utimesSync(path, saved.mtimeMs / 1000, saved.mtimeMs / 1000);
      expect(identityChange(saved)).toBe(`${path} has different contents`);
      writeFileSync(path, "a");
      expect(identityChange(saved)).toMatch(/changed size/);
      rmSync(path);
      expect(identityChange(saved)).toBe(`${path} is gone (ENOENT)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("warming the agent into the saved memory", () => {
  const files: Record<string, string> = {
    "/usr/local/bin/agent.sh": "#!/bin/sh -e\necho hi\n",
    "/bin/sh": "\x7fELF...",
    "/usr/bin/agent": "\x7fELF binary",
    "/usr/bin/env-script": "#! /usr/bin/env python3\n",
    "/loop": "#!/loop\n",
  };
  const read = (path: string) => (path in files ? new TextEncoder().encode(files[path]) : null);

  test("a script's interpreter is read after the script; a binary alone", () => {
    expect(warmAgent("/usr/local/bin/agent.sh", read)).toEqual(["/usr/local/bin/agent.sh", "/bin/sh"]);
    expect(warmAgent("/usr/bin/agent", read)).toEqual(["/usr/bin/agent"]);
    expect(warmAgent("/usr/bin/env-script", read)).toEqual(["/usr/bin/env-script"]);
  });

  test("missing or unreadable files and #! loops stop it quietly", () => {
    expect(warmAgent("/nowhere", read)).toEqual([]);
    expect(warmAgent("/loop", read)).toEqual(["/loop", "/loop"]);
  });
});

