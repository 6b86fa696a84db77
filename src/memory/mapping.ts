// Guest memory mappings (OpenHCL's GuestMemoryMapping, openhcl/underhill_mem mapping.rs, over openvmm's SparseMapping): a PROT_NONE reservation aligned
// to 1 GiB (2 MiB / 4 KiB for small spaces), each RAM range mapped MAP_SHARED|MAP_FIXED from
// /dev/mshv_vtl_low at base + GPA, so VA ≡ GPA modulo 1 GiB and the kernel can use huge pages.
// Bitmaps: one bit per page, LSB first, in a NORESERVE anonymous mapping (untouched = free).
import { ftruncateSync, mkdirSync } from "node:fs";
import { describeError } from "../errors";
import * as sys from "../sys";
import type { MemoryRegistrar } from "./registrar";
import { alignUp, coalesce, fmt, hex, len, ONE_GB, PAGE, TWO_MB, type Range } from "./ranges";

/** Bit 63 of the file offset selects the shared (decrypted) alias. */
const SHARED_MEMORY_FLAG = 1n << 63n;

export interface Reservation {
  base: number;
  size: number;
  align: number;
}

export function reservationAlign(size: number): number {
  return size < TWO_MB ? PAGE : size < ONE_GB ? TWO_MB : ONE_GB;
}

/** Reserve `size` bytes of address space aligned as mapping.rs does; the head and tail slack are unmapped. */
export function reserve(size: number): Reservation {
  const align = reservationAlign(size);
  const length = alignUp(size, align);
  const { NONE } = sys.Prot;
  const { PRIVATE, ANONYMOUS, NORESERVE } = sys.MapFlags;
  const raw = sys.mmap(0, length + align, NONE, PRIVATE | ANONYMOUS | NORESERVE, -1, 0, { what: "reserve guest address space" });
  const base = alignUp(raw, align);
  if (base > raw) sys.munmap(raw, base - raw);
  const tail = raw + length + align - (base + length);
  if (tail > 0) sys.munmap(base + length, tail);
  return { base, size: length, align };
}

export class Bitmap {
  readonly bytes: Uint8Array;
  readonly pages: number;
  readonly address: number | null;
  /** File-backed bitmaps (the worker's copy): the file and an fd on it (O_CLOEXEC until handed off). */
  readonly path: string | null = null;
  readonly fd: number | null = null;

  /**
   * A bitmap of `pages` bits: `backing` (tests), a sparse file mapped MAP_SHARED (`{ file }`: the
   * worker gets the fd and sees every later update), or a NORESERVE anonymous mapping.
   */
  constructor(pages: number, backing?: Uint8Array | { file: string }) {
    this.pages = pages;
    const size = alignUp(Math.ceil(pages / 8), PAGE);
    if (backing instanceof Uint8Array) {
      this.bytes = backing;
      this.address = null;
    } else if (backing) {
      const { RDWR, CREAT, TRUNC, NOFOLLOW, CLOEXEC } = sys.OpenFlags;
      const fd = sys.open(backing.file, RDWR | CREAT | TRUNC | NOFOLLOW | CLOEXEC, 0o600);
      try {
        ftruncateSync(fd, size); // a hole: pages cost memory only once set
        this.address = sys.mmap(0, size, sys.Prot.READ | sys.Prot.WRITE, sys.MapFlags.SHARED, fd, 0, { what: "page bitmap", file: backing.file });
      } catch (error) {
        sys.close(fd);
        throw error;
      }
      this.bytes = new Uint8Array(sys.view(this.address, size));
      this.path = backing.file;
      this.fd = fd;
    } else {
      const { READ, WRITE } = sys.Prot;
      const { PRIVATE, ANONYMOUS, NORESERVE } = sys.MapFlags;
      this.address = sys.mmap(0, size, READ | WRITE, PRIVATE | ANONYMOUS | NORESERVE, -1, 0, { what: "page bitmap" });
      this.bytes = new Uint8Array(sys.view(this.address, size));
    }
  }

  get(gpn: number): boolean {
    return ((this.bytes[Math.floor(gpn / 8)]! >> (gpn % 8)) & 1) === 1;
  }

  /** Set [start, end) (GPAs) to `value`: whole bytes filled, ragged edges bit by bit. */
  update(r: Range, value: boolean): void {
    let gpn = r.start / PAGE;
    const end = r.end / PAGE;
    while (gpn < end && gpn % 8 !== 0) this.setBit(gpn++, value);
    const wholeEnd = gpn + Math.floor((end - gpn) / 8) * 8;
    if (wholeEnd > gpn) this.bytes.fill(value ? 0xff : 0, gpn / 8, wholeEnd / 8);
    gpn = Math.max(gpn, wholeEnd);
    while (gpn < end) this.setBit(gpn++, value);
  }

  private setBit(gpn: number, value: boolean): void {
    const index = Math.floor(gpn / 8);
    const mask = 1 << (gpn % 8);
    this.bytes[index] = value ? this.bytes[index]! | mask : this.bytes[index]! & ~mask;
  }

  /** Runs of set pages inside `within` (GPA ranges), as GPA ranges. */
  setRuns(within: readonly Range[]): Range[] {
    const runs: Range[] = [];
    for (const r of within) {
      let runStart = -1;
      const first = r.start / PAGE;
      const end = r.end / PAGE;
      for (let gpn = first; gpn < end; ) {
        const byte = this.bytes[Math.floor(gpn / 8)]!;
        if (gpn % 8 === 0 && end - gpn >= 8 && (byte === 0 || byte === 0xff)) {
          if (byte === 0xff && runStart < 0) runStart = gpn;
          if (byte === 0 && runStart >= 0) (runs.push({ start: runStart * PAGE, end: gpn * PAGE }), (runStart = -1));
          gpn += 8;
          continue;
        }
        const set = ((byte >> (gpn % 8)) & 1) === 1;
        if (set && runStart < 0) runStart = gpn;
        if (!set && runStart >= 0) (runs.push({ start: runStart * PAGE, end: gpn * PAGE }), (runStart = -1));
        gpn++;
      }
      if (runStart >= 0) runs.push({ start: runStart * PAGE, end: end * PAGE });
    }
    // A run may continue into the next range when the two are adjacent.
    return coalesce(runs);
  }
}

export interface BitmapSummary {
  pagesSet: number;
  runs: string[];
  /** true when `runs` was cut short. */
  truncated: boolean;
}

export function summarize(bitmap: Bitmap, within: readonly Range[], maxRuns = 32): BitmapSummary {
  const runs = bitmap.setRuns(within);
  return {
    pagesSet: runs.reduce((sum, r) => sum + len(r) / PAGE, 0),
    runs: runs.slice(0, maxRuns).map(fmt),
    truncated: runs.length > maxRuns,
  };
}

export type MappingKind = "vtl0" | "vtl1" | "vtl0-private" | "shared";

export interface GuestMapping {
  kind: MappingKind;
  reservation: Reservation;
  /** What file offset GPA 0 maps to: base | shared flag. */
  fileOffsetBase: bigint;
  shared: boolean;
  dmaBase: number | null;
  ranges: Range[];
  bitmaps: Record<string, Bitmap>;
  /** Kernel registration of the mapped memory (as underhill_mem init.rs registers: VTL0/VTL1 when not hardware-isolated, SNP VTL0), or null. */
  registrar: MemoryRegistrar | null;
}

/** Map `ranges` (sorted) from /dev/mshv_vtl_low at base + GPA, file offset `physicalBase | shared`. */
export function buildMapping(fd: number, kind: MappingKind, ranges: readonly Range[], physicalBase: number, shared: boolean, dmaBase: number | null): GuestMapping {
  const addressSpace = ranges[ranges.length - 1]!.end;
  const reservation = reserve(addressSpace);
  const fileOffsetBase = BigInt(physicalBase) | (shared ? SHARED_MEMORY_FLAG : 0n);
  const { READ, WRITE } = sys.Prot;
  const { SHARED, FIXED } = sys.MapFlags;
  for (const r of ranges) {
    const want = reservation.base + r.start;
    const got = sys.mmap(want, len(r), READ | WRITE, SHARED | FIXED, fd, fileOffsetBase + BigInt(r.start), { what: `${kind} mapping of ${fmt(r)}` });
    if (got !== want) throw new Error(`${kind} mapping of ${fmt(r)} landed at ${hex(got)}, not ${hex(want)}`);
  }
  return { kind, reservation, fileOffsetBase, shared, dmaBase, ranges: ranges.map(({ start, end }) => ({ start, end })), bitmaps: {}, registrar: null };
}

/**
 * Add a bitmap over the mapping's address space, set to `initial` over its ranges; with `dir`, backed
 * by the file `dir/<kind>.<name>` (for the worker).
 */
export function addBitmap(mapping: GuestMapping, name: string, initial: boolean, dir?: string): Bitmap {
  if (dir) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const bitmap = new Bitmap(mapping.reservation.size / PAGE, dir ? { file: `${dir}/${mapping.kind}.${name}` } : undefined);
  if (initial) for (const r of mapping.ranges) bitmap.update(r, true);
  mapping.bitmaps[name] = bitmap;
  return bitmap;
}

export const vaOf = (mapping: GuestMapping, gpa: number): number => mapping.reservation.base + gpa;

/**
 * read() moves at most about 2 GiB per call (MAX_RW_COUNT); 1 GiB pieces stay below that, so a
 * failure is reported within 1 GiB of where it happened.
 */
const ZERO_CHUNK_BYTES = ONE_GB;

/**
 * Zero `ranges` (GPAs) through the mapping by read()ing /dev/zero into it: the kernel does the
 * stores, so a bad page is an EFAULT, not a SIGBUS in PID 1. Returns the bytes zeroed.
 */
export function zeroThrough(mapping: GuestMapping, ranges: readonly Range[]): number {
  let zeroed = 0;
  const zero = sys.open("/dev/zero", sys.OpenFlags.RDONLY | sys.OpenFlags.CLOEXEC);
  try {
    for (const r of ranges) {
      for (let gpa = r.start; gpa < r.end; ) {
        const n = Math.min(r.end - gpa, ZERO_CHUNK_BYTES);
        let done: number;
        try {
          done = sys.readToAddress(zero, vaOf(mapping, gpa), n);
        } catch (error) {
          throw new Error(`zeroing ${fmt(r)} through the ${mapping.kind} mapping failed near ${hex(gpa)}: ${describeError(error)}`);
        }
        if (done <= 0) throw new Error(`zeroing ${fmt(r)}: short read at ${hex(gpa)}`);
        gpa += done;
        zeroed += done;
      }
    }
  } finally {
    sys.close(zero);
  }
  return zeroed;
}
