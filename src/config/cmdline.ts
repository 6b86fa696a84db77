// Kernel command line → tokens, exactly as the kernel splits it: next_arg() in lib/cmdline.c and
// parse_args() in kernel/params.c, on bytes. Whitespace is the kernel's isspace() (which includes
// byte 0xA0 and nothing beyond Latin-1), double quotes toggle grouping wherever they appear and
// only a leading quote of the word or of the value is stripped, and the first bare "--" (quoted
// or not) ends the kernel's parameters; the kernel then hands init the words up to the next "--".

export interface CmdlineToken {
  key: string;
  value: string | null; // null: a bare word without "="
}

/** What is wrong with a word of the command line (key "" or "--": with the line as a whole). */
export interface Problem extends CmdlineToken {
  message: string;
}

export interface TokenizedCmdline {
  params: CmdlineToken[];
  initArgs: string[];
  /** Words after a second "--": the kernel drops them (parse_args stops there). */
  droppedWords: number;
}

const QUOTE = 0x22;
const EQUALS = 0x3d;

/** The kernel's isspace(): \t \n \v \f \r, space, and 0xA0 (NBSP in its Latin-1 ctype table). */
export function isKernelSpace(byte: number): boolean {
  return (byte >= 9 && byte <= 13) || byte === 32 || byte === 0xa0;
}

const decoder = new TextDecoder("utf-8", { fatal: false });
const encoder = new TextEncoder();

function cmdlineBytes(line: string | Uint8Array): Uint8Array {
  const bytes = typeof line === "string" ? encoder.encode(line) : line;
  // /proc/cmdline is a C string: nothing after a NUL reaches the kernel's parser.
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

/** /proc/cmdline is the boot command line plus one "\n" the proc file adds; the kernel parsed it without. */
export function fromProcCmdline(raw: Uint8Array): Uint8Array {
  return raw.length > 0 && raw[raw.length - 1] === 0x0a ? raw.subarray(0, raw.length - 1) : raw;
}

interface RawArg {
  param: Uint8Array;
  value: Uint8Array | null;
  /** Where the word ends (exclusive) and where the next one starts. */
  end: number;
  next: number;
}

function skipSpaces(bytes: Uint8Array, index: number): number {
  while (index < bytes.length && isKernelSpace(bytes[index]!)) index++;
  return index;
}

/** A C string inside `word`: from `start` up to the first cut (the kernel's written NULs). */
function cString(word: Uint8Array, start: number, cuts: number[]): Uint8Array {
  let end = word.length;
  for (const cut of cuts) if (cut >= start && cut < end) end = cut;
  return word.subarray(start, end);
}

/** One next_arg() step from `start` (which is not a space); a line-for-line port. */
function nextArg(bytes: Uint8Array, start: number): RawArg {
  let args = start;
  let inQuote = false;
  let quoted = false;
  if (bytes[args] === QUOTE) {
    args++;
    inQuote = true;
    quoted = true;
  }
  let i = 0;
  let equals = 0; // 0 means "none yet": an "=" at offset 0 is not a separator, as in the kernel
  for (; args + i < bytes.length; i++) {
    const byte = bytes[args + i]!;
    if (isKernelSpace(byte) && !inQuote) break;
    if (equals === 0 && byte === EQUALS) equals = i;
    if (byte === QUOTE) inQuote = !inQuote;
  }
  const word = bytes.subarray(args, args + i);
  const cuts: number[] = [];
  let value: Uint8Array | null = null;
  let valueStart = 0;
  if (equals !== 0) {
    cuts.push(equals);
    valueStart = equals + 1;
    if (word[valueStart] === QUOTE) {
      valueStart++;
      if (word[i - 1] === QUOTE) cuts.push(i - 1);
    }
  }
  if (quoted && i > 0 && word[i - 1] === QUOTE) cuts.push(i - 1);
  const param = cString(word, 0, cuts);
  if (equals !== 0) value = valueStart <= word.length ? cString(word, valueStart, cuts) : new Uint8Array();
  const after = args + i < bytes.length ? args + i + 1 : args + i;
  return { param, value, end: args + i, next: skipSpaces(bytes, after) };
}

const text = (bytes: Uint8Array) => decoder.decode(bytes);

/** Every parameter of a command line, in order, until the first bare "--" (kernel parse_args). */
function parseArgs(bytes: Uint8Array, start: number): { tokens: CmdlineToken[]; rest: number | null } {
  const tokens: CmdlineToken[] = [];
  let index = skipSpaces(bytes, start);
  while (index < bytes.length) {
    const arg = nextArg(bytes, index);
    index = arg.next;
    const key = text(arg.param);
    if (arg.value === null && key === "--") return { tokens, rest: index };
    tokens.push({ key, value: arg.value === null ? null : text(arg.value) });
  }
  return { tokens, rest: null };
}

/** The kernel rebuilds init's words as "key=value" without the quotes (repair_env_string). */
function wordOf(token: CmdlineToken): string {
  return token.value === null ? token.key : `${token.key}=${token.value}`;
}

export function tokenize(line: string | Uint8Array): TokenizedCmdline {
  const bytes = cmdlineBytes(line);
  const kernel = parseArgs(bytes, 0);
  if (kernel.rest === null) return { params: kernel.tokens, initArgs: [], droppedWords: 0 };
  const init = parseArgs(bytes, kernel.rest);
  const droppedWords = init.rest === null ? 0 : parseArgs(bytes, init.rest).tokens.length + 1;
  return { params: kernel.tokens, initArgs: init.tokens.map(wordOf), droppedWords };
}

/**
 * A line the host builds (`burrow run --append`) split as the kernel splits it: the kernel's own
 * words, and the rest from the first "--" on (the "--" included; [] when there is none), so a tool
 * can add kernel words and rejoin the line without touching init's arguments.
 */
export function splitAppend(line: string): { kernelWords: string[]; initWords: string[] } {
  const words = splitWords(line);
  const dashes = words.indexOf("--");
  return dashes < 0 ? { kernelWords: words, initWords: [] } : { kernelWords: words.slice(0, dashes), initWords: words.slice(dashes) };
}

/** A kernel word's key: what comes before its first "=" (the whole word when it has none). */
export function wordKey(word: string): string {
  const equals = word.indexOf("=");
  return equals < 0 ? word : word.slice(0, equals);
}

/** The words of a line as the kernel separates them, quotes kept (for tools that rebuild a line). */
export function splitWords(line: string): string[] {
  const bytes = cmdlineBytes(line);
  const words: string[] = [];
  let index = skipSpaces(bytes, 0);
  while (index < bytes.length) {
    const { end, next } = nextArg(bytes, index);
    words.push(text(bytes.subarray(index, end)));
    index = next;
  }
  return words;
}

/** One word → key/value with the kernel's quote stripping. */
export function parseWord(word: string): CmdlineToken {
  const bytes = cmdlineBytes(word);
  const start = skipSpaces(bytes, 0);
  if (start >= bytes.length) return { key: "", value: null };
  const arg = nextArg(bytes, start);
  return { key: text(arg.param), value: arg.value === null ? null : text(arg.value) };
}

/** Module names: the kernel treats "-" and "_" alike. */
export function normalizeModuleName(name: string): string {
  return name.replace(/-/g, "_");
}

/**
 * `key=value` written so that the kernel's parser (finit_module's parse_args) reads back exactly
 * this key and value, and nothing more; null when no spelling can (no escape exists for quotes).
 */
export function encodeParam(key: string, value: string): string | null {
  for (const candidate of [`${key}=${value}`, `${key}="${value}"`]) {
    // An even number of quotes leaves next_arg outside a quote at the end, so the next
    // parameter after a space starts a word of its own.
    if ((candidate.match(/"/g)?.length ?? 0) % 2 !== 0) continue;
    const { params, initArgs } = tokenize(candidate);
    if (params.length === 1 && initArgs.length === 0 && params[0]!.key === key && params[0]!.value === value) return candidate;
  }
  return null;
}

/** A value in a problem line: enough to recognise, short enough for one console and kmsg line. */
export function clipValue(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}
