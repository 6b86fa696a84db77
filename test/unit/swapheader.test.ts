// The zram swap header is ours (the guest has no mkswap): check it with the host's own readers.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeSwapHeader, SWAP_PAGE_SIZE } from "../../src/modes/microvm/swapheader";
import { formatUuid, randomUuidV4 } from "../../src/modes/microvm/uuid";

function withSwapFile(pages: number, header: Uint8Array, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "burrow-swap-"));
  try {
    const image = new Uint8Array(pages * SWAP_PAGE_SIZE);
    image.set(header, 0);
    const path = join(dir, "swap.img");
    writeFileSync(path, image);
    fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(argv: string[]): string {
  const result = spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${result.exitCode}: ${result.stderr.toString()}`);
  return result.stdout.toString();
}

describe("swap header encoder", () => {
  const uuid = Uint8Array.from([0x6f, 0x1d, 0x2c, 0x3b, 0x4a, 0x59, 0x4e, 0x21, 0x9b, 0x7c, 0x5d, 0x0e, 0x8f, 0x1a, 0x2b, 0x3c]);

  test("the kernel's layout: version, last_page, nr_badpages, uuid, label, magic at page end", () => {
    const page = encodeSwapHeader({ bytes: 256 * SWAP_PAGE_SIZE + 100, uuid, label: "burrow-zram" });
    const view = new DataView(page.buffer);
    expect(page.byteLength).toBe(4096);
    expect(page.subarray(0, 1024).every((byte) => byte === 0)).toBe(true);
    expect(view.getUint32(1024, true)).toBe(1);
    expect(view.getUint32(1028, true)).toBe(255);
    expect(view.getUint32(1032, true)).toBe(0);
    expect([...page.subarray(1036, 1052)]).toEqual([...uuid]);
    expect(Buffer.from(page.subarray(1052, 1068)).toString("latin1")).toBe("burrow-zram\0\0\0\0\0");
    expect(Buffer.from(page.subarray(4086)).toString("latin1")).toBe("SWAPSPACE2");
  });

  test("blkid -p reads TYPE=swap, the label, the uuid and version 1", () => {
    withSwapFile(256, encodeSwapHeader({ bytes: 256 * SWAP_PAGE_SIZE, uuid, label: "burrow-zram" }), (path) => {
      const fields = Object.fromEntries(run(["blkid", "-p", "-o", "export", path]).trim().split("\n").map((line) => line.split("=", 2) as [string, string]));
      expect(fields.TYPE).toBe("swap");
      expect(fields.LABEL).toBe("burrow-zram");
      expect(fields.UUID).toBe("6f1d2c3b-4a59-4e21-9b7c-5d0e8f1a2b3c");
      expect(fields.VERSION).toBe("1");
    });
  });

  test("swaplabel and file agree", () => {
    withSwapFile(64, encodeSwapHeader({ bytes: 64 * SWAP_PAGE_SIZE, uuid, label: "burrow-zram" }), (path) => {
      const labels = run(["swaplabel", path]);
      expect(labels).toContain("LABEL: burrow-zram");
      expect(labels).toContain("UUID:  6f1d2c3b-4a59-4e21-9b7c-5d0e8f1a2b3c");
      const description = run(["file", "-b", path]);
      expect(description).toContain("Linux swap file");
      expect(description).toContain("version 1");
      expect(description).toContain("size 63 pages");
      expect(description).toContain("LABEL=burrow-zram");
    });
  });

  test("random uuids are RFC 4122 version 4", () => {
    for (let i = 0; i < 20; i++) {
      expect(formatUuid(randomUuidV4())).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    const page = encodeSwapHeader({ bytes: 1 << 20 });
    expect(page.subarray(1036, 1052).some((byte) => byte !== 0)).toBe(true);
  });

  test("rejects what no kernel would take", () => {
    expect(() => encodeSwapHeader({ bytes: 9 * SWAP_PAGE_SIZE })).toThrow(/too small/);
    expect(() => encodeSwapHeader({ bytes: 1 << 20, label: "a label that is far too long" })).toThrow(/longer than 15 bytes/);
    expect(() => encodeSwapHeader({ bytes: 1 << 20, uuid: new Uint8Array(4) })).toThrow(/16 bytes/);
  });
});
