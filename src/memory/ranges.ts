// GPA range math for the memory step: byte ranges [start, end) as JS numbers. Every GPA we handle
// is below 2^52 (the architectural limit), so doubles hold them exactly; never use the 32-bit
// bitwise operators on them.

export interface Range {
  start: number;
  end: number;
}

export const PAGE = 0x1000;
export const TWO_MB = 0x20_0000;
export const ONE_GB = 0x4000_0000;
export const TWO_GB = 0x8000_0000;

export const range = (start: number, end: number): Range => ({ start, end });
export const len = (r: Range): number => r.end - r.start;
export const pageCount = (r: Range): number => (r.end - r.start) / PAGE;
export const isEmpty = (r: Range): boolean => r.end <= r.start;
export const alignUp = (value: number, align: number): number => Math.ceil(value / align) * align;
export const alignDown = (value: number, align: number): number => Math.floor(value / align) * align;
export const isAligned = (value: number, align: number): boolean => value % align === 0;
export const hex = (value: number | bigint): string => `0x${value.toString(16)}`;
export const fmt = (r: Range): string => `[${hex(r.start)}, ${hex(r.end)})`;

/** The largest sub-range whose ends are `align`-aligned; empty (start === end) when there is none. */
export function alignedSubrange(r: Range, align: number): Range {
  const start = alignUp(r.start, align);
  const end = alignDown(r.end, align);
  return start <= end ? { start, end } : { start: r.start, end: r.start };
}

/** Ranges of `left` that are also in `right` (both sorted, non-overlapping). */
export function overlappingRanges(left: readonly Range[], right: readonly Range[]): Range[] {
  const out: Range[] = [];
  let j = 0;
  for (const a of left) {
    while (j < right.length && right[j]!.end <= a.start) j++;
    for (let k = j; k < right.length && right[k]!.start < a.end; k++) {
      const start = Math.max(a.start, right[k]!.start);
      const end = Math.min(a.end, right[k]!.end);
      if (start < end) out.push({ start, end });
    }
  }
  return out;
}

/** Ranges of `left` that are not in `right` (both sorted, non-overlapping). */
export function subtractRanges(left: readonly Range[], right: readonly Range[]): Range[] {
  const out: Range[] = [];
  let j = 0;
  for (const a of left) {
    let cursor = a.start;
    while (j < right.length && right[j]!.end <= a.start) j++;
    for (let k = j; k < right.length && right[k]!.start < a.end; k++) {
      const b = right[k]!;
      if (b.start > cursor) out.push({ start: cursor, end: b.start });
      cursor = Math.max(cursor, b.end);
    }
    if (cursor < a.end) out.push({ start: cursor, end: a.end });
  }
  return out;
}

/**
 * OV's AlignedSubranges: split `r` into sub-ranges made of the largest aligned pages (4K, 2M, 1G)
 * — a ragged head up to the next 2M/1G boundary, then aligned runs — each at most `maxLen` bytes.
 */
export function alignedSubranges(r: Range, maxLen = Number.MAX_SAFE_INTEGER): Range[] {
  const out: Range[] = [];
  let cursor = r.start;
  while (cursor < r.end) {
    const start = cursor;
    let end = Math.min(r.end, start + maxLen);
    for (const size of [TWO_MB, ONE_GB]) {
      if (alignUp(start, size) >= alignDown(end, size)) continue; // no whole page of this size
      if (!isAligned(start, size)) end = Math.min(end, alignUp(start, size));
      else end = alignDown(end, size);
    }
    out.push({ start, end });
    cursor = end;
  }
  return out;
}

/** Split a range into pieces of at most `size` bytes (the last may be shorter). */
export function chunks(r: Range, size: number): Range[] {
  const out: Range[] = [];
  for (let start = r.start; start < r.end; start += size) out.push({ start, end: Math.min(r.end, start + size) });
  return out;
}

export interface AcceptPlan {
  /** 2 MiB-aligned chunks, one work item each (the seed gives each its own thread). */
  aligned: Range[];
  /** The unaligned head and tail of each source range (one work item per source range in the seed). */
  edges: Range[];
}

/**
 * The seed's accept split: for each source range, its 2 MiB-aligned middle cut into
 * ceil(2M-pages / workers) * 2 MiB chunks, plus the unaligned edges. workers = max(1, vps - 1).
 */
export function planAccept(sources: readonly Range[], vpCount: number): AcceptPlan {
  const workers = Math.max(1, vpCount - 1);
  const aligned: Range[] = [];
  const edges: Range[] = [];
  for (const source of sources) {
    const middle = alignedSubrange(source, TWO_MB);
    if (!isEmpty(middle)) {
      const chunkSize = Math.ceil(len(middle) / TWO_MB / workers) * TWO_MB;
      aligned.push(...chunks(middle, chunkSize));
      edges.push(...subtractRanges([source], [middle]));
    } else {
      edges.push(source);
    }
  }
  return { aligned, edges };
}

/** Deal work items round-robin over `workers` lanes (what the seed's threadpool spreading does). */
export function spread<T>(items: readonly T[], workers: number): T[][] {
  const lanes: T[][] = Array.from({ length: Math.max(1, workers) }, () => []);
  items.forEach((item, index) => lanes[index % lanes.length]!.push(item));
  return lanes;
}

/** Merge adjacent ranges of a sorted list. */
export function coalesce(ranges: readonly Range[]): Range[] {
  const out: Range[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && last.end === r.start) last.end = r.end;
    else out.push({ ...r });
  }
  return out;
}
