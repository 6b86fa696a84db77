// manifest.json: what a snapshot booted and saved, read back field by field. A restore hands these
// values to QEMU, so an edited or damaged manifest is refused with the field it got wrong, before
// anything starts.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ARCHES, type Arch } from "../arch";
import { describeError } from "../errors";
import { RUN_ID_PATTERN } from "../exit-marker";
import { MACHINES_BY_ARCH, memBytes, parseMem } from "./options";
import type { Accel, Machine, RunOptions } from "./qemu";
import type { FileIdentity, SealedFile } from "./snapshot-files";

export const MANIFEST = "manifest.json";
/** The device state: QEMU's migration stream (holding the RAM too in the copy form). */
export const STATE = "state";
/** The guest's RAM, mapped copy-on-write by every restore (the mapped form). */
export const RAM = "ram";
/**
 * 1: the RAM in a file named memory, copied by every restore; 2: burrow (Bun) waited at the
 * snapshot point and read a JSON resume message; 3: the guest's supervisor read a resume line on
 * a port of its own, before the control channel's frames. All refused: save again.
 */
export const MANIFEST_VERSION = 4;
/** What an older manifest's snapshots did differently, for the line that refuses them. */
const OLDER_VERSIONS: Record<number, string> = {
  1: "whose restores copied the whole RAM",
  2: "whose guest waited in burrow itself for a resume message of another form",
  3: "whose guest read its resume as a text line, before the control channel",
};

/**
 * mapped: the RAM is a file every restore maps MAP_PRIVATE (x-ignore-shared; nothing copied);
 * copy: the RAM travels inside the state stream and every restore reads it all back.
 */
export type SnapshotForm = "mapped" | "copy";

export interface SavedOptions extends Pick<RunOptions, "kernel" | "initrd" | "disks" | "ports" | "mem" | "smp" | "machine" | "accel" | "append"> {
  readOnlyDisks: string[];
  runId: string;
  /** The restore needs the same devices. */
  extraArgs: string[];
  arch: Arch;
  /** A virtio-net NIC was saved: every restore has one too, on a user network of its own (its own forwards). */
  net: boolean;
}

export interface SnapshotManifest {
  burrowSnapshot: typeof MANIFEST_VERSION;
  form: SnapshotForm;
  /** Taken when the running workload asked (burrow.snapshot=warm): restores resume the workload, not the agent's start. */
  warm: boolean;
  qemu: string;
  savedAt: string;
  /** What the save booted (paths absolute). */
  options: SavedOptions;
  files: { kernel: FileIdentity; initrd: FileIdentity | null; disks: FileIdentity[] };
  /** Full sha256 of kernel and initrd, for the record (restores compare identities). */
  sha256: { kernel: string; initrd: string | null };
  saved: { state: SealedFile; ram: SealedFile | null };
  /** Of the RAM file, what the guest had written (the rest is holes). */
  ramAllocatedBytes: number;
  readyAfterMs: number;
  /** From pausing the VM to its state being written. */
  saveMs: number;
  /** Hashing the saved files, after QEMU has gone. */
  sealMs: number;
}

type Json = Record<string, unknown>;

class ManifestError extends Error {}

/** Field-by-field reading; every miss names the field and what it should have been. */
class Fields {
  constructor(private readonly value: Json, private readonly at: string) {}

  private fail(key: string, expected: string): never {
    throw new ManifestError(`${this.at}${key}: expected ${expected}`);
  }

  private get(key: string): unknown {
    return Object.hasOwn(this.value, key) ? this.value[key] : undefined;
  }

  string(key: string, pattern?: RegExp): string {
    const value = this.get(key);
    if (typeof value !== "string" || (pattern && !pattern.test(value))) this.fail(key, pattern ? `a string matching ${pattern}` : "a string");
    return value;
  }

  boolean(key: string): boolean {
    const value = this.get(key);
    if (typeof value !== "boolean") this.fail(key, "true or false");
    return value;
  }

  nullableString(key: string): string | null {
    return this.get(key) === null ? null : this.string(key);
  }

  number(key: string): number {
    const value = this.get(key);
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) this.fail(key, "a number of at least 0");
    return value;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const value = this.get(key);
    if (!allowed.includes(value as T)) this.fail(key, `one of ${allowed.join(", ")}`);
    return value as T;
  }

  strings(key: string): string[] {
    const value = this.get(key);
    if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) this.fail(key, "a list of strings");
    return value as string[];
  }

  object(key: string): Fields {
    const value = this.get(key);
    if (value === null || typeof value !== "object" || Array.isArray(value)) this.fail(key, "an object");
    return new Fields(value as Json, `${this.at}${key}.`);
  }

  nullableObject(key: string): Fields | null {
    return this.get(key) === null ? null : this.object(key);
  }

  objects(key: string): Fields[] {
    const value = this.get(key);
    if (!Array.isArray(value) || !value.every((item) => item !== null && typeof item === "object" && !Array.isArray(item))) this.fail(key, "a list of objects");
    return (value as Json[]).map((item, index) => new Fields(item, `${this.at}${key}[${index}].`));
  }

  /** A value the rest of burrow checks (a memory size, a vCPU count): its own words on failure. */
  checked<T>(key: string, read: (fields: Fields) => T, check: (value: T) => void): T {
    const value = read(this);
    try {
      check(value);
    } catch (error) {
      this.fail(key, `a valid value (${describeError(error)})`);
    }
    return value;
  }
}

const SHA256 = /^[0-9a-f]{64}$/;

function identity(fields: Fields): FileIdentity {
  return { path: fields.string("path"), size: fields.number("size"), mtimeMs: fields.number("mtimeMs"), head: fields.string("head", SHA256), tail: fields.string("tail", SHA256) };
}

function sealed(fields: Fields, name: string): SealedFile {
  return { name: fields.string("name", new RegExp(`^${name}$`)), size: fields.number("size"), sha256: fields.string("sha256", SHA256), identity: fields.string("identity") };
}

function savedOptions(fields: Fields): SavedOptions {
  const arch = fields.oneOf("arch", ARCHES);
  const machines: readonly string[] = MACHINES_BY_ARCH[arch];
  const mem = fields.checked("mem", (f) => f.string("mem"), (value) => parseMem(value));
  return {
    arch,
    kernel: fields.string("kernel"),
    initrd: fields.nullableString("initrd"),
    disks: fields.strings("disks"),
    readOnlyDisks: fields.strings("readOnlyDisks"),
    ports: fields.objects("ports").map((port) => ({ name: port.string("name", /^[A-Za-z0-9._-]+$/), file: port.nullableString("file") })),
    mem,
    smp: fields.checked("smp", (f) => f.number("smp"), (value) => {
      if (!Number.isInteger(value) || value < 1 || value > 288) throw new Error("1 to 288 vCPUs");
    }),
    machine: fields.checked("machine", (f) => f.string("machine") as Machine, (value) => {
      if (!machines.includes(value)) throw new Error(`${arch}: ${machines.join(", ")}`);
    }),
    accel: fields.oneOf<Accel>("accel", ["tcg", "kvm"]),
    append: fields.string("append"),
    runId: fields.string("runId", RUN_ID_PATTERN),
    extraArgs: fields.strings("extraArgs"),
    net: fields.boolean("net"),
  };
}

/** The manifest's text as a checked manifest; throws one line naming the first bad field. */
export function parseManifest(text: string): SnapshotManifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ManifestError("not JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new ManifestError("not a JSON object");
  const top = new Fields(value as Json, "");
  const version = (value as Json).burrowSnapshot;
  if (version !== MANIFEST_VERSION) {
    throw new ManifestError(typeof version === "number" && version < MANIFEST_VERSION
      ? `saved by an older burrow (version ${version}, ${OLDER_VERSIONS[version] ?? "of another layout"}); this burrow restores version ${MANIFEST_VERSION}`
      : `not a burrow snapshot manifest of version ${MANIFEST_VERSION} (burrowSnapshot: ${JSON.stringify(version)})`);
  }
  const form = top.oneOf<SnapshotForm>("form", ["mapped", "copy"]);
  const options = savedOptions(top.object("options"));
  const files = top.object("files");
  const disks = files.objects("disks").map(identity);
  if (disks.length !== options.disks.length) throw new ManifestError(`files.disks: expected one identity per disk in options.disks (${options.disks.length})`);
  const savedFiles = top.object("saved");
  const ramFields = savedFiles.nullableObject("ram");
  if ((ramFields === null) !== (form === "copy")) throw new ManifestError(`saved.ram: expected ${form === "copy" ? "null for the copy form" : "the RAM file for the mapped form"}`);
  const ram = ramFields === null ? null : sealed(ramFields, RAM);
  if (ram && ram.size !== memBytes(options.mem)) throw new ManifestError(`saved.ram.size: expected the guest's memory, ${memBytes(options.mem)} bytes (options.mem ${options.mem})`);
  const hashes = top.object("sha256");
  const initrd = files.nullableObject("initrd");
  return {
    burrowSnapshot: MANIFEST_VERSION,
    form,
    warm: top.boolean("warm"),
    qemu: top.string("qemu"),
    savedAt: top.string("savedAt"),
    options,
    files: { kernel: identity(files.object("kernel")), initrd: initrd && identity(initrd), disks },
    sha256: { kernel: hashes.string("kernel", SHA256), initrd: nullableHash(hashes) },
    saved: { state: sealed(savedFiles.object("state"), STATE), ram },
    ramAllocatedBytes: top.number("ramAllocatedBytes"),
    readyAfterMs: top.number("readyAfterMs"),
    saveMs: top.number("saveMs"),
    sealMs: top.number("sealMs"),
  };
}

function nullableHash(hashes: Fields): string | null {
  const text = hashes.nullableString("initrd");
  if (text !== null && !SHA256.test(text)) throw new ManifestError("sha256.initrd: expected a sha256 in hex or null");
  return text;
}

/** DIR's manifest, checked; one line naming the directory, the field and "save again" otherwise. */
export function readManifest(dir: string): SnapshotManifest {
  const path = join(dir, MANIFEST);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(code === "ENOENT"
      ? `--snapshot-restore ${dir}: no ${MANIFEST}: not a snapshot, or its save did not finish (save again)`
      : `--snapshot-restore ${dir}: cannot read ${MANIFEST} (${code ?? describeError(error)})`);
  }
  try {
    return parseManifest(text);
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    throw new Error(`--snapshot-restore ${dir}: ${path}: ${error.message}; the snapshot is damaged or was edited (save again)`);
  }
}
