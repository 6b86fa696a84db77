// What bench/oci.ts's parts share: the numbers' formatting, the run's work directory and the
// clean-up of everything started in it on every path (QEMU runs, child processes, hooks such as a
// tap's removal), Podman on a throw-away store with the three runtimes, and a guest driven over
// burrow's control channel.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ControlClient } from "../src/control/client";
import type { ControlMux } from "../src/control/mux";
import { runVm, type RunOptions, type RunResult } from "../src/host/qemu";
import { buildTestImage, TEST_IMAGE } from "../test/helpers/oci-image";

export { TEST_IMAGE };
export const ROOT = resolve(import.meta.dir, "..");
export const BURROW_OCI = join(ROOT, "dist/burrow-oci");
export const OCI_KERNEL = join(ROOT, "dist/oci/vmlinuz");
export const OCI_BOOT_DISK = join(ROOT, "dist/oci/boot.ext4");
export const RUNC = Bun.which("runc");
export const PODMAN = Bun.which("podman");
/** runc on this host cannot set podman's default rlimits (EPERM on RLIMIT_NPROC): every runtime gets these. */
export const ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];
export const PODMAN_TIMEOUT_MS = 300_000;
export const GUEST_TIMEOUT_MS = 900_000;

export const log = (line: string) => console.error(`bench: ${line}`);
export const median = (xs: number[]) => {
  const sorted = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? NaN : sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
export const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
export const mibps = (bytes: number, ms: number) => bytes / 2 ** 20 / (ms / 1000);
/** The last lines of a process's stderr, for a one-line error. */
export const lastLines = (what: string) => what.trim().split("\n").slice(-3).join(" / ");
/** "median (min–max)" of the samples, or a dash when there are none. */
export const range = (xs: number[], digits = 0) => (xs.length ? `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})` : "—");
export const verdict = (ok: boolean) => (ok ? "met" : "**not met**");
/** `promise`, or `onTimeout()`'s after `ms`; the timer is cleared either way (a pending one would keep the process alive). */
export async function within<T>(promise: Promise<T>, ms: number, onTimeout: () => T | Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), ms)));
  try {
    const first = await Promise.race([promise, late]);
    return first === "late" ? await onTimeout() : (first as T);
  } finally {
    clearTimeout(timer);
  }
}

// ---- clean-up on every path ------------------------------------------------------------------------

export const work = mkdtempSync(join(tmpdir(), "burrow-bench-oci-"));
/** Every QEMU run this process started and has not seen end: aborted and awaited on any way out. */
const liveVms = new Map<AbortController, Promise<unknown>>();
/** Every child process (podman, virtiofsd) still running: killed by its pid on any way out. */
const liveChildren = new Set<ReturnType<typeof Bun.spawn>>();
/** What a part registered to undo (a tap, netavark's chains, lock files): run after the VMs and containers are gone, last registered first. */
const hooks: (() => void | Promise<void>)[] = [];

export function onCleanUp(hook: () => void | Promise<void>): void {
  hooks.push(hook);
}

export function track<T>(abort: AbortController, run: Promise<T>): Promise<T> {
  liveVms.set(abort, run);
  void run.finally(() => liveVms.delete(abort)).catch(() => {});
  return run;
}

export function spawnTracked(argv: string[]): ReturnType<typeof Bun.spawn<"ignore", "pipe", "pipe">> {
  const child = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  liveChildren.add(child);
  void child.exited.finally(() => liveChildren.delete(child));
  return child;
}

/** Mounts left under the work directory (a podman run killed mid-way keeps its /dev/shm tmpfs). */
function mountsUnder(dir: string): string[] {
  const lines = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
  return lines.map((line) => line.split(" ")[4] ?? "").filter((point) => point === dir || point.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
}

let cleaned = false;
export async function cleanUp(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  for (const abort of liveVms.keys()) abort.abort();
  for (const child of liveChildren) child.kill("SIGKILL");
  await within(Promise.allSettled([...liveVms.values(), ...[...liveChildren].map((child) => child.exited)]), 15_000, () => []);
  if (podmanStore) {
    // A container a killed run left (burrow-oci's holder and QEMU with it, a bridge container's netns and veth): removed through podman.
    Bun.spawnSync([PODMAN!, ...podmanStore, "rm", "--all", "--force", "--time", "0"], { stdout: "ignore", stderr: "ignore" });
  }
  for (const hook of [...hooks].reverse()) {
    try {
      await hook();
    } catch (error) {
      log(`clean-up: ${(error as Error).message}`);
    }
  }
  for (const point of mountsUnder(work)) Bun.spawnSync(["umount", "--lazy", point], { stdout: "ignore", stderr: "ignore" });
  rmSync(work, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void cleanUp().finally(() => process.exit(130));
  });
}

// ---- Podman on a throw-away store, with each runtime ------------------------------------------------

/**
 * burrow-oci as it starts a container by default (restoring a template VM saved by the first
 * create that fits; src/oci/template.ts), burrow-oci booting every container cold
 * (BURROW_OCI_TEMPLATE=0), and runc.
 */
export const RUNTIMES = ["burrow-oci", "burrow-oci-cold", "runc"] as const;
export type Runtime = (typeof RUNTIMES)[number];
export const RUNTIME_TITLES: Record<Runtime, string> = { "burrow-oci": "burrow-oci (template restore, its default)", "burrow-oci-cold": "burrow-oci, BURROW_OCI_TEMPLATE=0 (cold boot)", runc: "runc" };

/** burrow-oci's --root in the run's directory: its containers' state and its template cache. */
const burrowStateRoot = () => join(work, "runtimes", "burrow-oci-root");

/** Whether burrow-oci's default column had a template to restore, and if not what its --debug said. */
export interface TemplateCheck { saved: number; coldBecause: string | null }

/**
 * The templates burrow-oci saved in this run (<--root>/burrow-templates/KEY/manifest.json). None
 * means every create of its default column booted cold: one more create, not timed, with --debug
 * (which changes the guest's console, so never for a timed one) logs why (src/oci/template.ts).
 */
export async function checkTemplate(): Promise<TemplateCheck> {
  const base = join(burrowStateRoot(), "burrow-templates");
  const saved = existsSync(base) ? readdirSync(base, { withFileTypes: true }).filter((entry) => entry.isDirectory() && existsSync(join(base, entry.name, "manifest.json"))).length : 0;
  if (saved > 0) return { saved, coldBecause: null };
  const debugLog = join(work, "template-why.log");
  const wrapper = join(work, "runtimes", "burrow-oci-debug");
  writeFileSync(wrapper, `#!/bin/sh\nexec '${BURROW_OCI}' --root '${burrowStateRoot()}' --debug --log '${debugLog}' "$@"\n`, { mode: 0o755 });
  await podmanAsync([PODMAN!, ...podmanStore!, "--runtime", wrapper, "run", "--rm", "--network", "none", ...ULIMITS, TEST_IMAGE, "true"], "run --rm (burrow-oci --debug: why no template)");
  const starts = existsSync(debugLog) ? [...readFileSync(debugLog, "utf8").matchAll(/start: ([^"\n]*)/g)].map((match) => match[1]!) : [];
  return { saved, coldBecause: starts.at(-1) ?? "its --debug log names no start" };
}

/** The line a section adds when the default column had no template to restore. */
export const noTemplateNote = (check: TemplateCheck) =>
  `**burrow-oci saved no template in this run** (no manifest under \`burrow-templates/\` in its --root): its default column booted cold too, like the BURROW_OCI_TEMPLATE=0 one. A create with \`--debug\` after the runs (not timed) logged \`start: ${check.coldBecause}\`.`;

/** podman's global flags for the run's store: --root/--runroot/--tmpdir, vfs, and the network configuration directory (nothing in /etc/containers). */
let podmanStore: string[] | null = null;
let runtimePaths: Record<Runtime, string> | null = null;

/**
 * Each runtime through a one-line sh wrapper in the work directory (the same exec for all three).
 * Podman passes a runtime no --root, so burrow-oci's wrappers give it one here: its containers'
 * state and its templates stay in this run's directory, never in /run/burrow-oci.
 */
function writeRuntimeWrappers(dir: string): Record<Runtime, string> {
  mkdirSync(dir, { recursive: true });
  const stateRoot = burrowStateRoot();
  const scripts: Record<Runtime, string> = {
    "burrow-oci": `exec '${BURROW_OCI}' --root '${stateRoot}' "$@"`,
    "burrow-oci-cold": `BURROW_OCI_TEMPLATE=0 exec '${BURROW_OCI}' --root '${stateRoot}' "$@"`,
    runc: `exec '${RUNC}' "$@"`,
  };
  const paths = {} as Record<Runtime, string>;
  for (const runtime of RUNTIMES) {
    paths[runtime] = join(dir, runtime);
    writeFileSync(paths[runtime], `#!/bin/sh\n${scripts[runtime]}\n`, { mode: 0o755 });
  }
  return paths;
}

/** The store, the test image loaded into it, and the runtimes' wrappers: once per bench run, before any part that runs Podman. */
export async function setUpPodman(): Promise<void> {
  if (podmanStore) return;
  const store = join(work, "podman");
  podmanStore = ["--root", join(store, "root"), "--runroot", join(store, "runroot"), "--tmpdir", join(store, "tmp"), "--storage-driver", "vfs", "--network-config-dir", join(store, "networks")];
  const archive = await buildTestImage(join(work, "image.tar"));
  podmanOnce(["load", "--quiet", "--input", archive], "load");
  runtimePaths = writeRuntimeWrappers(join(work, "runtimes"));
}

/** `podman` with the store's flags and the runtime's wrapper. */
export function podmanWith(runtime: Runtime): string[] {
  return [PODMAN!, ...podmanStore!, "--runtime", runtimePaths![runtime]];
}

export function podmanOnce(argv: string[], what: string): string {
  const result = Bun.spawnSync([PODMAN!, ...podmanStore!, ...argv], { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`podman ${what}: exit ${result.exitCode}: ${lastLines(result.stderr.toString())}`);
  return result.stdout.toString();
}

/** A podman command that may take seconds (a create boots a VM): tracked, so a Ctrl-C kills it; its stdout, trimmed, or a thrown line. */
export async function podmanAsync(argv: string[], what: string): Promise<string> {
  const child = spawnTracked(argv);
  const stdout = new Response(child.stdout).text();
  const stderr = new Response(child.stderr).text();
  const timer = setTimeout(() => child.kill("SIGKILL"), PODMAN_TIMEOUT_MS);
  const code = await child.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`podman ${what}: exit ${code}${child.signalCode ? ` (${child.signalCode}; ${PODMAN_TIMEOUT_MS / 1000} s)` : ""}: ${lastLines(await stderr)}`);
  return (await stdout).trim();
}

/** Throws unless the store holds no container (each part removes its own). */
export function checkNoContainersLeft(after: string): void {
  const left = podmanOnce(["ps", "--all", "--quiet"], "ps").trim();
  if (left) throw new Error(`containers left after ${after}: ${left.split("\n").join(" ")}`);
}

// ---- a guest over burrow's control channel ----------------------------------------------------------

export interface Guest { client: ControlClient; ended: Promise<RunResult>; abort: AbortController; output: () => string }

/** Boots `options` with runVm (tracked: aborted on any way out) and connects to its supervisor. */
export async function startGuest(options: RunOptions, what: string): Promise<Guest> {
  const abort = new AbortController();
  let output = "";
  let control: Promise<ControlMux> | null = null;
  const ended = track(abort, runVm({ ...options, signal: abort.signal, onSpawn: (vm) => (control = vm.control) }, (chunk) => (output = (output + chunk).slice(-65536))));
  try {
    const gone = ended.then((result) => Promise.reject(new Error(`the ${what} guest ended before it answered: ${result.reason}\n${output.slice(-3000)}`)));
    gone.catch(() => {});
    while (control === null) await Promise.race([Bun.sleep(10), gone]);
    const mux = await Promise.race([control as Promise<ControlMux>, gone]);
    const client = await ControlClient.over(mux.local());
    return { client, ended, abort, output: () => output };
  } catch (error) {
    abort.abort();
    await ended.catch(() => {});
    throw error;
  }
}

export async function stopGuest(guest: Guest): Promise<void> {
  try {
    await within(guest.client.stop().catch(() => {}), 10_000, () => {});
    await within(guest.ended, 30_000, () => null);
  } finally {
    guest.abort.abort();
    await guest.ended.catch(() => {});
  }
}

/** A shell command in the guest; a non-zero exit or one past GUEST_TIMEOUT_MS throws with the console's tail. */
export async function guestSh(guest: Guest, script: string): Promise<{ stdout: string; stderr: string; hostMs: number }> {
  const started = performance.now();
  const result = await within(guest.client.exec(["/bin/sh", "-c", script]), GUEST_TIMEOUT_MS, () => {
    throw new Error(`guest: ${script}: no answer in ${GUEST_TIMEOUT_MS / 1000} s\n${guest.output().slice(-3000)}`);
  });
  const hostMs = performance.now() - started;
  const stdout = text(result.stdout);
  const stderr = text(result.stderr);
  if (result.exitCode !== 0) throw new Error(`guest: ${script}: exit ${result.exitCode}: ${lastLines(stderr)}\n${guest.output().slice(-3000)}`);
  return { stdout, stderr, hostMs };
}
