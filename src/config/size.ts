// One size grammar for every size a user writes: `burrow.zram=`, `burrow.memory-max=`, the byte
// rlimits and `burrow run --mem`. Each caller adds only its own words (off, N%, max, unlimited)
// and bounds. The grammar, and why:
// - digits, an optional decimal part, optional spaces, an optional suffix; spaces around the
//   whole are ignored. The suffix's case does not matter.
// - K, M, G, T are powers of 1024 (what QEMU's -m and the kernel's memparse read); KiB, MiB, GiB,
//   TiB say the same. B is bytes, so any byte count can be written explicitly.
// - No suffix: bytes (the kernel's memory.max and zram's disksize), except where a caller says
//   otherwise — `--mem`, where it is MiB as QEMU's -m reads it.
// - A decimal part is fine when it comes to a whole number of bytes (1.5G); 1.3G is refused (the
//   old zram parser floored it, QEMU truncates, others round: the bytes would depend on the reader).
// Refused though the old zram and memory-max parsers took them, as genuinely ambiguous:
// - KB, MB, GB, TB: powers of 1000 in SI, of 1024 in JEDEC; neither QEMU nor the kernel reads them.
// - a leading zero (064M): the kernel's memparse reads it as octal.
// The limit is 2^53 - 1 bytes (just under 8 PiB), where a JavaScript number stops counting every byte.

export type SizeResult = { bytes: number } | { problem: string };
/** The problem when the text is not shaped like a size at all (a caller's own hint says the rest). */
export const NOT_A_SIZE = "not a size";

const UNITS: ReadonlyMap<string, bigint> = new Map([
  ["b", 1n],
  ["k", 1n << 10n], ["kib", 1n << 10n],
  ["m", 1n << 20n], ["mib", 1n << 20n],
  ["g", 1n << 30n], ["gib", 1n << 30n],
  ["t", 1n << 40n], ["tib", 1n << 40n],
]);
const AMBIGUOUS = new Set(["kb", "mb", "gb", "tb"]);
const SHAPE = /^(\d+)(?:\.(\d+))?\s*([a-z]*)$/i;
/** Above 16 digits no whole part fits in 2^53; past 40 decimals none is a whole number of bytes at 1024^4. */
const MAX_WHOLE_DIGITS = 16;
const MAX_FRACTION_DIGITS = 40;

/** What bare digits are: bytes, or (for `--mem`) MiB. */
export type BareUnit = "B" | "M";

/** A size in this grammar → its bytes, or the one reason it is not a size. */
export function parseSize(text: string, bare: BareUnit = "B"): SizeResult {
  const match = SHAPE.exec(text.trim());
  if (!match) return { problem: NOT_A_SIZE };
  const whole = match[1]!;
  const rawFraction = match[2] ?? "";
  const rawSuffix = match[3]!;
  const suffix = rawSuffix.toLowerCase();
  if (AMBIGUOUS.has(suffix)) {
    const letter = suffix[0]!.toUpperCase();
    return { problem: `${letter}B is ambiguous (1000s or 1024s): write ${letter} or ${letter}iB` };
  }
  const unit = suffix === "" ? UNITS.get(bare.toLowerCase())! : UNITS.get(suffix);
  if (unit === undefined) return { problem: NOT_A_SIZE };
  if (whole.length > 1 && whole.startsWith("0")) return { problem: "a leading 0 (the kernel would read octal)" };
  if (whole.length > MAX_WHOLE_DIGITS) return { problem: "too large (8 PiB or more)" };
  const fraction = rawFraction.replace(/0+$/, "");
  if (fraction.length > MAX_FRACTION_DIGITS) return { problem: "not a whole number of bytes" };
  // Exact arithmetic: 1.5G is 3 × 2^29, with no float rounding on the way.
  const scale = 10n ** BigInt(fraction.length);
  const scaled = (BigInt(whole) * scale + BigInt(fraction || "0")) * unit;
  if (scaled % scale !== 0n) return { problem: "not a whole number of bytes" };
  const bytes = scaled / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) return { problem: "too large (8 PiB or more)" };
  return { bytes: Number(bytes) };
}

const FORMAT_UNITS = [["T", 2 ** 40], ["G", 2 ** 30], ["M", 2 ** 20], ["K", 2 ** 10]] as const;

/** Bytes → this grammar in the largest unit that holds them exactly (`1536M`, `4097B`); always with a suffix, so every caller reads it back alike. */
export function formatSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`not a byte count: ${bytes}`);
  if (bytes === 0) return "0B";
  for (const [suffix, unit] of FORMAT_UNITS) if (bytes % unit === 0) return `${bytes / unit}${suffix}`;
  return `${bytes}B`;
}
