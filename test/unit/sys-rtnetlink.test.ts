// rtnetlink requests as bytes (what `ip` would send for the same change), the kernel's ack and
// error read back, and every layout and number compiled against the kernel's UAPI headers for
// both architectures (as sys-pty.test.ts does for the tty side; nothing runs).
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import * as sys from "../../src/sys";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

describe("requests", () => {
  test("RTM_NEWLINK: lo up (flags and change IFF_UP), eth0 up with MTU 1400", () => {
    const up = sys.linkUpRequest(1, null);
    const message = sys.netlinkMessage(sys.NetlinkMessage.RTM_NEWLINK, sys.NetlinkFlags.REQUEST | sys.NetlinkFlags.ACK, 7, up.body, up.attributes);
    // len 32, type 16, flags 5, seq 7, pid 0 | family 0, type 0, index 1, flags 1, change 1
    expect(hex(message)).toBe("20000000" + "1000" + "0500" + "07000000" + "00000000" + "0000" + "0000" + "01000000" + "01000000" + "01000000");
    const mtu = sys.linkUpRequest(2, 1400);
    expect(hex(mtu.attributes[0]!)).toBe("0800" + "0400" + "78050000");
  });

  test("RTM_NEWADDR: IPv4 with its broadcast, IPv6 without DAD", () => {
    const v4 = sys.addressRequest({ index: 2, address: Uint8Array.from([10, 88, 0, 4]), prefix: 16 });
    expect(hex(v4.body)).toBe("02" + "10" + "00" + "00" + "02000000");
    expect(v4.attributes.map(hex)).toEqual(["080002000a580004", "080001000a580004", "080004000a58ffff"]);
    // /31 and /32 have no broadcast address.
    expect(sys.addressRequest({ index: 2, address: Uint8Array.from([10, 0, 0, 1]), prefix: 31 }).attributes).toHaveLength(2);
    const all = sys.addressRequest({ index: 2, address: Uint8Array.from([10, 0, 0, 1]), prefix: 0 });
    expect(hex(all.attributes[2]!)).toBe("08000400ffffffff");
    const v6 = sys.addressRequest({ index: 3, address: new Uint8Array(16).fill(0xfd, 0, 1), prefix: 64 });
    expect(hex(v6.body)).toBe("0a" + "40" + "02" + "00" + "03000000");
    expect(v6.attributes.map((attribute) => attribute.byteLength)).toEqual([20, 20]);
  });

  test("RTM_NEWROUTE: a default route via a gateway with a metric; a link route; onlink", () => {
    const route = sys.routeRequest({ index: 2, destination: new Uint8Array(4), prefix: 0, via: Uint8Array.from([10, 88, 0, 1]), onlink: false, metric: 100 });
    // family 2, dst_len 0, src_len 0, tos 0, table main, proto static, scope universe, type unicast, flags 0
    expect(hex(route.body)).toBe("02" + "00" + "00" + "00" + "fe" + "04" + "00" + "01" + "00000000");
    // RTA_OIF 2, no RTA_DST for /0, RTA_GATEWAY, RTA_PRIORITY 100.
    expect(route.attributes.map(hex)).toEqual(["0800040002000000", "080005000a580001", "0800060064000000"]);
    const link = sys.routeRequest({ index: 2, destination: Uint8Array.from([169, 254, 1, 1]), prefix: 32, via: null, onlink: false, metric: null });
    expect(link.body[sys.RTMSG.rtm_scope]).toBe(sys.RouteConst.RT_SCOPE_LINK);
    expect(link.attributes.map(hex)).toEqual(["0800040002000000", "08000100a9fe0101"]);
    const onlink = sys.routeRequest({ index: 2, destination: new Uint8Array(4), prefix: 0, via: Uint8Array.from([169, 254, 1, 1]), onlink: true, metric: null });
    expect(new DataView(onlink.body.buffer).getUint32(sys.RTMSG.rtm_flags, true)).toBe(sys.RouteConst.RTNH_F_ONLINK);
  });

  test("attributes are padded to 4 bytes; the message length counts them", () => {
    expect(hex(sys.rtattr(3, Uint8Array.from([0x6c, 0x6f, 0])))).toBe("0700" + "0300" + "6c6f0000");
    const message = sys.netlinkMessage(20, 1, 1, new Uint8Array(8), [sys.rtattr(3, new Uint8Array(3))]);
    expect(message.byteLength).toBe(16 + 8 + 8);
    expect(new DataView(message.buffer).getUint32(0, true)).toBe(32);
  });
});

describe("the kernel's answer", () => {
  /** An NLMSG_ERROR message for `seq` carrying `error` (a negative errno; 0: the ack). */
  function errorMessage(seq: number, error: number): Uint8Array {
    const out = new Uint8Array(16 + 4 + 16);
    const view = new DataView(out.buffer);
    view.setUint32(0, out.byteLength, true);
    view.setUint16(4, sys.NetlinkMessage.NLMSG_ERROR, true);
    view.setUint32(8, seq, true);
    view.setInt32(16, error, true);
    return out;
  }

  test("an ack is 0, an error its errno; another request's answer or nothing is null", () => {
    expect(sys.ackError(errorMessage(5, 0), 5)).toBe(0);
    expect(sys.ackError(errorMessage(5, -17), 5)).toBe(17);
    expect(sys.ackError(errorMessage(4, -17), 5)).toBeNull();
    expect(sys.ackError(new Uint8Array(0), 5)).toBeNull();
    // A truncated header is no answer.
    expect(sys.ackError(errorMessage(5, 0).subarray(0, 10), 5)).toBeNull();
    const both = new Uint8Array(72);
    both.set(errorMessage(4, -1), 0);
    both.set(errorMessage(5, -101), 36);
    expect(sys.ackError(both, 5)).toBe(101);
  });

  test("a refusal names the request, its arguments and the errno", () => {
    const error = new sys.SysError("RTM_NEWROUTE", 101, { dev: "eth0", route: "0.0.0.0/0,via=10.9.9.1" });
    expect(error.message).toBe('RTM_NEWROUTE(dev="eth0", route="0.0.0.0/0,via=10.9.9.1") failed: ENETUNREACH (network is unreachable)');
  });
});

const TARGETS = {
  x86_64: { compilers: process.arch === "x64" ? ["cc", "gcc", "x86_64-linux-gnu-gcc"] : ["x86_64-linux-gnu-gcc"], dir: "/usr/include/x86_64-linux-gnu" },
  arm64: { compilers: process.arch === "arm64" ? ["cc", "gcc", "aarch64-linux-gnu-gcc"] : ["aarch64-linux-gnu-gcc"], dir: "/usr/include/aarch64-linux-gnu" },
} as const;

function checks(): string[] {
  const fields = (struct: string, layout: Record<string, number>) =>
    Object.entries(layout).map(([field, value]) => (field === "size" ? `sizeof(struct ${struct}) == ${value}` : `__builtin_offsetof(struct ${struct}, ${field}) == ${value}`));
  const named = (group: Record<string, number>, prefix = "") => Object.entries(group).map(([name, value]) => `${prefix}${name} == ${value}`);
  return [
    ...fields("nlmsghdr", sys.NLMSGHDR),
    ...fields("ifinfomsg", sys.IFINFOMSG),
    ...fields("ifaddrmsg", sys.IFADDRMSG),
    ...fields("rtmsg", sys.RTMSG),
    ...fields("rtattr", sys.RTATTR),
    `__builtin_offsetof(struct nlmsgerr, error) == ${sys.NLMSGERR.error}`,
    `RTA_ALIGN(1) == 4 && NLMSG_HDRLEN == ${sys.NLMSGHDR.size}`,
    ...named(sys.NetlinkFlags, "NLM_F_"),
    ...named(sys.NetlinkMessage),
    ...named(sys.IflaAttr),
    ...named(sys.IfaAttr),
    ...named(sys.IfaFlags),
    ...named(sys.RtaAttr),
    ...named(sys.RouteConst),
    `NETLINK_ROUTE == ${sys.NetlinkProtocol.ROUTE}`,
  ];
}

/** The address families and IFF_UP are the C library's (the kernel's UAPI keeps AF_* out; its linux/if.h needs <sys/socket.h>). */
const FAMILIES = [`IFF_UP == ${sys.IFF_UP}`, `AF_INET == ${sys.AddressFamily.INET} && AF_INET6 == ${sys.AddressFamily.INET6} && AF_NETLINK == ${sys.AddressFamily.NETLINK}`];

const asserts = (list: string[]) => list.map((check, index) => `_Static_assert(${check}, "check ${index}: ${check.replaceAll('"', "'")}");`);
const SOURCE = ["#include <linux/netlink.h>", "#include <linux/rtnetlink.h>", "#include <linux/if_addr.h>", "#include <linux/if_link.h>", ...asserts(checks())].join("\n") + "\n";

const FAMILY_SOURCE = ["#include <sys/socket.h>", "#include <net/if.h>", ...asserts(FAMILIES)].join("\n") + "\n";

function compile(compiler: string, source: string, kernelHeaders: string | null): { exitCode: number; stderr: string } {
  const include = kernelHeaders === null ? [] : ["-nostdinc", "-isystem", kernelHeaders, "-isystem", "/usr/include"];
  const result = Bun.spawnSync([compiler, "-fsyntax-only", ...include, "-x", "c", "-"], { stdin: Buffer.from(source) });
  return { exitCode: result.exitCode, stderr: result.stderr.toString() };
}

describe("rtnetlink layouts per architecture", () => {
  for (const [arch, target] of Object.entries(TARGETS)) {
    const compiler = target.compilers.map((name) => Bun.which(name)).find((path) => path !== null) ?? null;
    const ready = compiler !== null && existsSync(`${target.dir}/asm/types.h`) && existsSync("/usr/include/linux/rtnetlink.h");
    if (!ready) console.warn(`sys-rtnetlink: ${arch} skipped: no compiler (${target.compilers.join(", ")}) or no ${target.dir}/asm (linux-libc-dev${arch === "arm64" ? ":arm64" : ""})`);
    test.skipIf(!ready)(`${arch}: message layouts, numbers and flags match the kernel's headers`, () => {
      expect(compile(compiler!, SOURCE, target.dir)).toEqual({ exitCode: 0, stderr: "" });
    });
    test.skipIf(!ready)(`${arch}: the address families and IFF_UP match the C library's`, () => {
      expect(compile(compiler!, FAMILY_SOURCE, null)).toEqual({ exitCode: 0, stderr: "" });
    });
  }

  test("a wrong expectation fails the compile (the checks can fail)", () => {
    const compiler = ["cc", "gcc"].map((name) => Bun.which(name)).find((path) => path !== null);
    const dir = process.arch === "x64" ? TARGETS.x86_64.dir : TARGETS.arm64.dir;
    if (!compiler || !existsSync("/usr/include/linux/rtnetlink.h")) return void console.warn("sys-rtnetlink: no compiler or headers; the negative check is skipped");
    const wrong = SOURCE.replace(`RTM_NEWADDR == ${sys.NetlinkMessage.RTM_NEWADDR}`, "RTM_NEWADDR == 99");
    expect(wrong).not.toBe(SOURCE);
    expect(compile(compiler, wrong, dir).exitCode).not.toBe(0);
  });
});
