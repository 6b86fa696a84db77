// Networking on the micro kernel: QEMU's user network, the agent takes an address by DHCP, and
// the host reaches a TCP service in the guest through a forwarded port (127.0.0.1 on the host).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "bun";
import { runVm } from "../../src/host/qemu";
import { BURROW, INITRAMFS, KERNEL_MICRO, requireArtifacts, ROOT } from "../helpers/artifacts";
import { parseConsole, tail } from "../helpers/boot";
import { fetchReply, freePort } from "../helpers/net";

const GUEST_PORT = 8080;

describe("networking (micro kernel, QEMU user network)", () => {
  const work = mkdtempSync(join(tmpdir(), "burrow-net-"));
  const rootfs = join(work, "rootfs.ext4");

  beforeAll(() => {
    requireArtifacts(KERNEL_MICRO, INITRAMFS, BURROW);
    const made = spawnSync([join(ROOT, "scripts/make-rootfs.sh"), rootfs, join(ROOT, "test/fixtures/net/agent.sh")], { stdout: "pipe", stderr: "pipe" });
    if (made.exitCode !== 0) throw new Error(`make-rootfs.sh: ${made.stderr.toString()}`);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test("the agent gets an address by DHCP and the host reaches its TCP port", async () => {
    const hostPort = await freePort();
    const token = `t${Date.now().toString(36)}`;
    let reply = "";
    let asking: Promise<void> | null = null;
    const ask = async () => {
      // The agent says "listening" just before nc binds: retry until the reply carries the token.
      for (let attempt = 0; attempt < 50 && !reply.includes("guest-token="); attempt++) {
        reply = await fetchReply(hostPort);
        if (!reply) await Bun.sleep(200);
      }
    };
    let seen = "";
    const result = await runVm({
      kernel: KERNEL_MICRO, initrd: INITRAMFS, disks: [rootfs], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "tcg",
      append: `-- ${token}`, timeoutSeconds: 150, net: { forwards: [{ protocol: "tcp", hostPort, guestPort: GUEST_PORT }] },
    }, (text) => {
      seen = (seen + text).slice(-8192);
      if (!asking && seen.includes(`agent: listening ${GUEST_PORT}`)) asking = ask();
    });
    await asking;
    const { agent, burrow } = parseConsole(result.output);
    const why = `${result.reason}\n${tail(result, 60)}`;
    expect(burrow.some((line) => /network: eth0/.test(line)), why).toBe(true);
    // QEMU's user network: the guest is 10.0.2.15/24 behind the gateway 10.0.2.2.
    expect(agent.get("addr"), why).toEqual(["10.0.2.15/24"]);
    expect(agent.get("route")?.[0], why).toContain("default via 10.0.2.2 dev eth0");
    expect(reply.trim(), why).toBe(`guest-token=${token}`);
    expect(agent.has("served"), why).toBe(true);
    // The agent exits under the supervisor (the default), which reports its status.
    expect(result.outcome, why).toBe("exit-status");
    expect(result.exitCode, why).toBe(0);
  }, 200_000);
});
