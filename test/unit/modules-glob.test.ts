// The modules.alias glob matcher: fnmatch(3) semantics with no flags, without backtracking blow-up.
import { describe, expect, test } from "bun:test";
import { dlopen, FFIType } from "bun:ffi";
import fc from "fast-check";
import { compileGlob, globMatches, isGlob, matchGlob } from "../../src/modules/glob";

/**
 * The reference: fnmatch read straight off the pattern text, memoized on (pattern position, text
 * position). Exponential without the memo, O(n·m) with it; slow, but with nothing clever in it.
 */
function referenceMatch(pattern: string, text: string): boolean {
  const memo = new Map<number, boolean>();
  const from = (p: number, t: number): boolean => {
    const key = p * (text.length + 1) + t;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result: boolean;
    if (p === pattern.length) result = t === text.length;
    else if (pattern[p] === "*") result = from(p + 1, t) || (t < text.length && from(p, t + 1));
    else if (t === text.length) result = false;
    else {
      const { matches, next } = matchOne(pattern, p, text[t]!);
      result = matches && from(next, t + 1);
    }
    memo.set(key, result);
    return result;
  };
  return from(0, 0);
}

/** Does the one-character pattern element at `p` match `char`; where the next element starts. */
function matchOne(pattern: string, p: number, char: string): { matches: boolean; next: number } {
  const c = pattern[p]!;
  if (c === "?") return { matches: true, next: p + 1 };
  if (c === "\\") return p + 1 < pattern.length ? { matches: pattern[p + 1] === char, next: p + 2 } : { matches: false, next: p + 1 };
  if (c !== "[") return { matches: c === char, next: p + 1 };
  // Split the class into units (a character, or "\" and the character it quotes) up to the
  // first unquoted "]" that is not the first unit; then read ranges off the units.
  let q = p + 1;
  const negated = pattern[q] === "!" || pattern[q] === "^";
  if (negated) q++;
  const units: { char: string; quoted: boolean }[] = [];
  let closed = false;
  while (q < pattern.length) {
    if (pattern[q] === "]" && units.length > 0) {
      closed = true;
      q++;
      break;
    }
    if (pattern[q] === "\\" && q + 1 < pattern.length) {
      units.push({ char: pattern[q + 1]!, quoted: true });
      q += 2;
    } else {
      units.push({ char: pattern[q]!, quoted: false });
      q++;
    }
  }
  if (!closed) return { matches: char === "[", next: p + 1 };
  let member = false;
  for (let u = 0; u < units.length; u++) {
    const isRange = u + 2 < units.length && units[u + 1]!.char === "-" && !units[u + 1]!.quoted;
    if (isRange) {
      member ||= units[u]!.char <= char && char <= units[u + 2]!.char;
      u += 2;
    } else member ||= units[u]!.char === char;
  }
  return { matches: member !== negated, next: q };
}

// glibc's own fnmatch, where there is one, as a second opinion on the table (POSIXLY_CORRECT
// would make "^" literal).
const libcFnmatch = (() => {
  if (process.env.POSIXLY_CORRECT !== undefined) return null;
  try {
    const libc = dlopen("libc.so.6", { fnmatch: { args: [FFIType.cstring, FFIType.cstring, FFIType.i32], returns: FFIType.i32 } });
    return (pattern: string, text: string) => libc.symbols.fnmatch(Buffer.from(`${pattern}\0`), Buffer.from(`${text}\0`), 0) === 0;
  } catch {
    return null;
  }
})();

describe("glob cases", () => {
  const cases: [pattern: string, text: string, matches: boolean][] = [
    ["", "", true],
    ["", "a", false],
    ["abc", "abc", true],
    ["abc", "abd", false],
    ["abc", "ab", false],
    ["*", "", true],
    ["*", "anything/at:all", true],
    ["a*", "a", true],
    ["a*c", "abbbc", true],
    ["a*c", "abbbd", false],
    ["*a*b*c*", "xxaxxbxxcxx", true],
    ["*a*b*c*", "xxaxxcxxbxx", false],
    ["a**b", "ab", true],
    ["?", "", false],
    ["?", "x", true],
    ["a?c", "abc", true],
    ["a?c", "ac", false],
    ["pci:v00001AF4d*", "pci:v00001AF4d00001001", true],
    ["pci:v00001AF4d*", "pci:v00001AF5d00001001", false],
    ["usb:v0D96p5200d000[1-9]dc*", "usb:v0D96p5200d0005dc00", true],
    ["usb:v0D96p5200d000[1-9]dc*", "usb:v0D96p5200d0000dc00", false],
    ["d0[0-2]*", "d0[0-2]", false],
    ["[abc]", "b", true],
    ["[abc]", "d", false],
    ["[a-c]", "b", true],
    ["[a-c]", "-", false],
    ["[z-a]", "m", false],
    ["[!a-c]", "b", false],
    ["[!a-c]", "d", true],
    ["[^a-c]", "d", true],
    ["[]]", "]", true],
    ["[!]]", "]", false],
    ["[!]]", "a", true],
    ["[a-]", "-", true],
    ["[-a]", "-", true],
    ["[a\\]]", "]", true],
    ["[\\!a]", "!", true],
    ["[*?]", "*", true],
    ["[*?]", "x", false],
    ["[a", "[a", true],
    ["[", "[", true],
    ["[!]", "[!]", true],
    ["\\*", "*", true],
    ["\\*", "x", false],
    ["\\?", "?", true],
    ["\\[a]", "[a]", true],
    ["\\a", "a", true],
    ["a\\", "a\\", false],
    ["a\\", "a", false],
    ["*[0-9][0-9]", "abc42", true],
    ["*[0-9][0-9]", "abc4x", false],
  ];

  test.each(cases)("%p against %p is %p", (pattern, text, matches) => {
    expect(matchGlob(pattern, text)).toBe(matches);
    expect(referenceMatch(pattern, text)).toBe(matches);
  });

  test.skipIf(libcFnmatch === null)("the table agrees with glibc's fnmatch", () => {
    for (const [pattern, text, matches] of cases) expect([pattern, text, libcFnmatch!(pattern, text)]).toEqual([pattern, text, matches]);
  });

  test("isGlob: which aliases are patterns", () => {
    expect(["pci:v*", "a?", "d0[0-2]", "a\\b"].map(isGlob)).toEqual([true, true, true, true]);
    expect(["crypto-crc32c", "fs-ext4", "a]"].map(isGlob)).toEqual([false, false, false]);
  });
});

describe("glob properties", () => {
  // Few letters, every special character: random patterns hit the corner cases often.
  const patternChar = fc.constantFrom("a", "b", "z", "-", "]", "!", "^", "[", "\\", "*", "?");
  const textChar = fc.constantFrom("a", "b", "z", "-", "]", "!", "^", "[", "\\", "*", "?");

  test("the matcher agrees with the memoized reference", () => {
    fc.assert(
      fc.property(fc.string({ unit: patternChar, maxLength: 10 }), fc.string({ unit: textChar, maxLength: 8 }), (pattern, text) => {
        expect(matchGlob(pattern, text)).toBe(referenceMatch(pattern, text));
      }),
      { seed: 0x6c6f62, numRuns: 5_000 },
    );
  });

  test("a pattern made from a text matches it (the text with specials quoted, or with letters as ?)", () => {
    fc.assert(
      fc.property(fc.string({ unit: textChar, maxLength: 12 }), (text) => {
        const quoted = text.replace(/[*?[\\]/g, "\\$&");
        expect(matchGlob(quoted, text)).toBe(true);
        expect(matchGlob(text.replace(/./g, "?"), text)).toBe(true);
        expect(matchGlob(`*${quoted}*`, `xx${text}yy`)).toBe(true);
      }),
      { seed: 0x676c6f, numRuns: 1_000 },
    );
  });

  test.skipIf(libcFnmatch === null)("the matcher agrees with glibc's fnmatch", () => {
    fc.assert(
      fc.property(fc.string({ unit: patternChar, maxLength: 8 }), fc.string({ unit: textChar, maxLength: 6 }), (pattern, text) => {
        expect(matchGlob(pattern, text)).toBe(libcFnmatch!(pattern, text));
      }),
      { seed: 0x666e6d, numRuns: 5_000 },
    );
  });
});

describe("long names", () => {
  // Shapes of a distribution kernel's modules.alias: literal prefixes, many stars, classes.
  const patterns = [
    "usb:v*p*d*dc*dsc*dp*ic09isc*ip*in*",
    "usb:v13FDp3940d0[0-2]*dc*dsc*dp*ic*isc*ip*in*",
    "usb:v0D96p5200d000[1-9]dc*dsc*dp*ic*isc*ip*in*",
    "pci:v00001AF4d00001000sv*sd*bc*sc*i*",
    "pci:v*d*sv*sd*bc01sc08i02*",
    "virtio:d00000002v*",
    "of:N*T*Cvendor,device-name",
    "acpi*:PNP0A03:*",
    "dmi*:svn*:pn*:*",
    "*:*:*a*b*c*d*e*f*g*h*",
    "input:b*v*p*e*-e*1,*k*97,*r*a*m*l*s*f*w*",
  ].map(compileGlob);

  test("10,000-character names run through a realistic pattern set", () => {
    const names = [
      "a".repeat(10_000),
      "usb:v" + "p".repeat(10_000),
      "usb:v13FDp3940d00" + "dc".repeat(5_000),
      "*:*:" + "abcdefg".repeat(1_430),
      "acpi" + ":".repeat(10_000),
    ];
    const matches = names.map((name) => patterns.filter((glob) => globMatches(glob, name)).map((glob) => glob.source));
    expect(matches).toEqual([[], [], [], [], []]);
    // …and long names that do match, found only after the last star has backtracked a long way.
    expect(globMatches(patterns[9]!, "x:y:" + "abcdefg".repeat(1_430) + "h")).toBe(true);
    expect(globMatches(patterns[7]!, "acpi" + ":".repeat(10_000) + "PNP0A03:")).toBe(true);
  });
});
