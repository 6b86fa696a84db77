// Kernel command line → tokens, following the kernel's next_arg(): whitespace separates
// parameters, double quotes group them and are removed ("a b" and key="a b"), and a bare
// "--" ends the kernel's parameters: what follows goes to init as its argv.

export interface CmdlineToken {
  key: string;
  value: string | null; // null: a bare word without "="
}

export interface TokenizedCmdline {
  params: CmdlineToken[];
  initArgs: string[];
}

/** Split a command line into raw words, honouring double quotes. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let index = 0;
  const text = line.replace(/\n$/, "");
  while (index < text.length) {
    while (index < text.length && /\s/.test(text[index]!)) index++;
    if (index >= text.length) break;
    let inQuote = false;
    const start = index;
    for (; index < text.length; index++) {
      const char = text[index]!;
      if (/\s/.test(char) && !inQuote) break;
      if (char === '"') inQuote = !inQuote;
    }
    words.push(text.slice(start, index));
  }
  return words;
}

/** One word → key/value with the kernel's quote stripping. */
export function parseWord(word: string): CmdlineToken {
  let text = word;
  let quoted = false;
  if (text.startsWith('"')) {
    text = text.slice(1);
    quoted = true;
  }
  const equals = text.indexOf("=");
  if (equals < 0) {
    if (quoted && text.endsWith('"')) text = text.slice(0, -1);
    return { key: text, value: null };
  }
  const key = text.slice(0, equals);
  let value = text.slice(equals + 1);
  if (value.startsWith('"')) {
    value = value.slice(1);
    if (value.endsWith('"')) value = value.slice(0, -1);
  } else if (quoted && value.endsWith('"')) {
    value = value.slice(0, -1);
  }
  return { key, value };
}

export function tokenize(line: string): TokenizedCmdline {
  const words = splitWords(line);
  const dashes = words.indexOf("--");
  const kernelWords = dashes < 0 ? words : words.slice(0, dashes);
  const initWords = dashes < 0 ? [] : words.slice(dashes + 1);
  return {
    params: kernelWords.map(parseWord),
    // Init arguments keep "=" (the kernel rebuilds key=value) but lose their quotes.
    initArgs: initWords.map((word) => {
      const token = parseWord(word);
      return token.value === null ? token.key : `${token.key}=${token.value}`;
    }),
  };
}

/** Module names: the kernel treats "-" and "_" alike. */
export function normalizeModuleName(name: string): string {
  return name.replace(/-/g, "_");
}
