// The frame codec (src/control/frames.ts) as properties: whatever frames the host encodes come back
// whole however the byte stream is cut, and whatever bytes arrive, the reader either hands out
// frames or refuses a header — never holds more than one frame's bytes beyond a chunk.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { supervisorWireHeader } from "../../src/control/c-header";
import { decodeExec, encodeExec, encodeFrame, FrameError, FrameReader, type Frame } from "../../src/control/frames";
import { ErrorCode, ExecField, HEADER_BYTES, MAX_BODY_BYTES } from "../../src/control/wire";

const SEED = 20261207;

const frameArb = fc.record({
  type: fc.integer({ min: 0, max: 255 }),
  flags: fc.integer({ min: 0, max: 255 }),
  session: fc.integer({ min: 0, max: 0xffffffff }),
  body: fc.uint8Array({ maxLength: 2048 }),
});

/** The stream cut at the given points (sorted, inside it). */
function cut(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((point) => point % (bytes.byteLength + 1)))].sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const point of [...at, bytes.byteLength]) {
    pieces.push(bytes.slice(start, point));
    start = point;
  }
  return pieces;
}

describe("the frame codec", () => {
  test("encoded frames come back whole, however the stream is cut (property, seeded)", () => {
    fc.assert(fc.property(fc.array(frameArb, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (frames, points) => {
      const stream = new Uint8Array(frames.reduce((sum, frame) => sum + HEADER_BYTES + frame.body.byteLength, 0));
      let offset = 0;
      for (const frame of frames) {
        const bytes = encodeFrame(frame.type, frame.session, frame.body, frame.flags);
        stream.set(bytes, offset);
        offset += bytes.byteLength;
      }
      const reader = new FrameReader();
      const got: Frame[] = [];
      for (const piece of cut(stream, points)) got.push(...reader.push(piece));
      expect(reader.buffered).toBe(0);
      expect(got.map((frame) => ({ ...frame, body: [...frame.body] }))).toEqual(frames.map((frame) => ({ ...frame, body: [...frame.body] })));
    }), { seed: SEED, numRuns: 300 });
  });

  test("any bytes: frames or a FrameError, and the reader never holds more than one frame (property, seeded)", () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 4096 }), { maxLength: 40 }), (chunks) => {
      const reader = new FrameReader();
      for (const chunk of chunks) {
        try {
          reader.push(chunk);
        } catch (error) {
          expect(error).toBeInstanceOf(FrameError);
          return;
        }
        expect(reader.buffered).toBeLessThan(HEADER_BYTES + MAX_BODY_BYTES);
      }
    }), { seed: SEED, numRuns: 300 });
  });

  test("a body over the bound is refused by the encoder and by the reader's header check", () => {
    expect(() => encodeFrame(1, 1, new Uint8Array(MAX_BODY_BYTES + 1))).toThrow(RangeError);
    const header = encodeFrame(1, 1);
    new DataView(header.buffer).setUint32(8, MAX_BODY_BYTES + 1, true);
    expect(() => new FrameReader().push(header)).toThrow(FrameError);
  });

  test("an exec request the guest would refuse is refused on the host", () => {
    expect(() => encodeExec({ argv: [] })).toThrow("no program to run");
    expect(() => encodeExec({ argv: ["a\0b"] })).toThrow("NUL");
    expect(() => encodeExec({ argv: ["x"], cwd: "relative" })).toThrow("absolute");
    expect(() => encodeExec({ argv: ["x"], env: { "1BAD": "x" } })).toThrow("not a variable name");
    expect(() => encodeExec({ argv: ["x".repeat(MAX_BODY_BYTES)] })).toThrow(/more than a frame holds/);
  });

  test("the workload record: an empty WORKLOAD field, only when asked, read back; its tag and error code reach the supervisor's wire.h", () => {
    const plain = encodeExec({ argv: ["sh"], stdin: true });
    const workload = encodeExec({ argv: ["sh"], stdin: true, workload: true });
    // One more record: u16 tag, u32 length 0, no value.
    expect([...workload.subarray(plain.byteLength)]).toEqual([ExecField.WORKLOAD & 0xff, ExecField.WORKLOAD >> 8, 0, 0, 0, 0]);
    expect([...workload.subarray(0, plain.byteLength)]).toEqual([...plain]);
    expect(encodeExec({ argv: ["sh"], workload: false })).toEqual(encodeExec({ argv: ["sh"] }));
    expect(decodeExec(workload)).toEqual({ argv: ["sh"], stdin: true, workload: true });
    expect(decodeExec(plain).workload).toBeUndefined();
    const withValue = new Uint8Array([...plain, ExecField.WORKLOAD, 0, 1, 0, 0, 0, 1]);
    expect(() => decodeExec(withValue)).toThrow(FrameError);
    // A number of its own: no other field or error code shares it.
    expect(Object.values(ExecField).filter((tag) => tag === ExecField.WORKLOAD)).toHaveLength(1);
    expect(Object.values(ErrorCode).filter((code) => code === ErrorCode.WORKLOAD)).toHaveLength(1);
    const header = supervisorWireHeader();
    expect(header).toContain(`#define EF_WORKLOAD ${ExecField.WORKLOAD}\n`);
    expect(header).toContain(`#define EC_WORKLOAD ${ErrorCode.WORKLOAD}\n`);
  });
});
