// A bundle's config.json → what one container VM needs: the process the holder starts, the root
// share, the guest's mount plan with the shares and file copies behind it, the workload spec's
// kernel command line words (the guest's own cgroup limits among them), the VM's memory; and apart,
// what the host applies: the container's cgroup and its limits (cgroup-resources.ts). The process
// part is the workload spec's own parser (src/workload/oci.ts); every field read here that is wrong
// is named by its JSON path.
import { statSync } from "node:fs";
import { isAbsolute, posix, resolve } from "node:path";
import { CAPABILITIES, type Rlimits } from "../config/workload";
import { parseOciSpec } from "../workload/oci";
import type { CgroupDriver } from "./cgroup-paths";
import { type HostResources, readHostResources } from "./cgroup-resources";
import { workloadMemoryBytes } from "./cgroup-sizing";
import { type GuestMount, type GuestPlan, guestMountProblem } from "./guest-plan";

export interface ContainerProcess {
  args: string[];
  env: [string, string][];
  cwd: string;
  /** "UID:GID" (numeric, as the spec gives it). */
  user: string;
  terminal: boolean;
  rlimits: Rlimits;
}

/** A host directory the guest sees under a 9p tag. */
export interface ShareSpec {
  tag: string;
  path: string;
  readOnly: boolean;
}

export interface ContainerPlan {
  process: ContainerProcess;
  root: ShareSpec;
  /** Volumes (bind-mounted directories), each its own share. */
  shares: ShareSpec[];
  /** Bind-mounted files: copied into the bundle share at create (from → files/NAME). */
  files: { from: string; name: string }[];
  guestPlan: GuestPlan;
  /** burrow.* words: hostname, capabilities, no-new-privs, rlimits, the workload's cgroup limits. */
  kernelWords: string[];
  /** linux.namespaces' network path (the engine's namespace with its veth): the VM's NIC comes from it (src/oci/network.ts), or null: no NIC. */
  netns: string | null;
  /** linux.resources.memory.limit in bytes, or null (the VM is sized from the same limit in readBundle's resources). */
  memoryBytes: number | null;
  /** Lines for --debug: what a VM-backed container does not apply, and why. */
  notes: string[];
}

export const ROOT_TAG = "burrow.root";
export const BUNDLE_TAG = "burrow.bundle";
/** Where the copied files sit inside the bundle share. */
export const FILES_DIR = "files";

/** Mounts the guest already has at the same place (its own API mounts): made again, they would only hide them. */
const GUEST_PROVIDES: ReadonlyArray<{ destination: string; types: readonly string[]; why: string }> = [
  { destination: "/proc", types: ["proc"], why: "the guest's own proc" },
  { destination: "/sys", types: ["sysfs"], why: "the guest's own sysfs" },
  { destination: "/dev", types: ["tmpfs", "devtmpfs"], why: "the guest's devtmpfs holds the VM's devices" },
  { destination: "/dev/pts", types: ["devpts"], why: "the guest's own devpts" },
  { destination: "/dev/shm", types: ["tmpfs", "bind"], why: "the guest's own tmpfs (a host shm directory is no use across a VM)" },
  // A v1 mount there would take the memory and pids controllers the workload's cgroup2 group uses.
  { destination: "/sys/fs/cgroup", types: ["cgroup", "cgroup2"], why: "the guest's cgroup2 is burrow's: mounted there when the container has a memory or pids limit, for the workload's own group" },
];

type JsonObject = Record<string, unknown>;
const isObject = (value: unknown): value is JsonObject => typeof value === "object" && value !== null && !Array.isArray(value);
const field = (object: JsonObject | null, key: string): unknown => (object !== null && Object.hasOwn(object, key) ? object[key] : undefined);

class BundleErrors {
  readonly list: string[] = [];
  add(path: string, problem: string): null {
    this.list.push(`${path}: ${problem}`);
    return null;
  }
}

function capsWord(keep: number[] | null): string | null {
  if (keep === null) return null;
  if (keep.length === 0) return "burrow.caps=none";
  return `burrow.caps=${keep.map((number) => CAPABILITIES[number]!.toLowerCase().replace(/^cap_/, "")).join(",")}`;
}

function rlimitWords(rlimits: Rlimits): string[] {
  return Object.entries(rlimits).map(([name, pair]) => `burrow.rlimit.${name}=${pair!.soft === "inf" ? "unlimited" : pair!.soft}:${pair!.hard === "inf" ? "unlimited" : pair!.hard}`);
}

function optionsAt(errors: BundleErrors, value: unknown, path: string): string[] | null {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return errors.add(path, "expected an array of strings");
  const bad = value.findIndex((item) => typeof item !== "string" || item.includes("\0") || item.includes(","));
  return bad >= 0 ? errors.add(`${path}[${bad}]`, "expected an option string") : (value as string[]);
}

function absolutePathAt(errors: BundleErrors, value: unknown, path: string): string | null {
  if (typeof value !== "string" || value === "") return errors.add(path, "expected a string");
  if (value.includes("\0")) return errors.add(path, "holds a NUL byte");
  if (!value.startsWith("/")) return errors.add(path, "expected an absolute path");
  if (value.split("/").includes("..")) return errors.add(path, "must not hold a .. component");
  return value;
}

interface MountTranslation {
  mounts: GuestMount[];
  shares: ShareSpec[];
  files: { from: string; name: string }[];
  notes: string[];
}

function translateMounts(errors: BundleErrors, value: unknown, bundle: string): MountTranslation {
  const out: MountTranslation = { mounts: [], shares: [], files: [], notes: [] };
  if (value === undefined || value === null) return out;
  if (!Array.isArray(value)) return errors.add("mounts", "expected an array"), out;
  value.forEach((item, index) => {
    const path = `mounts[${index}]`;
    if (!isObject(item)) return errors.add(path, "expected an object");
    const destination = absolutePathAt(errors, field(item, "destination"), `${path}.destination`);
    const options = optionsAt(errors, field(item, "options"), `${path}.options`);
    const typeValue = field(item, "type");
    if (typeValue !== undefined && typeof typeValue !== "string") return errors.add(`${path}.type`, "expected a string");
    const sourceValue = field(item, "source");
    if (sourceValue !== undefined && typeof sourceValue !== "string") return errors.add(`${path}.source`, "expected a string");
    if (destination === null || options === null) return;
    const place = posix.normalize(destination).replace(/(.)\/$/, "$1");
    const bind = typeValue === "bind" || options.includes("bind") || options.includes("rbind");
    const type = bind ? "bind" : (typeValue ?? "");
    if (type === "") return errors.add(`${path}.type`, "expected a filesystem type or a bind mount");
    const provided = GUEST_PROVIDES.find((entry) => entry.destination === place && entry.types.includes(type));
    if (provided) return void out.notes.push(`${path} (${type} on ${destination}) not made: ${provided.why}`);
    // Checked as the guest will read it, but named by config.json's own path.
    const add = (mount: GuestMount) => {
      const problem = guestMountProblem(mount);
      if (problem === null) return void out.mounts.push(mount);
      // Its problems begin with the field they are about: "destination: is the root itself".
      errors.list.push(`${path}.${problem}`);
    };
    if (!bind) return add({ kind: "fs", type, source: sourceValue ?? type, destination: place, options });
    if (sourceValue === undefined || sourceValue === "") return errors.add(`${path}.source`, "a bind mount needs a source");
    const source = isAbsolute(sourceValue) ? sourceValue : resolve(bundle, sourceValue);
    let stat;
    try {
      stat = statSync(source);
    } catch (error) {
      return errors.add(`${path}.source`, `${source}: ${(error as NodeJS.ErrnoException).code ?? "cannot stat"}`);
    }
    const readOnly = options.includes("ro");
    // The guest makes the mount itself: bind, rbind and the propagation words mean nothing to it.
    const guestOptions = options.filter((option) => !["bind", "rbind", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"].includes(option));
    if (stat.isDirectory()) {
      const tag = `burrow.v${out.shares.length}`;
      out.shares.push({ tag, path: source, readOnly });
      add({ kind: "share", tag, destination: place, options: guestOptions });
    } else if (stat.isFile()) {
      const name = `${out.files.length}`;
      out.files.push({ from: source, name });
      add({ kind: "file", file: `${FILES_DIR}/${name}`, destination: place, options: guestOptions });
      if (!readOnly) out.notes.push(`${path} (${destination}): a copy of ${source}; the guest's writes to it stay in the VM`);
    } else {
      errors.add(`${path}.source`, `${source} is neither a directory nor a regular file (a VM can share only those)`);
    }
  });
  return out;
}

/**
 * linux.namespaces' network entry: its path (an engine's namespace, whose interface the VM's NIC
 * takes), or null with a note on why the VM has no NIC; undefined when the entry is malformed.
 */
function networkNamespace(errors: BundleErrors, namespaces: unknown, notes: string[]): string | null | undefined {
  if (namespaces !== undefined && namespaces !== null && !Array.isArray(namespaces)) return errors.add("linux.namespaces", "expected an array") ?? undefined;
  const list = Array.isArray(namespaces) ? namespaces : [];
  const index = list.findIndex((entry) => isObject(entry) && entry.type === "network");
  if (index < 0) {
    notes.push("linux.namespaces has no network namespace (the host's network): a VM cannot share it, the container gets no NIC");
    return null;
  }
  const path = (list[index] as JsonObject).path;
  if (path === undefined || path === "") {
    notes.push("a new network namespace (no path): the container gets no NIC, loopback only");
    return null;
  }
  return absolutePathAt(errors, path, `linux.namespaces[${index}].path`) ?? undefined;
}

/**
 * The workload's own cgroup in the guest (src/workload/cgroup.ts): pids.max, and under a memory
 * limit a memory.max below the VM's RAM (cgroup-sizing.ts), which keeps the workload off the
 * guest's zram swap and OOM-kills it whole, as runc's cgroup would. "max" (unlimited) needs no group.
 */
function guestCgroupWords(memoryMax: number | "max" | null, pidsMax: number | "max" | null): string[] {
  return [...(typeof memoryMax === "number" ? [`burrow.memory-max=${workloadMemoryBytes(memoryMax)}`] : []), ...(typeof pidsMax === "number" ? [`burrow.pids-max=${pidsMax}`] : [])];
}

/**
 * Reads config.json's text (of bundle `bundle`, absolute) into a container plan and what the host
 * applies (linux.cgroupsPath read as `driver` writes it), or every problem by path.
 */
export function readBundle(text: string, bundle: string, driver: CgroupDriver = "cgroupfs"): { ok: true; plan: ContainerPlan; resources: HostResources } | { ok: false; error: string } {
  const parsed = parseOciSpec(text);
  if (!parsed.ok) return { ok: false, error: `config.json: ${parsed.error}` };
  const config = JSON.parse(text) as JsonObject;
  const errors = new BundleErrors();
  const spec = parsed.spec;
  const processObject = isObject(field(config, "process")) ? (field(config, "process") as JsonObject) : null;
  if (processObject === null) errors.add("process", "required (burrow-oci starts the container's process from it)");
  const terminal = field(processObject, "terminal");
  if (terminal !== undefined && typeof terminal !== "boolean") errors.add("process.terminal", "expected true or false");
  if (spec.argv === null && processObject !== null) errors.add("process.args", "required");
  const rootObject = field(config, "root");
  if (!isObject(rootObject)) errors.add("root", "required (an object with path)");
  const rootPathValue = field(isObject(rootObject) ? rootObject : null, "path");
  let rootPath: string | null = null;
  if (isObject(rootObject)) {
    if (typeof rootPathValue !== "string" || rootPathValue === "") errors.add("root.path", "expected a path");
    else {
      rootPath = isAbsolute(rootPathValue) ? rootPathValue : resolve(bundle, rootPathValue);
      try {
        if (!statSync(rootPath).isDirectory()) errors.add("root.path", `${rootPath} is not a directory`);
      } catch (error) {
        errors.add("root.path", `${rootPath}: ${(error as NodeJS.ErrnoException).code ?? "cannot stat"}`);
      }
    }
  }
  const readonlyValue = field(isObject(rootObject) ? rootObject : null, "readonly");
  if (readonlyValue !== undefined && typeof readonlyValue !== "boolean") errors.add("root.readonly", "expected true or false");
  const mounts = translateMounts(errors, field(config, "mounts"), bundle);
  const annotations = field(config, "annotations");
  if (annotations !== undefined && (!isObject(annotations) || Object.values(annotations).some((value) => typeof value !== "string"))) errors.add("annotations", "expected an object of strings");
  const networkNotes: string[] = [];
  const linux = isObject(field(config, "linux")) ? (field(config, "linux") as JsonObject) : null;
  const netns = networkNamespace(errors, field(linux, "namespaces"), networkNotes);
  const host = readHostResources(linux, driver, parsed.spec.request.memoryMax);
  errors.list.push(...host.errors);
  if (errors.list.length > 0 || rootPath === null || spec.argv === null || netns === undefined) return { ok: false, error: `config.json: ${errors.list.slice(0, 4).join("; ")}${errors.list.length > 4 ? `; and ${errors.list.length - 4} more` : ""}` };
  const { request } = spec;
  const notes = [...mounts.notes, ...spec.ignored.map((path) => `${path} is not applied`), ...networkNotes, ...host.notes];
  const devices = field(linux, "devices");
  if (Array.isArray(devices) && devices.length > 0) notes.push(`linux.devices: ${devices.length} host device(s) are not passed into the VM (it has its own)`);
  const words = [
    ...(request.hostname ? [`burrow.hostname=${request.hostname}`] : []),
    ...(request.noNewPrivs ? ["burrow.no-new-privs=1"] : []),
    ...[capsWord(request.capsKeep)].filter((word): word is string => word !== null),
    ...rlimitWords(request.rlimits),
    ...(request.oomScoreAdj !== null ? [`burrow.oom-score-adj=${request.oomScoreAdj}`] : []),
    ...guestCgroupWords(request.memoryMax, request.pidsMax),
  ];
  const readonlyRoot = readonlyValue === true;
  return {
    ok: true,
    plan: {
      process: {
        args: spec.argv,
        env: (spec.env ?? []).map((entry): [string, string] => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]),
        cwd: request.cwd ?? "/",
        user: request.user ?? "0:0",
        terminal: terminal === true,
        rlimits: request.rlimits,
      },
      root: { tag: ROOT_TAG, path: rootPath, readOnly: false },
      shares: mounts.shares,
      files: mounts.files,
      guestPlan: { version: 1, readonlyRoot, mounts: mounts.mounts },
      kernelWords: words,
      netns,
      memoryBytes: typeof request.memoryMax === "number" ? request.memoryMax : null,
      notes,
    },
    resources: host.resources,
  };
}
