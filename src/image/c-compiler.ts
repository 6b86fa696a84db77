// The C compiler for a guest architecture: the native cc on a host of that architecture, else the
// cross compiler. The image's small C programs (the preload, the supervisor) are built with it.
import { ARCH_INFO, hostArch, type Arch } from "../arch";
import { ImageError } from "./error";

export function compilerFor(arch: Arch, purpose: string): string {
  const candidates = [...(arch === hostArch() ? ["cc", "gcc"] : []), ...ARCH_INFO[arch].compilers];
  for (const name of candidates) {
    const found = Bun.which(name);
    if (found) return found;
  }
  const hint = arch === hostArch() ? "install gcc: `just deps`" : `install gcc-${ARCH_INFO[arch].multiarch}: \`ARCH=${arch} just deps\``;
  throw new ImageError(`no C compiler for ${arch} (${candidates.join(", ")}) found to build ${purpose} (${hint})`);
}
