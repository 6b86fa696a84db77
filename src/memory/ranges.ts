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

export const len = (r: Range): number => r.end - r.start;
export const pageCount = (r: Range): number => (r.end - r.start) / PAGE;
const isEmpty = (r: Range): boolean => r.end <= r.start;
export const alignUp = (value: number, align: number): number => Math.ceil(value / align) * align;
const alignDown = (value: number, align: number): number => Math.floor(value / align) * align;
export const isAligned = (value: number, align: number): boolean => value % align === 0;
export const hex = (value: number | bigint): string => `0x${value.toString(16)}`;
export const fmt = (r: Range): string => `[${hex(r.start)}, ${hex(r.end)})`;

/** The largest sub-range whose ends are `align`-aligned; empty (start === end) when there is none. */
function alignedSubrange(r: Range, align: number): Range {
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
 * openvmm's AlignedSubranges (vm/vmcore/memory_range): split `r` into sub-ranges made of the largest aligned pages (4K, 2M, 1G)
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
function chunks(r: Range, size: number): Range[] {
  const out: Range[] = [];
  for (let start = r.start; start < r.end; start += size) out.push({ start, end: Math.min(r.end, start + size) });
  return out;
}

export interface AcceptPlan {
  /** 2 MiB-aligned chunks, one work item each (init.rs gave each its own thread). */
  aligned: Range[];
  /** The unaligned head and tail of each source range (one work item per source range, as in init.rs). */
  edges: Range[];
}

/**
 * The accept split of underhill_mem init.rs's init before openvmm PR #4250 (which moved it to
 * parallelize_mem_op, sizing units from the total): for each source range, its 2 MiB-aligned
 * middle cut into ceil(2M-pages / workers) * 2 MiB chunks, plus the unaligned edges.
 * workers = max(1, vps - 1).
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

/** Deal work items round-robin over `workers` lanes (as apply_vtl2_protections cycles over the threadpool's drivers). */
export function spread<T>(items: readonly T[], workers: number): T[][] {
  const lanes: T[][] = Array.from({ length: Math.max(1, workers) }, () => []);
  items.forEach((item, index) => lanes[index % lanes.length]!.push(item));
  return lanes;
}

/** Merge adjacent ranges of a sorted, non-overlapping list. */
export function coalesce(ranges: readonly Range[]): Range[] {
  const out: Range[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && last.end === r.start) last.end = r.end;
    else out.push({ ...r });
  }
  return out;
}

// The validator's cross-list checks. Both take any lists (unsorted, overlapping, even empty or
// inverted ranges) and give exactly the answer of the pairwise loop they replaced, first offender
// included, in O((n + m) log m): sort one side by start once, keep the running maximum end, then
// binary-search each range of the other side.

interface StartIndex {
  /** Starts in ascending order. */
  starts: Float64Array;
  /** maxEnd[k]: the largest end among the ranges of starts[0..k]. */
  maxEnd: Float64Array;
}

function startIndex(list: readonly Range[]): StartIndex {
  const order = Array.from({ length: list.length }, (_, i) => i);
  let sorted = true;
  for (let i = 1; i < list.length && sorted; i++) sorted = list[i]!.start >= list[i - 1]!.start;
  if (!sorted) order.sort((x, y) => list[x]!.start - list[y]!.start);
  const starts = new Float64Array(list.length);
  const maxEnd = new Float64Array(list.length);
  let running = -Infinity;
  order.forEach((index, k) => {
    starts[k] = list[index]!.start;
    running = Math.max(running, list[index]!.end);
    maxEnd[k] = running;
  });
  return { starts, maxEnd };
}

/** How many of the ascending `starts` are below `value` (or at it, with `orEqual`). */
function countStartsBelow(starts: Float64Array, value: number, orEqual: boolean): number {
  let low = 0;
  let high = starts.length;
  while (low < high) {
    const middle = (low + high) >>> 1; // an index, not a GPA: 32-bit math is fine here
    if (starts[middle]! < value || (orEqual && starts[middle] === value)) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * The first pair (lowest index in `a`, then in `b`) with a.start < b.end && b.start < a.end, or
 * null when no range of `a` overlaps one of `b`.
 */
export function firstOverlap(a: readonly Range[], b: readonly Range[]): [number, number] | null {
  if (a.length === 0 || b.length === 0) return null;
  const index = startIndex(b);
  for (let i = 0; i < a.length; i++) {
    const r = a[i]!;
    const startingBefore = countStartsBelow(index.starts, r.end, false);
    if (startingBefore > 0 && index.maxEnd[startingBefore - 1]! > r.start) {
      // Found the first range of `a`; one linear pass names its first partner in `b`.
      return [i, b.findIndex((o) => r.start < o.end && o.start < r.end)];
    }
  }
  return null;
}

/** The index of the first range of `inner` that no single range of `outer` contains, or null. */
export function firstOutside(inner: readonly Range[], outer: readonly Range[]): number | null {
  const index = startIndex(outer);
  for (let i = 0; i < inner.length; i++) {
    const r = inner[i]!;
    const startingAtOrBefore = countStartsBelow(index.starts, r.start, true);
    if (startingAtOrBefore === 0 || index.maxEnd[startingAtOrBefore - 1]! < r.end) return i;
  }
  return null;
}
