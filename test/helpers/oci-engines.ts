// Podman, containerd and Docker for the OCI boot tests, each started with storage, state and
// sockets of its own under temporary directories, so the host's engines and stores are never
// touched, and the test image (oci-image.ts) loaded. stop() ends what the engine started on every
// path: its containers (the engine's own removal first, then SIGKILL to anything still naming the
// engine's directory or one of its containers), its daemon, its mounts, its directory, and the
// host directories the engine tools make and never remove (a blob cache, runtime and shim roots).
//
// The runtime under test is dist/burrow-oci; BURROW_OCI_TEST_RUNTIME=runc (a name on PATH or a
// path) runs the same tests against another runtime, to check the tests themselves.
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { DEFAULT_ROOT as BURROW_OCI_ROOT } from "../../src/oci/command-line";
import { requireArtifacts, ROOT } from "./artifacts";
import { buildTestImage, TEST_IMAGE } from "./oci-image";

export { TEST_IMAGE };
export const RUNTIME_ENV = "BURROW_OCI_TEST_RUNTIME";
export const BURROW_OCI = join(ROOT, "dist/burrow-oci");

export type RuntimeKind = "burrow" | "runc";

export interface TestRuntime {
  path: string;
  /** burrow-oci, or runc (any file whose name holds "runc": a logging wrapper counts). */
  kind: RuntimeKind;
  /** The state root the runtime uses when the engine passes no --root (Podman passes none). */
  defaultRoot: string;
}

/** The runtime the tests drive: dist/burrow-oci unless BURROW_OCI_TEST_RUNTIME names another. */
export function testRuntime(): TestRuntime {
  const named = process.env[RUNTIME_ENV];
  if (!named) {
    requireArtifacts(BURROW_OCI);
    return { path: BURROW_OCI, kind: "burrow", defaultRoot: BURROW_OCI_ROOT };
  }
  const path = named.includes("/") ? resolve(named) : Bun.which(named);
  if (!path || !existsSync(path)) throw new Error(`${RUNTIME_ENV}=${named}: no such runtime`);
  const kind: RuntimeKind = basename(path).includes("runc") ? "runc" : "burrow";
  return { path, kind, defaultRoot: kind === "runc" ? "/run/runc" : BURROW_OCI_ROOT };
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  env?: Record<string, string>;
  /** Written to the command's stdin, then closed; without it stdin is /dev/null. */
  stdin?: string;
  /** The command is killed and the promise rejects after this long. */
  timeoutMs?: number;
}

const COMMAND_TIMEOUT_MS = 120_000;

export interface RunningCommand {
  pid: number;
  done: Promise<CommandResult>;
}

/** Starts `argv`; `done` resolves with its status and output, or rejects if it outlives the timeout (it is killed). */
export function startCommand(argv: string[], options: CommandOptions = {}): RunningCommand {
  const child = Bun.spawn(argv, {
    env: { ...process.env, ...options.env },
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const timeoutMs = options.timeoutMs ?? COMMAND_TIMEOUT_MS;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  const done = (async () => {
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    clearTimeout(timer);
    if (timedOut) throw new Error(`\`${argv.join(" ")}\` did not end in ${timeoutMs / 1000} s (killed); stdout: ${stdout.slice(-500)} stderr: ${stderr.slice(-500)}`);
    return { code, stdout, stderr };
  })();
  return { pid: child.pid, done };
}

export function runCommand(argv: string[], options: CommandOptions = {}): Promise<CommandResult> {
  return startCommand(argv, options).done;
}

/** One line for an assertion message: the status and both streams. */
export function explain(result: CommandResult): string {
  return `status ${result.code}\nstdout: ${result.stdout.slice(-2000)}\nstderr: ${result.stderr.slice(-2000)}`;
}

// ——— processes ———

function cmdlineOf(pid: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return null;
  }
}

function pids(): string[] {
  return readdirSync("/proc").filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid);
}

/** Live processes (not zombies) whose command line holds one of `needles`: "pid: command line". */
export function processesNaming(needles: string[]): string[] {
  if (needles.length === 0) return [];
  const found: string[] = [];
  for (const pid of pids()) {
    const cmdline = cmdlineOf(pid);
    // A zombie has an empty command line: it is gone, only not yet reaped.
    if (cmdline && needles.some((needle) => cmdline.includes(needle))) found.push(`${pid}: ${cmdline.slice(0, 300)}`);
  }
  return found;
}

/** SIGKILL every process whose command line names one of `needles`, until none is left (5 s at most). */
async function killNaming(needles: string[]): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const left = processesNaming(needles);
    if (left.length === 0) return;
    for (const line of left) {
      try {
        process.kill(Number(line.split(":")[0]), "SIGKILL");
      } catch {
        // Gone between the scan and the kill.
      }
    }
    await Bun.sleep(100);
  }
}

function parentOf(pid: string): number | null {
  try {
    // comm may hold spaces and parentheses: the fields after the last ")" are fixed.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
}

/** The QEMU processes under `pid` (any depth): a burrow-oci holder's VM. */
export function qemuUnder(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const each of pids()) {
    const parent = parentOf(each);
    if (parent !== null) children.set(parent, [...(children.get(parent) ?? []), Number(each)]);
  }
  const found: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length > 0) {
    const next = queue.shift()!;
    try {
      if (basename(readlinkSync(`/proc/${next}/exe`)).startsWith("qemu-system")) found.push(next);
    } catch {
      // Ended while we looked.
    }
    queue.push(...(children.get(next) ?? []));
  }
  return found;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (reaped later by its subreaper) is not alive.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

// ——— host directories and mounts ———

/**
 * Host directories the engine tools make on first use and never remove: noted before the engine
 * starts; at stop, those that did not exist then are removed — emptied first only for `caches`
 * (other directories may be in use by another engine on the host by then: only an empty one goes).
 */
class HostDirs {
  private readonly absent: string[];
  constructor(
    private readonly dirs: string[],
    private readonly caches: string[] = [],
  ) {
    this.absent = [...dirs, ...caches].filter((dir) => !existsSync(dir));
  }
  remove(): void {
    // Deepest first: a parent empties once its children are gone.
    for (const dir of [...this.absent].sort((a, b) => b.length - a.length)) {
      if (this.caches.includes(dir)) rmSync(dir, { recursive: true, force: true });
      else {
        try {
          rmdirSync(dir);
        } catch {
          // Not empty (in use by another engine) or already gone.
        }
      }
    }
  }
}

/** Unmounts everything mounted under `dir` (deepest first, lazily: a busy mount goes once free). */
function unmountUnder(dir: string): void {
  const prefix = `${dir}/`;
  const points = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4]?.replaceAll("\\040", " "))
    .filter((point): point is string => point !== undefined && (point === dir || point.startsWith(prefix)));
  for (const point of [...new Set(points)].sort((a, b) => b.length - a.length)) Bun.spawnSync(["umount", "-l", point], { stdout: "ignore", stderr: "ignore" });
}

/** Throws unless every tool is on PATH: the engines are `npx just deps`'s to install. */
function requireTools(...tools: string[]): void {
  const missing = tools.filter((tool) => Bun.which(tool) === null);
  if (missing.length > 0) throw new Error(`not installed: ${missing.join(", ")} (npx just deps installs them)`);
}

/** A daemon with stdout and stderr in `log`; if it cannot start, `dirs` are removed before the error goes on. */
function startDaemon(argv: string[], log: string, dirs: string[]): ReturnType<typeof Bun.spawn> {
  const fd = openSync(log, "w");
  try {
    return Bun.spawn(argv, { stdin: "ignore", stdout: fd, stderr: fd });
  } catch (error) {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    throw error;
  } finally {
    closeSync(fd);
  }
}

/** Short: unix socket paths under it must fit in 108 bytes. */
function engineDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `burrow-${name}-`));
}

// ——— the engines ———

export interface Engine {
  readonly name: "podman" | "containerd" | "docker";
  readonly dir: string;
  readonly runtime: TestRuntime;
  /** The --root the runtime gets for this engine's containers: `<runtimeRoot>/<id>` is a container's state. */
  readonly runtimeRoot: string;
  /** The engine's client (podman, ctr, docker) with `args`. */
  cli(args: string[], options?: CommandOptions): Promise<CommandResult>;
  startCli(args: string[], options?: CommandOptions): RunningCommand;
  /** The client's argv prefix and environment, for commands run another way (under `script`). */
  readonly argv: string[];
  readonly env: Record<string, string>;
  /** What is left of containers `ids`: processes naming them, state directories under runtimeRoot. Empty: nothing. */
  leftovers(ids: string[]): string[];
  /**
   * leftovers() once they are gone, or what is still there after `timeoutMs`: an engine's cleanup
   * (conmon, `podman container cleanup`, the shim) finishes after the command that asked for it.
   */
  settledLeftovers(ids: string[], timeoutMs?: number): Promise<string[]>;
  /** Ends everything it started and removes its directory; safe to call twice. */
  stop(): Promise<void>;
}

interface EngineParts {
  name: Engine["name"];
  dir: string;
  runtime: TestRuntime;
  runtimeRoot: string;
  argv: string[];
  env: Record<string, string>;
  /** Removes the engine's containers its own way; failures are ignored (the kills follow). */
  removeAll: () => Promise<string[]>;
  daemon: ReturnType<typeof Bun.spawn> | null;
  hostDirs: HostDirs;
  /** More directories of the engine's own, outside `dir`: ended and removed like it. */
  otherDirs?: string[];
}

function makeEngine(parts: EngineParts): Engine {
  const { name, dir, runtime, runtimeRoot, argv, env } = parts;
  const cli = (args: string[], options: CommandOptions = {}) => runCommand([...argv, ...args], { ...options, env: { ...env, ...options.env } });
  const startCli = (args: string[], options: CommandOptions = {}) => startCommand([...argv, ...args], { ...options, env: { ...env, ...options.env } });
  const leftovers = (ids: string[]) => {
    const left = processesNaming(ids).map((line) => `process ${line}`);
    for (const id of ids) if (existsSync(join(runtimeRoot, id))) left.push(`state directory ${join(runtimeRoot, id)}`);
    return left;
  };
  let stopped = false;
  return {
    name,
    dir,
    runtime,
    runtimeRoot,
    argv,
    env,
    cli,
    startCli,
    leftovers,
    async settledLeftovers(ids, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      let left = leftovers(ids);
      while (left.length > 0 && Date.now() < deadline) {
        await Bun.sleep(100);
        left = leftovers(ids);
      }
      return left;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      let ids: string[] = [];
      try {
        ids = await parts.removeAll();
      } catch {
        // The engine is broken: the kills below still end everything.
      }
      if (parts.daemon) {
        parts.daemon.kill("SIGTERM");
        const ended = await Promise.race([parts.daemon.exited.then(() => true), Bun.sleep(20_000).then(() => false)]);
        if (!ended) parts.daemon.kill("SIGKILL");
        await parts.daemon.exited;
      }
      // Shims, conmon, holders, QEMU: whatever still names this engine's directory or a container.
      const dirs = [dir, ...(parts.otherDirs ?? [])];
      await killNaming([...dirs, ...ids]);
      // A state directory the runtime kept (a holder killed above): the runtime's own delete.
      for (const id of ids) {
        if (existsSync(join(runtimeRoot, id))) await runCommand([runtime.path, "--root", runtimeRoot, "delete", "--force", id], { timeoutMs: 30_000 }).catch(() => undefined);
      }
      for (const each of dirs) {
        unmountUnder(each);
        rmSync(each, { recursive: true, force: true });
      }
      parts.hostDirs.remove();
    },
  };
}

async function waitUntil(what: string, ready: () => Promise<boolean>, daemon: ReturnType<typeof Bun.spawn>, log: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await ready()) return;
    if (daemon.exitCode !== null || daemon.signalCode !== null) break;
    await Bun.sleep(100);
  }
  const tail = existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-15).join("\n") : "";
  throw new Error(`${what} did not come up (${daemon.exitCode !== null ? `exited ${daemon.exitCode}` : "timed out"}):\n${tail}`);
}

async function mustSucceed(what: string, result: Promise<CommandResult>): Promise<CommandResult> {
  const done = await result;
  if (done.code !== 0) throw new Error(`${what} failed: ${explain(done)}`);
  return done;
}

/** The runtime's name in the engines' configuration (containers.conf, daemon.json). */
export const RUNTIME_NAME = "burrow";

/**
 * Rootful Podman with a store of its own: containers.conf and storage.conf in the engine's
 * directory (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF — conmon's cleanup process inherits them),
 * the networks a test creates kept there too (network_config_dir; the default network is netavark's),
 * the runtime configured as `[engine.runtimes] burrow` and made the default. Podman passes the
 * runtime no --root (and drops --runtime-flag in its cleanup process), so containers' state is
 * under the runtime's default root.
 */
export async function startPodman(runtime: TestRuntime): Promise<Engine> {
  requireTools("podman", "conmon");
  const hostDirs = new HostDirs([runtime.defaultRoot, "/var/lib/containers"], ["/var/lib/containers/cache"]);
  const dir = engineDir("podman");
  // runc applies rlimits on the host, where root lacks CAP_SYS_RESOURCE above the hard NOFILE limit;
  // burrow-oci applies them in the guest.
  const ulimits = runtime.kind === "runc" ? 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n' : "";
  writeFileSync(
    join(dir, "containers.conf"),
    `[containers]\n${ulimits}log_driver = "k8s-file"\n\n[network]\nnetwork_config_dir = "${dir}/networks"\n\n[engine]\nruntime = "${RUNTIME_NAME}"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n` +
      `tmp_dir = "${dir}/tmp"\nvolume_path = "${dir}/volumes"\n\n[engine.runtimes]\n${RUNTIME_NAME} = ["${runtime.path}"]\n`,
  );
  writeFileSync(join(dir, "storage.conf"), `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/root"\nrunroot = "${dir}/runroot"\n`);
  const env = { CONTAINERS_CONF: join(dir, "containers.conf"), CONTAINERS_STORAGE_CONF: join(dir, "storage.conf") };
  const argv = ["podman"];
  const removeAll = async () => {
    const listed = await runCommand([...argv, "ps", "-aq", "--no-trunc"], { env, timeoutMs: 30_000 });
    await runCommand([...argv, "rm", "-af", "-t", "0"], { env, timeoutMs: 60_000 });
    return listed.stdout.split("\n").filter(Boolean);
  };
  const engine = makeEngine({ name: "podman", dir, runtime, runtimeRoot: runtime.defaultRoot, argv, env, removeAll, daemon: null, hostDirs });
  try {
    const archive = await buildTestImage(join(dir, "image.tar"));
    await mustSucceed("podman load", engine.cli(["load", "-q", "-i", archive]));
  } catch (error) {
    await engine.stop();
    throw error;
  }
  return engine;
}

/** The containerd namespace the tests use. */
export const CONTAINERD_NAMESPACE = "burrow-test";

/**
 * containerd with its own config, root, state and socket (CRI off: no CNI, no image pulls; the opt
 * plugin's directory moved under ours), and `ctr --address` aimed at it. Containers get the runtime
 * with `ctr run --runc-binary RUNTIME --runc-root DIR`: `runArgs` holds both.
 */
export async function startContainerd(runtime: TestRuntime): Promise<Engine & { runArgs: string[] }> {
  requireTools("containerd", "ctr", "containerd-shim-runc-v2");
  // The runc shim puts its sockets in /run/containerd/s whatever the config says; ctr its fifos in /run/containerd/fifo.
  const hostDirs = new HostDirs(["/run/containerd/s", "/run/containerd/fifo", "/run/containerd"]);
  const dir = engineDir("containerd");
  const socket = join(dir, "containerd.sock");
  writeFileSync(
    join(dir, "config.toml"),
    `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n\n` +
      `[grpc]\n  address = "${socket}"\n[ttrpc]\n  address = "${socket}.ttrpc"\n[debug]\n  address = ""\n[metrics]\n  address = ""\n\n` +
      `[plugins."io.containerd.internal.v1.opt"]\n  path = "${dir}/opt"\n`,
  );
  const log = join(dir, "containerd.log");
  const daemon = startDaemon(["containerd", "--config", join(dir, "config.toml")], log, [dir]);
  const argv = ["ctr", "--address", socket, "--namespace", CONTAINERD_NAMESPACE];
  const runtimeRoot = join(dir, "runtime");
  const removeAll = async () => {
    const listed = await runCommand([...argv, "containers", "ls", "-q"], { timeoutMs: 30_000 });
    const ids = listed.stdout.split("\n").filter(Boolean);
    for (const id of ids) {
      await runCommand([...argv, "task", "kill", "-s", "SIGKILL", id], { timeoutMs: 30_000 }).catch(() => undefined);
      await runCommand([...argv, "task", "delete", "--force", id], { timeoutMs: 30_000 }).catch(() => undefined);
      await runCommand([...argv, "containers", "delete", id], { timeoutMs: 30_000 }).catch(() => undefined);
    }
    return ids;
  };
  const engine = makeEngine({ name: "containerd", dir, runtime, runtimeRoot: join(runtimeRoot, CONTAINERD_NAMESPACE), argv, env: {}, removeAll, daemon, hostDirs });
  try {
    await waitUntil("containerd", async () => (await runCommand([...argv, "version"], { timeoutMs: 10_000 })).code === 0, daemon, log, 30_000);
    const archive = await buildTestImage(join(dir, "image.tar"));
    await mustSucceed("ctr images import", engine.cli(["images", "import", archive]));
  } catch (error) {
    await engine.stop();
    throw error;
  }
  return { ...engine, runArgs: ["--runc-binary", runtime.path, "--runc-root", runtimeRoot] };
}

/**
 * dockerd with a daemon.json of its own (`--config-file`): data-root, exec-root, pidfile, a socket
 * under our directory, no bridge, no iptables (the host's network is left alone), the libtrust key
 * under our directory, and the runtime as `"runtimes": {"burrow": {"path": …}}`. Its containerd is
 * the one dockerd starts under exec-root. The client: `docker` with DOCKER_HOST and DOCKER_CONFIG.
 */
export async function startDocker(runtime: TestRuntime): Promise<Engine> {
  requireTools("dockerd", "docker");
  // dockerd's own containerd also makes the opt plugin's directories (its config is dockerd's to write).
  const hostDirs = new HostDirs(["/run/containerd/s", "/run/containerd", "/run/docker/plugins", "/run/docker", "/opt/containerd/bin", "/opt/containerd/lib", "/opt/containerd"]);
  const dir = engineDir("docker");
  // The runtime's root is <exec-root>/runtime-runc/moby, a container's state <root>/<64 hex>/: no
  // longer than Docker's default exec-root (/var/run/docker), so its sockets' paths fit in 108 bytes
  // as they do for a user.
  const execRoot = mkdtempSync("/tmp/bdx-");
  const socket = join(dir, "docker.sock");
  const config = {
    "data-root": join(dir, "data"),
    "exec-root": execRoot,
    pidfile: join(dir, "docker.pid"),
    hosts: [`unix://${socket}`],
    bridge: "none",
    iptables: false,
    ip6tables: false,
    "ip-masq": false,
    "deprecated-key-path": join(dir, "key.json"),
    runtimes: { [RUNTIME_NAME]: { path: runtime.path } },
  };
  writeFileSync(join(dir, "daemon.json"), JSON.stringify(config, null, 2));
  mkdirSync(join(dir, "client"));
  const log = join(dir, "dockerd.log");
  const daemon = startDaemon(["dockerd", "--config-file", join(dir, "daemon.json")], log, [dir, execRoot]);
  const env = { DOCKER_HOST: `unix://${socket}`, DOCKER_CONFIG: join(dir, "client") };
  const argv = ["docker"];
  const removeAll = async () => {
    const listed = await runCommand([...argv, "ps", "-aq", "--no-trunc"], { env, timeoutMs: 30_000 });
    const ids = listed.stdout.split("\n").filter(Boolean);
    if (ids.length > 0) await runCommand([...argv, "rm", "-f", ...ids], { env, timeoutMs: 60_000 });
    return ids;
  };
  // The shim gives every runtime dockerd's runc root.
  const engine = makeEngine({ name: "docker", dir, runtime, runtimeRoot: join(execRoot, "runtime-runc/moby"), argv, env, removeAll, daemon, hostDirs, otherDirs: [execRoot] });
  try {
    await waitUntil("dockerd", async () => (await runCommand([...argv, "version"], { env, timeoutMs: 10_000 })).code === 0, daemon, log, 60_000);
    const archive = await buildTestImage(join(dir, "image.tar"));
    await mustSucceed("docker load", engine.cli(["load", "-i", archive]));
  } catch (error) {
    await engine.stop();
    throw error;
  }
  return engine;
}
