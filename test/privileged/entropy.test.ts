// Paravisor host entropy against /dev/random itself: a private mount namespace with a regular file
// bind-mounted over /dev/random (moved from test/unit/paravisor.test.ts: mount namespaces need root).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers/artifacts";

const BUN = process.execPath;
let work: string;
let source: string;
const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7 + 3) & 0xff);

beforeAll(() => {
  // Never skip: a privileged test that did not run must show up as a failure.
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (mount namespaces)");
  work = mkdtempSync(join(tmpdir(), "burrow-entropy-"));
  source = join(work, "entropy-reg");
  writeFileSync(source, bytes);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("host entropy (fake /dev/random in a mount namespace)", () => {
  const inNamespace = (confidential: "0" | "1") => {
    const fake = join(work, `fake-random-${confidential}`);
    writeFileSync(fake, "");
    const script = `mount --bind "$1" /dev/random && exec "$2" "$3" "$4" "$5" "$1"`;
    const result = spawnSync(
      ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", fake, BUN, join(ROOT, "test/fixtures/paravisor/entropy-check.ts"), source, confidential],
      { stdout: "pipe", stderr: "pipe" },
    );
    if (result.exitCode !== 0) throw new Error(`namespace run failed (${result.exitCode}): ${result.stderr.toString()}`);
    return JSON.parse(result.stdout.toString()) as { outcome?: unknown; error?: string; devRandom: string; fake: string };
  };

  test("confidential: a plain write of the bytes to /dev/random, no credit (fake device in a mount namespace)", () => {
    const result = inNamespace("1");
    expect(result.outcome).toEqual({ kind: "written", bytes: 256, truncatedFrom: 300 });
    expect(result.fake).toBe(Buffer.from(bytes.subarray(0, 256)).toString("hex"));
    expect(result.devRandom).toBe(result.fake); // /dev/random was the fake
  }, 30_000);

  test("not confidential: the ioctl goes to /dev/random (a regular-file fake answers ENOTTY, nothing written)", () => {
    const result = inNamespace("0");
    expect(result.error).toMatch(/^ioctl\(.*request="0x40085203", what="RNDADDENTROPY", path="\/dev\/random"\) failed: ENOTTY/);
    expect(result.fake).toBe("");
  }, 30_000);
});
