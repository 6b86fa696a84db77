// sendConsole against a console socket played by the test, as conmon or containerd's shim listen:
// the master arrives with runc's payload, drives the raw slave that stays behind, and the runtime
// keeps no copy of it; a socket that is not there fails in one line naming it and the errno.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as sys from "../../src/sys";
import { CONSOLE_PAYLOAD, sendConsole } from "../../src/oci/console";

const directory = mkdtempSync(join(tmpdir(), "burrow-console-"));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

const opened: number[] = [];
afterEach(() => {
  for (const fd of opened.splice(0)) sys.closeQuietly(fd);
});

let sockets = 0;
/** A listening console socket at a new path in the test's directory. */
function consoleSocket(): { path: string; listener: number } {
  const path = join(directory, `console-${++sockets}.sock`);
  const listener = sys.listenUnix(path);
  opened.push(listener);
  return { path, listener };
}

/** What the engine does: accept the runtime's connection and take the master from it. */
function receiveMaster(listener: number): sys.ReceivedFd {
  const connection = sys.accept(listener, sys.SocketType.CLOEXEC | sys.SocketType.NONBLOCK);
  opened.push(connection);
  const received = sys.receiveFd(connection);
  opened.push(received.fd);
  return received;
}

function setNonBlocking(fd: number): void {
  sys.fcntl(fd, sys.Fcntl.F_SETFL, sys.fcntl(fd, sys.Fcntl.F_GETFL) | sys.OpenFlags.NONBLOCK);
}

/** Read a non-blocking fd until `until` arrives, two seconds at most. */
function readUntil(fd: number, until: string): string {
  const deadline = Date.now() + 2000;
  const buffer = new Uint8Array(4096);
  let text = "";
  while (!text.includes(until)) {
    try {
      text += Buffer.from(buffer.subarray(0, sys.read(fd, buffer))).toString("latin1");
    } catch (error) {
      if (!sys.isErrno(error, "EAGAIN")) throw error;
      if (Date.now() > deadline) throw new Error(`waited 2 s for ${JSON.stringify(until)} on fd ${fd}, got ${JSON.stringify(text)}`);
      Bun.sleepSync(5);
    }
  }
  return text;
}

const openFds = () => readdirSync("/proc/self/fd").length;

describe("sendConsole", () => {
  test("the engine gets the master with runc's payload; the raw slave stays, no master copy with it", () => {
    const { path, listener } = consoleSocket();
    const fdsBefore = openFds();
    const console = sendConsole(path, { rows: 30, cols: 100 });
    opened.push(console.slave);
    // Only the slave is left open here: the connection and the master copy are closed.
    expect(openFds()).toBe(fdsBefore + 1);
    expect(console.slavePath).toMatch(/^\/dev\/pts\/\d+$/);

    const master = receiveMaster(listener);
    expect(master.payload.toString()).toBe(CONSOLE_PAYLOAD);
    expect(CONSOLE_PAYLOAD).toBe("/dev/ptmx");
    expect(sys.getWinsize(master.fd)).toEqual({ rows: 30, cols: 100 });

    const b = sys.TermiosBits;
    const termios = sys.getTermios(console.slave);
    expect(termios.lflag & (b.ICANON | b.ECHO | b.ISIG)).toBe(0);
    expect(termios.oflag & b.OPOST).toBe(0);
    expect((sys.fcntl(console.slave, sys.Fcntl.F_GETFD) & sys.Fcntl.FD_CLOEXEC) !== 0).toBe(true);

    setNonBlocking(master.fd);
    setNonBlocking(console.slave);
    sys.writeAll(master.fd, "ls\r");
    expect(readUntil(console.slave, "\r")).toBe("ls\r");
    sys.writeAll(console.slave, "out\n");
    expect(readUntil(master.fd, "\n")).toBe("out\n");

    // With the engine's master closed the slave hangs up: this process held no other master.
    sys.close(master.fd);
    opened.splice(opened.indexOf(master.fd), 1);
    expect(sys.read(console.slave, new Uint8Array(16))).toBe(0);
    expect(() => sys.write(console.slave, "x")).toThrow(/^write\(fd=\d+\) failed: EIO/);
  });

  test("without a size the pty keeps the kernel's (0x0)", () => {
    const { path, listener } = consoleSocket();
    const console = sendConsole(path);
    opened.push(console.slave);
    expect(sys.getWinsize(receiveMaster(listener).fd)).toEqual({ rows: 0, cols: 0 });
  });

  test("a missing socket: one line with the path and the errno, the SysError as cause, nothing left open", () => {
    const path = join(directory, "nobody.sock");
    const fdsBefore = openFds();
    let error: unknown;
    try {
      sendConsole(path);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe(`console socket ${path}: connect failed: ENOENT (no such file or directory)`);
    expect(((error as Error).cause as sys.SysError).code).toBe("ENOENT");
    expect(openFds()).toBe(fdsBefore);
  });

  test("a socket nobody listens on is refused by its errno", () => {
    const path = join(directory, "bound-only.sock");
    const fd = sys.socket(sys.AddressFamily.UNIX, sys.SocketType.STREAM | sys.SocketType.CLOEXEC, 0);
    opened.push(fd);
    sys.bind(fd, sys.sockaddrUnix(path));
    expect(() => sendConsole(path)).toThrow(`console socket ${path}: connect failed: ECONNREFUSED (connection refused)`);
  });

  test("a path too long for a unix socket is named, not truncated", () => {
    const path = `/${"p".repeat(120)}`;
    expect(() => sendConsole(path)).toThrow(`console socket ${path}: unix socket path "${path}" must be 1-107 bytes without NUL, not 121`);
  });

  test("each error is one line", () => {
    for (const path of [join(directory, "none.sock"), `/${"p".repeat(120)}`]) {
      expect(() => sendConsole(path)).toThrow(/^[^\n]+$/);
    }
  });
});
