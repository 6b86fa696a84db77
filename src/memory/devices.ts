// The mshv device fds and the calls on them: the only part of the memory step that talks to the
// kernel (through src/sys). Everything above works on the MemoryOps interface, so unit tests can
// run the same logic against a fake.
import * as sys from "../sys";
import type { HypercallFn } from "./hv";
import {
  addVtl0MemoryArgument, allowBitmap, hvcallArgument, hvcallSetupArgument, hvcallStatus, Ioctl, pvalidateArgument, readTdcall, rmpadjustArgument,
  tdcallArgument, type TdcallRegs,
} from "./hv-abi";

export const DEV_MSHV = "/dev/mshv";
export const DEV_HVCALL = "/dev/mshv_hvcall";
export const DEV_VTL_LOW = "/dev/mshv_vtl_low";

/** The calls the memory logic makes. */
export interface MemoryOps {
  hypercall: HypercallFn;
  /** PVALIDATE: 0 on success, a positive ISA code on failure. */
  pvalidate(startPfn: number, pageCount: number, validate: boolean): number;
  /** RMPADJUST: 0 on success, a positive ISA code on failure. */
  rmpadjust(startPfn: number, pageCount: number, value: number): number;
  tdcall(regs: TdcallRegs): Required<TdcallRegs>;
}

export interface OpenFd {
  name: string;
  path: string;
  fd: number;
  /** Why the worker gets it (or null when it stays with burrow). */
  note: string;
}

const RDWR_CLOEXEC = sys.OpenFlags.RDWR | sys.OpenFlags.CLOEXEC;

export function openDevice(path: string): number {
  return sys.open(path, RDWR_CLOEXEC);
}

/** MSHV_CREATE_VTL on /dev/mshv: the return value is the new (O_CLOEXEC) mshv_vtl fd. */
export function createVtl(mshvFd: number): number {
  const argument = new Uint8Array(1);
  return sys.ioctlPtr(mshvFd, Ioctl.CREATE_VTL, argument, { what: "MSHV_CREATE_VTL" });
}

/** A fresh /dev/mshv_hvcall fd allowing exactly `codes` (setup works once per fd). */
export function openHvcall(codes: readonly number[]): number {
  const fd = openDevice(DEV_HVCALL);
  try {
    const bitmap = allowBitmap(codes);
    sys.ioctlPtr(fd, Ioctl.HVCALL_SETUP, hvcallSetupArgument(bitmap.byteLength, sys.addressOf(bitmap)), {
      what: "MSHV_HVCALL_SETUP", codes: codes.map((code) => `0x${code.toString(16)}`).join(","),
    });
    return fd;
  } catch (error) {
    sys.close(fd);
    throw error;
  }
}

/** MSHV_HVCALL: the raw 64-bit result (status at offset 24). An EPERM/EINVAL from the ioctl throws. */
export function hypercallOn(fd: number): HypercallFn {
  return (controlWord, input) => {
    const argument = hvcallArgument(controlWord, input, sys.addressOf(input));
    sys.ioctlPtr(fd, Ioctl.HVCALL, argument, { what: "MSHV_HVCALL", code: `0x${(controlWord & 0xffffn).toString(16)}` });
    return hvcallStatus(argument);
  };
}

/** MSHV_VTL_ADD_VTL0_MEMORY on a VTL fd (the OpenHCL kernel's mshv_vtl_ioctl_add_vtl0_mem; openhcl/hcl ioctl.rs MshvVtl::add_vtl0_memory). */
export function addVtl0MemoryOn(vtlFd: number) {
  return (startPfn: number, lastPfn: number, shared: boolean): void => {
    sys.ioctlPtr(vtlFd, Ioctl.ADD_VTL0_MEMORY, addVtl0MemoryArgument(startPfn, lastPfn, shared), {
      what: "MSHV_VTL_ADD_VTL0_MEMORY", start: `0x${startPfn.toString(16)}`, last: `0x${lastPfn.toString(16)}`,
    });
  };
}

export function pvalidateOn(vtlFd: number) {
  return (startPfn: number, pageCount: number, validate: boolean): number =>
    sys.ioctlPtr(vtlFd, Ioctl.PVALIDATE, pvalidateArgument(startPfn, pageCount, validate), { what: "MSHV_VTL_PVALIDATE", pfn: `0x${startPfn.toString(16)}`, pages: pageCount });
}

export function rmpadjustOn(vtlFd: number) {
  return (startPfn: number, pageCount: number, value: number): number =>
    sys.ioctlPtr(vtlFd, Ioctl.RMPADJUST, rmpadjustArgument(startPfn, pageCount, value), { what: "MSHV_VTL_RMPADJUST", pfn: `0x${startPfn.toString(16)}`, pages: pageCount });
}

export function tdcallOn(vtlFd: number) {
  return (regs: TdcallRegs): Required<TdcallRegs> => {
    const argument = tdcallArgument(regs);
    sys.ioctlPtr(vtlFd, Ioctl.TDCALL, argument, { what: "MSHV_VTL_TDCALL", leaf: String(regs.rax) });
    return readTdcall(argument);
  };
}

/** Clear FD_CLOEXEC so the fd survives into the worker. */
export function inheritable(fd: number): void {
  sys.fcntl(fd, sys.Fcntl.F_SETFD, 0);
}
