// Paths of the artifacts `just test` builds before running bun test. A missing artifact is an
// error (the boot tests must run), never a skip.
import { copyFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
export const BURROW = join(ROOT, "dist/burrow");
/** Debian's kernel (`just kernel`): drivers as modules under KERNEL_DIR/lib/modules. */
export const KERNEL_DIR = join(ROOT, "build/kernel");
export const KERNEL = join(KERNEL_DIR, "vmlinuz");
/** The kernel built from kernel-config/ (`just kernel-micro`): drivers built in, no modules. The default. */
export const KERNEL_MICRO = join(ROOT, "build/kernel-micro/vmlinuz");
/** `just test-images`: the default image (no modules, for KERNEL_MICRO)… */
export const INITRAMFS = join(ROOT, "dist/test/initramfs-micro.img");
/** …and one with Debian's microvm module set, for KERNEL (module loading, q35, paravisor). */
export const INITRAMFS_DEBIAN = join(ROOT, "dist/test/initramfs-debian.img");
export const ROOTFS = join(ROOT, "dist/rootfs.ext4");

export function requireArtifacts(...paths: string[]): void {
  const missing = paths.filter((path) => !existsSync(path));
  if (missing.length) throw new Error(`missing build artifacts: ${missing.join(", ")} — run the tests with \`npx just test\``);
}

/** The arm64 guest (`just test-images-arm64 rootfs-arm64`): Debian's arm64 kernel, its image, the arm64 demo root. */
export const KERNEL_ARM64 = join(ROOT, "build/kernel-arm64/vmlinuz");
export const INITRAMFS_ARM64 = join(ROOT, "dist/test/initramfs-arm64.img");
export const ROOTFS_ARM64 = join(ROOT, "dist/arm64/rootfs.ext4");
export const KERNEL_ARM64_DIR = join(ROOT, "build/kernel-arm64");
/** The arm64 micro kernel (`just kernel-micro-arm64`): drivers built in, boots from burrow's ext4 boot disk. */
export const KERNEL_MICRO_ARM64 = join(ROOT, "build/kernel-micro-arm64/vmlinuz");
export const BURROW_ARM64 = join(ROOT, "dist/arm64/burrow");
/** Debian's busybox-static:arm64, unpacked by `just rootfs-arm64`. */
export const BUSYBOX_ARM64 = join(ROOT, "build/busybox-arm64/bin/busybox");

let rootCopies = 0;

/** A fresh writable copy of the demo root in `dir`, for one boot. */
export function copyOfRoot(dir: string): string {
  const path = join(dir, `root-${++rootCopies}.ext4`);
  copyFileSync(ROOTFS, path);
  return path;
}
