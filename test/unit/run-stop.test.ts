// burrow run and its QEMU, with a fake QEMU (test/fixtures/stop/fake-qemu.ts) under a driver
// process (test/fixtures/stop/driver.ts) that runs runVm: the test signals the driver the way a
// user or a service manager signals burrow run. No root, no built artifacts.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const BUN = process.execPath;
const FIXTURES = join(import.meta.dir, "../fixtures/stop");
const HAS_SETPRIV = Bun.which("setpriv") !== null;
const TEST_TIMEOUT_MS = 20_000;

let dir: string;
let fakeQemu: string;
const started: number[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "burrow-run-stop-"));
  fakeQemu = join(dir, "qemu");
  // `qemu:` is one executable; exec keeps the pid runVm spawned.
  writeFileSync(fakeQemu, `#!/bin/sh\nexec '${BUN}' '${join(FIXTURES, "fake-qemu.ts")}' "$@"\n`);
  chmodSync(fakeQemu, 0o755);
});

afterEach(() => {
  // A failed test must not leave its fake QEMU behind either.
  for (const pid of started.splice(0)) if (alive(pid)) process.kill(pid, "SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

interface Driver {
  pid: number;
  /** The driver's stderr so far (burrow run's own lines). */
  stderr(): string;
  /** runVm's result, once the driver printed it. */
  result(): Promise<{ outcome: string; exitCode: number; reason: string; output: string }>;
  exited: Promise<number>;
}

function startDriver(append: string, env: Record<string, string> = {}, incomingFile?: string): Driver {
  const child = Bun.spawn([BUN, join(FIXTURES, "driver.ts"), fakeQemu, append, ...(incomingFile ? [incomingFile] : [])], {
    env: { ...process.env, FAKE_QEMU_DIR: dir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.push(child.pid);
  let stderr = "";
  void (async () => {
    for await (const chunk of child.stderr) stderr += new TextDecoder().decode(chunk);
  })();
  const stdout = new Response(child.stdout).text();
  return {
    pid: child.pid,
    stderr: () => stderr,
    result: async () => {
      const text = await stdout;
      const line = text.trim().split("\n").at(-1);
      if (!line) throw new Error(`the driver printed no result (exit ${await child.exited}); stderr:\n${stderr}`);
      return JSON.parse(line);
    },
    exited: child.exited,
  };
}

/** Alive and not a zombie (a killed orphan may wait for a reaper that never comes in a container). */
function alive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
    return state !== undefined && state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** The fake guest has booted with the host already on its control port, and answered its HELLO. */
async function guestBooted(): Promise<void> {
  await until("the fake guest to answer HELLO", () => existsSync(join(dir, "greeted")));
  expect(readFileSync(join(dir, "booted"), "utf8")).toBe("host connected");
}

/** The fake QEMU's pid, once it is up (it writes the file last). */
async function fakePid(): Promise<number> {
  const path = join(dir, "pid");
  await until("the fake QEMU to start", () => existsSync(path));
  const pid = Number(readFileSync(path, "utf8"));
  started.push(pid);
  return pid;
}

describe("QEMU never outlives burrow run", () => {
  test.skipIf(!HAS_SETPRIV)("SIGKILL to burrow run: the kernel kills QEMU (setpriv --pdeathsig)", async () => {
    const driver = startDriver("");
    const pid = await fakePid();
    // In a session of its own: a terminal's Ctrl-C to burrow run's process group misses it.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    expect(Number(stat[3])).toBe(pid);
    process.kill(driver.pid, "SIGKILL");
    await driver.exited;
    await until("the fake QEMU to die with its parent", () => !alive(pid), 2000);
  }, TEST_TIMEOUT_MS);

  test("SIGTERM without a control port (exec mode): QEMU is killed (SIGKILL when it ignores SIGTERM), exit code 143", async () => {
    const driver = startDriver("burrow.supervise=0", { FAKE_QEMU_IGNORE_TERM: "1" });
    const pid = await fakePid();
    // No supervisor to ask: the guest gets no control port at all.
    expect(readFileSync(join(dir, "argv"), "utf8")).not.toContain("burrow.control");
    expect(existsSync(join(dir, "control-path"))).toBe(false);
    process.kill(driver.pid, "SIGTERM");
    const result = await driver.result();
    expect(result).toMatchObject({ outcome: "stopped", exitCode: 143, reason: "stopped by SIGTERM" });
    expect(alive(pid)).toBe(false);
    expect(await driver.exited).toBe(0);
  }, TEST_TIMEOUT_MS);

  test("the saved state reaches QEMU on fd 3 through setpriv", async () => {
    const saved = join(dir, "memory");
    writeFileSync(saved, "saved-state-bytes");
    const result = await startDriver("", {}, saved).result();
    expect(result.outcome).toBe("poweroff");
    expect(result.output).toContain("incoming: saved-state-bytes");
  }, TEST_TIMEOUT_MS);
});

describe("a supervised guest is asked to stop over its control port (STOP)", () => {
  test("SIGTERM: the guest's reported status, the signal in the reason, the socket directory removed", async () => {
    const driver = startDriver("burrow.supervise=1");
    const pid = await fakePid();
    // The host connects as soon as QEMU runs: the handshake is done before the signal.
    await guestBooted();
    process.kill(driver.pid, "SIGTERM");
    const result = await driver.result();
    expect(result).toMatchObject({ outcome: "exit-status", exitCode: 143, reason: "guest reported exit status 143 (stopped by SIGTERM)" });
    // hostStopWaitMs(5000 ms, the default burrow.stop-timeout): 12 s.
    expect(driver.stderr()).toContain("burrow run: SIGTERM: asking the guest to stop (up to 12 s)");
    expect(alive(pid)).toBe(false);
    // runVm made the control socket's directory itself: nothing of it is left.
    expect(existsSync(dirname(readFileSync(join(dir, "control-path"), "utf8")))).toBe(false);
  }, TEST_TIMEOUT_MS);

  test("QEMU gets the control port (supervised by default), no stop port; burrow.stop-timeout sets how long the host waits", async () => {
    const driver = startDriver("burrow.stop-timeout=0");
    await fakePid();
    const argv: string[] = JSON.parse(readFileSync(join(dir, "argv"), "utf8"));
    expect(argv.join(" ")).toMatch(/virtio-serial-(device|pci),id=vser0 -chardev socket,id=control,path=\S+,server=on,wait=off -device virtserialport,bus=vser0.0,chardev=control,name=burrow.control/);
    // The one port on the bus: no burrow.stop beside it.
    expect(argv.filter((arg) => arg.startsWith("virtserialport,"))).toEqual(["virtserialport,bus=vser0.0,chardev=control,name=burrow.control"]);
    // At once, before the guest opened the port: HELLO and STOP wait in it until the guest boots.
    process.kill(driver.pid, "SIGHUP");
    const result = await driver.result();
    expect(result).toMatchObject({ exitCode: 143, reason: "guest reported exit status 143 (stopped by SIGHUP)" });
    expect(driver.stderr()).toContain("burrow run: SIGHUP: asking the guest to stop (up to 7 s)");
  }, TEST_TIMEOUT_MS);

  test("a second signal while the guest stops kills QEMU at once; the first signal's code", async () => {
    const driver = startDriver("burrow.supervise=1", { FAKE_GUEST: "deaf" });
    const pid = await fakePid();
    await guestBooted();
    const sent = performance.now();
    process.kill(driver.pid, "SIGTERM");
    await until("burrow run's stop line", () => driver.stderr().includes("asking the guest to stop"));
    // The STOP reached the guest, which will never answer: only the second signal ends the wait.
    await until("the STOP to reach the guest", () => existsSync(join(dir, "stop-received")));
    process.kill(driver.pid, "SIGINT");
    const result = await driver.result();
    expect(result).toMatchObject({ outcome: "stopped", exitCode: 143, reason: "stopped by SIGTERM" });
    expect(performance.now() - sent).toBeLessThan(5000);
    expect(alive(pid)).toBe(false);
  }, TEST_TIMEOUT_MS);

  test.skipIf(!HAS_SETPRIV)("Ctrl-C to burrow run's process group reaches burrow run alone: the guest stops in order", async () => {
    // The driver leads a process group, as burrow run does in a terminal's foreground job.
    const child = Bun.spawn(["setsid", BUN, join(FIXTURES, "driver.ts"), fakeQemu, "burrow.supervise=1"], {
      env: { ...process.env, FAKE_QEMU_DIR: dir, FAKE_GUEST_STATUS: "130" },
      stdio: ["ignore", "pipe", "ignore"],
    });
    started.push(child.pid);
    const stdout = new Response(child.stdout).text();
    await fakePid();
    await guestBooted();
    process.kill(-child.pid, "SIGINT");
    const result = JSON.parse((await stdout).trim());
    // A QEMU in the group would have quit on SIGINT before the guest could answer.
    expect(result).toMatchObject({ exitCode: 130, reason: "guest reported exit status 130 (stopped by SIGINT)" });
  }, TEST_TIMEOUT_MS);
});
