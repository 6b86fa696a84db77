// VTL2's HvRegisterVsmPartitionConfig is written (HvCallSetVpRegisters 0x0051)
// before any ModifyVtlProtectionMask (0x000C), against a fake hypervisor that, like current OHCL
// kernels on Hyper-V, answers 0x000C with AccessDenied at element 0 until it was written.
import { describe, expect, test } from "bun:test";
import type { MemoryOps } from "../../src/memory/devices";
import { gpnListCall, gpnRange, type HypercallFn } from "../../src/memory/hv";
import { encodeResult, HvCall, HvRegister, HvStatus, InputVtl, MapFlags, setVpRegistersInput, vsmPartitionConfig } from "../../src/memory/hv-abi";
import { configureVsmPartition, newOpStats, planVtl2Protections, runJobs } from "../../src/memory/ops";

const M = 0x10_0000;

function fakeHypervisor() {
  const log: number[] = [];
  let config = 0n;
  const call: HypercallFn = (controlWord, input) => {
    const code = Number(controlWord & 0xffffn);
    const reps = Number((controlWord >> 32n) & 0xfffn);
    log.push(code);
    const view = new DataView(input.buffer, input.byteOffset);
    if (code === HvCall.SetVpRegisters) {
      expect(view.getUint32(8, true)).toBe(0xffff_fffe); // HV_VP_INDEX_SELF
      expect(view.getUint8(12)).toBe(InputVtl.VTL2);
      expect(view.getUint32(16, true)).toBe(HvRegister.VsmPartitionConfig);
      config = view.getBigUint64(32, true);
      return encodeResult(HvStatus.Success, reps);
    }
    if (code === HvCall.ModifyVtlProtectionMask) {
      if ((config & 1n) === 0n) return encodeResult(HvStatus.AccessDenied, 0);
      return encodeResult(HvStatus.Success, reps);
    }
    return encodeResult(HvStatus.InvalidHypercallCode, 0);
  };
  return { call, log, config: () => config };
}

describe("VsmPartitionConfig before VTL2 protections", () => {
  test("the value OpenHCL's set_vtl2_vsm_partition_config writes, without the capability bits", () => {
    // enable_vtl_protection | mask 0xF | zero_memory_on_reset | intercept_cpuid_unimplemented | intercept_unrecoverable_exception
    expect(vsmPartitionConfig(false, false)).toBe(0xc3fn);
    // VBS: + intercept_acceptance, intercept_enable_vtl_protection
    expect(vsmPartitionConfig(true, false)).toBe(0xdbfn);
    // SNP/TDX: no VTL protection, no zeroing, no cpuid intercept
    expect(vsmPartitionConfig(true, true)).toBe(0x89en);
  });

  test("SetVpRegisters input: 16-byte header + one 32-byte HvRegisterAssoc", () => {
    const input = setVpRegistersInput(InputVtl.VTL2, [{ name: HvRegister.VsmPartitionConfig, value: 0xc3fn }]);
    expect(input.byteLength).toBe(48);
    const view = new DataView(input.buffer);
    expect(view.getBigUint64(0, true)).toBe(0xffff_ffff_ffff_ffffn);
    expect([view.getUint32(8, true), view.getUint8(12), view.getUint32(16, true), view.getBigUint64(32, true), view.getBigUint64(40, true)]).toEqual([0xffff_fffe, 0x12, 0x000d0007, 0xc3fn, 0n]);
  });

  test("without the config, 0x000C fails with AccessDenied at element 0 (what a current OHCL kernel does)", () => {
    const hv = fakeHypervisor();
    expect(() => gpnListCall(hv.call, HvCall.ModifyVtlProtectionMask, MapFlags.NONE, InputVtl.CURRENT, gpnRange(0, 4 * M), "ModifyVtlProtectionMask")).toThrow(/AccessDenied\(0x6\) at GPN 0x0 \(element 0\)/);
  });

  test("configureVsmPartition then the protection jobs: 0x0051 once, first; every protection call succeeds", () => {
    const hv = fakeHypervisor();
    const stats = newOpStats();
    const plan = planVtl2Protections([{ start: 0x300_0000, end: 0x340_0000 }], 2);
    const ops = { hypercall: hv.call } as MemoryOps;
    expect(configureVsmPartition(ops, false, false, stats)).toBe(0xc3fn);
    for (const lane of plan.jobs) runJobs("none", false, ops, lane, stats);
    expect(hv.log[0]).toBe(HvCall.SetVpRegisters);
    expect(hv.log.filter((code) => code === HvCall.SetVpRegisters)).toHaveLength(1);
    expect(stats.calls).toEqual({ "0x0051": 1, "0x000c": Math.ceil(1024 / 510) });
    expect(stats.pagesProtected).toBe(1024);
    expect(hv.config()).toBe(0xc3fn);
  });

  test("a failed SetVpRegisters is one clear error", () => {
    const ops = { hypercall: () => encodeResult(HvStatus.InvalidParameter, 0) } as unknown as MemoryOps;
    expect(() => configureVsmPartition(ops, false, false, newOpStats())).toThrow(/failed to write VTL2 VsmPartitionConfig 0xc3f: .*0x51 failed with InvalidParameter\(0x5\)/);
  });
});
