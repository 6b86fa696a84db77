// Loading one kernel module file in the guest: the one finit_module primitive every mode uses.
import * as sys from "../sys";

/** finit_module flags for a module file: compressed ones (.ko.xz/.gz/.zst) the kernel decompresses. */
export function moduleInitFlags(path: string): number {
  return /\.ko\.(xz|gz|zst)$/.test(path) ? sys.ModuleInitFlags.COMPRESSED_FILE : 0;
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
