// The paravisor's host-entropy read (src/modes/paravisor/system.ts) is bounded: burrow.entropy.path
// pointing at /dev/zero, a huge file or a FIFO costs one small read, never a fill-memory loop or a hang.
import { afterAll, describe, expect, spyOn, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { log } from "../../src/log";
import { ENTROPY_READ_LIMIT, MAX_ENTROPY_SIZE, readBounded, useHostEntropy } from "../../src/modes/paravisor/system";

const work = mkdtempSync(join(tmpdir(), "burrow-entropy-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** log.warn recorded instead of printed. */
const quietWarnings = () => spyOn(log, "warn").mockImplementation((() => {}) as unknown as typeof log.warn);

const file = (name: string, size: number) => {
  const path = join(work, name);
  writeFileSync(path, Uint8Array.from({ length: size }, (_, i) => (i * 13 + 1) & 0xff));
  return path;
};

describe("bounded entropy read", () => {
  test("/dev/zero: one read of the bound, flagged as truncated", () => {
    const read = readBounded("/dev/zero", ENTROPY_READ_LIMIT);
    expect(read.data.length).toBe(ENTROPY_READ_LIMIT);
    expect(read.truncated).toBe(true);
    expect(read.data.every((byte) => byte === 0)).toBe(true);
  });

  test("regular files: exactly the bound is whole, one byte more is truncated", () => {
    expect(readBounded(file("small", 10), 4096)).toEqual({ data: expect.any(Uint8Array), truncated: false });
    expect(readBounded(file("small", 10), 4096).data.length).toBe(10);
    const exact = readBounded(file("exact", 4096), 4096);
    expect([exact.data.length, exact.truncated]).toEqual([4096, false]);
    const over = readBounded(file("over", 4097), 4096);
    expect([over.data.length, over.truncated]).toEqual([4096, true]);
    expect(readBounded(file("empty", 0), 4096).data.length).toBe(0);
  });

  test("a directory or a FIFO is refused at once (the FIFO has no writer: a blocking open would hang)", () => {
    const dir = join(work, "dir");
    mkdirSync(dir);
    expect(() => readBounded(dir, 4096)).toThrow("not a regular file or character device");
    const fifo = join(work, "fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    expect(() => readBounded(fifo, 4096)).toThrow("not a regular file or character device");
  });

  test("useHostEntropy on /dev/zero: 256 bytes credited, one warning line saying it was truncated", () => {
    const warn = quietWarnings();
    try {
      let argument = new Uint8Array();
      const outcome = useHostEntropy({ source: "/dev/zero", confidential: false, randomPath: "/dev/null", ioctl: (_fd, _request, arg) => ((argument = arg.slice()), 0) });
      expect(outcome).toEqual({ kind: "credited", bytes: MAX_ENTROPY_SIZE, truncatedFrom: ENTROPY_READ_LIMIT });
      expect(new DataView(argument.buffer).getInt32(4, true)).toBe(MAX_ENTROPY_SIZE);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/^truncating host-provided entropy \(received more than 4096 bytes/);
    } finally {
      warn.mockRestore();
    }
  });

  test("useHostEntropy on a FIFO or an absent path: missing, with the reason", () => {
    const warn = quietWarnings();
    try {
      const outcome = useHostEntropy({ source: join(work, "fifo"), confidential: false, randomPath: "/nonexistent" });
      expect(outcome).toEqual({ kind: "missing", reason: "not a regular file or character device" });
      expect(useHostEntropy({ source: join(work, "absent"), confidential: false, randomPath: "/nonexistent" })).toEqual({ kind: "missing", reason: "ENOENT" });
    } finally {
      warn.mockRestore();
    }
  });
});
