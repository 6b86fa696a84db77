// How the VM ends (src/boot/ending.ts), for real: test/fixtures/privileged/fail-boot.ts runs as PID 1
// of a throw-away PID + mount namespace with a regular file bind-mounted over /dev/console, and
// calls failBoot. reboot() there does not touch the machine: the kernel kills the namespace's init
// with SIGINT (power-off, halt) or SIGHUP (restart) — reboot(2), kernel/pid_namespace.c — and
// unshare re-raises that signal, so we see it as unshare's own.
// SAFETY: this process only reads a constant from src/boot/ending.ts; failBoot, endVm and reboot()
// run only in the fixture, inside the namespace (on the host, as root, reboot() ends the machine).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXEC_PATH_VAR } from "../../src/boot/paths";
import { exitStatusLine } from "../../src/exit-marker";
import { ROOT } from "../helpers/artifacts";

const FIXTURE = join(ROOT, "test/fixtures/privileged/fail-boot.ts");
const RUN_ID = "t3stRun0123456789";
let work: string;

beforeAll(() => {
  // Never skip: a privileged test that did not run must show up as a failure.
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (PID and mount namespaces, reboot() in a PID namespace)");
  work = mkdtempSync(join(tmpdir(), "burrow-ending-"));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Ending {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  console: string;
}

let runs = 0;

/**
 * The fixture as PID 1 (`exec` keeps the PID sh had) of a new PID namespace, /dev/console a file.
 * `prefix` goes between exec and bun (setpriv, to run without CAP_SYS_BOOT).
 */
function endInNamespace(args: { onfail: string; onexit?: string; status?: number; scenario?: string; stdin?: string; env?: Record<string, string>; prefix?: string[] }): Ending {
  const consoleFile = join(work, `console-${++runs}`);
  writeFileSync(consoleFile, "");
  const script = 'mount --bind "$1" /dev/console && shift && exec "$@"';
  const argv = [
    // --kill-child: if this test is killed, the namespace goes with it.
    "unshare", "--fork", "--kill-child", "--pid", "--mount", "--mount-proc", "--propagation", "private",
    "sh", "-c", script, "sh", consoleFile,
    ...(args.prefix ?? []), process.execPath, FIXTURE, args.onfail, RUN_ID, args.onexit ?? "none", String(args.status ?? 1), args.scenario ?? "",
  ];
  const result = Bun.spawnSync(argv, {
    stdin: args.stdin === undefined ? "ignore" : Buffer.from(args.stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...args.env },
    timeout: 30_000,
  });
  return {
    exitCode: result.exitCode,
    signal: result.signalCode === undefined || result.signalCode === null ? null : String(result.signalCode),
    stdout: result.stdout.toString(),
    stderr: result.stderr.toString(),
    console: readFileSync(consoleFile, "utf8"),
  };
}

const lines = (text: string) => text.split("\n").filter(Boolean);

describe("failBoot as PID 1 of a PID namespace", () => {
  test("onfail=poweroff: cause, 'powering off', the exit-status line on /dev/console, killed by SIGINT", () => {
    const end = endInNamespace({ onfail: "poweroff" });
    expect(end.signal).toBe("SIGINT");
    expect(end.console).toBe(`burrow: guest exit status 1 run ${RUN_ID}\n`);
    expect(end.console).toBe(`${exitStatusLine(1, RUN_ID)}\n`);
    expect(lines(end.stderr)).toEqual(["burrow: error: boot failed: test cause", "burrow: powering off"]);
  }, 30_000);

  test("onfail=halt: cause, 'halting', the same exit-status line, killed by SIGINT (halt and power-off alike)", () => {
    const end = endInNamespace({ onfail: "halt" });
    expect(end.signal).toBe("SIGINT");
    expect(end.console).toBe(`burrow: guest exit status 1 run ${RUN_ID}\n`);
    expect(lines(end.stderr)).toEqual(["burrow: error: boot failed: test cause", "burrow: halting"]);
  }, 30_000);

  test("onfail=halt wins over the paravisor's onexit=exit: the VM halts, it does not just exit", () => {
    const end = endInNamespace({ onfail: "halt", onexit: "exit" });
    expect(end.signal).toBe("SIGINT");
    expect(end.console).toBe(`burrow: guest exit status 1 run ${RUN_ID}\n`);
  }, 30_000);

  test("paravisor onexit=reboot: 'rebooting', the status line, killed by SIGHUP (restart)", () => {
    const end = endInNamespace({ onfail: "poweroff", onexit: "reboot", status: 4 });
    expect(end.signal).toBe("SIGHUP");
    expect(end.console).toBe(`burrow: guest exit status 4 run ${RUN_ID}\n`);
    expect(lines(end.stderr)).toEqual(["burrow: error: boot failed: test cause", "burrow: rebooting"]);
  }, 30_000);

  test("paravisor onexit=exit: PID 1 exits with the status, no reboot and no console line", () => {
    const end = endInNamespace({ onfail: "poweroff", onexit: "exit", status: 5 });
    expect(end.signal).toBeNull();
    expect(end.exitCode).toBe(5);
    expect(end.console).toBe("");
    expect(lines(end.stderr)).toEqual(["burrow: error: boot failed: test cause", "burrow: exiting with status 5"]);
  }, 30_000);

  test("onfail=shell: the host's /bin/sh runs as PID 1 with the clean environment and answers on stdin", () => {
    const end = endInNamespace({
      onfail: "shell",
      stdin: 'echo pid:$$; echo shell-says:$HOME:$PATH; echo term:$TERM leak:${BURROW_TEST_LEAK:-none}; exit 0\n',
      env: { BURROW_TEST_LEAK: "inherited" },
    });
    expect(end.signal).toBeNull();
    expect(end.exitCode).toBe(0);
    expect(lines(end.stdout)).toEqual(["pid:1", `shell-says:/root:${EXEC_PATH_VAR.slice("PATH=".length)}`, "term:linux leak:none"]);
    expect(lines(end.stderr)).toEqual(["burrow: error: boot failed: test cause", "burrow: warning: dropping to /bin/sh (burrow.onfail=shell)"]);
    expect(end.console).toBe(""); // the shell owns the VM now; no status was announced
  }, 30_000);

  test("a second failBoot while the first is reporting changes nothing: one cause, one status line", () => {
    const end = endInNamespace({ onfail: "poweroff", scenario: "reentrant" });
    expect(end.signal).toBe("SIGINT");
    expect(end.console).toBe(`burrow: guest exit status 1 run ${RUN_ID}\n`);
    expect(lines(end.stderr)).toEqual(["burrow: error: boot failed: test cause", "burrow: powering off"]);
  }, 30_000);

  test("reboot() refused (no CAP_SYS_BOOT): burrow parks, and a later failBoot changes nothing", () => {
    const end = endInNamespace({ onfail: "poweroff", scenario: "late", prefix: ["setpriv", "--bounding-set", "-sys_boot"] });
    // The fixture ends itself (exit 42) after the late failBoot had its chance.
    expect(end.signal).toBeNull();
    expect(end.exitCode).toBe(42);
    expect(end.console).toBe(`burrow: guest exit status 1 run ${RUN_ID}\n`);
    expect(lines(end.stderr)).toEqual([
      "burrow: error: boot failed: test cause",
      "burrow: powering off",
      'burrow: error: reboot(poweroff) failed: reboot(cmd="0x4321fedc") failed: EPERM (operation not permitted)',
      "fixture: still parked",
    ]);
  }, 30_000);

  test("the fixture refuses to run anywhere but PID 1 (ending.ts would only exit there, but it must not run at all)", () => {
    const result = Bun.spawnSync([process.execPath, FIXTURE, "poweroff", RUN_ID, "none", "1"], { stdout: "pipe", stderr: "pipe", timeout: 30_000 });
    expect(result.exitCode).toBe(99);
    expect(result.stderr.toString()).toMatch(/refusing to run as PID \d+/);
  }, 30_000);
});
