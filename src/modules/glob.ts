// Glob matching for modules.alias patterns, as kmod matches them: fnmatch(3) with no flags.
// `*` matches any run of characters (including none and "/"), `?` any one character, `[...]` one
// character of a class (ranges "a-z"; "!" or "^" first negates; "]" first is a member; no closing
// "]" makes the "[" literal), and "\" quotes the next character. POSIX named classes
// ("[:alpha:]") are not supported: kernel module aliases do not use them.
//
// Written by hand instead of compiled to a RegExp: the RegExp engine backtracks, and a long name
// against the ~23,000 patterns of a distribution kernel took tens of seconds. This matcher keeps
// only the last `*` to backtrack to, so it is O(name length × pattern length) at worst.

type Token =
  | { kind: "star" }
  | { kind: "any" }
  | { kind: "char"; code: number }
  /** `ranges` holds inclusive [low, high] pairs of UTF-16 code units. */
  | { kind: "class"; negated: boolean; ranges: number[] };

export interface CompiledGlob {
  readonly source: string;
  readonly tokens: readonly Token[];
  /** The literal text before the first wildcard: a cheap first filter. */
  readonly prefix: string;
  /** Characters a match needs at least (every token but `*` takes exactly one). */
  readonly minLength: number;
  readonly hasStar: boolean;
}

/** Whether `text` contains a character fnmatch treats specially (`*`, `?`, `[`, `\`). */
export function isGlob(text: string): boolean {
  return /[*?[\\]/.test(text);
}

export function compileGlob(pattern: string): CompiledGlob {
  const tokens: Token[] = [];
  let prefix = "";
  let prefixOpen = true;
  let i = 0;
  while (i < pattern.length) {
    const char = pattern[i]!;
    let token: Token;
    if (char === "*") {
      i++;
      // Consecutive stars match what one does.
      if (tokens.at(-1)?.kind !== "star") tokens.push({ kind: "star" });
      prefixOpen = false;
      continue;
    } else if (char === "?") {
      token = { kind: "any" };
      i++;
    } else if (char === "[") {
      const parsed = parseClass(pattern, i);
      if (parsed) {
        token = parsed.token;
        i = parsed.end;
      } else {
        token = { kind: "char", code: char.charCodeAt(0) };
        i++;
      }
    } else if (char === "\\") {
      // fnmatch fails on a pattern ending in a lone "\": a class with no members never matches.
      token = i + 1 < pattern.length ? { kind: "char", code: pattern.charCodeAt(i + 1) } : { kind: "class", negated: false, ranges: [] };
      i += 2;
    } else {
      token = { kind: "char", code: pattern.charCodeAt(i) };
      i++;
    }
    if (prefixOpen && token.kind === "char") prefix += String.fromCharCode(token.code);
    else prefixOpen = false;
    tokens.push(token);
  }
  const stars = tokens.filter((token) => token.kind === "star").length;
  return { source: pattern, tokens, prefix, minLength: tokens.length - stars, hasStar: stars > 0 };
}

/** The class starting at `pattern[start] === "["`, or null when it has no closing "]". */
function parseClass(pattern: string, start: number): { token: Token; end: number } | null {
  let i = start + 1;
  let negated = false;
  if (pattern[i] === "!" || pattern[i] === "^") {
    negated = true;
    i++;
  }
  const ranges: number[] = [];
  let first = true;
  while (i < pattern.length) {
    if (pattern[i] === "]" && !first) return { token: { kind: "class", negated, ranges }, end: i + 1 };
    first = false;
    let low = pattern.charCodeAt(i);
    if (pattern[i] === "\\" && i + 1 < pattern.length) low = pattern.charCodeAt(++i);
    i++;
    // "a-z" is a range; a "-" before the closing "]" is a member.
    if (pattern[i] === "-" && i + 1 < pattern.length && pattern[i + 1] !== "]") {
      i++;
      let high = pattern.charCodeAt(i);
      if (pattern[i] === "\\" && i + 1 < pattern.length) high = pattern.charCodeAt(++i);
      i++;
      ranges.push(low, high);
    } else {
      ranges.push(low, low);
    }
  }
  return null;
}

function tokenMatches(token: Token, code: number): boolean {
  switch (token.kind) {
    case "any":
      return true;
    case "char":
      return token.code === code;
    case "class": {
      let member = false;
      for (let r = 0; r < token.ranges.length && !member; r += 2) member = token.ranges[r]! <= code && code <= token.ranges[r + 1]!;
      return member !== token.negated;
    }
    case "star":
      return false;
  }
}

export function globMatches(glob: CompiledGlob, text: string): boolean {
  if (text.length < glob.minLength || (!glob.hasStar && text.length !== glob.minLength)) return false;
  if (!text.startsWith(glob.prefix)) return false;
  const tokens = glob.tokens;
  let t = 0;
  let s = 0;
  // Where the last `*` was and how much text it has swallowed so far.
  let starToken = -1;
  let starText = 0;
  while (s < text.length) {
    const token = tokens[t];
    if (token?.kind === "star") {
      starToken = t++;
      starText = s;
    } else if (token && tokenMatches(token, text.charCodeAt(s))) {
      t++;
      s++;
    } else if (starToken >= 0) {
      // Let the last `*` take one more character and retry what follows it. Earlier stars never
      // need revisiting: whatever they could take, the last one can take as well.
      t = starToken + 1;
      s = ++starText;
    } else {
      return false;
    }
  }
  while (tokens[t]?.kind === "star") t++;
  return t === tokens.length;
}

/** fnmatch(pattern, text, 0). Compile once with `compileGlob` when matching a pattern many times. */
export function matchGlob(pattern: string, text: string): boolean {
  return globMatches(compileGlob(pattern), text);
}
