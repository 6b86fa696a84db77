// The resident supervisor (image/supervisor/) for real, as PID 1 of a throw-away PID + mount
// namespace whose root is a fresh tmpfs (pivot_root, the host's tree detached): its teardown
// unmounts and remounts read-only only what the namespace made. reboot() there ends the
// namespace, not the machine: the kernel kills its init with SIGINT (power-off, halt) or SIGHUP
// (restart), and unshare re-raises that signal.
// SAFETY: the supervisor runs only inside the namespace, after the pivot. Outside PID 1 it never
// kills beyond its workload's group, never tears down and never reboots.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileSupervisor } from "../../src/image/supervisor";

let work: string;
let supervisor: string;
const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find(existsSync) ?? "/bin/busybox";
const RUN_ID = "pr1vRun0123456789";

/** Build a tmpfs root with busybox and the supervisor, pivot into it, then exec the supervisor as the namespace's PID 1. */
const ENTER = `set -e
root=$1; busybox=$2; supervisor=$3; shift 3
mount -t tmpfs -o mode=0755 burrow-test "$root"
mkdir -p "$root/bin" "$root/proc" "$root/old" "$root/dev" "$root/tmp" "$root/data"
cp "$busybox" "$root/bin/busybox"
cp "$supervisor" "$root/bin/supervisor"
mount -t tmpfs burrow-data "$root/data"
cd "$root"
pivot_root . old
/bin/busybox mount -t proc proc /proc
/bin/busybox umount -l /old
/bin/busybox rmdir /old
/bin/busybox --install -s /bin
/bin/busybox mknod /dev/null c 1 3
eval "$PRELUDE"
exec /bin/supervisor "$@"
`;

beforeAll(() => {
  // Never skip: a privileged test that did not run must show up as a failure.
  if (process.getuid?.() !== 0) throw new Error("test/privileged needs root (PID and mount namespaces, reboot() in a PID namespace)");
  work = mkdtempSync(join(tmpdir(), "burrow-supervisor-"));
  const scratch = join(work, "build");
  mkdirSync(scratch);
  supervisor = join(work, "supervisor");
  writeFileSync(supervisor, compileSupervisor(scratch), { mode: 0o755 });
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Ended {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

let runs = 0;

/** `prelude`: shell run in the new root just before the supervisor's exec (fds it opens are inherited). */
function supervise(options: string[], script?: string, prelude = ""): Ended {
  const root = join(work, `root-${++runs}`);
  mkdirSync(root);
  const argv = [
    "unshare", "--fork", "--kill-child", "--pid", "--mount", "--propagation", "private",
    "sh", "-c", ENTER, "enter", root, BUSYBOX, supervisor,
    "console-level=1", `runid=${RUN_ID}`, ...options, ...(script === undefined ? [] : ["--", "/bin/sh", "-c", script]),
  ];
  const result = Bun.spawnSync(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", timeout: 30_000, env: { ...process.env, PRELUDE: prelude } });
  return {
    exitCode: result.exitCode,
    signal: result.signalCode ? String(result.signalCode) : null,
    stdout: result.stdout.toString(),
    stderr: result.stderr.toString(),
  };
}

const lines = (text: string) => text.split("\n").filter(Boolean);
const statusLine = (status: number) => `burrow: guest exit status ${status} run ${RUN_ID}`;

describe("the supervisor as PID 1 of a PID namespace", () => {
  test("the workload's exit code: the status line before the teardown, then power-off", () => {
    const end = supervise([], "echo hello; exit 3");
    expect(end.signal, end.stderr).toBe("SIGINT");
    expect(end.stdout).toBe("hello\n");
    const log = lines(end.stderr);
    const status = log.indexOf(statusLine(3));
    expect(status).toBeGreaterThan(0);
    expect(log.findIndex((line) => line.startsWith("burrow: teardown: "))).toBeGreaterThan(status);
    expect(log.some((line) => /^burrow: workload \(pid \d+\) exited with status 3$/.test(line))).toBe(true);
    // The data tmpfs is unmounted, / made read-only; proc is the kernel's and stays.
    expect(end.stderr).toMatch(/teardown: swapoff 0, unmounted 1, read-only 0, \/ read-only, synced, froze 0/);
    expect(log.at(-1)).toBe("burrow: powering off");
  });

  test("nested mounts go the last first; a busy one is remounted read-only; a layer fd is frozen or named", () => {
    // /data/inner on /data, and fd 5 on /data: the supervisor holds it, so /data stays busy.
    const prelude = "mkdir -p /data/inner && mount -t tmpfs inner /data/inner && exec 5</data";
    const end = supervise(["freeze-fd=5", "log=6"], "touch /data/inner/x; exit 0", prelude);
    expect(end.stderr).toMatch(/teardown: swapoff 0, unmounted 1, read-only 1, \/ read-only, synced, froze 0/);
    expect(end.stderr).toContain("burrow: debug: teardown: /data busy (EBUSY), remounted read-only");
    // tmpfs cannot be frozen: said in one line, the VM still ends.
    expect(end.stderr).toContain("teardown: cannot freeze the overlay's upper layer (fd 5): EOPNOTSUPP");
    expect(end.signal).toBe("SIGINT");
  });

  test("onexit=exit: PID 1 exits with the status, no status line (the kernel reports init's exit)", () => {
    const end = supervise(["onexit=exit"], "exit 7");
    expect(end.exitCode, end.stderr).toBe(7);
    expect(end.stderr).not.toContain("guest exit status");
  });

  test("a workload killed by a signal: 128+signal", () => {
    const end = supervise([], "kill -9 $$");
    expect(end.stderr).toContain("was killed by signal 9: status 137");
    expect(lines(end.stderr)).toContain(statusLine(137));
  });

  test("orphans are reaped as they die: no zombie after an orphan storm", () => {
    const script = `i=0; while [ $i -lt 200 ]; do (sleep 0 &); i=$((i+1)); done; sleep 0.5; ` +
      `z=0; for s in /proc/[0-9]*/stat; do read -r line < $s 2>/dev/null && case "\${line##*) }" in Z*) z=$((z+1));; esac; done; echo "zombies $z"`;
    const end = supervise([], script);
    expect(end.stdout, end.stderr).toBe("zombies 0\n");
  });

  const controls = [
    { name: "SIGUSR2 (busybox poweroff)", kill: "-USR2", shown: "SIGUSR2", signal: "SIGINT" },
    { name: "SIGTERM (busybox reboot)", kill: "-TERM", shown: "SIGTERM", signal: "SIGHUP" },
    { name: "SIGUSR1 (busybox halt)", kill: "-USR1", shown: "SIGUSR1", signal: "SIGINT" },
    { name: "SIGRTMIN+4 (systemd poweroff)", kill: "-38", shown: "SIGRTMIN+4", signal: "SIGINT" },
    { name: "SIGRTMIN+5 (systemd reboot)", kill: "-39", shown: "SIGRTMIN+5", signal: "SIGHUP" },
    { name: "SIGRTMIN+3 (systemd halt)", kill: "-37", shown: "SIGRTMIN+3", signal: "SIGINT" },
  ];
  for (const { name, kill, shown, signal } of controls) {
    test(`${name} to PID 1 stops the workload in order`, () => {
      const end = supervise([], `kill ${kill} 1; sleep 30`);
      expect(end.stderr).toContain(`burrow: stop (${shown}): SIGTERM to the workload`);
      expect(lines(end.stderr)).toContain(statusLine(143));
      expect(end.signal, end.stderr).toBe(signal);
    });
  }

  test("Ctrl-Alt-Del (SIGINT) does what burrow.ctrl-alt-del says; ignore keeps the workload running", () => {
    const ignored = supervise(["ctrl-alt-del=ignore"], "kill -INT 1; sleep 0.3; exit 5");
    expect(ignored.stderr).toContain("Ctrl-Alt-Del ignored");
    expect(lines(ignored.stderr)).toContain(statusLine(5));
    const poweroff = supervise(["ctrl-alt-del=poweroff"], "kill -INT 1; sleep 30");
    expect(poweroff.stderr).toContain("burrow: stop (Ctrl-Alt-Del): SIGTERM to the workload");
    expect(poweroff.signal).toBe("SIGINT");
  });

  test("a workload that ignores SIGTERM is killed after the stop timeout; what it left behind too", () => {
    const end = supervise(["stop-timeout=300"], `trap "" TERM; (trap "" TERM; sleep 30) & kill -USR2 1; sleep 30`);
    expect(end.stderr).toContain("still running 300 ms after SIGTERM; SIGKILL to everything left");
    expect(lines(end.stderr)).toContain(statusLine(137));
    expect(end.signal).toBe("SIGINT");
  });

  test("the workload spec: user, groups, no_new_privs, bounding set, rlimit, cwd, oom_score_adj", () => {
    const script = `for k in Uid Gid Groups NoNewPrivs CapBnd; do echo "$k $(sed -n "s/^$k:[[:space:]]*//p" /proc/self/status | tr -s '\\t ' ' ')"; done; echo "cwd $(pwd)"; echo "nofile $(ulimit -n)"; echo "oom $(cat /proc/self/oom_score_adj)"`;
    const end = supervise(["uid=65534", "gid=65534", "groups=65534,10", "nnp=1", "capkeep=400", "rlimit=7:64:128", "cwd=/tmp", "oom=500"], script);
    const seen = Object.fromEntries(lines(end.stdout).map((line) => [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1).trim()]));
    expect(seen, end.stderr).toEqual({
      Uid: "65534 65534 65534 65534", Gid: "65534 65534 65534 65534", Groups: "10 65534", NoNewPrivs: "1",
      CapBnd: "0000000000000400", cwd: "/tmp", nofile: "64", oom: "500",
    });
  });

  test("a spec step that fails names the step and the errno, and the workload never runs", () => {
    const end = supervise(["cwd=/nonexistent"], "echo ran");
    expect(end.stdout).toBe("");
    expect(end.stderr).toContain("burrow: error: cannot start the workload: chdir /nonexistent: ENOENT");
    expect(lines(end.stderr)).toContain(statusLine(1));
    const missing = supervise([], undefined);
    expect(missing.stderr).toContain("nothing to run");
  });

  test("a bad option is refused with one line and the fallback (onfail=halt)", () => {
    const end = supervise(["onfail=halt", "stop-timeout=soon"], "echo ran");
    expect(end.stdout).toBe("");
    expect(end.stderr).toContain("burrow: error: supervisor: bad option stop-timeout");
    expect(lines(end.stderr)).toContain(statusLine(1));
    expect(end.stderr).toContain("burrow: halting");
  });
});
