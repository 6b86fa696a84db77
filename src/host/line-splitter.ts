// Whole lines out of a byte stream that arrives in arbitrary chunks (QMP, the control port): a
// line, or one multi-byte character, may be cut across two chunks.
export class LineSplitter {
  private readonly decoder = new TextDecoder();
  private rest = "";

  /** The lines this chunk completes, without their "\n"; an unfinished line waits for the next chunk. */
  push(chunk: Uint8Array): string[] {
    const lines = (this.rest + this.decoder.decode(chunk, { stream: true })).split("\n");
    this.rest = lines.pop()!;
    return lines;
  }
}
