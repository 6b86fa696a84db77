// The rep-call driver: issues hypercalls in batches that fit one input page, resumes each on
// Timeout from the element the hypervisor reached, and names the failing element of the caller's
// whole list. Written against a plain function (HypercallFn) so unit tests can give it a fake
// hypervisor. The numbers and struct encoders it uses are in hv-abi.ts.
import {
  acceptInput, control, gpnListInput, HvCall, HvStatus, setVpRegistersInput, MAX_ACCEPT_PAGES_PER_CALL, MAX_GPNS_PER_CALL, parseResult, statusName,
  type HvResult,
} from "./hv-abi";
import { PAGE } from "./ranges";

/** One raw hypercall: control word and input bytes in, 64-bit result out. */
export type HypercallFn = (controlWord: bigint, input: Uint8Array) => bigint;

export class HypercallError extends Error {
  readonly code: number;
  readonly status: number;
  /** Index (into the caller's whole list) of the element that failed. */
  readonly index: number;
  /** The failing GPN, when the call names GPNs. */
  readonly gpn: number | null;
  constructor(what: string, code: number, status: number, index: number, gpn: number | null) {
    super(`${what}: hypercall 0x${code.toString(16)} failed with ${statusName(status)}${gpn !== null ? ` at GPN 0x${gpn.toString(16)}` : ""} (element ${index})`);
    this.name = "HypercallError";
    this.code = code;
    this.status = status;
    this.index = index;
    this.gpn = gpn;
  }
}

export interface CallStats {
  /** Hypercalls issued, per code (including Timeout retries). */
  calls: Record<string, number>;
  timeouts: number;
}

const countCall = (stats: CallStats | undefined, code: number) => {
  if (!stats) return;
  const key = `0x${code.toString(16).padStart(4, "0")}`;
  stats.calls[key] = (stats.calls[key] ?? 0) + 1;
};

/** Consecutive Timeouts without progress before we give up (openhcl/hcl ioctl.rs retries forever). */
const MAX_STALLED_TIMEOUTS = 64;

/**
 * Issue one rep hypercall of `count` elements, resuming from `processed` on Timeout.
 * Returns null on success, or { status, processed } for a failure (processed = the failing element).
 */
function repCall(call: HypercallFn, code: number, count: number, input: Uint8Array, stats?: CallStats): HvResult | null {
  let start = 0;
  let stalled = 0;
  for (;;) {
    countCall(stats, code);
    const result = parseResult(call(control(code, count, start), input));
    if (result.status === HvStatus.Timeout) {
      if (stats) stats.timeouts++;
      if (result.processed > start) stalled = 0;
      else if (++stalled > MAX_STALLED_TIMEOUTS) return result;
      if (result.processed >= count) return null;
      start = result.processed;
      continue;
    }
    if (result.status !== HvStatus.Success) return result;
    if (result.processed !== count) return { status: HvStatus.InvalidHypercallInput, processed: result.processed };
    return null;
  }
}

/** A list of GPNs, by index (a range's GPNs need no array). */
export interface GpnList {
  length: number;
  at(index: number): number;
}

export const gpnRange = (start: number, end: number): GpnList => ({ length: (end - start) / PAGE, at: (i) => start / PAGE + i });

/**
 * A GPN-list hypercall over `gpns` in batches of at most MAX_GPNS_PER_CALL, each resumed on
 * Timeout. On failure the error names the failing GPN and its index in the whole list (batch
 * offset + processed), not the index within the batch.
 */
export function gpnListCall(call: HypercallFn, code: number, argument: number, targetVtl: number, gpns: GpnList, what: string, stats?: CallStats): void {
  for (let offset = 0; offset < gpns.length; offset += MAX_GPNS_PER_CALL) {
    const count = Math.min(MAX_GPNS_PER_CALL, gpns.length - offset);
    const input = gpnListInput(code, argument, targetVtl, count, (i) => gpns.at(offset + i));
    const failure = repCall(call, code, count, input, stats);
    if (failure) {
      const index = offset + Math.min(failure.processed, count - 1);
      throw new HypercallError(what, code, failure.status, index, gpns.at(index));
    }
  }
}

/** AcceptGpaPages over [start, end) in count-only calls of at most MAX_ACCEPT_PAGES_PER_CALL pages. */
export function acceptPagesCall(call: HypercallFn, start: number, end: number, stats?: CallStats): void {
  const firstGpn = start / PAGE;
  const total = (end - start) / PAGE;
  for (let done = 0; done < total; done += MAX_ACCEPT_PAGES_PER_CALL) {
    const count = Math.min(MAX_ACCEPT_PAGES_PER_CALL, total - done);
    const failure = repCall(call, HvCall.AcceptGpaPages, count, acceptInput(firstGpn + done), stats);
    if (failure) {
      const index = done + Math.min(failure.processed, count - 1);
      throw new HypercallError("AcceptGpaPages", HvCall.AcceptGpaPages, failure.status, index, firstGpn + index);
    }
  }
}

/** HvCallSetVpRegisters of one register on this VP for `targetVtl` (an HvInputVtl), as openhcl/hcl's set_vp_registers_hypercall (ioctl/register.rs). */
export function setVpRegister(call: HypercallFn, targetVtl: number, name: number, value: bigint, what: string, stats?: CallStats): void {
  const failure = repCall(call, HvCall.SetVpRegisters, 1, setVpRegistersInput(targetVtl, [{ name, value }]), stats);
  if (failure) throw new HypercallError(what, HvCall.SetVpRegisters, failure.status, failure.processed, null);
}
