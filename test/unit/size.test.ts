// The one size grammar (src/config/size.ts) that --mem, burrow.zram=, burrow.memory-max= and the
// byte rlimits share: what it reads, what it refuses and why, and that formatting reads back.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { formatSize, parseSize, type BareUnit } from "../../src/config/size";

const K = 2 ** 10, M = 2 ** 20, G = 2 ** 30, T = 2 ** 40;

describe("parseSize", () => {
  const accepted: [string, number, BareUnit?][] = [
    ["0", 0],
    ["0K", 0],
    ["1", 1],
    ["4096", 4096],
    ["4096B", 4096],
    ["4096b", 4096],
    ["64k", 64 * K],
    ["64K", 64 * K],
    ["64KiB", 64 * K],
    ["64kib", 64 * K],
    ["64KIB", 64 * K],
    ["512M", 512 * M],
    ["512MiB", 512 * M],
    ["1G", G],
    ["1g", G],
    ["1GiB", G],
    ["2T", 2 * T],
    ["2TiB", 2 * T],
    ["1.5G", 1.5 * G],
    ["1.50G", 1.5 * G],
    ["0.5K", 512],
    ["1.000000000000000000000000000000000000000000000000M", M], // trailing zeros say nothing
    ["1.0", 1],
    ["  512M  ", 512 * M],
    ["512 M", 512 * M],
    ["9007199254740991", Number.MAX_SAFE_INTEGER],
    ["9007199254740991B", Number.MAX_SAFE_INTEGER],
    ["8191T", 8191 * T],
    // bare digits in the caller's unit: --mem's MiB
    ["512", 512 * M, "M"],
    ["1.5", 1.5 * M, "M"],
    ["512B", 512, "M"],
    ["512K", 512 * K, "M"],
  ];
  test.each(accepted)("%p reads as %p bytes (bare unit %p)", (text, bytes, bare = "B") => {
    expect(parseSize(text, bare)).toEqual({ bytes });
  });

  const refused: [string, string][] = [
    ["", "not a size"],
    ["   ", "not a size"],
    ["lots", "not a size"],
    ["M", "not a size"],
    ["-1", "not a size"],
    ["+1", "not a size"],
    ["1e6", "not a size"],
    ["0x10", "not a size"],
    [".5G", "not a size"],
    ["1.G", "not a size"],
    ["1,5G", "not a size"],
    ["12QB", "not a size"],
    ["1P", "not a size"],
    ["1iB", "not a size"],
    ["1GG", "not a size"],
    ["1G B", "not a size"],
    ["1G,maxmem=8G", "not a size"],
    ["1_000", "not a size"],
    ["64KB", "KB is ambiguous (1000s or 1024s): write K or KiB"],
    ["512MB", "MB is ambiguous (1000s or 1024s): write M or MiB"],
    ["1gb", "GB is ambiguous (1000s or 1024s): write G or GiB"],
    ["2TB", "TB is ambiguous (1000s or 1024s): write T or TiB"],
    ["064M", "a leading 0 (the kernel would read octal)"],
    ["00", "a leading 0 (the kernel would read octal)"],
    ["1.3G", "not a whole number of bytes"],
    ["1.5", "not a whole number of bytes"],
    ["0.5B", "not a whole number of bytes"],
    ["1.1K", "not a whole number of bytes"],
    [`1.${"1".repeat(41)}T`, "not a whole number of bytes"],
    ["9007199254740992", "too large (8 PiB or more)"], // 2^53: the first byte count a number cannot hold beside its neighbour
    ["8192T", "too large (8 PiB or more)"],
    ["99999999999999999", "too large (8 PiB or more)"],
    [`1${"0".repeat(40)}`, "too large (8 PiB or more)"],
  ];
  test.each(refused)("%p is refused: %p", (text, problem) => {
    expect(parseSize(text)).toEqual({ problem });
  });
});

describe("formatSize", () => {
  test("the largest unit that holds the bytes exactly, always with a suffix", () => {
    expect(formatSize(0)).toBe("0B");
    expect(formatSize(1)).toBe("1B");
    expect(formatSize(4097)).toBe("4097B");
    expect(formatSize(64 * K)).toBe("64K");
    expect(formatSize(1.5 * G)).toBe("1536M");
    expect(formatSize(4 * T)).toBe("4T");
    expect(formatSize(Number.MAX_SAFE_INTEGER)).toBe("9007199254740991B");
    for (const bad of [-1, 0.5, 2 ** 53, NaN]) expect(() => formatSize(bad)).toThrow(RangeError);
  });
});

describe("properties", () => {
  const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: min, maxLength: max });
  // Spellings near the grammar's edges: leading zeros, long fractions, every suffix in any case, stray spaces.
  const spelling = fc
    .tuple(
      digits(1, 18),
      // Mostly short fractions, as people write them; long ones reach the whole-byte edge.
      fc.option(fc.oneof({ weight: 4, arbitrary: digits(0, 2) }, { weight: 1, arbitrary: digits(0, 12) }), { nil: undefined }),
      fc.constantFrom("", " ", "  "),
      fc.constantFrom("", "b", "k", "m", "g", "t", "kib", "mib", "gib", "tib", "kb", "mb", "ib", "p"),
      fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
      fc.constantFrom<BareUnit>("B", "M"),
    )
    .map(([whole, fraction, space, suffix, upper, bare]) => {
      const cased = [...suffix].map((char, index) => (upper[index] ? char.toUpperCase() : char)).join("");
      return { text: `${whole}${fraction === undefined ? "" : `.${fraction}`}${space}${cased}`, bare };
    });

  test("any size the parser accepts formats back to the same byte count", () => {
    let acceptedCount = 0;
    fc.assert(
      fc.property(spelling, ({ text, bare }) => {
        const parsed = parseSize(text, bare);
        if (!("bytes" in parsed)) return;
        acceptedCount++;
        expect(Number.isSafeInteger(parsed.bytes) && parsed.bytes >= 0).toBe(true);
        // Read back with either bare unit: the formatted text always carries its suffix.
        for (const readBack of ["B", "M"] as const) expect(parseSize(formatSize(parsed.bytes), readBack)).toEqual({ bytes: parsed.bytes });
      }),
      { numRuns: 5000 },
    );
    // The generator must reach the accepted side, or the property says nothing.
    expect(acceptedCount).toBeGreaterThan(250);
  });

  test("every byte count formats to a size that reads back to it", () => {
    fc.assert(
      fc.property(fc.oneof(fc.maxSafeNat(), fc.nat({ max: 8191 }).chain((n) => fc.constantFrom(n * K, n * M, n * G, n * T))), (bytes) => {
        expect(parseSize(formatSize(bytes))).toEqual({ bytes });
      }),
      { numRuns: 5000 },
    );
  });
});
