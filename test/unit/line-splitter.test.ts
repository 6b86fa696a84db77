// Lines out of socket chunks (QMP, the control port): cut anywhere, even inside a character.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { LineSplitter } from "../../src/host/line-splitter";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("LineSplitter", () => {
  test("several lines in one chunk, and an unfinished one kept for the next", () => {
    const splitter = new LineSplitter();
    expect(splitter.push(bytes('{"a":1}\n{"b":2}\n{"c"'))).toEqual(['{"a":1}', '{"b":2}']);
    expect(splitter.push(bytes(":3}\n"))).toEqual(['{"c":3}']);
    expect(splitter.push(bytes(""))).toEqual([]);
  });

  test("a multi-byte character cut between chunks comes out whole", () => {
    const splitter = new LineSplitter();
    const line = bytes("résumé ✓\n");
    expect(splitter.push(line.subarray(0, 2))).toEqual([]);
    expect(splitter.push(line.subarray(2, 10))).toEqual([]);
    expect(splitter.push(line.subarray(10))).toEqual(["résumé ✓"]);
  });

  test("any cutting of any text gives the lines of the whole", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme" }).map((s) => s.replaceAll("\n", "")), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (lines, cuts) => {
        const whole = bytes(lines.map((line) => `${line}\n`).join(""));
        const points = [...new Set(cuts.map((cut) => cut % (whole.length + 1)))].sort((a, b) => a - b);
        const splitter = new LineSplitter();
        const seen: string[] = [];
        let from = 0;
        for (const point of [...points, whole.length]) {
          seen.push(...splitter.push(whole.subarray(from, point)));
          from = point;
        }
        expect(seen).toEqual(lines);
      }),
      { seed: 11, numRuns: 300 },
    );
  });
});
