// The kernel UAPI values burrow's system tables (src/sys/constants.ts, src/sys/errno.ts) and the cpio
// writer's file types (src/image/cpio.ts) must match,
// per architecture: read from the installed kernel headers (linux-libc-dev, linux-libc-dev:arm64)
// through the C preprocessor when they are there, else from the expectation checked in under
// test/fixtures/uapi/<arch>.json (which the unit test also checks against the headers when it can).
// `bun test/helpers/uapi.ts --write` regenerates the expectations from the headers.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NewcFileType } from "../../src/image/cpio";
import * as constants from "../../src/sys/constants";
import { errnoValue } from "../../src/sys/errno";
import type { SysArch } from "../../src/sys/constants";

export const UAPI_ARCHES: readonly SysArch[] = ["x86_64", "arm64"];

/** Where each architecture's asm/ headers live (Debian multiarch) and what the compiler would define. */
const ARCH_HEADERS: Record<SysArch, { dir: string; probe: string; defines: string[] }> = {
  x86_64: { dir: "/usr/include/x86_64-linux-gnu", probe: "asm/unistd_64.h", defines: ["__x86_64__", "__LP64__"] },
  arm64: { dir: "/usr/include/aarch64-linux-gnu", probe: "asm/unistd.h", defines: ["__aarch64__", "__LP64__"] },
};

const HEADERS = [
  "asm/fcntl.h", "asm/unistd.h", "asm/signal.h", "asm/mman.h", "linux/mman.h", "asm/resource.h", "asm/errno.h",
  "linux/mount.h", "linux/openat2.h", "linux/reboot.h", "linux/wait.h", "linux/time.h", "linux/netlink.h", "linux/module.h", "linux/stat.h",
];

const ERRNO_NAMES_ALL = [
  "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF", "ECHILD", "EAGAIN", "ENOMEM", "EACCES", "EFAULT",
  "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV", "ENOTDIR", "EISDIR", "EINVAL", "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG",
  "ENOSPC", "ESPIPE", "EROFS", "EMLINK", "EPIPE", "EDOM", "ERANGE", "EDEADLK", "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY", "ELOOP",
  "ENOMSG", "EIDRM", "ENODATA", "ETIME", "EOVERFLOW", "EILSEQ", "ENOTSOCK", "EOPNOTSUPP", "EADDRINUSE", "ECONNREFUSED", "ETIMEDOUT",
  "EHOSTUNREACH", "EALREADY", "EINPROGRESS", "ESTALE", "EDQUOT", "ENOMEDIUM", "ECANCELED", "ENOKEY", "EOWNERDEAD", "EHWPOISON",
];

/** Every value the tables hold for `arch`, keyed by the C macro the kernel spells it with. */
export function burrowTable(arch: SysArch): Record<string, number> {
  const table: Record<string, number> = {};
  const put = (prefix: string, group: Record<string, number>, rename: (key: string) => string = (key) => key) => {
    for (const [key, value] of Object.entries(group)) table[prefix + rename(key)] = value;
  };
  put("O_", constants.OpenFlagsByArch[arch]);
  put("__NR_", constants.SyscallNumber[arch]);
  put("MS_", constants.MountFlags);
  put("", constants.Fcntl);
  put("LINUX_REBOOT_CMD_", constants.RebootCmd);
  put("", constants.Signals);
  put("", constants.Wait);
  put("", constants.IdType);
  put("RLIMIT_", constants.Rlimit);
  put("CLOCK_", constants.Clock);
  put("PROT_", constants.Prot);
  put("MAP_", constants.MapFlags);
  put("NETLINK_", constants.NetlinkProtocol);
  put("MODULE_INIT_", constants.ModuleInitFlags);
  put("RESOLVE_", constants.ResolveFlags);
  put("", NewcFileType);
  for (const name of ERRNO_NAMES_ALL) table[name] = errnoValue(name)!;
  return table;
}

/** Whether this host has `arch`'s kernel headers and a preprocessor to read them with. */
export function headersPresent(arch: SysArch): boolean {
  const { dir, probe } = ARCH_HEADERS[arch];
  return Bun.which("cpp") !== null && existsSync(join(dir, probe)) && existsSync("/usr/include/linux/mount.h");
}

/** The kernel's values of `names` for `arch`, by running the headers through cpp. Missing macros are absent. */
export function headerValues(arch: SysArch, names: readonly string[]): Record<string, number> {
  const { dir, defines } = ARCH_HEADERS[arch];
  const source = HEADERS.map((header) => `#include <${header}>`).join("\n") + "\n" + names.map((name) => `"${name}" ${name}`).join("\n") + "\n";
  // -undef -nostdinc: only the target's asm/ directory and the shared linux/, asm-generic/ ones, with
  // the target's own predefined macros, so the host compiler's view never leaks in.
  const result = Bun.spawnSync(["cpp", "-P", "-undef", "-nostdinc", ...defines.map((d) => `-D${d}`), "-isystem", dir, "-isystem", "/usr/include", "-"], { stdin: Buffer.from(source) });
  if (result.exitCode !== 0) throw new Error(`cpp for ${arch} failed: ${result.stderr.toString()}`);
  const values: Record<string, number> = {};
  for (const line of result.stdout.toString().split("\n")) {
    const match = /^"([A-Za-z0-9_]+)" (.+)$/.exec(line.trim());
    if (!match || match[2] === match[1]) continue; // an undefined macro stays its own name
    const value = evaluate(match[2]!);
    if (value !== null) values[match[1]!] = value;
  }
  return values;
}

/** A C integer constant expression of literals and | & << >> + - ~ ( ), as cpp leaves it. */
function evaluate(expression: string): number | null {
  const js = expression.replace(/\b(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)[uUlL]*\b/g, (_, literal: string) => {
    const value = /^0[0-7]+$/.test(literal) ? BigInt(`0o${literal.slice(1)}`) : BigInt(literal);
    return `${value}n`;
  });
  if (!/^[0-9n()|&<>+\-~\s]+$/.test(js)) return null;
  return Number(new Function(`return (${js});`)() as bigint);
}

export function fixturePath(arch: SysArch): string {
  return join(import.meta.dir, "../fixtures/uapi", `${arch}.json`);
}

export function fixtureValues(arch: SysArch): Record<string, number> {
  return JSON.parse(readFileSync(fixturePath(arch), "utf8"));
}

if (import.meta.main && process.argv.includes("--write")) {
  for (const arch of UAPI_ARCHES) {
    if (!headersPresent(arch)) throw new Error(`no ${arch} kernel headers (install linux-libc-dev${arch === "arm64" ? ":arm64" : ""})`);
    const values = headerValues(arch, Object.keys(burrowTable(arch)).sort());
    writeFileSync(fixturePath(arch), JSON.stringify(values, null, 2) + "\n");
    console.log(`wrote ${fixturePath(arch)}: ${Object.keys(values).length} values`);
  }
}
