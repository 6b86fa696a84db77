// Named VMs through the CLI, as a user types it: `burrow run --name --detach`, then exec, cp, ps,
// logs, kill and stop from other processes (the VM's burrow run serves its control channel in the
// state directory); a name that does not exist and a VM that has ended are one line each.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BURROW, copyOfRoot, INITRAMFS, KERNEL_MICRO, requireArtifacts } from "../helpers/artifacts";
import { startNamedVm, type NamedVm } from "../helpers/named-vm";

const BOOT_TIMEOUT_MS = 600_000;
let work: string;
let vm: NamedVm;

beforeAll(async () => {
  requireArtifacts(KERNEL_MICRO, INITRAMFS, BURROW);
  work = mkdtempSync(join(tmpdir(), "burrow-named-test-"));
  vm = await startNamedVm("web", ["--kernel", KERNEL_MICRO, "--initrd", INITRAMFS, "--disk", copyOfRoot(work), "--timeout", "600", "--append", 'burrow.agent=/bin/sh -- -c "echo workload: up; exec sleep 100000"']);
}, BOOT_TIMEOUT_MS);

afterAll(async () => {
  await vm?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe("a detached named VM driven by burrow's verbs", () => {
  test("exec: output, status, -e, -w, -u, stdin with -i, a missing program 127, --timeout 124", async () => {
    const hello = await vm.burrow(["exec", "-e", "WHO=host", "-w", "/tmp", "-u", "app", "web", "--", "/bin/sh", "-c", 'echo "$WHO $(pwd) $(id -un)"; exit 5']);
    expect({ out: hello.stdout, code: hello.code }, hello.stderr).toEqual({ out: "host /tmp app\n", code: 5 });
    const piped = await vm.burrow(["exec", "-i", "web", "--", "sha256sum"], "piped through\n");
    expect(piped.stdout.split(" ")[0]).toBe(createHash("sha256").update("piped through\n").digest("hex"));
    const missing = await vm.burrow(["exec", "web", "--", "no-such-program"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
    expect(missing.stderr).toContain("ENOENT");
    const slow = await vm.burrow(["exec", "--timeout", "1", "web", "--", "sleep", "30"]);
    expect(slow.code).toBe(124);
  }, BOOT_TIMEOUT_MS);

  test("cp both ways: the same bytes and mode", async () => {
    const local = join(work, "up.bin");
    const data = randomBytes(3 * 2 ** 20);
    writeFileSync(local, data, { mode: 0o640 });
    const up = await vm.burrow(["cp", local, "web:/tmp/up.bin"]);
    expect(up.code, up.stderr).toBe(0);
    const back = join(work, "down.bin");
    const down = await vm.burrow(["cp", "web:/tmp/up.bin", back]);
    expect(down.code, down.stderr).toBe(0);
    expect(Buffer.from(readFileSync(back)).equals(data)).toBe(true);
    expect(statSync(back).mode & 0o777).toBe(0o640);
    const absent = await vm.burrow(["cp", "web:/no/such/file", join(work, "x")]);
    expect(absent.code).toBe(1);
    expect(absent.stderr).toContain("ENOENT");
    expect(existsSync(join(work, "x"))).toBe(false);
  }, BOOT_TIMEOUT_MS);

  test("ps --json lists it running; logs shows its console", async () => {
    const listed = JSON.parse((await vm.burrow(["ps", "--json"])).stdout) as { name: string; state: string }[];
    expect(listed.map((entry) => [entry.name, entry.state])).toEqual([["web", "running"]]);
    const logs = await vm.burrow(["logs", "web"]);
    expect(logs.stdout).toContain("workload: up");
  }, BOOT_TIMEOUT_MS);

  test("an unknown name is one line; stop ends the VM in order; after it, the name is gone", async () => {
    const unknown = await vm.burrow(["exec", "nosuchvm", "--", "true"]);
    expect({ code: unknown.code, lines: unknown.stderr.trim().split("\n") }).toEqual({ code: 1, lines: [expect.stringContaining("no VM named nosuchvm")] });
    const stopped = await vm.burrow(["stop", "web"]);
    expect(stopped.code, stopped.stderr).toBe(0);
    const after = await vm.burrow(["exec", "web", "--", "true"]);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/no VM named web|VM web has ended/);
  }, BOOT_TIMEOUT_MS);
});

describe("a named VM whose burrow run died", () => {
  test("exec says it has ended, in one line, and removes the stale directory", async () => {
    const dead = await startNamedVm("gone", ["--kernel", KERNEL_MICRO, "--initrd", INITRAMFS, "--disk", copyOfRoot(work), "--timeout", "600", "--append", 'burrow.agent=/bin/sh -- -c "exec sleep 100000"']);
    try {
      const record = JSON.parse(readFileSync(join(dead.stateDir, "gone", "vm.json"), "utf8")) as { ownerPid: number };
      process.kill(record.ownerPid, "SIGKILL");
      for (let waited = 0; waited < 10_000; waited += 100) {
        try {
          process.kill(record.ownerPid, 0);
          await Bun.sleep(100);
        } catch {
          break;
        }
      }
      const result = await dead.burrow(["exec", "gone", "--", "true"]);
      expect(result.code).toBe(1);
      expect(result.stderr.trim().split("\n")).toEqual([expect.stringMatching(/VM gone has ended: its burrow run \(pid \d+\) is gone; removed its stale state directory/)]);
      expect(existsSync(join(dead.stateDir, "gone"))).toBe(false);
    } finally {
      await dead.cleanup();
    }
  }, BOOT_TIMEOUT_MS);
});
