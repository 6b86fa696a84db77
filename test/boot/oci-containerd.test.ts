// containerd's runc shim (io.containerd.runc.v2) driving the OCI runtime (dist/burrow-oci: each
// container a microVM) through `ctr run --runc-binary RUNTIME`: output and exit status, stdin,
// `ctr task exec` into a running container, and nothing left after each. One containerd of the
// test's own for the file. BURROW_OCI_TEST_RUNTIME=runc runs the same cases against runc.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { type CommandResult, type Engine, explain, processAlive, startContainerd, TEST_IMAGE, testRuntime } from "../helpers/oci-engines";

const TIMEOUT_MS = 180_000;
const runtime = testRuntime();
let containerd: Engine & { runArgs: string[] };
const ids: string[] = [];

beforeAll(async () => {
  containerd = await startContainerd(runtime);
}, TIMEOUT_MS);

afterAll(async () => {
  await containerd?.stop();
});

/** A container id of this file's own: unique on the host, so a process naming it is ours. */
function newId(): string {
  const id = `burrow-test-${randomBytes(6).toString("hex")}`;
  ids.push(id);
  return id;
}

/** `ctr run --runc-binary RUNTIME --runc-root DIR ARGS… IMAGE ID COMMAND…`. */
function ctrRun(flags: string[], id: string, command: string[], stdin?: string): Promise<CommandResult> {
  return containerd.cli(["run", ...containerd.runArgs, ...flags, TEST_IMAGE, id, ...command], { stdin });
}

async function expectGone(id: string): Promise<void> {
  const listed = await containerd.cli(["containers", "ls", "-q"]);
  expect(listed.stdout.split("\n")).not.toContain(id);
  expect(await containerd.settledLeftovers([id])).toEqual([]);
}

describe("ctr run", () => {
  test("--rm: output and exit status", async () => {
    const id = newId();
    const result = await ctrRun(["--rm"], id, ["sh", "-c", "echo hi; exit 3"]);
    expect({ code: result.code, stdout: result.stdout }, explain(result)).toEqual({ code: 3, stdout: "hi\n" });
    await expectGone(id);
  }, TIMEOUT_MS);

  test("stdin reaches the process", async () => {
    // ctr copies stdin but never closes the container's at its end (containerd's client): the
    // process reads one line instead of waiting for the end.
    const id = newId();
    const result = await ctrRun(["--rm"], id, ["sh", "-c", 'read line; echo "got $line"; exit 2'], "from the host\n");
    expect({ code: result.code, stdout: result.stdout }, explain(result)).toEqual({ code: 2, stdout: "got from the host\n" });
    await expectGone(id);
  }, TIMEOUT_MS);

  test("-d, then ctr task exec: output, status, stdin; kill; delete leaves nothing", async () => {
    const id = newId();
    const started = await ctrRun(["-d", "--env", "WHO=detached"], id, ["sleep", "1000"]);
    expect(started.code, explain(started)).toBe(0);
    const tasks = await containerd.cli(["task", "ls"]);
    const row = tasks.stdout.split("\n").find((line) => line.startsWith(`${id} `));
    expect(row, explain(tasks)).toMatch(/ RUNNING$/);
    const pid = Number(row!.split(/\s+/)[1]);
    expect(processAlive(pid)).toBe(true);

    const exec = await containerd.cli(["task", "exec", "--exec-id", "exec-1", "--cwd", "/tmp", id, "sh", "-c", 'echo "exec $WHO $(pwd)"; exit 5']);
    expect({ code: exec.code, stdout: exec.stdout }, explain(exec)).toEqual({ code: 5, stdout: "exec detached /tmp\n" });
    const piped = await containerd.cli(["task", "exec", "--exec-id", "exec-2", id, "sh", "-c", 'read line; echo "exec got $line"'], { stdin: "piped\n" });
    expect({ code: piped.code, stdout: piped.stdout }, explain(piped)).toEqual({ code: 0, stdout: "exec got piped\n" });

    const killed = await containerd.cli(["task", "kill", "-s", "SIGKILL", id]);
    expect(killed.code, explain(killed)).toBe(0);
    const deadline = Date.now() + 30_000;
    let status = "";
    while (Date.now() < deadline) {
      const listed = await containerd.cli(["task", "ls"]);
      status = listed.stdout.split("\n").find((line) => line.startsWith(`${id} `)) ?? "";
      if (/ STOPPED$/.test(status)) break;
      await Bun.sleep(100);
    }
    expect(status).toMatch(/ STOPPED$/);
    const deleted = await containerd.cli(["task", "delete", id]);
    // ctr task delete prints the exit status: SIGKILL's 137.
    expect(deleted.stdout + deleted.stderr, explain(deleted)).toContain("137");
    expect((await containerd.cli(["containers", "delete", id])).code).toBe(0);
    expect(processAlive(pid)).toBe(false);
    await expectGone(id);
  }, TIMEOUT_MS);
});

test("after every case: no container, no process naming one, no state directory", async () => {
  const listed = await containerd.cli(["containers", "ls", "-q"]);
  expect(listed.stdout, explain(listed)).toBe("");
  expect(ids.length).toBe(3);
  expect(await containerd.settledLeftovers(ids)).toEqual([]);
}, TIMEOUT_MS);
