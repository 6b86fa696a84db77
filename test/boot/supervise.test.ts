// Supervise mode end to end on the micro kernel: supervise mode (the default; the tests still say
// burrow.supervise=1) hands PID 1 to the resident supervisor (image/supervisor/), which runs the
// agent as its child. What the host sees (the exit status, the lines), what the next boot finds on
// the disk (the file, a clean filesystem), and what the workload saw (its credentials). Cgroup
// limits need Debian's kernel (the micro kernel has no cgroups). burrow.supervise=0 (exec mode)
// where a test is about the agent replacing PID 1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "bun";
import { BURROW, copyOfRoot, INITRAMFS, INITRAMFS_DEBIAN, KERNEL, KERNEL_MICRO, requireArtifacts, ROOTFS } from "../helpers/artifacts";
import { boot, consoleLines, tail, type BootResult } from "../helpers/boot";
import { startCliRun } from "../helpers/cli-run";

const BOOT_TIMEOUT_MS = 150_000;
let work: string;

beforeAll(() => {
  requireArtifacts(KERNEL_MICRO, INITRAMFS, ROOTFS, BURROW);
  work = mkdtempSync(join(tmpdir(), "burrow-supervise-"));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A fresh writable copy of the demo root for one boot. */
const rootCopy = () => copyOfRoot(work);

/**
 * A shell workload under the supervisor: `script` runs as `sh -c`, with extra kernel words before
 * it. The kernel's command line has quotes but no escapes: a script holds no double quote.
 */
function supervised(script: string, words = ""): string {
  if (script.includes('"')) throw new Error(`a kernel command line cannot carry a double quote inside quotes: ${script}`);
  return `burrow.supervise=1 ${words} burrow.agent=/bin/sh -- -c "${script}"`;
}

function fileOnDisk(disk: string, path: string): string | null {
  const result = spawnSync(["debugfs", "-R", `cat ${path}`, disk], { stdout: "pipe", stderr: "pipe" });
  const text = result.stdout.toString();
  return result.stderr.toString().includes("not found") ? null : text;
}

/**
 * e2fsck -n: exit 0 and "clean" — the filesystem was unmounted or made read-only before the end;
 * then e2fsck -fn: the full check finds nothing to fix either.
 */
function expectClean(disk: string): void {
  const result = spawnSync(["e2fsck", "-n", disk], { stdout: "pipe", stderr: "pipe" });
  expect(`${result.exitCode} ${result.stdout.toString().trim()}`).toMatch(/^0 .*clean/);
  const full = spawnSync(["e2fsck", "-fn", disk], { stdout: "pipe", stderr: "pipe" });
  expect(full.exitCode, `${full.stdout.toString()}${full.stderr.toString()}`).toBe(0);
}

function explain(result: BootResult): string {
  return `outcome ${result.outcome} (${result.reason})\n${tail(result, 60)}`;
}

/** Lines the workload printed ("ws: key value"), key → value. */
function reported(result: BootResult): Map<string, string> {
  const lines = consoleLines(result.output).map((line) => /^ws: (\S+) ?(.*)$/.exec(line)).filter((match) => match !== null);
  return new Map(lines.map((match) => [match![1]!, match![2]!]));
}

describe("supervise mode: the workload's exit", () => {
  test("an exit code reaches the host after the write is on disk, and the root is clean", async () => {
    const disk = rootCopy();
    const result = await boot({ initrd: INITRAMFS, disks: [disk], append: supervised("echo wrote > /x; exit 3") });
    expect(result.exitCode, explain(result)).toBe(3);
    expect(result.outcome).toBe("exit-status");
    expect(result.output).not.toMatch(/Kernel panic/);
    expect(result.burrow.some((line) => /^burrow: workload \(pid \d+\) exited with status 3$/.test(line))).toBe(true);
    expect(result.burrow.some((line) => /^burrow: teardown: .*\/ read-only, synced/.test(line))).toBe(true);
    // The status line comes before the teardown starts.
    const statusAt = result.output.indexOf("burrow: guest exit status 3");
    expect(statusAt).toBeGreaterThan(0);
    expect(statusAt).toBeLessThan(result.output.indexOf("burrow: teardown:"));
    expect(fileOnDisk(disk, "/x")).toBe("wrote\n");
    expectClean(disk);
  }, BOOT_TIMEOUT_MS);

  test("a workload killed by a signal reports 128+signal", async () => {
    const result = await boot({ initrd: INITRAMFS, disks: [rootCopy()], append: supervised("kill -9 $$") });
    expect(result.exitCode, explain(result)).toBe(137);
    expect(result.burrow.some((line) => /workload \(pid \d+\) was killed by signal 9: status 137/.test(line))).toBe(true);
  }, BOOT_TIMEOUT_MS);

  test("burrow.onexit=reboot ends the VM with a restart, the status still reported", async () => {
    const result = await boot({ initrd: INITRAMFS, disks: [rootCopy()], append: supervised("exit 4", "burrow.onexit=reboot") });
    expect(result.exitCode, explain(result)).toBe(4);
    expect(result.output).toMatch(/reboot: Restarting system/);
  }, BOOT_TIMEOUT_MS);
});

describe("supervise mode: signals to PID 1 are VM control", () => {
  // busybox's applets signal PID 1 (poweroff SIGUSR2, reboot SIGTERM, halt SIGUSR1); 38 is glibc's
  // SIGRTMIN+4 (systemd's poweroff; Debian's busybox knows no RTMIN names).
  const cases = [
    { name: "busybox poweroff", command: "poweroff", signal: "SIGUSR2", end: /reboot: Power down/ },
    { name: "busybox reboot", command: "reboot", signal: "SIGTERM", end: /reboot: Restarting system/ },
    { name: "busybox halt", command: "halt", signal: "SIGUSR1", end: /reboot: System halted/ },
    { name: "kill -RTMIN+4 1", command: "kill -38 1", signal: "SIGRTMIN+4", end: /reboot: Power down/ },
  ];
  for (const { name, command, signal, end } of cases) {
    test(`${name}: an orderly stop, the write kept`, async () => {
      const disk = rootCopy();
      const result = await boot({ initrd: INITRAMFS, disks: [disk], append: supervised(`echo kept > /k; ${command}; sleep 100`) });
      expect(result.burrow.some((line) => line.startsWith(`burrow: stop (${signal}): SIGTERM to the workload`)), explain(result)).toBe(true);
      // The shell dies of the SIGTERM it gets in the stop.
      expect(result.exitCode).toBe(143);
      expect(result.output).toMatch(end);
      expect(fileOnDisk(disk, "/k")).toBe("kept\n");
      expectClean(disk);
    }, BOOT_TIMEOUT_MS);
  }

  test("a workload that ignores SIGTERM is killed after burrow.stop-timeout, and the VM still ends", async () => {
    const result = await boot({ initrd: INITRAMFS, disks: [rootCopy()], append: supervised(`trap '' TERM; kill -USR2 1; sleep 100`, "burrow.stop-timeout=1000") });
    expect(result.exitCode, explain(result)).toBe(137);
    expect(result.burrow.some((line) => /still running 1000 ms after SIGTERM; SIGKILL to everything left/.test(line))).toBe(true);
    expect(result.output).toMatch(/reboot: Power down/);
    // The sleep's 100 s never ran out: the stop ended it within the grace period.
    expect(result.wallMs).toBeLessThan(60_000);
  }, BOOT_TIMEOUT_MS);
});

describe("supervise mode: reaping", () => {
  test("an orphan storm leaves no zombie", async () => {
    // Each subshell starts a short-lived child and exits at once: the child is an orphan of PID 1.
    const script = `i=0; while [ $i -lt 400 ]; do (sleep 0 &); i=$((i+1)); done; sleep 1; ` +
      `z=0; for s in /proc/[0-9]*/stat; do read -r line < $s 2>/dev/null && case \${line##*) } in Z*) z=$((z+1));; esac; done; echo ws: zombies $z; ` +
      `echo ws: pid1 $(sed -n -e s/^VmRSS:[[:space:]]*//p -e s/^Threads:[[:space:]]*//p /proc/1/status)`;
    const result = await boot({ initrd: INITRAMFS, disks: [rootCopy()], append: supervised(script) });
    expect(reported(result).get("zombies"), explain(result)).toBe("0");
    // The resident PID 1 while the workload runs: one thread, well under 1 MiB.
    const [rss, unit, threads] = (reported(result).get("pid1") ?? "").split(" ");
    expect(unit).toBe("kB");
    expect(Number(rss)).toBeLessThan(1024);
    expect(threads).toBe("1");
    expect(result.exitCode).toBe(0);
  }, BOOT_TIMEOUT_MS);
});

describe("supervise mode: the workload spec", () => {
  // echo joins the unquoted fields with single spaces.
  const status = `for k in Uid Gid Groups NoNewPrivs CapBnd; do echo ws: $k $(sed -n s/^$k:[[:space:]]*//p /proc/self/status); done; echo ws: cwd $(pwd); echo ws: hostname $(hostname); echo ws: nofile $(ulimit -n)`;

  test("user by name (groups from /etc/group), cwd, hostname, rlimit, no_new_privs, bounding set", async () => {
    const words = "burrow.user=app burrow.cwd=/home/app burrow.hostname=sandbox-1 burrow.rlimit.nofile=256:512 burrow.no-new-privs=1 burrow.caps=net_bind_service";
    const result = await boot({ initrd: INITRAMFS, disks: [rootCopy()], append: supervised(status, words) });
    const seen = reported(result);
    expect(seen.get("Uid"), explain(result)).toBe("1000 1000 1000 1000");
    expect(seen.get("Gid")).toBe("1000 1000 1000 1000");
    expect(seen.get("Groups")?.split(" ").sort()).toEqual(["10", "1000"]);
    expect(seen.get("NoNewPrivs")).toBe("1");
    expect(seen.get("CapBnd")).toBe("0000000000000400");
    expect(seen.get("cwd")).toBe("/home/app");
    expect(seen.get("hostname")).toBe("sandbox-1");
    expect(seen.get("nofile")).toBe("256");
    expect(result.exitCode).toBe(0);
  }, BOOT_TIMEOUT_MS);

  test("an OCI runtime spec on the root (burrow.spec=): its args, env, user, cwd, rlimits and hostname", async () => {
    const disk = rootCopy();
    const spec = {
      ociVersion: "1.0.2",
      process: {
        args: ["sh", "-c", "echo ws: who $(id -u):$(id -g) cwd=$(pwd) mode=$MODE nofile=$(ulimit -n) host=$(hostname)"],
        env: ["MODE=oci"], cwd: "/home/app", user: { uid: 1000, gid: 1000 },
        rlimits: [{ type: "RLIMIT_NOFILE", soft: 100, hard: 200 }], noNewPrivileges: true,
      },
      hostname: "from-spec",
    };
    const file = join(work, "config.json");
    await Bun.write(file, JSON.stringify(spec));
    const wrote = spawnSync(["debugfs", "-w", "-R", `write ${file} /config.json`, disk], { stdout: "pipe", stderr: "pipe" });
    expect(wrote.exitCode).toBe(0);
    const result = await boot({ initrd: INITRAMFS, disks: [disk], append: "burrow.supervise=1 burrow.spec=/config.json" });
    expect(reported(result).get("who"), explain(result)).toBe("1000:1000 cwd=/home/app mode=oci nofile=100 host=from-spec");
    expect(result.exitCode).toBe(0);
  }, BOOT_TIMEOUT_MS);

  test("a spec that cannot be applied fails closed: one line, the fallback, the workload never runs", async () => {
    const disk = rootCopy();
    const result = await boot({ initrd: INITRAMFS, disks: [disk], append: supervised("echo ran > /ran", "burrow.user=nosuchuser") });
    expect(result.exitCode, explain(result)).toBe(1);
    expect(result.burrow.some((line) => /^burrow: (error: )?boot failed: start-workload: .*nosuchuser/.test(line))).toBe(true);
    expect(fileOnDisk(disk, "/ran")).toBeNull();
  }, BOOT_TIMEOUT_MS);

  test("a bad value fails closed too, and so does a workload spec in exec mode with a bad cwd", async () => {
    const bad = await boot({ initrd: INITRAMFS, disks: [rootCopy()], append: supervised("exit 0", "burrow.rlimit.nofile=lots") });
    expect(bad.exitCode, explain(bad)).toBe(1);
    expect(bad.burrow.some((line) => /burrow\.rlimit\.nofile=lots/.test(line))).toBe(true);
    const cwd = await boot({ initrd: INITRAMFS, disks: [rootCopy()], append: "burrow.supervise=0 burrow.cwd=/nonexistent burrow.agent=/bin/sh -- -c \"exit 0\"" });
    expect(cwd.exitCode, explain(cwd)).toBe(1);
    expect(cwd.burrow.some((line) => /cannot start the workload: chdir \/nonexistent: ENOENT/.test(line))).toBe(true);
  }, BOOT_TIMEOUT_MS * 2);

  test("exec mode (burrow.supervise=0) applies the spec before the exec: the agent is PID 1 as the user", async () => {
    const script = `echo ws: pid $$; echo ws: Uid $(sed -n s/^Uid:[[:space:]]*//p /proc/self/status); exit 0`;
    const result = await boot({ initrd: INITRAMFS, disks: [rootCopy()], append: `burrow.supervise=0 burrow.user=1000:1000 burrow.agent=/bin/sh -- -c "${script}"` });
    const seen = reported(result);
    expect(seen.get("pid"), explain(result)).toBe("1");
    expect(seen.get("Uid")).toBe("1000 1000 1000 1000");
  }, BOOT_TIMEOUT_MS);
});

describe("supervise mode: data safety on an overlay's upper disk", () => {
  test("a write to the overlay reaches the upper disk, which is left clean (frozen)", async () => {
    const upper = join(work, "upper.ext4");
    const made = spawnSync(["mkfs.ext4", "-q", "-F", upper, "16M"], { stdout: "pipe", stderr: "pipe" });
    expect(made.exitCode, made.stderr.toString()).toBe(0);
    const result = await boot({
      initrd: INITRAMFS, disks: [rootCopy()], serialDisks: [{ serial: "upper", file: upper }],
      append: supervised("echo layered > /w; kill -USR2 1; sleep 100", "ro burrow.overlay=SERIAL=upper"),
    });
    expect(result.exitCode, explain(result)).toBe(143);
    expect(result.burrow.some((line) => /teardown: .*froze 1/.test(line))).toBe(true);
    expect(fileOnDisk(upper, "/upper/w")).toBe("layered\n");
    expectClean(upper);
  }, BOOT_TIMEOUT_MS);
});

describe("supervise mode: a graceful stop from the host", () => {
  test("SIGINT to burrow run stops the workload in order: the write kept, QEMU gone, the status reported", async () => {
    const disk = rootCopy();
    const run = startCliRun(["--kernel", KERNEL_MICRO, "--initrd", INITRAMFS, "--disk", disk, "--append", supervised("echo host > /h; sync; echo ws: ready; sleep 100")]);
    expect(await run.waitFor(/^ws: ready/m)).toBe(true);
    const { code, ms: stopMs, output, stderr } = await run.stop("SIGINT");
    expect(code, `${stderr}\n${output.slice(-3000)}`).toBe(143);
    expect(stderr).toMatch(/stopped by SIGINT/);
    expect(output).toMatch(/burrow: stop \(the host's stop request\): SIGTERM to the workload/);
    console.error(`host stop request -> burrow run exit: ${stopMs.toFixed(0)} ms`);
    // No QEMU of this run is left (its disk is in the argv of no process).
    const left = spawnSync(["pgrep", "-f", disk]).stdout.toString().trim();
    expect(left).toBe("");
    expect(fileOnDisk(disk, "/h")).toBe("host\n");
    expectClean(disk);
  }, BOOT_TIMEOUT_MS);
});

describe("supervise mode: cgroup limits (Debian's kernel)", () => {
  test("an OOM inside burrow.memory-max: PID 1 survives, the host gets 137 and the OOM note", async () => {
    requireArtifacts(KERNEL, INITRAMFS_DEBIAN);
    // tmpfs pages are charged to the writer's cgroup; memory.swap.max=0 leaves the OOM killer no way out.
    const script = "echo ws: started; dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>/dev/null; echo ws: survived";
    const result = await boot({ kernel: KERNEL, initrd: INITRAMFS_DEBIAN, disks: [rootCopy()], mem: "512M", append: supervised(script, "burrow.memory-max=48M burrow.pids-max=64") });
    expect(reported(result).has("started"), explain(result)).toBe(true);
    expect(reported(result).has("survived")).toBe(false);
    expect(result.exitCode).toBe(137);
    expect(result.burrow.some((line) => /killed by the OOM killer/.test(line))).toBe(true);
    expect(result.output).toMatch(/reboot: Power down/);
  }, BOOT_TIMEOUT_MS);
});
