// `burrow image`: the initramfs, written by our own cpio writer. Reproducible: entries sorted,
// owner 0, mtimes from SOURCE_DATE_EPOCH (or 0). Written to a temporary file and renamed, so
// a failure never leaves a partial image behind.
import { spawnSync } from "bun";
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import earlyMountsSource from "../../image/early-mounts.c" with { type: "text" };
import { ModuleIndex, type LoadNode } from "../modules";
import { CpioArchive } from "./cpio";
import { readElfDeps } from "./elf";

export type Compression = "none" | "gzip" | "zstd";
export type ModuleLayout = "tree" | "ordered";

/** What microvm mode loads on Debian's kernel, where every driver is a module. */
export const DEFAULT_MODULES = [
  "virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console", "virtio_net", "virtio_balloon",
  "ext4", "crc32c", "zram", "zsmalloc", "lz4", "lzo", "lzo-rle",
];

export interface ImageOptions {
  binary: string;
  /** Where the binary goes in the image (default /init). Another /init then comes from `add`. */
  binaryPath?: string;
  out: string;
  kernelDir: string | null;
  kernelRelease?: string;
  /** Modules added to the default set. */
  modules: string[];
  /** Use only `modules` (no default set). */
  noDefaultModules?: boolean;
  /**
   * "tree" (default): /lib/modules/<release>/kernel/… plus the depmod index. "ordered": the closure
   * in load order as /lib/modules/NNN/<name>.ko and nothing else, so a walk sorted by name loads
   * dependencies first (what paravisor mode expects, like OpenHCL's rootfs).
   */
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

export class ImageError extends Error {}

const LIBRARY_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"];
export const EARLY_MOUNTS_PATH = "/lib/burrow/early-mounts.so";
export const ROOT_MOUNT_POINT = "/sysroot";

export interface ImageSummary {
  out: string;
  bytes: number;
  entries: number;
  modules: string[];
  kernelRelease: string | null;
  libraries: string[];
}

export async function buildImage(options: ImageOptions): Promise<ImageSummary> {
  if (!existsSync(options.binary)) throw new ImageError(`burrow binary not found: ${options.binary} (build it with \`just build\`)`);
  const archive = new CpioArchive();
  const binary = new Uint8Array(readFileSync(options.binary));
  archive.add({ type: "file", path: options.binaryPath ?? "/init", data: binary, mode: 0o755 });

  const libraries = addRuntimeLibraries(archive, binary, options.binary);
  // Only a dynamically linked (glibc) binary needs the early mounts before its main().
  const needsEarlyMounts = libraries.length > 0;

  const scratch = mkdtempSync(join(tmpdir(), "burrow-image-"));
  try {
    if (needsEarlyMounts) {
      archive.add({ type: "file", path: EARLY_MOUNTS_PATH, data: compileEarlyMounts(scratch), mode: 0o755 });
      archive.add({ type: "file", path: "/etc/ld.so.preload", data: Buffer.from(`${EARLY_MOUNTS_PATH}\n`), mode: 0o644 });
    }

    for (const dir of ["/proc", "/sys", "/dev", "/run", "/tmp", "/root", "/etc", ROOT_MOUNT_POINT]) {
      archive.add({ type: "dir", path: dir, mode: dir === "/tmp" ? 0o1777 : dir === "/root" ? 0o700 : 0o755 });
    }
    // The kernel opens /dev/console as fds 0-2 for init only if the node exists; Bun needs /dev/null.
    archive.add({ type: "char", path: "/dev/console", major: 5, minor: 1, mode: 0o600 });
    archive.add({ type: "char", path: "/dev/null", major: 1, minor: 3, mode: 0o666 });

    let modules: string[] = [];
    let release: string | null = null;
    if (options.kernelDir !== null) {
      ({ modules, release } = addModules(archive, options, scratch));
    } else if (options.modules.length > 0) {
      throw new ImageError("--modules needs --kernel-dir (where the kernel's lib/modules/<release>/ is)");
    }

    for (const [source, destination] of options.add) addTree(archive, source, destination);

    mkdirSync(dirname(options.out), { recursive: true });
    const temporary = `${options.out}.tmp-${process.pid}`;
    let bytes: number;
    try {
      if (options.format === "ext4") {
        bytes = writeExt4(archive, temporary, join(scratch, "ext4-root"), options.mtime);
      } else {
        const payload = compress(archive.chunks({ mtime: options.mtime }), options.compress);
        writeFileSync(temporary, payload);
        bytes = payload.byteLength;
      }
      renameSync(temporary, options.out);
    } catch (error) {
      rmSync(temporary, { force: true });
      throw error;
    }
    return { out: options.out, bytes, entries: archive.list().length, modules, kernelRelease: release, libraries };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function findLibrary(name: string, binaryPath: string): string {
  for (const dir of LIBRARY_DIRS) {
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new ImageError(`library ${name} needed by ${binaryPath} not found in ${LIBRARY_DIRS.join(", ")}`);
}

/** The interpreter and the NEEDED closure, copied as regular files (symlinks resolved). */
function addRuntimeLibraries(archive: CpioArchive, binary: Uint8Array, binaryPath: string): string[] {
  const { interpreter, needed } = readElfDeps(binary, binaryPath);
  if (!interpreter) return []; // static binary
  const added: string[] = [];
  const addFile = (imagePath: string, hostPath: string) => {
    if (archive.has(imagePath)) return false;
    archive.add({ type: "file", path: imagePath, data: new Uint8Array(readFileSync(realpathSync(hostPath))), mode: 0o755 });
    added.push(imagePath);
    return true;
  };
  if (!existsSync(interpreter)) throw new ImageError(`ELF interpreter ${interpreter} of ${binaryPath} not found on this host`);
  const interpreterName = interpreter.slice(interpreter.lastIndexOf("/") + 1);
  const libDir = process.arch === "arm64" ? "/lib/aarch64-linux-gnu" : "/lib/x86_64-linux-gnu";
  addFile(`${libDir}/${interpreterName}`, interpreter);
  if (interpreter !== `${libDir}/${interpreterName}`) archive.add({ type: "symlink", path: interpreter, target: `${libDir}/${interpreterName}` });

  const queue = [...needed];
  while (queue.length) {
    const name = queue.shift()!;
    const hostPath = findLibrary(name, binaryPath);
    if (addFile(`${libDir}/${name}`, hostPath)) queue.push(...readElfDeps(new Uint8Array(readFileSync(realpathSync(hostPath))), hostPath).needed);
  }
  return added;
}

function compileEarlyMounts(scratch: string): Uint8Array {
  const source = join(scratch, "early-mounts.c");
  const output = join(scratch, "early-mounts.so");
  writeFileSync(source, earlyMountsSource);
  const compiler = ["cc", "gcc"].find((cc) => spawnSync(["which", cc]).exitCode === 0);
  if (!compiler) throw new ImageError("no C compiler (cc/gcc) found to build the early-mounts library (install gcc: `just deps`)");
  const result = spawnSync([compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", `-ffile-prefix-map=${scratch}=.`, "-Wl,--build-id=none", "-o", output, source], { stderr: "pipe" });
  if (result.exitCode !== 0) throw new ImageError(`building the early-mounts library failed: ${result.stderr.toString().trim()}`);
  return new Uint8Array(readFileSync(output));
}

function kernelReleaseIn(kernelDir: string, wanted?: string): string {
  const modulesRoot = join(kernelDir, "lib/modules");
  if (!existsSync(modulesRoot)) throw new ImageError(`kernel modules not found: ${modulesRoot} does not exist (run \`just kernel\`)`);
  if (wanted) {
    if (!existsSync(join(modulesRoot, wanted))) throw new ImageError(`kernel release ${wanted} not found under ${modulesRoot}`);
    return wanted;
  }
  const releases = readdirSync(modulesRoot).filter((entry) => statSync(join(modulesRoot, entry)).isDirectory()).sort();
  if (releases.length === 0) throw new ImageError(`no kernel release directory under ${modulesRoot}`);
  if (releases.length > 1) throw new ImageError(`several kernel releases under ${modulesRoot} (${releases.join(", ")}); pick one with --kernel-release`);
  return releases[0]!;
}

function readIfExists(path: string): string {
  return existsSync(path) ? readFileSync(path, "utf8") : "";
}

export function loadModuleIndex(moduleDir: string): ModuleIndex {
  const depPath = join(moduleDir, "modules.dep");
  if (!existsSync(depPath)) throw new ImageError(`${depPath} is missing (run depmod, or \`just kernel\`)`);
  return ModuleIndex.parse({
    dep: readFileSync(depPath, "utf8"),
    softdep: readIfExists(join(moduleDir, "modules.softdep")),
    alias: readIfExists(join(moduleDir, "modules.alias")),
    builtin: readIfExists(join(moduleDir, "modules.builtin")),
  });
}

function addModules(archive: CpioArchive, options: ImageOptions, scratch: string): { modules: string[]; release: string | null } {
  const kernelDir = options.kernelDir!;
  if (!existsSync(kernelDir)) throw new ImageError(`kernel directory not found: ${kernelDir} (run \`just kernel\`)`);
  const modulesRoot = join(kernelDir, "lib/modules");
  // A kernel with everything built in ships no modules: the image then carries none.
  if (!existsSync(modulesRoot) && options.modules.length === 0) return { modules: [], release: null };
  const release = kernelReleaseIn(kernelDir, options.kernelRelease);
  const moduleDir = join(modulesRoot, release);
  const index = loadModuleIndex(moduleDir);
  const requested = [...(options.noDefaultModules ? [] : DEFAULT_MODULES), ...options.modules];
  const { order, missing } = index.closure(requested);
  if (missing.length > 0) {
    throw new ImageError(`module${missing.length > 1 ? "s" : ""} not found: ${missing.join(", ")} (looked in ${moduleDir}/modules.dep, modules.builtin and modules.alias)`);
  }

  if (options.moduleLayout === "ordered") {
    const width = Math.max(3, String(order.length - 1).length);
    order.forEach((node: LoadNode, index: number) => {
      const extension = /\.ko(\.(xz|gz|zst))?$/.exec(node.path)?.[0] ?? ".ko";
      const path = `/lib/modules/${String(index).padStart(width, "0")}/${node.name}${extension}`;
      archive.add({ type: "file", path, data: new Uint8Array(readFileSync(join(moduleDir, node.path))), mode: 0o644 });
    });
    return { modules: order.map((node) => node.name), release };
  }

  // Regenerate the index for just this subset with depmod, in a staging tree.
  const stage = join(scratch, "modules");
  const stageDir = join(stage, "lib/modules", release);
  mkdirSync(stageDir, { recursive: true });
  for (const node of order) {
    mkdirSync(dirname(join(stageDir, node.path)), { recursive: true });
    cpSync(join(moduleDir, node.path), join(stageDir, node.path));
  }
  const subsetPaths = new Set(order.map((node: LoadNode) => node.path));
  const modulesOrder = readIfExists(join(moduleDir, "modules.order")).split("\n").filter((line) => subsetPaths.has(line.trim()));
  writeFileSync(join(stageDir, "modules.order"), modulesOrder.join("\n") + (modulesOrder.length ? "\n" : ""));
  for (const file of ["modules.builtin", "modules.builtin.modinfo"]) {
    if (existsSync(join(moduleDir, file))) cpSync(join(moduleDir, file), join(stageDir, file));
  }
  const depmod = ["/usr/sbin/depmod", "/sbin/depmod"].find(existsSync) ?? "depmod";
  const result = spawnSync([depmod, "-b", stage, release], { stderr: "pipe" });
  if (result.exitCode !== 0) throw new ImageError(`depmod -b ${stage} ${release} failed: ${result.stderr.toString().trim() || `exit ${result.exitCode}`} (install kmod: \`just deps\`)`);

  for (const node of order) {
    archive.add({ type: "file", path: `/lib/modules/${release}/${node.path}`, data: new Uint8Array(readFileSync(join(stageDir, node.path))), mode: 0o644 });
  }
  for (const file of ["modules.dep", "modules.softdep", "modules.alias", "modules.builtin", "modules.order"]) {
    const path = join(stageDir, file);
    if (existsSync(path)) archive.add({ type: "file", path: `/lib/modules/${release}/${file}`, data: new Uint8Array(readFileSync(path)), mode: 0o644 });
  }
  return { modules: order.map((node) => node.name), release };
}

/** --add SRC:DEST — a file, a symlink or a whole directory tree. */
function addTree(archive: CpioArchive, source: string, destination: string): void {
  if (!existsSync(source) && !isSymlink(source)) throw new ImageError(`--add source not found: ${source}`);
  const info = lstatSync(source);
  if (info.isSymbolicLink()) {
    archive.add({ type: "symlink", path: destination, target: readlinkSync(source) });
  } else if (info.isDirectory()) {
    archive.add({ type: "dir", path: destination, mode: info.mode & 0o7777 });
    for (const entry of readdirSync(source).sort()) addTree(archive, join(source, entry), join(destination, entry));
  } else if (info.isFile()) {
    archive.add({ type: "file", path: destination, data: new Uint8Array(readFileSync(source)), mode: info.mode & 0o7777 });
  } else {
    throw new ImageError(`--add source ${source} is not a file, directory or symlink`);
  }
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Stage the archive's files, directories and symlinks and let mke2fs -d make a read-only boot disk. */
function writeExt4(archive: CpioArchive, out: string, stage: string, mtime: number): number {
  mkdirSync(stage, { recursive: true });
  let payload = 0;
  for (const entry of archive.list()) {
    const path = join(stage, entry.path);
    if (entry.type === "dir") mkdirSync(path, { recursive: true, mode: entry.mode ?? 0o755 });
    else if (entry.type === "file") {
      writeFileSync(path, entry.data, { mode: entry.mode ?? 0o644 });
      payload += entry.data.byteLength;
    } else if (entry.type === "symlink") symlinkSync(entry.target, path);
    if (entry.type === "dir" || entry.type === "file") chmodSync(path, entry.mode ?? (entry.type === "dir" ? 0o755 : 0o644));
  }
  // Room for metadata: payload plus 10% and 8 MiB, in whole MiB.
  const sizeMiB = Math.ceil((payload * 1.1) / 2 ** 20) + 8;
  const mke2fs = ["/usr/sbin/mke2fs", "/sbin/mke2fs"].find(existsSync) ?? "mke2fs";
  const result = spawnSync(
    [mke2fs, "-q", "-t", "ext4", "-b", "4096", "-O", "^has_journal", "-L", "burrow-boot", "-U", "5b0c2d1e-8f3a-4c6b-9d7e-0a1b2c3d4e5f",
      "-E", "root_owner=0:0,hash_seed=5b0c2d1e-8f3a-4c6b-9d7e-0a1b2c3d4e5f", "-d", stage, "-F", out, `${sizeMiB}M`],
    { stderr: "pipe", env: { ...process.env, E2FSPROGS_FAKE_TIME: String(mtime) } },
  );
  if (result.exitCode !== 0) throw new ImageError(`mke2fs -d ${stage} failed: ${result.stderr.toString().trim() || `exit ${result.exitCode}`} (install e2fsprogs: \`just deps\`)`);
  return statSync(out).size;
}

function compress(chunks: Uint8Array[], how: Compression): Uint8Array {
  const raw = Buffer.concat(chunks);
  if (how === "none") return raw;
  if (how === "gzip") return Bun.gzipSync(raw, { level: 6 });
  return Bun.zstdCompressSync(raw, { level: 9 });
}

