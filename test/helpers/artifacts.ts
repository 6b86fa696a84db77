// Paths of the artifacts `just test` builds before running bun test. A missing artifact is an
// error (the boot tests must run), never a skip.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
export const BURROW = join(ROOT, "dist/burrow");
export const KERNEL_DIR = join(ROOT, "build/kernel");
export const KERNEL = join(KERNEL_DIR, "vmlinuz");
export const INITRAMFS = join(ROOT, "dist/initramfs.img");
/** The kernel built from kernel-config/ (`just kernel-micro`): drivers built in, no modules. */
export const KERNEL_MICRO = join(ROOT, "build/kernel-micro/vmlinuz");
export const ROOTFS = join(ROOT, "dist/rootfs.ext4");

export function requireArtifacts(...paths: string[]): void {
  const missing = paths.filter((path) => !existsSync(path));
  if (missing.length) throw new Error(`missing build artifacts: ${missing.join(", ")} — run the tests with \`npx just test\``);
}
