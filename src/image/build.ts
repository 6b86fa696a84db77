// `burrow image`: the initramfs (our own cpio newc writer) or an ext4 boot disk. Reproducible:
// entries sorted, owner 0, every timestamp from SOURCE_DATE_EPOCH (or 0; 1 on ext4). Each duty lives in its
// own module; this file is the order they run in.
import { readFileSync, statSync } from "node:fs";
import { archOfElf, hostArch, type Arch } from "../arch";
import { addTree } from "./add";
import { MODULE_FILE_PATTERN, moduleCompression } from "../modules";
import { compress, decompress, type Compression } from "./compress";
import { CpioArchive } from "./cpio";
import { ImageError } from "./error";
import { writeExt4 } from "./ext4";
import { addBaseLayout } from "./layout";
import { addRuntimeLibraries, checkBinaryArch } from "./libraries";
import { addModules, type ImageMode, type ModuleLayout } from "./modules";
import { writeAtomically, writeInto } from "./output";
import { addEarlyMounts, EARLY_MOUNTS_PATH, LD_SO_PRELOAD_PATH } from "./preload";
import { addSupervisor } from "./supervisor";
import { withScratch } from "./scratch";
import { NEWC_FIELD_MAX } from "./limits";
import { SUPERVISOR_PATH } from "../boot/paths";

// bench/run.ts names the compression type of ImageOptions.compress through this entry point.
export { type Compression } from "./compress";

export interface ImageOptions {
  binary: string;
  /** The guest architecture (default this host's): binary, runtime libraries and preload must match it. */
  arch?: Arch;
  /** Where the binary goes in the image (default /init). Another /init then comes from `add`. */
  binaryPath?: string;
  out: string;
  kernelDir: string | null;
  kernelRelease?: string;
  /** Modules added to the default set. */
  modules: string[];
  /** Use only `modules` (no default set). */
  noDefaultModules?: boolean;
  /** The boot plan the image is for (default microvm): its default module set and layout. */
  mode?: ImageMode;
  /** See ModuleLayout: "tree" or "ordered"; default the mode's (tree for microvm, ordered for paravisor). */
  moduleLayout?: ModuleLayout;
  /** Extra files: [source, destination in the image]. */
  add: [string, string][];
  compress: Compression;
  /**
   * cpio: an initramfs. ext4: a boot disk for kernels with virtio-blk and ext4 built in — the
   * kernel mounts it as root (root=/dev/vda ro init=/init) and pages burrow in on demand instead
   * of unpacking it into RAM. Device nodes are left out: the kernel opens the console before it
   * mounts the disk, and devtmpfs supplies /dev.
   */
  format?: "cpio" | "ext4";
  mtime: number;
}

export interface ImageSummary {
  out: string;
  bytes: number;
  entries: number;
  modules: string[];
  kernelRelease: string | null;
  libraries: string[];
  arch: Arch;
}

/**
 * The options that can be judged without reading what they name; the rest (the kernel directory,
 * each --add source) is judged as it is read, still before anything is compiled or the image written.
 */
function checkImageOptions(options: ImageOptions): void {
  const binary = statSync(options.binary, { throwIfNoEntry: false });
  if (!binary) throw new ImageError(`burrow binary not found: ${options.binary} (build it with \`just build\`)`);
  if (!binary.isFile()) throw new ImageError(`burrow binary ${options.binary} is not a file`);
  if (options.kernelDir === null && options.modules.length > 0) throw new ImageError("--modules needs --kernel-dir (where the kernel's lib/modules/<release>/ is)");
  if (options.kernelDir === null && options.kernelRelease !== undefined) throw new ImageError(`--kernel-release ${options.kernelRelease} needs --kernel-dir (where the kernel's lib/modules/<release>/ is)`);
  // The rename at the end would fail only after the whole build.
  if (statSync(options.out, { throwIfNoEntry: false })?.isDirectory()) throw new ImageError(`--out ${options.out} is a directory; name the image file`);
  const { mtime } = options;
  if ((options.format ?? "cpio") === "cpio" && !(Number.isInteger(mtime) && mtime >= 0 && mtime <= NEWC_FIELD_MAX)) {
    throw new ImageError(`mtime ${mtime} (SOURCE_DATE_EPOCH) does not fit a cpio newc header (0 to ${NEWC_FIELD_MAX})`);
  }
}

export async function buildImage(options: ImageOptions): Promise<ImageSummary> {
  // Every check comes before the first compile: a bad option costs no C build and leaves nothing behind.
  checkImageOptions(options);
  const format = options.format ?? "cpio";
  const archive = new CpioArchive();
  const binary = new Uint8Array(readFileSync(options.binary));
  const arch = options.arch ?? hostArch();
  checkBinaryArch(binary, options.binary, arch);
  archive.add({ type: "file", path: options.binaryPath ?? "/init", data: binary, mode: 0o755 });
  const libraries = addRuntimeLibraries(archive, binary, options.binary, arch);
  // Only a dynamically linked (glibc) binary needs the early mounts before its main().
  const earlyMounts = libraries.length > 0;

  return withScratch((scratch) => {
    let modules: string[] = [];
    let release: string | null = null;
    if (options.kernelDir !== null) {
      ({ modules, release } = addModules(archive, {
        kernelDir: options.kernelDir, kernelRelease: options.kernelRelease, modules: options.modules,
        noDefaultModules: options.noDefaultModules, mode: options.mode, layout: options.moduleLayout,
      }, scratch));
    }
    // Another architecture's kernel directory would only fail in the guest, at finit_module (ENOEXEC).
    for (const entry of archive.list()) {
      if (entry.type !== "file" || !MODULE_FILE_PATTERN.test(entry.path)) continue;
      const compression = moduleCompression(entry.path);
      const found = archOfElf(compression === null ? entry.data : decompress(entry.data, compression, `module ${entry.path}`));
      if (found !== null && found !== arch) throw new ImageError(`module ${entry.path} from ${options.kernelDir} is for ${found}, but the image is for ${arch} (--arch, or the other architecture's --kernel-dir)`);
    }

    // The compiled programs' places are held by empty files, so --add is judged against the whole
    // image before the compiler runs; their bytes replace the empty files after.
    for (const path of [SUPERVISOR_PATH, ...(earlyMounts ? [EARLY_MOUNTS_PATH, LD_SO_PRELOAD_PATH] : [])]) archive.add({ type: "file", path, data: new Uint8Array(0) });
    addBaseLayout(archive);

    // Everything so far is what the image needs to boot: --add may add to it, never replace it.
    const imageOwn = new Set(archive.list().map((entry) => entry.path));
    for (const [source, destination] of options.add) addTree(archive, source, destination, { format, imageOwn });

    if (earlyMounts) addEarlyMounts(archive, scratch, arch);
    addSupervisor(archive, scratch, arch);

    const bytes = writeAtomically(options.out, (temporary) => {
      if (format === "ext4") return writeExt4(archive, temporary, scratch, options.mtime);
      const payload = compress(archive.chunks({ mtime: options.mtime }), options.compress);
      writeInto(temporary, payload);
      return payload.byteLength;
    });
    return { out: options.out, bytes, entries: archive.list().length, modules, kernelRelease: release, libraries, arch };
  });
}
