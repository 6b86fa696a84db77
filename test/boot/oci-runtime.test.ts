// The OCI runtime (dist/burrow-oci) run directly, as an engine would, on a bundle of the test's
// own: a config.json with a bad field is refused by create in one line naming the field, and
// nothing of the container is left; `delete --force` while create is still under way (as it
// begins, while the VM boots) makes create fail saying so, with nothing left; `state` of an unknown container says "does not exist" (what Podman and
// containerd read as gone). BURROW_OCI_TEST_RUNTIME=runc runs the same cases against runc, which
// words its errors its own way (each case says how both name the field).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTestRootfs } from "../helpers/oci-image";
import { explain, processesNaming, runCommand, testRuntime } from "../helpers/oci-engines";

const TIMEOUT_MS = 180_000;
const runtime = testRuntime();
const burrow = runtime.kind === "burrow";
let work: string;
/** The runtime's --root for this file: short, sockets live under it. */
let root: string;
let rootfs: string;
const ids: string[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "burrow-oci-rt-"));
  root = join(work, "r");
  rootfs = join(work, "rootfs");
  await writeTestRootfs(rootfs);
}, TIMEOUT_MS);

afterAll(async () => {
  for (const id of ids) await runCommand([runtime.path, "--root", root, "delete", "--force", id], { timeoutMs: 30_000 }).catch(() => undefined);
  if (work) rmSync(work, { recursive: true, force: true });
});

function newId(): string {
  const id = `burrow-rt-${randomBytes(6).toString("hex")}`;
  ids.push(id);
  return id;
}

type Config = Record<string, unknown> & { process: Record<string, unknown>; root: Record<string, unknown>; mounts: unknown[] };

/** A config.json runc and burrow-oci both run: sh in the test image, proc and /dev mounted. */
function goodConfig(): Config {
  return {
    ociVersion: "1.0.2",
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ["sleep", "1000"], env: ["PATH=/bin"], cwd: "/", noNewPrivileges: true },
    root: { path: rootfs, readonly: false },
    hostname: "bundle",
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    ],
    linux: { namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "network" }] },
  };
}

let bundles = 0;

/** A bundle directory holding `config` (an object, or raw text) as config.json. */
function bundleWith(config: Config | string): string {
  const bundle = join(work, `bundle-${++bundles}`);
  mkdirSync(bundle);
  writeFileSync(join(bundle, "config.json"), typeof config === "string" ? config : JSON.stringify(config));
  return bundle;
}

/**
 * `RUNTIME --root R create --bundle B --pid-file P ID`, its output in files: a created container's
 * process (the holder, runc's init) keeps the runtime's stdout open, so a pipe would never end.
 */
function startCreate(bundle: string, id: string): { pidFile: string; done: Promise<{ code: number; stdout: string; stderr: string }> } {
  const out = join(work, `${id}.out`);
  const err = join(work, `${id}.err`);
  const pidFile = join(work, `${id}.pid`);
  const outFd = openSync(out, "w");
  const errFd = openSync(err, "w");
  let child: ReturnType<typeof Bun.spawn>;
  try {
    child = Bun.spawn([runtime.path, "--root", root, "create", "--bundle", bundle, "--pid-file", pidFile, id], { stdin: "ignore", stdout: outFd, stderr: errFd });
  } finally {
    closeSync(outFd);
    closeSync(errFd);
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS - 10_000);
  const done = child.exited.then((code) => {
    clearTimeout(timer);
    return { code, stdout: readFileSync(out, "utf8"), stderr: readFileSync(err, "utf8") };
  });
  return { pidFile, done };
}

function leftovers(id: string): string[] {
  return [...processesNaming([id]).map((line) => `process ${line}`), ...(existsSync(join(root, id)) ? [`state directory ${join(root, id)}`] : [])];
}

interface BadField {
  what: string;
  config: () => Config | string;
  /** How burrow-oci names it: the field's JSON path. */
  burrow: RegExp;
  /** How runc 1.1 says it. */
  runc: RegExp;
}

const missing = `/nonexistent-${randomBytes(6).toString("hex")}`;

const BAD_FIELDS: BadField[] = [
  { what: "process.args a string", config: () => ({ ...goodConfig(), process: { ...goodConfig().process, args: "sh" } }), burrow: /process\.args/, runc: /process\.args/ },
  { what: "process.terminal not a boolean", config: () => ({ ...goodConfig(), process: { ...goodConfig().process, terminal: "yes" } }), burrow: /process\.terminal/, runc: /process\.terminal/ },
  { what: "no process", config: () => Object.fromEntries(Object.entries(goodConfig()).filter(([key]) => key !== "process")) as Config, burrow: /\bprocess\b/, runc: /process property must not be empty/ },
  { what: "root.path missing on the host", config: () => ({ ...goodConfig(), root: { path: missing } }), burrow: new RegExp(`root\\.path.*${missing}`), runc: new RegExp(`rootfs.*${missing}`) },
  {
    what: "a bind mount's source missing on the host",
    config: () => ({ ...goodConfig(), mounts: [...goodConfig().mounts, { destination: "/data", type: "bind", source: `${missing}-src`, options: ["rbind"] }] }),
    burrow: new RegExp(`mounts\\[2\\]\\.source.*${missing}-src`),
    runc: new RegExp(`${missing}-src`),
  },
  { what: "config.json not JSON", config: () => "{", burrow: /config\.json/, runc: /unexpected EOF/ },
];

describe("create refuses a bad config.json in one line naming the field, leaving nothing", () => {
  for (const bad of BAD_FIELDS) {
    test(bad.what, async () => {
      const id = newId();
      const { pidFile, done } = startCreate(bundleWith(bad.config()), id);
      const result = await done;
      expect(result.code, explain(result)).not.toBe(0);
      expect(result.stderr).toMatch(burrow ? bad.burrow : bad.runc);
      if (burrow) expect(result.stderr.trim().split("\n"), result.stderr).toHaveLength(1);
      expect(existsSync(pidFile)).toBe(false);
      expect(leftovers(id)).toEqual([]);
    }, TIMEOUT_MS);
  }
});

/** `RUNTIME state ID`'s status and pid, or null while it has none to give. */
async function stateOf(id: string): Promise<{ status: string; pid: number } | null> {
  const result = await runCommand([runtime.path, "--root", root, "state", id], { timeoutMs: 30_000 });
  if (result.code !== 0) return null;
  const state = JSON.parse(result.stdout) as { status: string; pid: number };
  return { status: state.status, pid: state.pid };
}

// Two moments: as soon as the container's state directory exists (before its holder runs), and
// once `state` names the holder while the status is still "creating" (the VM booting).
for (const moment of ["as create begins", "while the VM boots"] as const) {
  test(`delete --force ${moment}: create fails saying so, nothing is left`, async () => {
    const id = newId();
    const { pidFile, done } = startCreate(bundleWith(goodConfig()), id);
    let finished = false;
    void done.then(() => (finished = true));
    const deadline = Date.now() + 60_000;
    let caught = false;
    while (!finished && Date.now() < deadline) {
      if (moment === "as create begins" ? existsSync(join(root, id)) : ((await stateOf(id))?.pid ?? 0) > 0) {
        caught = !finished;
        break;
      }
      await Bun.sleep(5);
    }
    const deleted = await runCommand([runtime.path, "--root", root, "delete", "--force", id], { timeoutMs: 60_000 });
    const created = await done;
    if (burrow) {
      // A VM's create takes seconds: the delete came while it ran.
      expect(caught).toBe(true);
      expect(deleted.code, explain(deleted)).toBe(0);
      expect(created.code, explain(created)).not.toBe(0);
      expect(created.stderr).toContain("deleted while it was being created");
      expect(existsSync(pidFile)).toBe(false);
    } else {
      // runc's create is over in milliseconds; whichever won, a second delete ends it.
      await runCommand([runtime.path, "--root", root, "delete", "--force", id], { timeoutMs: 60_000 });
    }
    const deadlineGone = Date.now() + 15_000;
    while (leftovers(id).length > 0 && Date.now() < deadlineGone) await Bun.sleep(100);
    expect(leftovers(id)).toEqual([]);
  }, TIMEOUT_MS);
}

test("state of an unknown container: 'does not exist', non-zero", async () => {
  const result = await runCommand([runtime.path, "--root", root, "state", `burrow-rt-unknown-${randomBytes(4).toString("hex")}`]);
  expect(result.code, explain(result)).not.toBe(0);
  expect(result.stderr).toContain("does not exist");
}, TIMEOUT_MS);
