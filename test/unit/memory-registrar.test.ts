// Kernel registration (MSHV_VTL_ADD_VTL0_MEMORY) as OpenHCL's MemoryRegistrar (underhill_mem registrar.rs) does it:
// lazily, 1 GiB chunks clipped to RAM, the mapping's physical base added, sticky failures.
import { describe, expect, test } from "bun:test";
import { addVtl0MemoryArgument } from "../../src/memory/hv-abi";
import { MemoryRegistrar } from "../../src/memory/registrar";

const G = 0x4000_0000;
const PFN = (gpa: number) => gpa / 4096;
const RAM = [{ start: 0, end: 0x1000000 }, { start: 0x1000000, end: 0x1f38000 }, { start: 4 * G, end: 6.5 * G }];

function recorder(failAt?: number) {
  const calls: [number, number, boolean][] = [];
  const add = (start: number, last: number, shared: boolean) => {
    if (failAt !== undefined && start === failAt) throw new Error("EFAULT");
    calls.push([start, last, shared]);
  };
  return { calls, add };
}

describe("MemoryRegistrar", () => {
  test("ADD_VTL0_MEMORY argument: exclusive last_pfn, bit 51 of start_pfn for shared", () => {
    const view = new DataView(addVtl0MemoryArgument(0x100, 0x200, true).buffer);
    expect([view.getBigUint64(0, true), view.getBigUint64(8, true)]).toEqual([0x100n | (1n << 51n), 0x200n]);
    expect(new DataView(addVtl0MemoryArgument(0x100, 0x200, false).buffer).getBigUint64(0, true)).toBe(0x100n);
  });

  test("lazy: only the chunk a VA range touches, clipped to each RAM range, offset added; once", () => {
    const r = recorder();
    const registrar = new MemoryRegistrar(r.add, RAM, 2 ** 40, false);
    expect(registrar.isRegistered(0x1800000)).toBe(false);
    registrar.expose(0x1800000, 64);
    expect(r.calls).toEqual([[PFN(2 ** 40), PFN(2 ** 40 + 0x1000000), false], [PFN(2 ** 40 + 0x1000000), PFN(2 ** 40 + 0x1f38000), false]]);
    registrar.expose(0x10, 0x100); // same chunk: nothing new
    expect(r.calls).toHaveLength(2);
    expect(registrar.isRegistered(0x1800000)).toBe(true);
    expect(registrar.isRegistered(5 * G)).toBe(false);
  });

  test("a range across a chunk boundary registers both chunks; registerAll covers [0, end of RAM)", () => {
    const r = recorder();
    const registrar = new MemoryRegistrar(r.add, RAM, 0, false);
    registrar.expose(5 * G - 4096, 8192);
    expect(r.calls).toEqual([[PFN(4 * G), PFN(5 * G), false], [PFN(5 * G), PFN(6 * G), false]]);
    registrar.registerAll();
    expect(r.calls.map(([s, l]) => [s * 4096, l * 4096])).toEqual([
      [4 * G, 5 * G], [5 * G, 6 * G], [0, 0x1000000], [0x1000000, 0x1f38000], [6 * G, 6.5 * G],
    ]);
    expect(registrar.registrations).toHaveLength(5);
  });

  test("failures are sticky per chunk and name the range", () => {
    const r = recorder(PFN(4 * G));
    const registrar = new MemoryRegistrar(r.add, RAM, 0, false);
    expect(() => registrar.expose(4 * G, 4096)).toThrow(/^MSHV_VTL_ADD_VTL0_MEMORY of \[0x100000000, 0x140000000\) \(chunk 0x100000000\) failed: EFAULT/);
    expect(() => registrar.expose(4 * G + 8192, 4096)).toThrow(/chunk 0x100000000/);
    expect(r.calls).toHaveLength(0);
  });
});
