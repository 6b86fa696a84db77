// Kernel registration of lower-VTL memory (MSHV_VTL_ADD_VTL0_MEMORY), as OpenHCL's MemoryRegistrar
// (openhcl/underhill_mem/src/registrar.rs) does it: in 1 GiB chunks, each clipped to the RAM
// ranges it overlaps, with the mapping's physical base added; lazily when a VA range is exposed to
// the kernel (expose), or all at once (registerAll: SNP, before zeroing, as underhill_mem init.rs).
// Registration gives the range struct pages, so kernel users that pin pages (get_user_pages:
// O_DIRECT, VFIO DMA, /proc/pid/mem) work on the mapping. The kernel never releases a registration
// and refuses a second one of the same range (the OpenHCL kernel's mshv_vtl_ioctl_add_vtl0_mem), so
// failures are sticky per chunk, as in registrar.rs.
import { fmt, hex, ONE_GB, PAGE, type Range } from "./ranges";

/** registrar.rs GRANULARITY (2 GiB before openvmm PR #4250). */
export const REGISTRATION_CHUNK = ONE_GB;

/** MSHV_VTL_ADD_VTL0_MEMORY: [startPfn, lastPfn) (last exclusive); `shared` sets bit 51 of startPfn. */
export type AddVtl0Memory = (startPfn: number, lastPfn: number, shared: boolean) => void;

export class MemoryRegistrar {
  private readonly registered = new Set<number>();
  private readonly failed = new Map<number, string>();
  /** Every ADD_VTL0_MEMORY issued, as GPA ranges (offset included), in order. */
  readonly registrations: Range[] = [];

  constructor(
    private readonly add: AddVtl0Memory,
    private readonly ram: readonly Range[],
    /** Added to each GPA: the mapping's physical base (the VTL0 alias map, or 0). */
    private readonly offset: number,
    private readonly shared: boolean,
  ) {}

  /** Register every chunk [gpa, gpa + length) touches (page-aligned outward). Throws on failure. */
  expose(gpa: number, length: number): void {
    if (length <= 0) return;
    const first = Math.floor(gpa / REGISTRATION_CHUNK);
    const last = Math.floor((Math.ceil((gpa + length) / PAGE) * PAGE - 1) / REGISTRATION_CHUNK);
    for (let chunk = first; chunk <= last; chunk++) this.registerChunk(chunk);
  }

  /** Register [0, end of RAM): registrar.rs register_all. */
  registerAll(): void {
    const end = this.ram.length ? this.ram[this.ram.length - 1]!.end : 0;
    this.expose(0, end);
  }

  isRegistered(gpa: number): boolean {
    return this.registered.has(Math.floor(gpa / REGISTRATION_CHUNK));
  }

  private registerChunk(chunk: number): void {
    if (this.registered.has(chunk)) return;
    const failure = this.failed.get(chunk);
    if (failure) throw new Error(failure);
    const start = chunk * REGISTRATION_CHUNK;
    const end = start + REGISTRATION_CHUNK;
    for (const r of this.ram) {
      const lo = Math.max(r.start, start);
      const hi = Math.min(r.end, end);
      if (hi <= lo) continue;
      const range = { start: lo + this.offset, end: hi + this.offset };
      try {
        this.add(range.start / PAGE, range.end / PAGE, this.shared);
      } catch (error) {
        const message = `MSHV_VTL_ADD_VTL0_MEMORY of ${fmt(range)} (chunk ${hex(start)}) failed: ${error instanceof Error ? error.message : String(error)}`;
        this.failed.set(chunk, message);
        throw new Error(message);
      }
      this.registrations.push(range);
    }
    this.registered.add(chunk);
  }
}
