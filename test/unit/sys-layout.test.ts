// The struct layouts and ioctl numbers src/sys writes by hand, checked by each architecture's own
// C compiler against its kernel UAPI headers (compile-time asserts, -fsyntax-only: nothing runs).
// An architecture whose compiler or headers are missing is skipped with one line.
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { RNDADDENTROPY, RNDRESEEDCRNG, SIGINFO } from "../../src/sys";

const TARGETS = {
  x86_64: { compilers: process.arch === "x64" ? ["cc", "gcc", "x86_64-linux-gnu-gcc"] : ["x86_64-linux-gnu-gcc"], dir: "/usr/include/x86_64-linux-gnu" },
  arm64: { compilers: process.arch === "arm64" ? ["cc", "gcc", "aarch64-linux-gnu-gcc"] : ["aarch64-linux-gnu-gcc"], dir: "/usr/include/aarch64-linux-gnu" },
} as const;

/** Each line a C constant expression that must hold; the values on the right are what src/sys uses. */
const CHECKS = [
  `sizeof(siginfo_t) == ${SIGINFO.size}`,
  `__builtin_offsetof(siginfo_t, si_code) == ${SIGINFO.si_code}`,
  `__builtin_offsetof(siginfo_t, si_pid) == ${SIGINFO.si_pid}`,
  `__builtin_offsetof(siginfo_t, si_status) == ${SIGINFO.si_status}`,
  `RNDADDENTROPY == ${RNDADDENTROPY}u`,
  `RNDRESEEDCRNG == ${RNDRESEEDCRNG}u`,
  // rndAddEntropyArgument: entropy_count, buf_size, then the bytes at 8.
  `__builtin_offsetof(struct rand_pool_info, buf) == 8`,
  // sockaddrNetlink: family at 0, pid at 4, groups at 8, 12 bytes.
  `sizeof(struct sockaddr_nl) == 12 && __builtin_offsetof(struct sockaddr_nl, nl_pid) == 4 && __builtin_offsetof(struct sockaddr_nl, nl_groups) == 8`,
  // uname: six 65-byte fields.
  `sizeof(struct new_utsname) == 65 * 6`,
  // clock_gettime/settime: two 64-bit words; prlimit: two 64-bit limits.
  `sizeof(struct __kernel_timespec) == 16 && sizeof(long) == 8`,
  `sizeof(struct rlimit64) == 16`,
];

const SOURCE = [
  "#include <linux/types.h>", "#include <linux/signal.h>", "#include <linux/random.h>", "#include <linux/netlink.h>",
  "#include <linux/utsname.h>", "#include <linux/time_types.h>", "#include <linux/resource.h>",
  ...CHECKS.map((check, index) => `_Static_assert(${check}, "check ${index}: ${check.replaceAll('"', "'")}");`),
].join("\n") + "\n";

describe("struct layouts and ioctl numbers per architecture", () => {
  for (const [arch, target] of Object.entries(TARGETS)) {
    const compiler = target.compilers.map((name) => Bun.which(name)).find((path) => path !== null) ?? null;
    const ready = compiler !== null && existsSync(`${target.dir}/asm/unistd.h`);
    if (!ready) console.warn(`sys-layout: ${arch} skipped: no compiler (${target.compilers.join(", ")}) or no ${target.dir}/asm (linux-libc-dev${arch === "arm64" ? ":arm64" : ""})`);
    test.skipIf(!ready)(`${arch}: what src/sys writes matches the kernel's headers`, () => {
      const result = Bun.spawnSync([compiler!, "-fsyntax-only", "-nostdinc", "-isystem", target.dir, "-isystem", "/usr/include", "-x", "c", "-"], { stdin: Buffer.from(SOURCE) });
      expect(result.stderr.toString()).toBe("");
      expect(result.exitCode).toBe(0);
    });
  }

  test("a wrong expectation fails the compile (the check can fail)", () => {
    const compiler = Bun.which("cc") ?? Bun.which("gcc");
    if (!compiler) return;
    const bad = SOURCE.replace(`si_pid) == ${SIGINFO.si_pid},`, `si_pid) == ${SIGINFO.si_pid + 4},`);
    expect(bad).not.toBe(SOURCE);
    const result = Bun.spawnSync([compiler, "-fsyntax-only", "-nostdinc", "-isystem", TARGETS.x86_64.dir, "-isystem", "/usr/include", "-x", "c", "-"], { stdin: Buffer.from(bad) });
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr.toString()).toContain("si_pid");
  });
});
