// Podman's resource limits on a container VM (dist/burrow-oci): `podman run --memory 256m --cpus 2`
// gives the guest the RAM the limit leaves after the VMM (src/oci/cgroup-sizing.ts) and 2 vCPUs;
// the holder (the pid Podman inspects) and its QEMU sit in the container's cgroup
// (/libpod_parent/libpod-ID, cgroupfs) in every host hierarchy, with the limit written there, and
// `podman stats` reads it; an allocation past the workload's limit ends in the guest's OOM kill
// (status 137) without the host's OOM killer touching QEMU; after `podman rm` the cgroup is gone
// from every hierarchy. The VM is restored from a template made with the same limits. One
// container, one Podman. BURROW_OCI_TEST_RUNTIME=runc runs it on runc,
// where the host's cgroup is the one that OOM-kills and the guest's sizes do not apply.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCgroupMounts } from "../../src/oci/cgroup-mounts";
import { VMM_OVERHEAD_MIB } from "../../src/oci/cgroup-sizing";
import { type Engine, explain, qemuUnder, startPodman, TEST_IMAGE, testRuntime } from "../helpers/oci-engines";

const TIMEOUT_MS = 240_000;
const runtime = testRuntime();
const burrow = runtime.kind === "burrow";
const MIB = 1 << 20;
let podman: Engine;
let work: string;
const ids: string[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "burrow-oci-resources-test-"));
  podman = await startPodman(runtime);
}, TIMEOUT_MS);

afterAll(async () => {
  await podman?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const hierarchies = () => parseCgroupMounts(readFileSync("/proc/self/mountinfo", "utf8"))?.hierarchies ?? [];

/** The memory controller's cgroup of `pid` and the host directory of it (v1's memory hierarchy, else cgroup2). */
function memoryCgroupOf(pid: number): { path: string; dir: string; version: 1 | 2 } {
  const lines = readFileSync(`/proc/${pid}/cgroup`, "utf8").trim().split("\n");
  const memory = hierarchies().find((hierarchy) => hierarchy.controllers.includes("memory")) ?? hierarchies().find((hierarchy) => hierarchy.version === 2)!;
  const controllers = memory.version === 2 ? "" : "memory";
  const line = lines.find((each) => each.split(":")[1] === controllers);
  if (line === undefined) throw new Error(`no ${controllers || "cgroup2"} line in /proc/${pid}/cgroup: ${lines.join(" | ")}`);
  const path = line.slice(line.indexOf(":", line.indexOf(":") + 1) + 1);
  return { path, dir: join(memory.mountPoint, path), version: memory.version };
}

/** The host cgroup's OOM kills so far (v1 memory.oom_control, v2 memory.events); null once the cgroup is gone. */
function oomKills(dir: string, version: 1 | 2): number | null {
  try {
    const text = readFileSync(join(dir, version === 1 ? "memory.oom_control" : "memory.events"), "utf8");
    return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
  } catch {
    return null;
  }
}

async function logsOf(id: string): Promise<string> {
  const result = await podman.cli(["logs", id]);
  return result.stdout;
}

test("--memory 256m --cpus 2: the guest's RAM and vCPUs, the VM's host processes in the container's cgroup, the OOM path, nothing left after rm", async () => {
  // Past what the container's processes may hold: under burrow the guest workload's limit (~135 MiB
  // of the VM's 176; the guest refuses a 300M malloc outright), under runc the 256 MiB itself.
  // exec: dd is the container's process, so its end is the container's (runc's OOM killer takes dd alone, burrow's the whole workload).
  const allocate = `exec dd if=/dev/zero of=/dev/null bs=${burrow ? 200 : 300}M count=1`;
  const script = `grep MemTotal /proc/meminfo; nproc; cat /proc/self/cgroup; echo ready; while [ ! -e /tmp/go ]; do sleep 0.2; done; ${allocate}`;
  const cidFile = join(work, "cid");
  const started = await podman.cli(["run", "-d", "--cidfile", cidFile, "--memory", "256m", "--cpus", "2", "--network", "none", TEST_IMAGE, "sh", "-c", script]);
  const id = existsSync(cidFile) ? readFileSync(cidFile, "utf8").trim() : "";
  if (id) ids.push(id);
  expect(started.code, explain(started)).toBe(0);
  let output = "";
  for (let waited = 0; waited < 120_000 && !output.includes("ready"); waited += 250) {
    await Bun.sleep(250);
    output = await logsOf(id);
  }
  expect(output).toContain("ready");
  const lines = output.trim().split("\n");
  if (burrow) {
    // The VM's RAM is the limit less the VMM's overhead; the kernel keeps a few MiB of it from MemTotal.
    const memTotalKib = Number(/^MemTotal:\s+(\d+) kB$/.exec(lines[0]!)?.[1]);
    const guestKib = (256 - VMM_OVERHEAD_MIB) * 1024;
    expect(memTotalKib).toBeGreaterThan(guestKib - 16 * 1024);
    expect(memTotalKib).toBeLessThanOrEqual(guestKib);
    expect(lines[1]).toBe("2");
    // The workload in its own group of the guest's cgroup2 (the micro kernel's memory and pids controllers).
    expect(lines[2]).toBe("0::/burrow-workload");
    // From a template made with the same limits (its boot made that group): the limits cost no cold boot.
    expect(readFileSync(join(podman.runtimeRoot, id, "holder.log"), "utf8")).toContain("template: restored");
  }

  // The pid Podman knows (burrow's holder, runc's container process) and burrow's QEMU in the container's cgroup, with its limits.
  const pid = Number((await podman.cli(["inspect", "--format", "{{.State.Pid}}", id])).stdout.trim());
  const cgroup = memoryCgroupOf(pid);
  expect(cgroup.path).toBe(`/libpod_parent/libpod-${id}`);
  const own = readFileSync(`/proc/${pid}/cgroup`, "utf8");
  for (const hierarchy of hierarchies()) expect(own).toContain(`:${hierarchy.version === 2 ? "" : hierarchy.controllers.join(",")}:${cgroup.path}\n`);
  if (burrow) {
    const qemu = qemuUnder(pid);
    expect(qemu).toHaveLength(1);
    expect(readFileSync(`/proc/${qemu[0]}/cgroup`, "utf8")).toBe(own);
  }
  expect(readFileSync(join(cgroup.dir, cgroup.version === 1 ? "memory.limit_in_bytes" : "memory.max"), "utf8").trim()).toBe(String(256 * MIB));
  const cpu = hierarchies().find((hierarchy) => hierarchy.controllers.includes("cpu"));
  if (cpu) expect(readFileSync(join(cpu.mountPoint, cgroup.path, "cpu.cfs_quota_us"), "utf8").trim()).toBe("200000");
  else expect(readFileSync(join(cgroup.dir, "cpu.max"), "utf8").trim()).toBe("200000 100000");
  if (burrow) {
    // An exec's host process (its pid-file process) joins the container's cgroup, as runc's exec'd processes do.
    const detached = await podman.cli(["exec", "-d", id, "sleep", "60"]);
    expect(detached.code, explain(detached)).toBe(0);
    const execHolder = Bun.spawnSync(["pgrep", "-f", `exec-holder .*${id}`]).stdout.toString().trim().split("\n").filter(Boolean).map(Number);
    expect(execHolder).toHaveLength(1);
    expect(readFileSync(`/proc/${execHolder[0]}/cgroup`, "utf8")).toBe(own);
  }
  // podman stats reads the cgroup: the VM's memory against the limit.
  const stats = await podman.cli(["stats", "--no-stream", "--format", "{{.MemUsage}}", id]);
  expect(stats.code, explain(stats)).toBe(0);
  expect(stats.stdout).toMatch(/^\d+(\.\d+)?[kMG]i?B \/ 268\.4MB\n$/);

  // The allocation: the host's OOM kills counted until the container ends (its cgroup goes at the engine's cleanup).
  let hostKills = oomKills(cgroup.dir, cgroup.version) ?? 0;
  const go = await podman.cli(["exec", id, "touch", "/tmp/go"]);
  expect(go.code, explain(go)).toBe(0);
  const waiting = podman.cli(["wait", id]);
  const state = { ended: false };
  void waiting.finally(() => (state.ended = true));
  while (!state.ended) {
    hostKills = Math.max(hostKills, oomKills(cgroup.dir, cgroup.version) ?? 0);
    await Bun.sleep(50);
  }
  const ended = await waiting;
  expect(ended.stdout.trim(), explain(ended)).toBe("137");
  // dd's own line ("1+0 records in") would mean the allocation went through.
  expect(await logsOf(id)).not.toContain("records in");
  // burrow: the guest's OOM killer ended the workload, the host's never touched QEMU; runc: the host's is the one.
  if (burrow) expect(hostKills).toBe(0);
  else expect(hostKills).toBeGreaterThan(0);

  const removed = await podman.cli(["rm", id]);
  expect(removed.code, explain(removed)).toBe(0);
  for (const hierarchy of hierarchies()) expect(existsSync(join(hierarchy.mountPoint, cgroup.path))).toBe(false);
  expect(await podman.settledLeftovers(ids)).toEqual([]);
}, TIMEOUT_MS);
