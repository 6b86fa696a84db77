// The pty pair, its window size and raw mode, the controlling terminal, and passing a descriptor over
// a unix socket (what --console-socket needs), on this host's kernel; and the numbers and layouts
// src/sys/pty.ts and socket.ts write by hand, against both architectures' headers.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { existsSync, fstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as sys from "../../src/sys";

const opened: number[] = [];
/** Every descriptor a test opens is closed after it, pass or fail. */
function track<T extends number[]>(...fds: T): T {
  opened.push(...fds);
  return fds;
}
afterEach(() => {
  for (const fd of opened.splice(0)) sys.closeQuietly(fd);
});

const directories: string[] = [];
function tempDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), "burrow-pty-"));
  directories.push(directory);
  return directory;
}
afterAll(() => {
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

function newPty(): sys.Pty {
  const pty = sys.openPty();
  track(pty.master, pty.slave);
  return pty;
}

function setNonBlocking(fd: number): void {
  sys.fcntl(fd, sys.Fcntl.F_SETFL, sys.fcntl(fd, sys.Fcntl.F_GETFL) | sys.OpenFlags.NONBLOCK);
}

/**
 * Read a non-blocking fd until `until` has arrived (a pty moves bytes to the other side on a kernel
 * worker, not within write()), or fail after two seconds with what came. Never blocks the test.
 */
function readUntil(fd: number, until: string): string {
  const deadline = Date.now() + 2000;
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes(until)) {
    try {
      const count = sys.read(fd, buffer);
      if (count === 0) break;
      text += Buffer.from(buffer.subarray(0, count)).toString("latin1");
    } catch (error) {
      if (!sys.isErrno(error, "EAGAIN")) throw error;
      if (Date.now() > deadline) throw new Error(`waited 2 s for ${JSON.stringify(until)} on fd ${fd}, got ${JSON.stringify(text)}`);
      Bun.sleepSync(5);
    }
  }
  return text;
}

/** Which pty a master is (every master is the same /dev/ptmx node to fstat). */
function ptyNumber(master: number): number {
  const number = new Uint32Array(1);
  sys.ioctlPtr(master, sys.TtyIoctl.TIOCGPTN, number);
  return number[0]!;
}

function closeOnExec(fd: number): boolean {
  return (sys.fcntl(fd, sys.Fcntl.F_GETFD) & sys.Fcntl.FD_CLOEXEC) !== 0;
}

describe("openPty", () => {
  test("gives a master and its slave, both close-on-exec, and the slave's name", () => {
    const pty = newPty();
    expect(pty.slavePath).toMatch(/^\/dev\/pts\/\d+$/);
    expect(readlinkSync(`/proc/self/fd/${pty.slave}`)).toBe(pty.slavePath);
    expect(readlinkSync(`/proc/self/fd/${pty.master}`)).toMatch(/ptmx$/);
    expect(closeOnExec(pty.master)).toBe(true);
    expect(closeOnExec(pty.slave)).toBe(true);
    // Two pairs are two terminals.
    const other = newPty();
    expect(other.slavePath).not.toBe(pty.slavePath);
  });

  test("bytes cross in both directions", () => {
    const pty = newPty();
    sys.makeRaw(pty.slave);
    setNonBlocking(pty.master);
    setNonBlocking(pty.slave);
    sys.writeAll(pty.master, "to the slave");
    expect(readUntil(pty.slave, "slave")).toBe("to the slave");
    sys.writeAll(pty.slave, "to the master");
    expect(readUntil(pty.master, "master")).toBe("to the master");
  });
});

describe("window size", () => {
  test("set on either side, read on the other", () => {
    const pty = newPty();
    sys.setWinsize(pty.master, 33, 121);
    expect(sys.getWinsize(pty.slave)).toEqual({ rows: 33, cols: 121 });
    sys.setWinsize(pty.slave, 65535, 1);
    expect(sys.getWinsize(pty.master)).toEqual({ rows: 65535, cols: 1 });
  });

  test("a size out of range is refused before the ioctl; a non-terminal by its errno", () => {
    const pty = newPty();
    expect(() => sys.setWinsize(pty.master, 65536, 80)).toThrow("window rows must be an integer 0-65535, not 65536");
    expect(() => sys.setWinsize(pty.master, 24, -1)).toThrow("window cols must be an integer 0-65535, not -1");
    expect(() => sys.setWinsize(pty.master, 24.5, 80)).toThrow(RangeError);
    const [notTty] = track(sys.open("/dev/null"));
    expect(() => sys.getWinsize(notTty)).toThrow(/^ioctl\(fd=\d+, request="0x5413", what="TIOCGWINSZ"\) failed: ENOTTY/);
    expect(() => sys.setWinsize(notTty, 1, 1)).toThrow(/TIOCSWINSZ.*ENOTTY/);
  });
});

describe("raw mode", () => {
  const b = sys.TermiosBits;

  test("makeRaw clears what cfmakeraw clears, returns the settings before, and setTermios restores them", () => {
    const pty = newPty();
    const fresh = sys.getTermios(pty.slave);
    // A new pty is cooked: canonical input with echo and signals, CR→NL in, NL→CRNL out.
    expect(fresh.lflag & (b.ICANON | b.ECHO | b.ISIG | b.IEXTEN)).toBe(b.ICANON | b.ECHO | b.ISIG | b.IEXTEN);
    expect(fresh.iflag & b.ICRNL).toBe(b.ICRNL);
    expect(fresh.oflag & b.OPOST).toBe(b.OPOST);

    const before = sys.makeRaw(pty.slave);
    expect(before).toEqual(fresh);
    const raw = sys.getTermios(pty.master); // one terminal: either side reads the same settings
    expect(raw.lflag & (b.ECHO | b.ECHONL | b.ICANON | b.ISIG | b.IEXTEN)).toBe(0);
    expect(raw.iflag & (b.IGNBRK | b.BRKINT | b.PARMRK | b.ISTRIP | b.INLCR | b.IGNCR | b.ICRNL | b.IXON)).toBe(0);
    expect(raw.oflag & b.OPOST).toBe(0);
    expect(raw.cflag & (b.CSIZE | b.PARENB)).toBe(b.CS8);
    expect(raw.cc[b.VMIN]).toBe(1);
    expect(raw.cc[b.VTIME]).toBe(0);
    // Only those bits moved: the rest (ONLCR under the now-off OPOST, speeds, other c_cc) stayed.
    expect(raw.oflag & b.ONLCR).toBe(fresh.oflag & b.ONLCR);
    expect([...raw.cc].filter((_, index) => index !== b.VMIN && index !== b.VTIME)).toEqual([...fresh.cc].filter((_, index) => index !== b.VMIN && index !== b.VTIME));

    sys.setTermios(pty.slave, before);
    expect(sys.getTermios(pty.slave)).toEqual(fresh);
  });

  test("rawTermios leaves its argument alone", () => {
    const cooked: sys.Termios = { iflag: 0o2400, oflag: 0o5, cflag: 0o277, lflag: 0o105073, line: 0, cc: new Uint8Array(19).fill(7) };
    const copy = structuredClone(cooked);
    const raw = sys.rawTermios(cooked);
    expect(cooked).toEqual(copy);
    expect(raw.cc).not.toBe(cooked.cc);
    expect(raw).toEqual({ iflag: 0, oflag: 0o4, cflag: 0o277, lflag: 0o5060, line: 0, cc: Uint8Array.from([7, 7, 7, 7, 7, 0, 1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]) });
  });

  test("setTermios refuses a c_cc of the wrong size", () => {
    const pty = newPty();
    const termios = sys.getTermios(pty.slave);
    expect(() => sys.setTermios(pty.slave, { ...termios, cc: new Uint8Array(32) })).toThrow("termios c_cc must hold 19 bytes, not 32");
  });

  /** Input "a\r" from the master side, then "x\n" out of the slave and a sentinel: what each side sees. */
  function exchange(pty: sys.Pty): { slaveRead: string; masterRead: string } {
    setNonBlocking(pty.master);
    setNonBlocking(pty.slave);
    sys.writeAll(pty.master, "a\r");
    const slaveRead = readUntil(pty.slave, "a");
    // Echo happens when the input is received, before the slave can read it: it precedes the sentinel.
    sys.writeAll(pty.slave, "x\n#");
    return { slaveRead: slaveRead + readUntilQuiet(pty.slave), masterRead: readUntil(pty.master, "#") };
  }

  /** Whatever more arrives within 50 ms. */
  function readUntilQuiet(fd: number): string {
    Bun.sleepSync(50);
    const buffer = new Uint8Array(256);
    try {
      return Buffer.from(buffer.subarray(0, sys.read(fd, buffer))).toString("latin1");
    } catch (error) {
      if (sys.isErrno(error, "EAGAIN")) return "";
      throw error;
    }
  }

  test("cooked: CR becomes NL and is echoed, NL goes out as CRNL", () => {
    const { slaveRead, masterRead } = exchange(newPty());
    expect(slaveRead).toBe("a\n");
    expect(masterRead).toBe("a\r\nx\r\n#");
  });

  test("raw: bytes pass unchanged and nothing is echoed", () => {
    const pty = newPty();
    sys.makeRaw(pty.slave);
    const { slaveRead, masterRead } = exchange(pty);
    expect(slaveRead).toBe("a\r");
    expect(masterRead).toBe("x\n#");
  });
});

describe("setControllingTerminal", () => {
  test("a non-terminal is refused with the call and its errno", () => {
    const [notTty] = track(sys.open("/dev/null"));
    expect(() => sys.setControllingTerminal(notTty)).toThrow(/^ioctl\(fd=\d+, request="0x540e", what="TIOCSCTTY"\) failed: ENOTTY/);
  });

  test("a session leader given the slave as stdio makes it its terminal", async () => {
    const pty = newPty();
    sys.makeRaw(pty.slave);
    // The child: its own session (detached), the slave on 0/1/2 though the fd is close-on-exec.
    const script = `
      import { readFileSync } from "node:fs";
      import { setControllingTerminal } from ${JSON.stringify(join(import.meta.dir, "../../src/sys"))};
      const field = (n) => readFileSync("/proc/self/stat", "utf8").split(") ")[1].split(" ")[n - 3];
      const before = field(7);
      setControllingTerminal(0);
      process.stdout.write("session " + (field(6) === String(process.pid)) + " tty " + before + "->" + field(7) + " #");
    `;
    const child = Bun.spawn([process.execPath, "-e", script], { stdio: [pty.slave, pty.slave, pty.slave], detached: true });
    expect(await child.exited).toBe(0);
    setNonBlocking(pty.master);
    const rdev = fstatSync(pty.slave).rdev;
    // tty_nr in /proc/PID/stat and st_rdev encode a pts device (major 136, minor < 256) alike.
    expect(readUntil(pty.master, "#")).toBe(`session true tty 0->${rdev} #`);
  });
});

describe("passing a descriptor", () => {
  function pair(): [number, number] {
    return track(...sys.socketpair(sys.AddressFamily.UNIX, sys.SocketType.STREAM | sys.SocketType.CLOEXEC));
  }

  test("a pty master crosses a socketpair with its payload and still drives the slave", () => {
    const pty = newPty();
    sys.makeRaw(pty.slave);
    const [sender, receiver] = pair();
    sys.sendFd(sender, pty.master, "/dev/ptmx");
    setNonBlocking(receiver); // a missing message is EAGAIN, not a hung test
    const received = sys.receiveFd(receiver);
    track(received.fd);
    expect(received.payload.toString()).toBe("/dev/ptmx");
    expect(received.fd).not.toBe(pty.master);
    expect(closeOnExec(received.fd)).toBe(true);
    expect(`/dev/pts/${ptyNumber(received.fd)}`).toBe(pty.slavePath);
    // The original closed, the copy is the master now.
    sys.close(pty.master);
    opened.splice(opened.indexOf(pty.master), 1);
    setNonBlocking(pty.slave);
    sys.writeAll(received.fd, "through the copy");
    expect(readUntil(pty.slave, "copy")).toBe("through the copy");
  });

  test("to a path: connects, sends, closes its end", () => {
    const directory = tempDirectory();
    const path = join(directory, "console.sock");
    const [listener] = track(sys.listenUnix(path));
    const pty = newPty();
    const fdsBefore = readdirSync("/proc/self/fd").length;
    sys.sendFd(path, pty.master, "name");
    expect(readdirSync("/proc/self/fd").length).toBe(fdsBefore);
    const [connection] = track(sys.accept(listener));
    setNonBlocking(connection);
    const received = sys.receiveFd(connection);
    track(received.fd);
    expect(received.payload.toString()).toBe("name");
    expect(`/dev/pts/${ptyNumber(received.fd)}`).toBe(pty.slavePath);
    // The sender closed its end after the one message.
    expect(() => sys.receiveFd(connection)).toThrow(`recvmsg(fd=${connection}) got end of file before a file descriptor`);
  });

  test("failures name the call, the path and the errno; nothing is left open", () => {
    const directory = tempDirectory();
    const pty = newPty();
    const fdsBefore = readdirSync("/proc/self/fd").length;
    const missing = join(directory, "missing.sock");
    expect(() => sys.sendFd(missing, pty.master, "x")).toThrow(`connect(fd=`);
    expect(() => sys.sendFd(missing, pty.master, "x")).toThrow(`path="${missing}") failed: ENOENT (no such file or directory)`);
    expect(readdirSync("/proc/self/fd").length).toBe(fdsBefore);
    expect(() => sys.sendFd(`/${"x".repeat(107)}`, pty.master, "x")).toThrow("must be 1-107 bytes without NUL, not 108");
    expect(sys.sockaddrUnix(`/${"x".repeat(106)}`).byteLength).toBe(2 + 107 + 1);
    expect(() => sys.sendFd(pty.slave, pty.master, "x")).toThrow(/^sendmsg\(socket=\d+, fd=\d+\) failed: ENOTSOCK/);
    expect(() => sys.sendFd(pty.slave, pty.master, "")).toThrow("the payload sent with a file descriptor must be 1-4095 bytes, not 0");
    expect(() => sys.sendFd(pty.slave, pty.master, "x".repeat(4096))).toThrow(RangeError);
    expect(existsSync(missing)).toBe(false);
  });

  test("a message without a descriptor is refused", () => {
    const [sender, receiver] = pair();
    sys.writeAll(sender, "plain");
    setNonBlocking(receiver);
    expect(() => sys.receiveFd(receiver)).toThrow(`recvmsg(fd=${receiver}) got 5 bytes without a file descriptor`);
    expect(() => sys.receiveFd(receiver)).toThrow(/^recvmsg\(socket=\d+\) failed: EAGAIN/);
  });

  test("PID 1 does not bind the host-only calls", () => {
    for (const name of ["sendmsg", "recvmsg", "socketpair", "listen", "accept4"]) expect(sys.LIBC_SYMBOLS).not.toContain(name as never);
    expect(sys.LIBC_SYMBOLS).toContain("connect");
  });
});

// What pty.ts and socket.ts write by hand, checked by each architecture's own compiler (compile-time
// asserts, nothing runs): the tty side against the kernel's UAPI headers, the socket side against
// glibc's (the kernel keeps struct msghdr out of its UAPI). Every exported value is checked.
const TARGETS = {
  x86_64: { compilers: process.arch === "x64" ? ["cc", "gcc", "x86_64-linux-gnu-gcc"] : ["x86_64-linux-gnu-gcc"], dir: "/usr/include/x86_64-linux-gnu" },
  arm64: { compilers: process.arch === "arm64" ? ["cc", "gcc", "aarch64-linux-gnu-gcc"] : ["aarch64-linux-gnu-gcc"], dir: "/usr/include/aarch64-linux-gnu" },
} as const;

function ttyChecks(): string[] {
  const { size, NCCS, ...offsets } = sys.TERMIOS;
  return [
    ...Object.entries(sys.TtyIoctl).map(([name, value]) => `${name} == ${value}u`),
    ...Object.entries(sys.TermiosBits).map(([name, value]) => `${name} == ${value}`),
    `sizeof(struct termios) == ${size}`,
    `NCCS == ${NCCS} && sizeof(((struct termios *)0)->c_cc) == ${NCCS}`,
    ...Object.entries(offsets).map(([field, offset]) => `__builtin_offsetof(struct termios, ${field}) == ${offset}`),
    // getWinsize/setWinsize: four u16, rows then cols.
    `sizeof(struct winsize) == 8 && __builtin_offsetof(struct winsize, ws_row) == 0 && __builtin_offsetof(struct winsize, ws_col) == 2`,
  ];
}

function socketChecks(): string[] {
  const fields = (struct: string, layout: Record<string, number>) =>
    Object.entries(layout).map(([field, value]) => (field === "size" ? `sizeof(struct ${struct}) == ${value}` : `__builtin_offsetof(struct ${struct}, ${field}) == ${value}`));
  const { align, ...cmsghdr } = sys.CMSGHDR;
  const { pathSize, ...sockaddrUn } = sys.SOCKADDR_UN;
  return [
    ...fields("msghdr", sys.MSGHDR),
    ...fields("iovec", sys.IOVEC),
    ...fields("cmsghdr", cmsghdr),
    `CMSG_ALIGN(1) == ${align} && CMSG_LEN(0) == ${sys.CMSGHDR.size}`,
    ...fields("sockaddr_un", sockaddrUn),
    `sizeof(((struct sockaddr_un *)0)->sun_path) == ${pathSize}`,
    `AF_UNIX == ${sys.AddressFamily.UNIX} && SOL_SOCKET == ${sys.SOL_SOCKET} && SCM_RIGHTS == ${sys.SCM_RIGHTS}`,
    ...Object.entries(sys.MsgFlags).map(([name, value]) => `MSG_${name} == ${value}`),
  ];
}

const asserts = (checks: string[]) => checks.map((check, index) => `_Static_assert(${check}, "check ${index}: ${check.replaceAll('"', "'")}");`);
const TTY_SOURCE = ["#include <asm/termios.h>", ...asserts(ttyChecks())].join("\n") + "\n";
const SOCKET_SOURCE = ["#include <stddef.h>", "#include <sys/socket.h>", "#include <sys/un.h>", "#include <sys/uio.h>", ...asserts(socketChecks())].join("\n") + "\n";

function compile(compiler: string, source: string, kernelHeaders: string | null): { exitCode: number; stderr: string } {
  const include = kernelHeaders === null ? [] : ["-nostdinc", "-isystem", kernelHeaders, "-isystem", "/usr/include"];
  const result = Bun.spawnSync([compiler, "-fsyntax-only", ...include, "-x", "c", "-"], { stdin: Buffer.from(source) });
  return { exitCode: result.exitCode, stderr: result.stderr.toString() };
}

describe("tty and socket layouts per architecture", () => {
  for (const [arch, target] of Object.entries(TARGETS)) {
    const compiler = target.compilers.map((name) => Bun.which(name)).find((path) => path !== null) ?? null;
    const ready = compiler !== null && existsSync(`${target.dir}/asm/termios.h`);
    if (!ready) console.warn(`sys-pty: ${arch} skipped: no compiler (${target.compilers.join(", ")}) or no ${target.dir}/asm (linux-libc-dev${arch === "arm64" ? ":arm64" : ""})`);
    test.skipIf(!ready)(`${arch}: ioctl numbers, termios bits and struct layouts match the kernel's headers`, () => {
      expect(compile(compiler!, TTY_SOURCE, target.dir)).toEqual({ exitCode: 0, stderr: "" });
    });
    test.skipIf(!ready)(`${arch}: msghdr, cmsghdr, iovec, sockaddr_un and the flags match the C library's`, () => {
      expect(compile(compiler!, SOCKET_SOURCE, null)).toEqual({ exitCode: 0, stderr: "" });
    });
  }

  test("a wrong expectation fails the compile (the checks can fail)", () => {
    const compiler = Bun.which("cc") ?? Bun.which("gcc");
    if (!compiler || !existsSync(`${TARGETS.x86_64.dir}/asm/termios.h`)) return;
    const badTty = TTY_SOURCE.replace(`TIOCGPTPEER == ${sys.TtyIoctl.TIOCGPTPEER}u`, `TIOCGPTPEER == ${sys.TtyIoctl.TIOCGPTPEER + 1}u`);
    expect(badTty).not.toBe(TTY_SOURCE);
    const tty = compile(compiler, badTty, TARGETS.x86_64.dir);
    expect(tty.exitCode).not.toBe(0);
    expect(tty.stderr).toContain("TIOCGPTPEER");
    const badSocket = SOCKET_SOURCE.replace(`msghdr, msg_control) == ${sys.MSGHDR.msg_control}`, `msghdr, msg_control) == ${sys.MSGHDR.msg_control + 8}`);
    expect(badSocket).not.toBe(SOCKET_SOURCE);
    const socket = compile(compiler, badSocket, null);
    expect(socket.exitCode).not.toBe(0);
    expect(socket.stderr).toContain("msg_control");
  });
});
