// Podman driving the OCI runtime (dist/burrow-oci: each container a microVM) as a user types it:
// run with output and exit status, -i, -e/-u/-w, volumes both ways, --read-only, -t and -it; a
// detached container with exec, pause/unpause, kill -s, logs and stop; rm -f of a running one.
// The fault paths: the VM killed under a running container, rm -f while its create is in
// progress, a symlink planted in a volume. One Podman with a store of its own for the file; after
// it, nothing of any container may be left (no process naming it, no state directory under the
// runtime's root, `podman ps -a` empty). BURROW_OCI_TEST_RUNTIME=runc runs the same cases against
// runc, where the semantics agree.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CommandResult, type Engine, explain, processAlive, qemuUnder, runCommand, startPodman, TEST_IMAGE, testRuntime } from "../helpers/oci-engines";

const TIMEOUT_MS = 180_000;
const runtime = testRuntime();
const burrow = runtime.kind === "burrow";
let podman: Engine;
let work: string;
/** Every container the file made: none of them may leave anything behind. */
const ids: string[] = [];
let cidFiles = 0;
/** A workload that ends on SIGTERM even as PID 1 (runc), so a default `rm -f` or `stop` is quick. */
const UNTIL_TERM = 'trap "exit 143" TERM; while :; do sleep 1; done';

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "burrow-oci-podman-test-"));
  podman = await startPodman(runtime);
}, TIMEOUT_MS);

afterAll(async () => {
  await podman?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The id in a --cidfile, once Podman wrote it ("" before). */
function idIn(file: string): string {
  return existsSync(file) ? readFileSync(file, "utf8").trim() : "";
}

/** `podman run --cidfile F ARGS` (the id kept for the final check). */
async function run(args: string[], stdin?: string): Promise<CommandResult & { id: string }> {
  const cidFile = join(work, `cid-${++cidFiles}`);
  const result = await podman.cli(["run", "--cidfile", cidFile, ...args], { stdin });
  const id = idIn(cidFile);
  if (id) ids.push(id);
  return { ...result, id };
}

const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

async function inspect(id: string, format: string): Promise<string> {
  const result = await podman.cli(["inspect", "--format", format, id]);
  expect(result.code, explain(result)).toBe(0);
  return result.stdout.trim();
}

async function expectGone(id: string): Promise<void> {
  const listed = await podman.cli(["ps", "-a", "-q", "--no-trunc"]);
  expect(listed.stdout).not.toContain(id);
  expect(await podman.settledLeftovers([id])).toEqual([]);
}

describe("podman run", () => {
  test("output and exit status", async () => {
    const result = await run(["--rm", "--network", "none", TEST_IMAGE, "sh", "-c", "echo hi; exit 3"]);
    expect({ code: result.code, stdout: result.stdout }, explain(result)).toEqual({ code: 3, stdout: "hi\n" });
  }, TIMEOUT_MS);

  test("-i: stdin reaches the process and its end ends it", async () => {
    const result = await run(["--rm", "-i", "--network", "none", TEST_IMAGE, "tr", "a-z", "A-Z"], "first line\nsecond\n");
    expect({ code: result.code, stdout: result.stdout }, explain(result)).toEqual({ code: 0, stdout: "FIRST LINE\nSECOND\n" });
  }, TIMEOUT_MS);

  test("-e, -u UID:GID, -w; -u by a name from the image's /etc/passwd", async () => {
    const result = await run(["--rm", "--network", "none", "-e", "FOO=bar baz", "-u", "1000:1000", "-w", "/tmp", TEST_IMAGE, "sh", "-c", 'echo "$FOO"; id -u; id -g; pwd']);
    expect({ code: result.code, stdout: result.stdout }, explain(result)).toEqual({ code: 0, stdout: "bar baz\n1000\n1000\n/tmp\n" });
    const named = await run(["--rm", "--network", "none", "-u", "nobody", TEST_IMAGE, "id"]);
    expect(named.stdout, explain(named)).toMatch(/^uid=65534\(nobody\) gid=65534\(nogroup\)/);
  }, TIMEOUT_MS);

  test("-v: a host file read in the container, a container's file on the host with its owner, :ro refuses a write", async () => {
    const shared = join(work, "shared");
    const readOnly = join(work, "read-only");
    mkdirSync(shared);
    mkdirSync(readOnly);
    // The container writes as uid 1000.
    chmodSync(shared, 0o777);
    writeFileSync(join(shared, "in.txt"), "from the host\n");
    const script = "cat /vol/in.txt; echo from the container > /vol/out.txt; touch /ro/x 2>/dev/null && echo ro-written || echo ro-refused";
    const result = await run(["--rm", "--network", "none", "-u", "1000:1000", "-v", `${shared}:/vol`, "-v", `${readOnly}:/ro:ro`, TEST_IMAGE, "sh", "-c", script]);
    expect({ code: result.code, stdout: result.stdout }, explain(result)).toEqual({ code: 0, stdout: "from the host\nro-refused\n" });
    expect(readFileSync(join(shared, "out.txt"), "utf8")).toBe("from the container\n");
    expect(statSync(join(shared, "out.txt")).uid).toBe(1000);
    expect(existsSync(join(readOnly, "x"))).toBe(false);
  }, TIMEOUT_MS);

  test("--read-only: a write to the root fails, /tmp (Podman's tmpfs) still takes one", async () => {
    const result = await run(["--rm", "--network", "none", "--read-only", TEST_IMAGE, "sh", "-c", 'touch /x; echo "root=$?"; touch /tmp/y && echo tmp-ok']);
    expect({ code: result.code, stdout: result.stdout }, explain(result)).toEqual({ code: 0, stdout: "root=1\ntmp-ok\n" });
    expect(result.stderr).toContain("Read-only file system");
  }, TIMEOUT_MS);

  test("-t: the process's stdin and stdout are a terminal, with no terminal on the caller's side", async () => {
    // Podman allocates the pty whatever its own stdin is (here /dev/null); the pty turns \n into \r\n.
    const result = await run(["--rm", "-t", "--network", "none", TEST_IMAGE, "sh", "-c", "test -t 0 && test -t 1 && echo tty; exit 4"]);
    expect({ code: result.code, stdout: result.stdout }, explain(result)).toEqual({ code: 4, stdout: "tty\r\n" });
  }, TIMEOUT_MS);

  test("-it: typed input through a terminal (script gives Podman one; without it -it never sees the input's end)", async () => {
    const cidFile = join(work, `cid-${++cidFiles}`);
    const command = [...podman.argv, "run", "--cidfile", cidFile, "--rm", "-it", "--network", "none", TEST_IMAGE, "sh"].map(quote).join(" ");
    const result = await runCommand(["script", "-qec", command, "/dev/null"], { env: podman.env, stdin: "echo typed-$((1+2))\nexit 5\n" });
    if (idIn(cidFile)) ids.push(idIn(cidFile));
    expect(result.code, explain(result)).toBe(5);
    // The terminal echoes the typed line ("typed-$((1+2))"); only the shell prints the sum.
    expect(result.stdout).toContain("typed-3\r\n");
  }, TIMEOUT_MS);
});

describe("a detached container", () => {
  test("run -d, exec (status, -i), pause/unpause, kill -s, logs, stop (the exit status in inspect), rm", async () => {
    const script = 'echo started; trap "echo got-usr1" USR1; trap "echo got-term; exit 7" TERM; while :; do sleep 1; done';
    const started = await run(["-d", "--name", "detached", "--network", "none", "-e", "WHO=detached", TEST_IMAGE, "sh", "-c", script]);
    expect(started.code, explain(started)).toBe(0);
    const id = started.id;
    expect(started.stdout.trim()).toBe(id);
    expect(await inspect(id, "{{.State.Status}}")).toBe("running");
    const pid = Number(await inspect(id, "{{.State.Pid}}"));
    expect(processAlive(pid)).toBe(true);
    // burrow-oci: the pid is the holder's, and its VM runs under it.
    if (burrow) expect(qemuUnder(pid)).toHaveLength(1);

    const exec = await podman.cli(["exec", "-e", "EXTRA=x", "-w", "/tmp", id, "sh", "-c", 'echo "exec $WHO $EXTRA $(pwd)"; exit 4']);
    expect({ code: exec.code, stdout: exec.stdout }, explain(exec)).toEqual({ code: 4, stdout: "exec detached x /tmp\n" });
    const piped = await podman.cli(["exec", "-i", id, "tr", "a-z", "A-Z"], { stdin: "piped in\n" });
    expect({ code: piped.code, stdout: piped.stdout }, explain(piped)).toEqual({ code: 0, stdout: "PIPED IN\n" });

    expect((await podman.cli(["pause", id])).code).toBe(0);
    expect(await inspect(id, "{{.State.Status}}")).toBe("paused");
    expect((await podman.cli(["unpause", id])).code).toBe(0);
    expect(await inspect(id, "{{.State.Status}}")).toBe("running");

    const signalled = await podman.cli(["kill", "-s", "USR1", id]);
    expect(signalled.code, explain(signalled)).toBe(0);
    // The shell runs its trap once the current sleep ends.
    let logs = await podman.cli(["logs", id]);
    for (const deadline = Date.now() + 10_000; logs.stdout !== "started\ngot-usr1\n" && Date.now() < deadline; ) {
      await Bun.sleep(200);
      logs = await podman.cli(["logs", id]);
    }
    expect(logs.stdout, explain(logs)).toBe("started\ngot-usr1\n");

    const stopped = await podman.cli(["stop", "-t", "30", id]);
    expect(stopped.code, explain(stopped)).toBe(0);
    expect(await inspect(id, "{{.State.Status}} {{.State.ExitCode}}")).toBe("exited 7");
    expect((await podman.cli(["logs", id])).stdout).toBe("started\ngot-usr1\ngot-term\n");
    expect(processAlive(pid)).toBe(false);

    const removed = await podman.cli(["rm", id]);
    expect(removed.code, explain(removed)).toBe(0);
    await expectGone(id);
  }, TIMEOUT_MS);

  test("rm -f of a running container leaves nothing", async () => {
    const started = await run(["-d", "--network", "none", TEST_IMAGE, "sh", "-c", UNTIL_TERM]);
    expect(started.code, explain(started)).toBe(0);
    const pid = Number(await inspect(started.id, "{{.State.Pid}}"));
    const removed = await podman.cli(["rm", "-f", started.id]);
    expect(removed.code, explain(removed)).toBe(0);
    expect(processAlive(pid)).toBe(false);
    await expectGone(started.id);
  }, TIMEOUT_MS);
});

describe("faults", () => {
  test.skipIf(!burrow)("the VM killed under a running container: the container exits, rm cleans up", async () => {
    const started = await run(["-d", "--network", "none", TEST_IMAGE, "sleep", "1000"]);
    expect(started.code, explain(started)).toBe(0);
    const holder = Number(await inspect(started.id, "{{.State.Pid}}"));
    const qemu = qemuUnder(holder);
    expect(qemu).toHaveLength(1);
    process.kill(qemu[0]!, "SIGKILL");

    const waited = await podman.cli(["wait", started.id]);
    expect(waited.code, explain(waited)).toBe(0);
    expect(Number(waited.stdout.trim())).not.toBe(0);
    expect(await inspect(started.id, "{{.State.Status}}")).toBe("exited");
    expect(processAlive(holder)).toBe(false);
    const removed = await podman.cli(["rm", started.id]);
    expect(removed.code, explain(removed)).toBe(0);
    await expectGone(started.id);
  }, TIMEOUT_MS);

  test("rm -f while the container's create is in progress leaves nothing", async () => {
    const cidFile = join(work, `cid-${++cidFiles}`);
    const running = podman.startCli(["run", "-d", "--cidfile", cidFile, "--network", "none", TEST_IMAGE, "sh", "-c", UNTIL_TERM]);
    let finished = false;
    void running.done.then(
      () => (finished = true),
      () => (finished = true),
    );
    // The id comes before the runtime's create; the state directory at its start.
    let id = "";
    let stateSeenWhileRunning = false;
    const deadline = Date.now() + 60_000;
    while (!finished && Date.now() < deadline) {
      id ||= idIn(cidFile);
      if (id && existsSync(join(podman.runtimeRoot, id))) {
        stateSeenWhileRunning = true;
        break;
      }
      await Bun.sleep(10);
    }
    id ||= idIn(cidFile);
    expect(id).not.toBe("");
    ids.push(id);
    const removed = await podman.cli(["rm", "-f", id]);
    const result = await running.done;
    expect(removed.code, `${explain(removed)}\nrun: ${explain(result)}`).toBe(0);
    // A microVM's create takes seconds: the rm came while it ran. runc's takes milliseconds and is
    // often over before the poll sees its state directory.
    if (burrow) expect(stateSeenWhileRunning).toBe(true);
    await expectGone(id);
  }, TIMEOUT_MS);

  test("a symlink the container plants in a volume is not followed on the host", async () => {
    const volume = join(work, "planted");
    mkdirSync(volume);
    const marker = `/tmp/pwned-${randomBytes(8).toString("hex")}`;
    try {
      const result = await run(["--rm", "--network", "none", "-v", `${volume}:/vol`, TEST_IMAGE, "sh", "-c", `ln -s / /vol/escape; echo x > /vol/escape${marker}; echo done`]);
      expect(result.stdout, explain(result)).toBe("done\n");
      expect(lstatSync(join(volume, "escape")).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(volume, "escape"))).toBe("/");
      expect(existsSync(marker)).toBe(false);
    } finally {
      rmSync(marker, { force: true });
    }
  }, TIMEOUT_MS);
});

test("after every case: podman ps -a is empty, no process names a container, no state directory is left", async () => {
  const listed = await podman.cli(["ps", "-a", "-q"]);
  expect(listed.stdout, explain(listed)).toBe("");
  expect(ids.length).toBeGreaterThan(10);
  expect(await podman.settledLeftovers(ids)).toEqual([]);
}, TIMEOUT_MS);
