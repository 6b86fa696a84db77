// Reading a guest stream whole, as exec() does, without letting the guest decide how much host
// memory that takes: past the bound the stream is cancelled and the caller's error thrown.

import { concatAll } from "../control/frames";
/** The stream's bytes, at most `limitBytes` of them; more cancels it and throws `tooMuch()`. */
export async function readBounded(stream: ReadableStream<Uint8Array>, limitBytes: number, tooMuch: () => Error): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limitBytes) {
      await reader.cancel().catch(() => {});
      throw tooMuch();
    }
    chunks.push(value);
  }
  return concatAll(chunks);
}
