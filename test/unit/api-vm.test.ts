// launch() and Vm against a scripted guest supervisor (test/helpers/fake-guest.ts) in place of
// QEMU: handed out once the channel answers (and a restore resumed), one BootError when the run
// ends or the channel fails first, with QEMU "killed" before the rejection; exec within its bound;
// calls after the end; the orderly stop's deadline.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BootError, OutputLimitError, VmEndedError } from "../../src/api/errors";
import { launch, type LaunchHooks } from "../../src/api/launch";
import type { Vm } from "../../src/api/vm";
import { ControlMux } from "../../src/control/mux";
import type { RunResult } from "../../src/host/qemu";
import { FakeGuest, type FakeGuestOptions, pattern } from "../helpers/fake-guest";

let directory = "";
let counter = 0;
const cleanups: (() => void | Promise<unknown>)[] = [];

beforeAll(() => {
  directory = mkdtempSync(join(tmpdir(), "burrow-api-vm-"));
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(() => {
  rmSync(directory, { recursive: true, force: true });
});

function result(reason: string): RunResult {
  return { outcome: "stopped", exitCode: 137, reason, output: "", wallMs: 1, runId: "fakefakefake" };
}

interface FakeRun {
  guest: FakeGuest;
  /** Whether the "QEMU" was killed (the launch's signal aborted). */
  killed: () => boolean;
  hooks: () => LaunchHooks;
  /** Ends the run by itself, as a guest powering off. */
  end(reason: string): void;
}

/** A run whose "QEMU" is a fake guest on a socket; it ends when killed or told to. */
function fakeRun(options: FakeGuestOptions & { helloTimeoutMs?: number; reportControl?: boolean } = {}): FakeRun & { start(hooks: LaunchHooks): Promise<RunResult> } {
  const guest = new FakeGuest(join(directory, `guest-${++counter}.sock`), options);
  cleanups.push(() => guest.stop());
  let killed = false;
  let given: LaunchHooks | null = null;
  let endRun: (result: RunResult) => void = () => {};
  let mux: Promise<ControlMux> | null = null;
  return {
    guest,
    killed: () => killed,
    hooks: () => given!,
    end: (reason) => endRun(result(reason)),
    start(hooks) {
      given = hooks;
      return new Promise((resolve) => {
        endRun = (ended) => {
          // As runVm: the VM's control connection goes with it.
          void mux?.then((connected) => connected.close("the VM ended"), () => {});
          resolve(ended);
        };
        hooks.signal.addEventListener("abort", () => {
          killed = true;
          endRun(result("qemu was killed by SIGKILL"));
        });
        hooks.spawned(4242);
        if (options.reportControl === false) return;
        mux = ControlMux.connect(guest.path, { timeoutMs: 2000, helloTimeoutMs: options.helloTimeoutMs ?? 2000 });
        mux.catch(() => {});
        hooks.control(mux);
      });
    },
  };
}

async function booted(run = fakeRun(), stopWaitMs = 60_000): Promise<{ vm: Vm; run: typeof run }> {
  const vm = await launch({ what: "boot", stopWaitMs, awaitResume: false, start: (hooks) => run.start(hooks) });
  cleanups.push(() => vm.kill());
  return { vm, run };
}

describe("launch", () => {
  test("hands the VM out once its supervisor answered; requests go through", async () => {
    const { vm, run } = await booted();
    expect(vm.pid).toBe(4242);
    expect((await vm.info()).workload.pid).toBe(42);
    const printed = await vm.exec(["print", "hello", "guest"]);
    expect(new TextDecoder().decode(printed.stdout)).toBe("hello guest");
    expect(printed).toMatchObject({ exitCode: 0, signal: 0, oomKilled: false, timedOut: false, stderr: new Uint8Array(0) });
    await vm.writeFile("/tmp/x", "bytes", { mode: 0o600 });
    expect(run.guest.files.get("/tmp/x")!.mode).toBe(0o600);
    expect(new TextDecoder().decode(await vm.readFile("/tmp/x"))).toBe("bytes");
    expect(run.killed()).toBe(false);
  });

  test("a restore is handed out only after the guest resumed", async () => {
    const run = fakeRun();
    let handedOut = false;
    const launching = launch({ what: "restore", stopWaitMs: 60_000, awaitResume: true, start: (hooks) => run.start(hooks) }).then((vm) => {
      handedOut = true;
      cleanups.push(() => vm.kill());
      return vm;
    });
    await Bun.sleep(100); // the channel answered long since
    expect(handedOut).toBe(false);
    run.hooks().resumed();
    expect((await launching).pid).toBe(4242);
  });

  test("the run ending first is one BootError with its reason", async () => {
    const run = fakeRun({ reportControl: false });
    const launching = launch({ what: "boot", stopWaitMs: 1000, awaitResume: false, start: (hooks) => run.start(hooks) });
    run.end("guest powered off");
    const error = await launching.catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(BootError);
    expect((error as BootError).message).toBe("boot: the VM ended before its supervisor answered: guest powered off");
    expect((error as BootError).run?.reason).toBe("guest powered off");
  });

  test("a run that fails to start is one BootError", async () => {
    const launching = launch({ what: "boot", stopWaitMs: 1000, awaitResume: false, start: () => Promise.reject(new Error("not found: kernel /nope")) });
    await expect(launching).rejects.toThrow(new BootError("boot: not found: kernel /nope"));
  });

  test("a guest that never answers: QEMU is killed, then one BootError", async () => {
    const run = fakeRun({ ignoreHellos: 1000, helloTimeoutMs: 300 });
    const error = await launch({ what: "boot", stopWaitMs: 1000, awaitResume: false, start: (hooks) => run.start(hooks) }).catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(BootError);
    expect((error as BootError).message).toStartWith("boot: the guest's supervisor did not answer on the control channel: no HELLO_ACK");
    expect(run.killed()).toBe(true);
  });

  test("a guest without the control channel is refused and killed", async () => {
    const run = fakeRun({ reportControl: false });
    const error = await launch({
      what: "boot", stopWaitMs: 1000, awaitResume: false,
      start: (hooks) => {
        const running = run.start(hooks);
        hooks.control(null);
        return running;
      },
    }).catch((failure: unknown) => failure);
    expect((error as BootError).message).toBe("boot: the guest serves no control channel (burrow.supervise=0)");
    expect(run.killed()).toBe(true);
  });

  test("the caller's abort signal kills the VM while it starts", async () => {
    const run = fakeRun({ ignoreHellos: 1000 });
    const abort = new AbortController();
    const launching = launch({ what: "boot", stopWaitMs: 1000, awaitResume: false, signal: abort.signal, start: (hooks) => run.start(hooks) });
    abort.abort();
    await expect(launching).rejects.toThrow("boot: the VM ended before its supervisor answered: qemu was killed by SIGKILL");
    expect(run.killed()).toBe(true);
  });
});

describe("Vm", () => {
  test("exec keeps each stream within its bound: past it the process is killed", async () => {
    const { vm, run } = await booted();
    const error = await vm.exec(["emit", "300000", "10"], { maxOutputBytes: 100_000 }).catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(OutputLimitError);
    expect((error as Error).message).toStartWith("emit: stdout passed exec's bound of 100000 bytes");
    await Bun.sleep(20);
    expect([...run.guest.sessions.values()].find((session) => session.argv[0] === "emit")!.closed).toBe(true);
    const within = await vm.exec(["emit", "100000", "10"], { maxOutputBytes: 100_000 });
    expect(within.stdout).toEqual(pattern(100_000, 1));
  });

  test("after the VM ended: calls reject with VmEndedError, spawn throws it, stop() gives the result", async () => {
    const { vm, run } = await booted();
    const ended = await vm.kill();
    expect(ended.reason).toBe("qemu was killed by SIGKILL");
    expect(run.killed()).toBe(true);
    await expect(vm.exec(["print", "x"])).rejects.toBeInstanceOf(VmEndedError);
    await expect(vm.info()).rejects.toThrow("the VM (QEMU pid 4242) has ended: qemu was killed by SIGKILL");
    await expect(vm.readFile("/x")).rejects.toBeInstanceOf(VmEndedError);
    await expect(vm.writeFile("/x", "y")).rejects.toBeInstanceOf(VmEndedError);
    expect(() => vm.spawn(["sleep"])).toThrow(VmEndedError);
    expect(await vm.stop()).toBe(ended);
  });

  test("stop() asks the supervisor, then kills QEMU when the guest is not gone by the deadline", async () => {
    const { vm, run } = await booted(fakeRun(), 150);
    const started = performance.now();
    const ended = await vm.stop();
    expect(performance.now() - started).toBeGreaterThanOrEqual(145);
    expect(ended.reason).toBe("qemu was killed by SIGKILL");
    expect(run.killed()).toBe(true);
  });

  test("stop() resolves with the guest's own end when it powers off in time", async () => {
    const { vm, run } = await booted(fakeRun(), 5000);
    const stopping = vm.stop();
    await Bun.sleep(30);
    run.end("guest reported exit status 143");
    expect((await stopping).reason).toBe("guest reported exit status 143");
    expect(run.killed()).toBe(false);
  });
});
