// The host's side of the channel's throughput paths: the frame reader copies each byte once and
// hands out frames that share nothing with the chunks it was given, and an upload goes ahead
// within the put window the guest announces (HELLO_ACK), never past it, and within STDIN's
// window when a guest announces none.
import { describe, expect, test } from "bun:test";
import { ControlClient, putWindow } from "../../src/control/client";
import { decodeHelloAck, encodeFrame, type Frame, FrameReader, u32Body } from "../../src/control/frames";
import { transportPair } from "../../src/control/transport";
import { DATA_CHUNK_BYTES, FLAG_EOF, FrameType, HEADER_BYTES, INPUT_WINDOW_BYTES, MAX_BODY_BYTES, MAX_SESSIONS, OUTPUT_WINDOW_BYTES, PROTOCOL_VERSION, PUT_WINDOW_BYTES } from "../../src/control/wire";

/** Deterministic bytes (a small LCG): no test depends on a random draw. */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state >>> 24;
  }
  return out;
}

describe("FrameReader", () => {
  test("frames share nothing with the chunks pushed: a chunk reused by its owner changes no frame, whether a body lay in one chunk or across several", () => {
    const small = bytes(300, 1);
    const large = bytes(MAX_BODY_BYTES, 2);
    const stream = new Uint8Array([...encodeFrame(FrameType.STDOUT, 3, small), ...encodeFrame(FrameType.FILE_DATA, 4, large, FLAG_EOF)]);
    const reader = new FrameReader();
    const got: Frame[] = [];
    // The first chunk holds the small frame and part of the large one's header; then odd-sized pieces.
    const cuts = [HEADER_BYTES + small.byteLength + 5, 4096, 1, 60_000, 7];
    let at = 0;
    for (const size of [...cuts, stream.byteLength]) {
      const chunk = stream.slice(at, Math.min(stream.byteLength, at + size));
      at += chunk.byteLength;
      got.push(...reader.push(chunk));
      chunk.fill(0xee);
      if (at >= stream.byteLength) break;
    }
    expect(reader.buffered).toBe(0);
    expect(got.map((frame) => [frame.type, frame.session, frame.flags, frame.body.byteLength])).toEqual([
      [FrameType.STDOUT, 3, 0, small.byteLength],
      [FrameType.FILE_DATA, 4, FLAG_EOF, large.byteLength],
    ]);
    expect(Buffer.compare(Buffer.from(got[0]!.body), Buffer.from(small))).toBe(0);
    expect(Buffer.compare(Buffer.from(got[1]!.body), Buffer.from(large))).toBe(0);
  });

  test("a largest frame a byte at a time: held as one frame's bytes, never more, and whole at the end", () => {
    const body = bytes(MAX_BODY_BYTES, 3);
    const frame = encodeFrame(FrameType.STDERR, 9, body);
    const reader = new FrameReader();
    let most = 0;
    for (let i = 0; i < frame.byteLength - 1; i++) {
      expect(reader.push(frame.subarray(i, i + 1))).toEqual([]);
      most = Math.max(most, reader.buffered);
    }
    const [last] = reader.push(frame.subarray(frame.byteLength - 1));
    expect(most).toBe(frame.byteLength - 1);
    expect(reader.buffered).toBe(0);
    expect(Buffer.compare(Buffer.from(last!.body), Buffer.from(body))).toBe(0);
  });
});

describe("the put window", () => {
  test("HELLO_ACK's sixth field is the upload window; a five-field one (an older guest) means uploads within the input window; the host never goes past its own", () => {
    const five = u32Body(PROTOCOL_VERSION, MAX_SESSIONS, OUTPUT_WINDOW_BYTES, INPUT_WINDOW_BYTES, DATA_CHUNK_BYTES);
    const six = u32Body(PROTOCOL_VERSION, MAX_SESSIONS, OUTPUT_WINDOW_BYTES, INPUT_WINDOW_BYTES, DATA_CHUNK_BYTES, PUT_WINDOW_BYTES);
    expect(decodeHelloAck(five).putWindow).toBe(INPUT_WINDOW_BYTES);
    expect(decodeHelloAck(six).putWindow).toBe(PUT_WINDOW_BYTES);
    expect(putWindow(decodeHelloAck(six))).toBe(PUT_WINDOW_BYTES);
    const greedy = u32Body(PROTOCOL_VERSION, MAX_SESSIONS, OUTPUT_WINDOW_BYTES, INPUT_WINDOW_BYTES, DATA_CHUNK_BYTES, 0xffffffff);
    expect(putWindow(decodeHelloAck(greedy))).toBe(PUT_WINDOW_BYTES);
  });

  /**
   * A guest that acknowledges an upload's data only once a whole `creditAfter` bytes arrived: a
   * client waiting for credit chunk by chunk never gets there. Returns the most bytes it had
   * unacknowledged and what it wrote.
   */
  async function upload(ackWindow: number | null, creditAfter: number, size: number): Promise<{ peak: number; written: Uint8Array }> {
    const [guest, host] = transportPair();
    let outstanding = 0;
    let peak = 0;
    let unanswered = 0;
    const parts: Uint8Array[] = [];
    guest.onFrame((frame) => {
      const answer = (type: number, body: Uint8Array) => guest.send(encodeFrame(type, frame.session, body));
      if (frame.type === FrameType.HELLO) {
        const fields = [PROTOCOL_VERSION, MAX_SESSIONS, OUTPUT_WINDOW_BYTES, INPUT_WINDOW_BYTES, DATA_CHUNK_BYTES];
        return answer(FrameType.HELLO_ACK, u32Body(...(ackWindow === null ? fields : [...fields, ackWindow])));
      }
      if (frame.type === FrameType.PUT) return;
      if (frame.type !== FrameType.PUT_DATA) throw new Error(`unexpected frame ${frame.type}`);
      parts.push(frame.body);
      outstanding += frame.body.byteLength;
      unanswered += frame.body.byteLength;
      peak = Math.max(peak, outstanding);
      const done = (frame.flags & FLAG_EOF) !== 0;
      if (unanswered >= creditAfter || done) {
        answer(FrameType.INPUT_CREDIT, u32Body(unanswered));
        outstanding -= unanswered;
        unanswered = 0;
      }
      if (done) {
        const total = new Uint8Array(8);
        new DataView(total.buffer).setBigUint64(0, BigInt(parts.reduce((sum, part) => sum + part.byteLength, 0)), true);
        answer(FrameType.FILE_DONE, total);
      }
    });
    const client = await ControlClient.over(host);
    try {
      await client.writeFile("/upload.bin", bytes(size, 5));
      return { peak, written: Buffer.concat(parts) };
    } finally {
      client.close();
    }
  }

  test("an upload goes ahead of INPUT_CREDIT up to the announced window and no further; a guest announcing none gets the input window", async () => {
    const size = 3 * PUT_WINDOW_BYTES + 123;
    const pipelined = await upload(PUT_WINDOW_BYTES, PUT_WINDOW_BYTES, size);
    expect(pipelined.peak).toBe(PUT_WINDOW_BYTES);
    expect(Buffer.compare(pipelined.written, Buffer.from(bytes(size, 5)))).toBe(0);
    const older = await upload(null, INPUT_WINDOW_BYTES, size);
    expect(older.peak).toBeLessThanOrEqual(INPUT_WINDOW_BYTES);
    expect(older.peak).toBeGreaterThan(0);
    expect(Buffer.compare(older.written, Buffer.from(bytes(size, 5)))).toBe(0);
  });
});
