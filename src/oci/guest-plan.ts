// The guest mount plan: what the host translates config.json's mounts into (mounts.json in the
// bundle share) and the guest applies before switch_root. One home for both sides: the host
// writes it with serializeGuestPlan, the guest reads it with parseGuestPlan, and the guest is the
// side that must not trust it blindly (a hostile or buggy file names its bad field and stops).

export const GUEST_PLAN_FILE = "mounts.json";

export interface GuestPlan {
  version: 1;
  /** root.readonly: the root share is mounted rw while mount points are made, then remounted read-only. */
  readonlyRoot: boolean;
  mounts: GuestMount[];
}

export type GuestMount =
  /** A host directory bind-mounted (a volume): its own share, mounted at destination. */
  | { kind: "share"; tag: string; destination: string; options: string[] }
  /** A host file bind-mounted: copied into the bundle share at create; `file` is its path inside that share. */
  | { kind: "file"; file: string; destination: string; options: string[] }
  /** A filesystem made in the guest: proc, sysfs, tmpfs, devpts, mqueue, cgroup, cgroup2 … */
  | { kind: "fs"; type: string; source: string; destination: string; options: string[] };

/**
 * A 9p mount tag: QEMU refuses more than 31 bytes (MAX_TAG_LEN 32 with the NUL in 9pfs), and the
 * set needs no escaping on QEMU's command line or in the guest's mount source.
 */
export const SHARE_TAG = /^[A-Za-z0-9._-]{1,31}$/;

/** PATH_MAX: a longer destination cannot be walked by the guest kernel anyway. */
const MAX_PATH_BYTES = 4095;
/** A filesystem type name as /proc/filesystems spells them (ext4, 9p, cgroup2, fuse.sshfs). */
const FS_TYPE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export type GuestPlanResult = { ok: true; plan: GuestPlan } | { ok: false; error: string };

type Fields = Record<string, unknown>;

class PlanError extends Error {}

function fail(path: string, problem: string): never {
  throw new PlanError(`${path}: ${problem}`);
}

function object(value: unknown, path: string, keys: readonly string[]): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(path, "expected an object");
  // A field the guest would not read is a host bug or a newer format: say which, never ignore it.
  const extra = Object.keys(value).find((key) => !keys.includes(key));
  if (extra !== undefined) fail(`${path}.${extra}`, `unknown field (expected ${keys.join(", ")})`);
  return value as Fields;
}

function string(fields: Fields, key: string, path: string): string {
  const value = fields[key];
  if (typeof value !== "string") fail(`${path}.${key}`, value === undefined ? "missing (expected a string)" : "expected a string");
  if (value.includes("\0")) fail(`${path}.${key}`, "contains a NUL byte");
  return value;
}

function components(path: string): string[] {
  return path.split("/").filter((part) => part !== "" && part !== ".");
}

/** An absolute path with no ".." component and not "/" itself (a mount there would hide the root). */
function destination(fields: Fields, path: string): string {
  const value = string(fields, "destination", path);
  if (!value.startsWith("/")) fail(`${path}.destination`, `${JSON.stringify(value)} is not an absolute path`);
  if (value.split("/").includes("..")) fail(`${path}.destination`, `${JSON.stringify(value)} has a ".." component`);
  if (Buffer.byteLength(value) > MAX_PATH_BYTES) fail(`${path}.destination`, `longer than ${MAX_PATH_BYTES} bytes`);
  if (components(value).length === 0) fail(`${path}.destination`, "is the root itself");
  return value;
}

/** A path inside the bundle share: relative, no ".." component, naming something. */
function bundleFile(fields: Fields, path: string): string {
  const value = string(fields, "file", path);
  if (value.startsWith("/")) fail(`${path}.file`, `${JSON.stringify(value)} must be relative to the bundle share`);
  if (value.split("/").includes("..")) fail(`${path}.file`, `${JSON.stringify(value)} has a ".." component`);
  if (components(value).length === 0) fail(`${path}.file`, "names no file");
  if (Buffer.byteLength(value) > MAX_PATH_BYTES) fail(`${path}.file`, `longer than ${MAX_PATH_BYTES} bytes`);
  return value;
}

function options(fields: Fields, path: string): string[] {
  const value = fields.options;
  if (!Array.isArray(value)) fail(`${path}.options`, value === undefined ? "missing (expected an array of strings)" : "expected an array of strings");
  value.forEach((option, index) => {
    if (typeof option !== "string") fail(`${path}.options[${index}]`, "expected a string");
    if (option.includes("\0")) fail(`${path}.options[${index}]`, "contains a NUL byte");
  });
  return [...(value as string[])];
}

function mount(value: unknown, path: string): GuestMount {
  const kind = (typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Fields).kind : undefined);
  switch (kind) {
    case "share": {
      const fields = object(value, path, ["kind", "tag", "destination", "options"]);
      const tag = string(fields, "tag", path);
      if (!SHARE_TAG.test(tag)) fail(`${path}.tag`, `${JSON.stringify(tag)} is not a share tag (1 to 31 of A-Z a-z 0-9 . _ -)`);
      return { kind, tag, destination: destination(fields, path), options: options(fields, path) };
    }
    case "file": {
      const fields = object(value, path, ["kind", "file", "destination", "options"]);
      return { kind, file: bundleFile(fields, path), destination: destination(fields, path), options: options(fields, path) };
    }
    case "fs": {
      const fields = object(value, path, ["kind", "type", "source", "destination", "options"]);
      const type = string(fields, "type", path);
      if (!FS_TYPE.test(type)) fail(`${path}.type`, `${JSON.stringify(type)} is not a filesystem type name`);
      return { kind, type, source: string(fields, "source", path), destination: destination(fields, path), options: options(fields, path) };
    }
    default:
      object(value, path, ["kind", "tag", "file", "type", "source", "destination", "options"]);
      return fail(`${path}.kind`, `${JSON.stringify(kind ?? null)} is not a mount kind (share, file or fs)`);
  }
}

function plan(value: unknown): GuestPlan {
  const fields = object(value, "$", ["version", "readonlyRoot", "mounts"]);
  if (fields.version !== 1) fail("$.version", `${JSON.stringify(fields.version ?? null)} is not a plan version this burrow reads (1)`);
  if (typeof fields.readonlyRoot !== "boolean") fail("$.readonlyRoot", "expected true or false");
  if (!Array.isArray(fields.mounts)) fail("$.mounts", "expected an array");
  return { version: 1, readonlyRoot: fields.readonlyRoot, mounts: fields.mounts.map((entry, index) => mount(entry, `$.mounts[${index}]`)) };
}

/** Why one mount would fail the guest's reading of it, or null: the host names config.json's own path with it. */
export function guestMountProblem(entry: GuestMount): string | null {
  try {
    mount(entry, "");
    return null;
  } catch (error) {
    if (error instanceof PlanError) return error.message.replace(/^\./, "");
    throw error;
  }
}

/** mounts.json's text → the plan, or one line naming the first bad field by its JSON path ($.mounts[2].tag: …). */
export function parseGuestPlan(text: string): GuestPlanResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `${GUEST_PLAN_FILE} is not JSON: ${(error as Error).message}` };
  }
  try {
    return { ok: true, plan: plan(value) };
  } catch (error) {
    if (error instanceof PlanError) return { ok: false, error: error.message };
    throw error;
  }
}

/**
 * The plan as mounts.json's text, its fields in a fixed order. Checked the way the guest will
 * read it, so a bad plan fails on the host, at create, naming the field.
 */
export function serializeGuestPlan(value: GuestPlan): string {
  const canonical: GuestPlan = {
    version: value.version,
    readonlyRoot: value.readonlyRoot,
    mounts: value.mounts.map((entry): GuestMount => {
      switch (entry.kind) {
        case "share":
          return { kind: entry.kind, tag: entry.tag, destination: entry.destination, options: entry.options };
        case "file":
          return { kind: entry.kind, file: entry.file, destination: entry.destination, options: entry.options };
        default:
          return { kind: entry.kind, type: entry.type, source: entry.source, destination: entry.destination, options: entry.options };
      }
    }),
  };
  const text = `${JSON.stringify(canonical, null, 2)}\n`;
  const checked = parseGuestPlan(text);
  if (!checked.ok) throw new Error(`guest mount plan: ${checked.error}`);
  return text;
}
