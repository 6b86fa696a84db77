import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { readLine, warmAgent } from "../../src/modes/microvm/snapshot";
import { encodeReady, encodeResume, encodeResumed, MIN_ENTROPY_BYTES, parseReady, parseResume, parseResumed } from "../../src/snapshot/protocol";

const entropy = new Uint8Array(MIN_ENTROPY_BYTES).map((_, index) => index);
const NOW_NS = 1_764_400_000_000_000_000n;

function resumeLine(overrides: Record<string, unknown> = {}): string {
  const body = { burrow: "snapshot", version: 1, type: "resume", instance: "vm-1", entropy: Buffer.from(entropy).toString("base64"), realtimeNs: String(NOW_NS), ...overrides };
  return JSON.stringify(body);
}

describe("snapshot control protocol", () => {
  test("resume round-trips with arguments and variables", () => {
    const line = encodeResume({ instance: "vm-1", entropy, realtimeNs: NOW_NS, args: ["--serve", "a b"], env: [["APP", "1"]] });
    expect(line.endsWith("\n")).toBe(true);
    const parsed = parseResume(line.trimEnd());
    expect(parsed).toEqual({ ok: true, message: { type: "resume", instance: "vm-1", entropy, realtimeNs: NOW_NS, args: ["--serve", "a b"], env: [["APP", "1"]] } });
  });

  test("ready and resumed carry the frame", () => {
    expect(parseReady(encodeReady(1234.4).trimEnd())).toEqual({ ok: true, message: { type: "ready", uptimeMs: 1234 } });
    expect(parseResumed(encodeResumed("vm-2").trimEnd())).toEqual({ ok: true, message: { type: "resumed", instance: "vm-2" } });
  });

  test("every malformed resume is refused with one reason", () => {
    const refused = (line: string) => {
      const parsed = parseResume(line);
      return parsed.ok ? "accepted" : parsed.problem;
    };
    expect(refused("{")).toBe("not JSON");
    expect(refused("[]")).toBe("not a JSON object");
    expect(refused(resumeLine({ version: 2 }))).toBe("protocol version 2, this burrow speaks 1");
    expect(refused(resumeLine({ burrow: "other" }))).toBe('not a burrow snapshot message (burrow: "other")');
    expect(refused(resumeLine({ entropy: Buffer.from(entropy.subarray(0, 63)).toString("base64") }))).toBe("entropy: 63 bytes, expected 64 to 4096");
    expect(refused(resumeLine({ entropy: "***" }))).toBe("entropy: expected base64");
    expect(refused(resumeLine({ realtimeNs: 5 }))).toBe("realtimeNs: expected a decimal string of nanoseconds since the epoch");
    expect(refused(resumeLine({ realtimeNs: "1" }))).toBe("realtimeNs: 1 is not a plausible wall clock");
    expect(refused(resumeLine({ instance: "a/b" }))).toBe("instance: expected 1 to 64 letters, digits, '.', '_' or '-'");
    expect(refused(resumeLine({ args: ["ok", 3] }))).toBe("args: expected at most 256 strings without NUL");
    expect(refused(resumeLine({ env: { PATH: "/evil" } }))).toBe("env: PATH is burrow's or the runtime's and cannot be set");
    expect(refused(resumeLine({ env: { BUN_BE_BUN: "1" } }))).toBe("env: BUN_BE_BUN is burrow's or the runtime's and cannot be set");
    expect(refused(resumeLine({ extra: 1 }))).toBe('unknown field "extra"');
    expect(refused(resumeLine({ type: "ready" }))).toBe('expected resume, got "ready"');
    expect(refused(`{"__proto__":{"burrow":"snapshot"}}`)).toBe("not a burrow snapshot message (burrow: undefined)");
  });

  test("parsing never throws (fuzz)", () => {
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.json().map((json) => json), fc.dictionary(fc.string(), fc.jsonValue()).map((value) => JSON.stringify({ burrow: "snapshot", version: 1, type: "resume", ...value }))), (line) => {
      const parsed = parseResume(line);
      expect(typeof parsed.ok).toBe("boolean");
    }), { seed: 11, numRuns: 3000 });
  });
});

describe("the warm resume", () => {
  test("a header the supervisor splits on spaces, then the workload's line without the entropy", async () => {
    const { encodeWarmResume, MAX_WARM_RESUME_BYTES } = await import("../../src/snapshot/protocol");
    const text = encodeWarmResume({ instance: "vm-1", entropy, realtimeNs: NOW_NS, args: ["a b"], env: [["APP", "1"]] });
    const [header, workload, rest] = text.split("\n");
    expect(header).toBe(`burrow-warm-resume 1 vm-1 ${NOW_NS} ${Buffer.from(entropy).toString("hex")}`);
    expect(JSON.parse(workload!)).toEqual({ burrow: "snapshot", version: 1, type: "resume", instance: "vm-1", realtimeNs: String(NOW_NS), args: ["a b"], env: { APP: "1" } });
    expect(rest).toBe("");
    expect(() => encodeWarmResume({ instance: "vm-1", entropy, realtimeNs: NOW_NS, args: ["x".repeat(MAX_WARM_RESUME_BYTES)], env: [] })).toThrow(/more than a warm snapshot's supervisor reads/);
  });
});

describe("reading the resume line", () => {
  test("joins chunks up to the newline, waiting while the host side is closed before the line", () => {
    const chunks = [null, null, new TextEncoder().encode('{"a"'), new TextEncoder().encode(':1}\nrest')];
    let pauses = 0;
    expect(readLine(() => chunks.shift() ?? null, () => pauses++)).toBe('{"a":1}');
    expect(pauses).toBe(2);
  });

  test("a host that hangs up in the middle of the line: refused, not waited for", () => {
    const chunks = [new TextEncoder().encode('{"a"'), null, new TextEncoder().encode(':1}\n')];
    expect(() => readLine(() => chunks.shift() ?? null, () => {})).toThrow("the host closed the control port in the middle of the resume message (4 bytes received)");
  });

  test("refuses a line over the limit without reading on", () => {
    let reads = 0;
    expect(() => readLine(() => (reads++, new Uint8Array(100).fill(0x61)), () => {}, 250)).toThrow("resume message longer than 250 bytes");
    expect(reads).toBe(3);
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

