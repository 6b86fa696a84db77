// Which kernel modules go into the image and how they are laid out: the closure of the requested
// set from the kernel's own index, either as a /lib/modules/<release>/ tree with a depmod index
// regenerated for just that subset, or in load order for paravisor mode.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { MODULE_FILE_PATTERN, ModuleIndex, readModuleIndex, type LoadNode } from "../modules";
import type { CpioArchive } from "./cpio";
import { ImageError } from "./error";
import { runTool, systemTool } from "./tool";

/** Which boot plan the image is for: it decides the default module set and layout. */
export type ImageMode = "microvm" | "paravisor";

/**
 * The default module set per mode, on a kernel where drivers are modules (Debian's). microvm:
 * the disks, ports, NIC, balloon, root filesystem and zram. paravisor: ttyprintk, its stderr
 * (the rest of a VTL2 image's drivers are the user's to name with --modules).
 */
const DEFAULT_MODULES: Record<ImageMode, readonly string[]> = {
  microvm: [
    "virtio_mmio", "virtio_pci", "virtio_blk", "virtio_console", "virtio_net", "virtio_balloon",
    "ext4", "crc32c", "zram", "zsmalloc", "lz4", "lzo", "lzo-rle",
  ],
  paravisor: ["ttyprintk"],
};

/** The layout each mode's init expects when none is asked for. */
export const DEFAULT_LAYOUT: Record<ImageMode, "tree" | "ordered"> = { microvm: "tree", paravisor: "ordered" };

/**
 * "tree": /lib/modules/<release>/kernel/… plus the depmod index. "ordered": the closure in load
 * order as /lib/modules/NNN/<name>.ko and nothing else, so a walk sorted by name loads
 * dependencies first (what paravisor mode expects, like OpenHCL's rootfs).
 */
export type ModuleLayout = "tree" | "ordered";

export interface ImageModuleOptions {
  kernelDir: string;
  kernelRelease?: string;
  /** Added to the default set. */
  modules: string[];
  /** Use only `modules`. */
  noDefaultModules?: boolean;
  /** Default microvm. */
  mode?: ImageMode;
  /** Default: the mode's (DEFAULT_LAYOUT). */
  layout?: ModuleLayout;
}

function loadModuleIndex(moduleDir: string): ModuleIndex {
  const index = readModuleIndex(moduleDir);
  if (!index) throw new ImageError(`${join(moduleDir, "modules.dep")} is missing (run depmod, or \`just kernel\`)`);
  return index;
}

export function addModules(archive: CpioArchive, request: ImageModuleOptions, scratch: string): { modules: string[]; release: string | null } {
  const { kernelDir } = request;
  if (!existsSync(kernelDir)) throw new ImageError(`kernel directory not found: ${kernelDir} (run \`just kernel\`)`);
  const modulesRoot = join(kernelDir, "lib/modules");
  // A kernel with everything built in ships no modules: the image then carries none.
  if (!existsSync(modulesRoot) && request.modules.length === 0) return { modules: [], release: null };
  const release = kernelReleaseIn(kernelDir, request.kernelRelease);
  const moduleDir = join(modulesRoot, release);
  const index = loadModuleIndex(moduleDir);
  const mode = request.mode ?? "microvm";
  const requested = [...(request.noDefaultModules ? [] : DEFAULT_MODULES[mode]), ...request.modules];
  const { order, missing } = index.closure(requested);
  if (missing.length > 0) {
    throw new ImageError(`module${missing.length > 1 ? "s" : ""} not found: ${missing.join(", ")} (looked in ${moduleDir}/modules.dep, modules.builtin and modules.alias)`);
  }
  // modules.dep names the files we read and the staging paths we write.
  const outside = order.find((node) => !isPlainRelativePath(node.path));
  if (outside) throw new ImageError(`module ${outside.name}: path ${JSON.stringify(outside.path)} in ${moduleDir}/modules.dep is not a plain path inside ${moduleDir}`);

  if ((request.layout ?? DEFAULT_LAYOUT[mode]) === "ordered") addInLoadOrder(archive, order, moduleDir);
  else addTreeWithIndex(archive, order, moduleDir, release, join(scratch, "modules"));
  return { modules: order.map((node) => node.name), release };
}

function kernelReleaseIn(kernelDir: string, wanted?: string): string {
  const modulesRoot = join(kernelDir, "lib/modules");
  if (!existsSync(modulesRoot)) throw new ImageError(`kernel modules not found: ${modulesRoot} does not exist (run \`just kernel\`)`);
  if (wanted) {
    if (!isPlainRelativePath(wanted) || wanted.includes("/") || !existsSync(join(modulesRoot, wanted))) throw new ImageError(`kernel release ${wanted} not found under ${modulesRoot}`);
    return wanted;
  }
  const releases = readdirSync(modulesRoot).filter((entry) => statSync(join(modulesRoot, entry)).isDirectory()).sort();
  if (releases.length === 0) throw new ImageError(`no kernel release directory under ${modulesRoot}`);
  if (releases.length > 1) throw new ImageError(`several kernel releases under ${modulesRoot} (${releases.join(", ")}); pick one with --kernel-release`);
  return releases[0]!;
}

function isPlainRelativePath(path: string): boolean {
  return path !== "" && !path.startsWith("/") && !path.includes("\0") && path.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

function readIfExists(path: string): string {
  return existsSync(path) ? readFileSync(path, "utf8") : "";
}

function addInLoadOrder(archive: CpioArchive, order: LoadNode[], moduleDir: string): void {
  const width = Math.max(3, String(order.length - 1).length);
  order.forEach((node, position) => {
    const extension = MODULE_FILE_PATTERN.exec(node.path)?.[0] ?? ".ko";
    const path = `/lib/modules/${String(position).padStart(width, "0")}/${node.name}${extension}`;
    archive.add({ type: "file", path, data: new Uint8Array(readFileSync(join(moduleDir, node.path))), mode: 0o644 });
  });
}

/** The subset under its kernel paths, with modules.dep and friends regenerated by depmod in a staging tree. */
function addTreeWithIndex(archive: CpioArchive, order: LoadNode[], moduleDir: string, release: string, stage: string): void {
  const stageDir = join(stage, "lib/modules", release);
  mkdirSync(stageDir, { recursive: true });
  for (const node of order) {
    mkdirSync(dirname(join(stageDir, node.path)), { recursive: true });
    cpSync(join(moduleDir, node.path), join(stageDir, node.path));
  }
  const subsetPaths = new Set(order.map((node) => node.path));
  const modulesOrder = readIfExists(join(moduleDir, "modules.order")).split("\n").filter((line) => subsetPaths.has(line.trim()));
  writeFileSync(join(stageDir, "modules.order"), modulesOrder.join("\n") + (modulesOrder.length ? "\n" : ""));
  for (const file of ["modules.builtin", "modules.builtin.modinfo"]) {
    if (existsSync(join(moduleDir, file))) cpSync(join(moduleDir, file), join(stageDir, file));
  }
  runTool([systemTool("depmod"), "-b", stage, release], { what: `depmod -b ${stage} ${release}`, hint: "install kmod: `just deps`" });

  for (const node of order) {
    archive.add({ type: "file", path: `/lib/modules/${release}/${node.path}`, data: new Uint8Array(readFileSync(join(stageDir, node.path))), mode: 0o644 });
  }
  for (const file of ["modules.dep", "modules.softdep", "modules.alias", "modules.builtin", "modules.order"]) {
    const path = join(stageDir, file);
    if (existsSync(path)) archive.add({ type: "file", path: `/lib/modules/${release}/${file}`, data: new Uint8Array(readFileSync(path)), mode: 0o644 });
  }
}
