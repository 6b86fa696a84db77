// Loading kernel module files in the guest: the one finit_module primitive every mode uses, and
// the time limit both modes' loaders share.
import * as sys from "../sys";
import { moduleCompression } from "./names";

/**
 * How long a mode's modules step may go on loading, from its first module. finit_module blocks
 * and cannot be interrupted, so the deadline is checked between modules: one slow module can
 * overrun it, but a long list cannot stall the boot indefinitely.
 */
export const MODULES_STEP_BUDGET_MS = 30_000;

/** The failure reason of a module the step had no time left to try. */
export function notTriedReason(budgetMs: number): string {
  return `not tried: modules step exceeded its ${budgetMs} ms budget`;
}

/** finit_module flags for a module file: compressed ones (.ko.xz/.gz/.zst) the kernel decompresses. */
export function moduleInitFlags(path: string): number {
  return moduleCompression(path) !== null ? sys.ModuleInitFlags.COMPRESSED_FILE : 0;
}

/**
 * open + finit_module + close. Throws the SysError of whichever call failed (`.call` is "open" or
 * "finit_module"); EEXIST (already loaded) is left to the caller to read as success.
 */
export function finitModuleFile(path: string, params: string, name: string, flags = moduleInitFlags(path)): void {
  const fd = sys.open(path, sys.OpenFlags.RDONLY | sys.OpenFlags.CLOEXEC);
  try {
    sys.finitModule(fd, params, flags, name);
  } finally {
    sys.close(fd);
  }
}
