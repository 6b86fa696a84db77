// The tokenizer against the kernel's rules (lib/cmdline.c next_arg, kernel/params.c parse_args,
// init/main.c repair_env_string), one row per rule, and the parser against hostile input.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { encodeParam, fromProcCmdline, isKernelSpace, parseWord, splitWords, tokenize } from "../../src/config/cmdline";
import { moduleParamString, parseConfig, readOnFail } from "../../src/config/config";
import { MAX_INIT_ARGS } from "../../src/config/environment";

const FUZZ = { seed: 20261129, numRuns: 2000, interruptAfterTimeLimit: 10_000 } as const;

describe("next_arg rules", () => {
  const cases: [string, string, { key: string; value: string | null }][] = [
    ["plain key=value", "a=b", { key: "a", value: "b" }],
    ["first = splits; later ones stay in the value", "a=b=c", { key: "a", value: "b=c" }],
    ["an = at offset 0 is not a separator (equals == 0 means none)", "=foo", { key: "=foo", value: null }],
    ["…but a later = is", "=a=b", { key: "=a", value: "b" }],
    ["empty value", "a=", { key: "a", value: "" }],
    ["quoted value: both quotes go", 'a="b c"', { key: "a", value: "b c" }],
    ["quoted word: leading and trailing quote go", '"a b"', { key: "a b", value: null }],
    ["quoted word with =: key and value inside", '"a=b c"', { key: "a", value: "b c" }],
    ["a quote inside a value stays", 'a=b"c', { key: "a", value: 'b"c' }],
    ["a value opening with a quote loses only that one when the word does not end in one", 'a="bc', { key: "a", value: "bc" }],
    ["value that is just a quote", 'a="', { key: "a", value: "" }],
    ["quote in the key toggles grouping", 'a"b c"=d', { key: 'a"b c"', value: "d" }],
    ["lone quote", '"', { key: "", value: null }],
  ];
  for (const [name, word, expected] of cases) {
    test(name, () => expect(parseWord(word)).toEqual(expected));
  }

  test("whitespace is the kernel's isspace: \\t \\n \\v \\f \\r, space and byte 0xA0, nothing else", () => {
    for (const byte of [9, 10, 11, 12, 13, 32, 0xa0]) expect(isKernelSpace(byte)).toBe(true);
    for (const byte of [0, 8, 14, 31, 33, 0x85, 0x9f, 0xa1, 0xff]) expect(isKernelSpace(byte)).toBe(false);
    expect(tokenize(new Uint8Array([0x61, 0xa0, 0x62])).params.map((token) => token.key)).toEqual(["a", "b"]);
    // U+3000 and U+2028 are not spaces to the kernel: one word each. U+00A0 in UTF-8 is C2 A0, so
    // the kernel splits after the C2 byte.
    expect(tokenize("a\u3000b c\u2028d").params.length).toBe(2);
    expect(tokenize("x\u00a0y").params.length).toBe(2);
  });

  test("a quoted \"--\" ends the kernel's parameters too", () => {
    expect(tokenize('a=1 "--" b c')).toEqual({ params: [{ key: "a", value: "1" }], initArgs: ["b", "c"], droppedWords: 0 });
  });

  test("init arguments stop at the next --: the kernel drops the rest", () => {
    expect(tokenize("a -- b -- c d")).toEqual({ params: [{ key: "a", value: null }], initArgs: ["b"], droppedWords: 3 });
  });

  test("init arguments are rebuilt as key=value without quotes (repair_env_string)", () => {
    expect(tokenize('-- x="a b" "y=c d" "e f"').initArgs).toEqual(["x=a b", "y=c d", "e f"]);
  });

  test("an unbalanced quote runs to the end of the line", () => {
    expect(tokenize('a="b c -- d').params).toEqual([{ key: "a", value: "b c -- d" }]);
  });

  test("the newline /proc/cmdline adds is not part of the command line (it matters inside an open quote)", () => {
    const raw = new TextEncoder().encode('a -- "open\n');
    expect(tokenize(fromProcCmdline(raw)).initArgs).toEqual(["open"]);
    expect(fromProcCmdline(new TextEncoder().encode("a\n\n")).length).toBe(2);
  });

  test("nothing after a NUL byte reaches the parser", () => {
    expect(tokenize(new Uint8Array([0x61, 0, 0x62])).params).toEqual([{ key: "a", value: null }]);
  });

  test("splitWords keeps each word's quotes and loses the spaces between", () => {
    expect(splitWords(' console=ttyS0  foo="a b"  "x y=z" -- q\n')).toEqual(["console=ttyS0", 'foo="a b"', '"x y=z"', "--", "q"]);
  });

  test("tokenize never throws and always advances (fuzz)", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const { params, initArgs } = tokenize(bytes);
      expect(params.length + initArgs.length).toBeLessThanOrEqual(bytes.length);
    }), FUZZ);
  });
});

describe("module parameters reach finit_module as the kernel parsed them", () => {
  test("a value can never add another parameter", () => {
    const config = parseConfig('mod.p=a" evil=1 "b');
    expect(moduleParamString(config.moduleParams, "mod")).toBe('p=a" evil=1 "b');
    const params = tokenize(moduleParamString(config.moduleParams, "mod")).params;
    expect(params).toEqual([{ key: "p", value: 'a" evil=1 "b' }]);
  });

  test("values with spaces are quoted; a value no spelling can carry is refused and reported", () => {
    expect(encodeParam("p", "a b")).toBe('p="a b"');
    expect(encodeParam("p", "plain")).toBe("p=plain");
    expect(encodeParam("p", '"x')).toBeNull();
    // The kernel reads the value "x (the first and last quotes go, the middle one stays).
    const config = parseConfig('mod.q=1 mod.p=""x"');
    expect(config.problems.map((problem) => problem.message)).toEqual(['mod.p="x: cannot be passed to module mod unchanged (quotes or odd characters); not passed']);
    expect(moduleParamString(config.moduleParams, "mod")).toBe("q=1");
  });

  test("every encoded parameter list parses back to exactly its parameters (fuzz)", () => {
    const key = fc.stringMatching(/^[a-z_][a-z0-9_]{0,8}$/);
    const value = fc.string({ unit: fc.constantFrom("a", " ", '"', "=", "\t", "-", "b", "\u00a0"), maxLength: 12 });
    fc.assert(fc.property(fc.array(fc.tuple(key, value), { maxLength: 5 }), (pairs) => {
      const encoded = pairs.map(([k, v]) => ({ k, v, text: encodeParam(k, v) })).filter((pair) => pair.text !== null);
      const parsed = tokenize(encoded.map((pair) => pair.text).join(" ")).params;
      expect(parsed).toEqual(encoded.map(({ k, v }) => ({ key: k, value: v })));
    }), FUZZ);
  });
});

describe("the parser is total", () => {
  const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).concat(["__proto__", "prototype"]);

  test("words named like Object.prototype members are ordinary words", () => {
    for (const name of PROTOTYPE_NAMES) {
      for (const line of [`${name}.x=1`, `${name}=1`, name, `burrow.${name}=1`, `init.${name}`, `x.${name}=1`]) {
        const config = parseConfig(line);
        expect(config.mode).toBe("microvm");
      }
    }
    const config = parseConfig("constructor.x=1 __proto__.y=2 hasOwnProperty.z=3");
    expect(moduleParamString(config.moduleParams, "constructor")).toBe("x=1");
    expect(moduleParamString(config.moduleParams, "hasOwnProperty")).toBe("z=3");
    expect(parseConfig("burrow.constructor=1").problems.map((problem) => problem.message)).toEqual(["unknown key burrow.constructor (ignored)"]);
  });

  test("random and mutated command lines never throw (fuzz)", () => {
    const word = fc.oneof(
      fc.constantFrom(...PROTOTYPE_NAMES, "burrow.mode", "burrow.onfail", "burrow.zram", "burrow.modules", "root", "ro", "--", '"', "=", "BUN_BE_BUN", "LD_PRELOAD"),
      fc.string({ maxLength: 12 }),
    );
    const token = fc.oneof(word, fc.tuple(word, fc.constantFrom("=", ".", "="), word).map((parts) => parts.join("")));
    fc.assert(fc.property(fc.array(token, { maxLength: 20 }), fc.constantFrom(" ", "\t", '"', "\u00a0"), (words, sep) => {
      const line = words.join(sep);
      const config = parseConfig(line);
      expect(["microvm", "paravisor"]).toContain(config.mode);
      expect(["poweroff", "shell", "halt"]).toContain(readOnFail(line));
      expect(Array.isArray(config.problems)).toBe(true);
    }), FUZZ);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      expect(parseConfig(bytes).problems).toBeInstanceOf(Array);
    }), FUZZ);
  });

  test("burrow.onfail is read on its own, last valid value wins", () => {
    expect(readOnFail("burrow.onfail=shell constructor.x=1")).toBe("shell");
    expect(readOnFail("burrow.onfail=halt burrow.onfail=bogus")).toBe("halt");
    expect(readOnFail("")).toBe("poweroff");
  });
});

describe("nothing is silently ignored", () => {
  const messages = (line: string) => parseConfig(line).problems.map((problem) => problem.message);

  test("burrow.zram.* problems and typos are reported like every other key", () => {
    expect(messages("burrow.zram.prio=abc")).toEqual(["burrow.zram.prio=abc: expected a whole number from 0 to 32767"]);
    expect(messages("burrow.zram.algo=")).toEqual(["burrow.zram.algo=: expected a comma-separated list of compressors"]);
    expect(messages("burrow.zramsize=1G")).toEqual(["unknown key burrow.zramsize (ignored)"]);
    expect(messages("burrow.zram=101%")).toEqual(["burrow.zram=101%: a percentage must be above 0 and at most 100; keeping 50% of RAM"]);
    expect(messages("init.bogus=1")).toEqual(["unknown key init.bogus (ignored)"]);
  });

  test("words that steer the runtime are named", () => {
    const found = messages("BUN_BE_BUN=1 BUN_OPTIONS=--preload=/x LD_PRELOAD=/y NODE_OPTIONS=-r JSC_useJIT=0 GLIBC_TUNABLES=x OK=1");
    expect(found.length).toBe(6);
    expect(found[0]).toBe("BUN_BE_BUN=1 would steer the runtime or the loader; removed from PID 1's environment and never passed on");
  });

  test("the kernel's limits on init's arguments and environment are warned about", () => {
    const args = Array.from({ length: MAX_INIT_ARGS + 1 }, (_, index) => `a${index}`).join(" ");
    expect(messages(`-- ${args}`)).toEqual([`32 init arguments after --: the kernel panics with more than 31`]);
    expect(messages(`-- ${args.split(" ").slice(1).join(" ")}`)).toEqual([]);
    const env = Array.from({ length: 31 }, (_, index) => `V${index}=1`).join(" ");
    expect(messages(env)[0]).toMatch(/^31 environment words/);
    expect(messages(`${env.split(" ").slice(1).join(" ")} console=ttyS0 HOME=/x`)).toEqual([]);
    expect(messages("-- a -- b")).toEqual(["a second -- ends init's arguments: the kernel drops it and the 1 word(s) after it"]);
  });

  test("absurd module names are refused before any lookup", () => {
    expect(messages(`burrow.modules=${"a".repeat(1400)}`)).toEqual([`burrow.modules=${"a".repeat(80)}…: module name "${"a".repeat(40)}"… is not a module name (at most 255 printable characters)`]);
    expect(parseConfig(`burrow.modules=${"a".repeat(1400)}`).modules).toEqual([]);
  });

  test("paths must be absolute; run ids are letters and digits", () => {
    expect(messages("burrow.agent=agent")).toEqual(["burrow.agent=agent: expected an absolute path"]);
    expect(parseConfig("burrow.runid=abcd1234EFGH").runId).toBe("abcd1234EFGH");
    expect(messages("burrow.runid=x;y")).toEqual(["burrow.runid=x;y: expected 8 to 64 letters and digits"]);
  });
});
