// Images holding one kernel module with a chosen ELF header: what the builder's per-architecture
// module check reads. No root and no built artifacts; the build compiles the supervisor for `arch`.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ARCH_INFO, type Arch } from "../../src/arch";
import { buildImage } from "../../src/image/build";

/** The first bytes of a 64-bit little-endian ELF header for `machine` (e_machine; 62 x86_64, 183 arm64). */
export function elfHeader(machine: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(64);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  bytes[18] = machine & 0xff;
  bytes[19] = machine >> 8;
  return bytes;
}

/**
 * A kernel directory under `work` whose one module is `file` (holding `bytes`), a static "binary"
 * of `arch` (a bare ELF header), and the build of an `arch` image of them in the ordered layout.
 */
export function oneModuleImage(work: string, file: string, bytes: Uint8Array, arch: Arch): { out: string; build: () => ReturnType<typeof buildImage> } {
  const kernelDir = join(work, `${arch}-${file}`);
  const release = join(kernelDir, "lib/modules/6.1.0-test");
  mkdirSync(join(release, "kernel"), { recursive: true });
  writeFileSync(join(release, "modules.dep"), `kernel/${file}:\n`);
  writeFileSync(join(release, "kernel", file), bytes);
  const binary = join(work, `burrow-${arch}`);
  writeFileSync(binary, elfHeader(ARCH_INFO[arch].elfMachine));
  const out = join(work, `${arch}-${file}.img`);
  return { out, build: () => buildImage({ binary, arch, out, kernelDir, modules: ["foo"], noDefaultModules: true, moduleLayout: "ordered", add: [], compress: "none", mtime: 0 }) };
}
