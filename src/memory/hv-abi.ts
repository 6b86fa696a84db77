// The kernel and hypervisor interface of the memory step: ioctl numbers for /dev/mshv, the
// mshv_vtl fd and /dev/mshv_hvcall, hypercall codes and statuses, TDX leaves, and the encoders of
// their structs. Numbers and layouts are those of OpenHCL's mshv_vtl UAPI (the OHCL-Linux-Kernel's
// include/uapi/linux/mshv.h) as OpenVMM's openhcl/hcl uses them; where the two differ, OpenVMM,
// the userspace that ships, wins. Pure data: every struct is a little-endian byte buffer, built
// and read with DataView. The driver that issues the calls is hv.ts.
import { PAGE } from "./ranges";

export const Ioctl = {
  CHECK_EXTENSION: 0x4004b800,
  CREATE_VTL: 0x8001b81d,
  HVCALL_SETUP: 0x4010b81e,
  HVCALL: 0xc030b81f,
  ADD_VTL0_MEMORY: 0x4010b821,
  PVALIDATE: 0x4014b828,
  RMPADJUST: 0x4020b829,
  TDCALL: 0xc038b832,
} as const;

export const HvCall = {
  ModifyVtlProtectionMask: 0x000c,
  SetVpRegisters: 0x0051,
  AcceptGpaPages: 0x00d9,
  ModifySparseGpaPageHostVisibility: 0x00db,
} as const;

export const HvStatus = {
  Success: 0x0,
  InvalidHypercallCode: 0x2,
  InvalidHypercallInput: 0x3,
  InvalidParameter: 0x5,
  AccessDenied: 0x6,
  OperationDenied: 0x8,
  InsufficientMemory: 0xb,
  InvalidPartitionId: 0xd,
  Timeout: 0x78,
} as const;

const STATUS_NAMES: Record<number, string> = Object.fromEntries(Object.entries(HvStatus).map(([name, code]) => [code, name]));
export const statusName = (status: number): string => `${STATUS_NAMES[status] ?? "HvStatus"}(0x${status.toString(16)})`;

const PARTITION_ID_SELF = 0xffff_ffff_ffff_ffffn;
/** HV_VP_INDEX_SELF (openvmm vm/hv1/hvdef). */
const VP_INDEX_SELF = 0xffff_fffe;

/** Register names (openvmm vm/hv1/hvdef, as openhcl/hcl's HvArchRegisterName picks them). */
export const HvRegister = { VsmPartitionConfig: 0x000d_0007 } as const;

/**
 * HvRegisterVsmPartitionConfig as OpenHCL's set_vtl2_vsm_partition_config (openhcl/virt_mshv_vtl/src/lib.rs)
 * builds it. Bits: 0 enable_vtl_protection, 1-4 default_vtl_protection_mask, 5 zero_memory_on_reset,
 * 7 intercept_acceptance, 8 intercept_enable_vtl_protection, 10 intercept_cpuid_unimplemented,
 * 11 intercept_unrecoverable_exception. The bits OpenHCL takes from HvRegisterVsmCapabilities
 * (intercept_page 12, intercept_not_present 14, intercept_system_reset 15) stay 0: reading the
 * capabilities needs HvCallGetVpRegisters, and the worker writes its own full value later.
 */
export function vsmPartitionConfig(isolated: boolean, hardwareIsolated: boolean): bigint {
  let value = 0xfn << 1n; // default_vtl_protection_mask = 0xF
  if (!hardwareIsolated) value |= 1n | (1n << 5n) | (1n << 10n); // enable_vtl_protection, zero_memory_on_reset, intercept_cpuid_unimplemented
  value |= 1n << 11n; // intercept_unrecoverable_exception
  if (isolated) value |= 1n << 7n; // intercept_acceptance
  if (isolated && !hardwareIsolated) value |= 1n << 8n; // intercept_enable_vtl_protection
  return value;
}

/**
 * HvCallSetVpRegisters input (hvdef GetSetVpRegisters + HvRegisterAssoc): a 16-byte header
 * {partition_id, vp_index, target_vtl, 3 reserved} then one 32-byte element per register
 * {u32 name, 12 bytes pad, u128 value}.
 */
export function setVpRegistersInput(targetVtl: number, registers: readonly { name: number; value: bigint }[]): Uint8Array {
  const input = new Uint8Array(16 + 32 * registers.length);
  const view = new DataView(input.buffer);
  view.setBigUint64(0, PARTITION_ID_SELF, true);
  view.setUint32(8, VP_INDEX_SELF, true);
  view.setUint8(12, targetVtl);
  registers.forEach(({ name, value }, index) => {
    const at = 16 + 32 * index;
    view.setUint32(at, name, true);
    view.setBigUint64(at + 16, value & 0xffff_ffff_ffff_ffffn, true);
    view.setBigUint64(at + 24, value >> 64n, true);
  });
  return input;
}
/** A hypercall's input must fit one page, which caps the rep elements per call. */
const INPUT_PAGE_BYTES = PAGE;
/** 510: u64 GPN elements after the 16-byte header. */
export const MAX_GPNS_PER_CALL = (INPUT_PAGE_BYTES - 16) / 8;
/** 509: openhcl/hcl accept_gpa_pages's cap for the count-only AcceptGpaPages (as if u64 elements followed its 24-byte header). */
export const MAX_ACCEPT_PAGES_PER_CALL = (INPUT_PAGE_BYTES - 24) / 8;

export const HostVisibility = { PRIVATE: 0, SHARED: 3 } as const;
export const MapFlags = { NONE: 0, ALL: 0xf } as const;
/** HvInputVtl: 0x00 is "the current VTL"; 0x10 | vtl targets a VTL. */
export const InputVtl = { CURRENT: 0x00, VTL0: 0x10, VTL1: 0x11, VTL2: 0x12 } as const;

/** The hypercall control word: code, rep count, rep start. */
export function control(code: number, repCount = 0, repStart = 0): bigint {
  return BigInt(code & 0xffff) | (BigInt(repCount & 0xfff) << 32n) | (BigInt(repStart & 0xfff) << 48n);
}

export interface HvResult {
  status: number;
  processed: number;
}

export function parseResult(result: bigint): HvResult {
  return { status: Number(result & 0xffffn), processed: Number((result >> 32n) & 0xfffn) };
}

export function encodeResult(status: number, processed: number): bigint {
  return BigInt(status) | (BigInt(processed) << 32n);
}

/** ModifyVtlProtectionMask / ModifySparse… input: 16-byte header, then `count` u64 GPNs. */
export function gpnListInput(code: number, argument: number, targetVtl: number, count: number, gpnAt: (index: number) => number): Uint8Array {
  const input = new Uint8Array(16 + 8 * count);
  const view = new DataView(input.buffer);
  view.setBigUint64(0, PARTITION_ID_SELF, true);
  if (code === HvCall.ModifyVtlProtectionMask) {
    view.setUint32(8, argument >>> 0, true); // map_flags
    view.setUint8(12, targetVtl); // HvInputVtl; 13..15 reserved
  } else {
    view.setUint32(8, argument & 0x3, true); // host_visibility (bits 0-1)
  }
  for (let i = 0; i < count; i++) view.setBigUint64(16 + 8 * i, BigInt(gpnAt(i)), true);
  return input;
}

/** AcceptGpaPages input: 24-byte header, count-only (RAM, private, vtl_set 0 → attributes 0x1). */
export function acceptInput(gpaPageBase: number, attributes = 0x1): Uint8Array {
  const input = new Uint8Array(24);
  const view = new DataView(input.buffer);
  view.setBigUint64(0, PARTITION_ID_SELF, true);
  view.setUint32(8, attributes, true);
  view.setUint16(12, 0, true);
  view.setUint16(14, 0, true);
  view.setBigUint64(16, BigInt(gpaPageBase), true);
  return input;
}

/** struct mshv_hvcall (48 bytes); `status` (offset 24) is written by the kernel. */
export function hvcallArgument(controlWord: bigint, input: Uint8Array, inputAddress: number): Uint8Array {
  const arg = new Uint8Array(48);
  const view = new DataView(arg.buffer);
  view.setBigUint64(0, controlWord, true);
  view.setBigUint64(8, BigInt(input.byteLength), true);
  view.setBigUint64(16, BigInt(inputAddress), true);
  view.setBigUint64(24, 0n, true);
  view.setBigUint64(32, 0n, true);
  view.setBigUint64(40, 0n, true);
  return arg;
}

export const hvcallStatus = (arg: Uint8Array): bigint => new DataView(arg.buffer, arg.byteOffset).getBigUint64(24, true);

/** The allow bitmap for MSHV_HVCALL_SETUP: u64 words, just long enough for the highest code. */
export function allowBitmap(codes: readonly number[]): BigUint64Array {
  const words = new BigUint64Array(Math.floor(Math.max(...codes) / 64) + 1);
  for (const code of codes) words[Math.floor(code / 64)]! |= 1n << BigInt(code % 64);
  return words;
}

export function hvcallSetupArgument(bitmapBytes: number, bitmapAddress: number): Uint8Array {
  const arg = new Uint8Array(16);
  const view = new DataView(arg.buffer);
  view.setBigUint64(0, BigInt(bitmapBytes), true);
  view.setBigUint64(8, BigInt(bitmapAddress), true);
  return arg;
}

/** Bit 51 of start_pfn marks a shared (decrypted) registration: SHARED_MEMORY_FLAG / 4096. */
const REGISTRATION_SHARED_PFN_BIT = 1n << 51n;

/** struct mshv_vtl_ram_disposition for MSHV_VTL_ADD_VTL0_MEMORY (16 bytes): start_pfn, last_pfn (exclusive). */
export function addVtl0MemoryArgument(startPfn: number, lastPfn: number, shared: boolean): Uint8Array {
  const arg = new Uint8Array(16);
  const view = new DataView(arg.buffer);
  view.setBigUint64(0, BigInt(startPfn) | (shared ? REGISTRATION_SHARED_PFN_BIT : 0n), true);
  view.setBigUint64(8, BigInt(lastPfn), true);
  return arg;
}

/** struct mshv_pvalidate (20 bytes, packed). */
export function pvalidateArgument(startPfn: number, pageCount: number, validate: boolean, terminateOnFailure = false): Uint8Array {
  const arg = new Uint8Array(20);
  const view = new DataView(arg.buffer);
  view.setBigUint64(0, BigInt(startPfn), true);
  view.setBigUint64(8, BigInt(pageCount), true);
  view.setUint8(16, validate ? 1 : 0);
  view.setUint8(17, terminateOnFailure ? 1 : 0);
  view.setUint8(18, 0); // ram: openhcl/hcl's pvalidate_pages always passes 0
  return arg;
}

/** struct mshv_rmpadjust (32 bytes, packed). */
export function rmpadjustArgument(startPfn: number, pageCount: number, value: number, terminateOnFailure = false): Uint8Array {
  const arg = new Uint8Array(32);
  const view = new DataView(arg.buffer);
  view.setBigUint64(0, BigInt(startPfn), true);
  view.setBigUint64(8, BigInt(pageCount), true);
  view.setBigUint64(16, BigInt(value), true);
  view.setUint8(24, terminateOnFailure ? 1 : 0);
  view.setUint8(25, 0);
  return arg;
}

/** SevRmpAdjust for a VTL's HvMapGpaFlags: VTL0 → VMPL2, VTL1 → VMPL1; R→8, W→9, UX(8)→10, KX(4)→11. */
export function sevRmpAdjust(vtl: 0 | 1, flags: number): number {
  const vmpl = vtl === 0 ? 2 : 1;
  let value = vmpl;
  if (flags & 0x1) value += 1 << 8;
  if (flags & 0x2) value += 1 << 9;
  if (flags & 0x8) value += 1 << 10;
  if (flags & 0x4) value += 1 << 11;
  return value;
}

export const TdxLeaf = { MEM_PAGE_ACCEPT: 6n, VM_RD: 7n, MEM_PAGE_ATTR_RD: 23n, MEM_PAGE_ATTR_WR: 24n } as const;
export const TdxStatus = {
  SUCCESS: 0n,
  OPERAND_BUSY: 0x8000_0200n,
  OPERAND_INVALID: 0xc000_0100n,
  PAGE_ALREADY_ACCEPTED: 0x0000_0b0an,
  PAGE_SIZE_MISMATCH: 0xc000_0b0bn,
} as const;

export interface TdcallRegs {
  rax: bigint;
  rcx: bigint;
  rdx: bigint;
  r8: bigint;
  r9: bigint;
  r10?: bigint;
  r11?: bigint;
}

/** struct mshv_tdcall (56 bytes): rax (leaf in / status out), rcx, rdx, r8, r9, r10_out, r11_out. */
export function tdcallArgument(regs: TdcallRegs): Uint8Array {
  const arg = new Uint8Array(56);
  const view = new DataView(arg.buffer);
  [regs.rax, regs.rcx, regs.rdx, regs.r8, regs.r9, 0n, 0n].forEach((value, index) => view.setBigUint64(index * 8, value, true));
  return arg;
}

export function readTdcall(arg: Uint8Array): Required<TdcallRegs> {
  const view = new DataView(arg.buffer, arg.byteOffset);
  const at = (index: number) => view.getBigUint64(index * 8, true);
  return { rax: at(0), rcx: at(1), rdx: at(2), r8: at(3), r9: at(4), r10: at(5), r11: at(6) };
}

/** rcx for ACCEPT / ATTR.WR: (gpn << 12) | level (0 = 4K, 1 = 2M). */
export const tdxPageRcx = (gpa: number, level: 0 | 1): bigint => BigInt(gpa) | BigInt(level);
/** Result code: bits 63:32 of rax. */
export const tdxCode = (rax: bigint): bigint => rax >> 32n;
/** VTL0 (L2-VM1) full access: attributes R|W|KX|UX + valid in bits 16-31; mask R|W|KX|UX. */
export const TDX_VTL0_ALL = { rdx: 0x800f_0000n, r8: 0x000f_0000n } as const;
