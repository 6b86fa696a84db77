// Containers started from a template (src/oci/template.ts, image/supervisor/container.c), with
// dist/burrow-oci run directly as an engine would: two creates at once on a fresh --root build one
// template and both restore it; each container's process sees its own hostname, entropy and the
// host's clock, and its own mounts (a tmpfs, a copied file); a template whose kernel changed is
// rebuilt (a new key), the old one removed, not reused; BURROW_OCI_TEMPLATE=0 boots cold, and
// --debug says which way each create went.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTestRootfs } from "../helpers/oci-image";
import { BURROW_OCI, explain, runCommand } from "../helpers/oci-engines";

const TIMEOUT_MS = 240_000;
const KERNEL = join(import.meta.dir, "../../dist/oci/vmlinuz");
let work: string;
let root: string;
let rootfs: string;
/** A copy of the kernel the test may "change" (its identity: size, mtime, head and tail). */
let kernel: string;
const ids: string[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "burrow-oci-tpl-"));
  root = join(work, "r");
  rootfs = join(work, "rootfs");
  await writeTestRootfs(rootfs);
  kernel = join(work, "vmlinuz");
  copyFileSync(KERNEL, kernel);
}, TIMEOUT_MS);

afterAll(async () => {
  for (const id of ids) await runCommand([BURROW_OCI, "--root", root, "delete", "--force", id], { timeoutMs: 30_000 }).catch(() => undefined);
  if (work) rmSync(work, { recursive: true, force: true });
});

const env = (extra: Record<string, string> = {}) => ({ ...process.env, BURROW_OCI_KERNEL: kernel, ...extra }) as Record<string, string>;

/** A bundle whose process prints its hostname, 16 random bytes, the clock and two of its mounts. */
function bundle(hostname: string): string {
  const dir = join(work, `bundle-${hostname}`);
  mkdirSync(dir);
  writeFileSync(join(dir, "motd"), `hello from ${hostname}\n`);
  const script = "hostname; head -c 16 /dev/urandom | busybox od -An -tx1 | tr -d ' \\n'; echo; busybox date +%s; cat /etc/motd; grep -c ' /scratch tmpfs ' /proc/mounts";
  writeFileSync(join(dir, "config.json"), JSON.stringify({
    ociVersion: "1.0.2",
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ["sh", "-c", script], env: ["PATH=/bin"], cwd: "/" },
    root: { path: rootfs, readonly: false },
    hostname,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/scratch", type: "tmpfs", source: "tmpfs", options: ["nosuid", "size=1m"] },
      { destination: "/etc/motd", type: "bind", source: join(dir, "motd"), options: ["rbind", "ro"] },
    ],
    linux: { namespaces: [{ type: "pid" }, { type: "uts" }, { type: "mount" }, { type: "network" }] },
  }));
  return dir;
}

interface Ran { create: { code: number; stderr: string }; output: string; holderLog: string }

/** create (--debug) → start → wait for it to stop → its output (the holder writes the workload's to create's stdout). */
async function runContainer(hostname: string, extraEnv: Record<string, string> = {}): Promise<Ran> {
  const id = `tpl-${hostname}-${randomBytes(4).toString("hex")}`;
  ids.push(id);
  const out = join(work, `${id}.out`);
  const err = join(work, `${id}.err`);
  const outFd = openSync(out, "w");
  const errFd = openSync(err, "w");
  let child;
  try {
    child = Bun.spawn([BURROW_OCI, "--root", root, "--debug", "create", "--bundle", bundle(hostname), id], { env: env(extraEnv), stdin: "ignore", stdout: outFd, stderr: errFd });
  } finally {
    closeSync(outFd);
    closeSync(errFd);
  }
  const code = await child.exited;
  const create = { code, stderr: readFileSync(err, "utf8") };
  if (code !== 0) return { create, output: "", holderLog: "" };
  const started = await runCommand([BURROW_OCI, "--root", root, "start", id], { timeoutMs: 60_000 });
  expect(started.code, explain(started)).toBe(0);
  const deadline = performance.now() + 60_000;
  for (;;) {
    const state = await runCommand([BURROW_OCI, "--root", root, "state", id], { timeoutMs: 30_000 });
    if (JSON.parse(state.stdout).status === "stopped") break;
    if (performance.now() > deadline) throw new Error(`${id} did not stop in 60 s`);
    await Bun.sleep(100);
  }
  const holderLog = readFileSync(join(root, id, "holder.log"), "utf8");
  await runCommand([BURROW_OCI, "--root", root, "delete", id], { timeoutMs: 30_000 });
  return { create, output: readFileSync(out, "utf8"), holderLog };
}

const templates = () => readdirSync(join(root, "burrow-templates")).filter((name) => /^[0-9a-f]{32}$/.test(name));

test("two creates at once build one template and both start from it, each with its own hostname, entropy and clock", async () => {
  const [a, b] = await Promise.all([runContainer("alpha"), runContainer("beta")]);
  for (const ran of [a, b]) {
    expect(ran.create.code, ran.create.stderr).toBe(0);
    expect(ran.create.stderr).toContain("debug: start: from the template");
  }
  // One built it; the other waited on the lock and restored the same one.
  expect([a, b].filter((ran) => ran.create.stderr.includes("building it"))).toHaveLength(1);
  expect(templates()).toHaveLength(1);
  const [outA, outB] = [a.output, b.output].map((text) => text.trim().split("\n"));
  expect(outA![0]).toBe("alpha");
  expect(outB![0]).toBe("beta");
  expect(outA![1]).toMatch(/^[0-9a-f]{32}$/);
  expect(outA![1]).not.toBe(outB![1]);
  for (const out of [outA!, outB!]) {
    expect(Math.abs(Number(out[2]) - Date.now() / 1000), out.join("\n")).toBeLessThan(60);
    expect(out[4], out.join("\n")).toBe("1");
  }
  expect(outA![3]).toBe("hello from alpha");
  expect(outB![3]).toBe("hello from beta");
}, TIMEOUT_MS);

test("a template whose kernel changed is rebuilt, and the old one removed", async () => {
  const before = templates();
  expect(before).toHaveLength(1);
  // Reused while nothing changed.
  const same = await runContainer("gamma");
  expect(same.create.stderr).toContain("debug: start: from the template");
  expect(same.create.stderr).not.toContain("building it");
  // The kernel's identity changes (its mtime): a new key, built anew.
  const later = new Date(Date.now() + 5000);
  utimesSync(kernel, later, later);
  const changed = await runContainer("delta");
  expect(changed.create.code, changed.create.stderr).toBe(0);
  expect(changed.create.stderr).toContain("building it");
  expect(changed.create.stderr).toContain("debug: start: from the template");
  expect(changed.output.trim().split("\n")[0]).toBe("delta");
  const after = templates();
  expect(after).toHaveLength(1);
  expect(after[0]).not.toBe(before[0]);
  expect(existsSync(join(root, "burrow-templates", before[0]!))).toBe(false);
}, TIMEOUT_MS);

test("a template QEMU cannot load: the create still starts its container, booted cold; the template is removed and the next create builds it again", async () => {
  const [key] = templates();
  // A saved run whose RAM size is not the saved state's: QEMU refuses the state (a RAM block's length), as another QEMU may.
  const saved = join(root, "burrow-templates", key!, "template.json");
  writeFileSync(saved, JSON.stringify({ ...JSON.parse(readFileSync(saved, "utf8")), mem: "128M" }));
  const fallback = await runContainer("zeta");
  expect(fallback.create.code, fallback.create.stderr).toBe(0);
  expect(fallback.create.stderr).toContain("debug: start: from the template");
  expect(fallback.holderLog).toContain("template: the restore failed (QEMU did not load the template");
  expect(fallback.holderLog).toContain("booting the VM cold");
  expect(fallback.output.trim().split("\n")[0]).toBe("zeta");
  expect(existsSync(join(root, "burrow-templates", key!))).toBe(false);
  const rebuilt = await runContainer("eta");
  expect(rebuilt.create.stderr).toContain("not built; building it");
  expect(rebuilt.create.stderr).toContain("debug: start: from the template");
  expect(rebuilt.output.trim().split("\n")[0]).toBe("eta");
  expect(templates()).toEqual([key!]);
}, TIMEOUT_MS);

test("BURROW_OCI_TEMPLATE=0 boots cold, and --debug says so", async () => {
  const cold = await runContainer("epsilon", { BURROW_OCI_TEMPLATE: "0" });
  expect(cold.create.code, cold.create.stderr).toBe(0);
  expect(cold.create.stderr).toContain("debug: start: cold boot (no template: BURROW_OCI_TEMPLATE=0)");
  const out = cold.output.trim().split("\n");
  expect(out[0]).toBe("epsilon");
  expect(out[3]).toBe("hello from epsilon");
}, TIMEOUT_MS);
