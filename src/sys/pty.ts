// Pseudo-terminals: a pty pair for a container's console (runc's --console-socket), its window size,
// raw mode and controlling terminal. All through the kernel's own ioctls on /dev/ptmx and the tty:
// no glibc pt*/tc* wrappers, so the termios struct here is the kernel's (glibc's has NCCS 32 and
// speed fields, and converts). Numbers and layouts are asm-generic's, the same on x86_64 and arm64;
// test/unit/sys-pty.test.ts checks them against both architectures' headers.
import { closeQuietly, ioctlInt, ioctlPtr, open } from "./fs";
import { OpenFlags } from "./constants";

/** <asm-generic/ioctls.h>. */
export const TtyIoctl = {
  TCGETS: 0x5401,
  TCSETS: 0x5402,
  TIOCSCTTY: 0x540e,
  TIOCGWINSZ: 0x5413,
  TIOCSWINSZ: 0x5414,
  TIOCGPTN: 0x80045430,
  TIOCSPTLCK: 0x40045431,
  TIOCGPTPEER: 0x5441,
} as const;

/** The kernel's struct termios (<asm-generic/termbits.h>): four u32 flag words, c_line, c_cc[NCCS]. */
export const TERMIOS = { size: 36, c_iflag: 0, c_oflag: 4, c_cflag: 8, c_lflag: 12, c_line: 16, c_cc: 17, NCCS: 19 } as const;

/** The termios bits raw mode touches, spelled as the kernel does; VMIN/VTIME are c_cc indexes. */
export const TermiosBits = {
  IGNBRK: 0o1, BRKINT: 0o2, PARMRK: 0o10, ISTRIP: 0o40, INLCR: 0o100, IGNCR: 0o200, ICRNL: 0o400, IXON: 0o2000,
  OPOST: 0o1, ONLCR: 0o4,
  CSIZE: 0o60, CS8: 0o60, PARENB: 0o400,
  ISIG: 0o1, ICANON: 0o2, ECHO: 0o10, ECHONL: 0o100, IEXTEN: 0o100000,
  VTIME: 5, VMIN: 6,
} as const;

export interface Termios {
  iflag: number;
  oflag: number;
  cflag: number;
  lflag: number;
  line: number;
  /** c_cc, NCCS (19) bytes. */
  cc: Uint8Array;
}

export interface Pty {
  master: number;
  slave: number;
  /** /dev/pts/N: the slave's name, for messages; openPty itself never opens it by path. */
  slavePath: string;
}

export interface Winsize {
  rows: number;
  cols: number;
}

/**
 * A new pty pair, both ends O_CLOEXEC (a child gets the slave through Bun.spawn's stdio, which
 * dup2s it onto 0/1/2 without the flag) and O_NOCTTY (opening never makes it this process's
 * controlling terminal).
 */
export function openPty(): Pty {
  const flags = OpenFlags.RDWR | OpenFlags.NOCTTY | OpenFlags.CLOEXEC;
  const master = open("/dev/ptmx", flags);
  try {
    ioctlPtr(master, TtyIoctl.TIOCSPTLCK, new Int32Array([0]), { what: "TIOCSPTLCK" });
    const number = new Uint32Array(1);
    ioctlPtr(master, TtyIoctl.TIOCGPTN, number, { what: "TIOCGPTN" });
    // Through the master's own devpts instance: no /dev/pts/N lookup that another devpts mounted
    // there (a container's) could answer with a different terminal.
    const slave = ioctlInt(master, TtyIoctl.TIOCGPTPEER, flags, { what: "TIOCGPTPEER" });
    return { master, slave, slavePath: `/dev/pts/${number[0]}` };
  } catch (error) {
    closeQuietly(master);
    throw error;
  }
}

export function getTermios(fd: number): Termios {
  const bytes = new Uint8Array(TERMIOS.size);
  ioctlPtr(fd, TtyIoctl.TCGETS, bytes, { what: "TCGETS" });
  const view = new DataView(bytes.buffer);
  return {
    iflag: view.getUint32(TERMIOS.c_iflag, true),
    oflag: view.getUint32(TERMIOS.c_oflag, true),
    cflag: view.getUint32(TERMIOS.c_cflag, true),
    lflag: view.getUint32(TERMIOS.c_lflag, true),
    line: bytes[TERMIOS.c_line]!,
    cc: bytes.slice(TERMIOS.c_cc, TERMIOS.c_cc + TERMIOS.NCCS),
  };
}

/** tcsetattr(TCSANOW): TCSETS applies at once, without waiting for output to drain. */
export function setTermios(fd: number, termios: Termios): void {
  if (termios.cc.byteLength !== TERMIOS.NCCS) throw new RangeError(`termios c_cc must hold ${TERMIOS.NCCS} bytes, not ${termios.cc.byteLength}`);
  const bytes = new Uint8Array(TERMIOS.size);
  const view = new DataView(bytes.buffer);
  view.setUint32(TERMIOS.c_iflag, termios.iflag >>> 0, true);
  view.setUint32(TERMIOS.c_oflag, termios.oflag >>> 0, true);
  view.setUint32(TERMIOS.c_cflag, termios.cflag >>> 0, true);
  view.setUint32(TERMIOS.c_lflag, termios.lflag >>> 0, true);
  bytes[TERMIOS.c_line] = termios.line;
  bytes.set(termios.cc, TERMIOS.c_cc);
  ioctlPtr(fd, TtyIoctl.TCSETS, bytes, { what: "TCSETS" });
}

/** What glibc's cfmakeraw does: no echo, no line editing, no signals, no CR/NL mapping, 8 bits; a new object. */
export function rawTermios(termios: Termios): Termios {
  const b = TermiosBits;
  const cc = termios.cc.slice();
  cc[b.VMIN] = 1;
  cc[b.VTIME] = 0;
  return {
    iflag: (termios.iflag & ~(b.IGNBRK | b.BRKINT | b.PARMRK | b.ISTRIP | b.INLCR | b.IGNCR | b.ICRNL | b.IXON)) >>> 0,
    oflag: (termios.oflag & ~b.OPOST) >>> 0,
    cflag: ((termios.cflag & ~(b.CSIZE | b.PARENB)) | b.CS8) >>> 0,
    lflag: (termios.lflag & ~(b.ECHO | b.ECHONL | b.ICANON | b.ISIG | b.IEXTEN)) >>> 0,
    line: termios.line,
    cc,
  };
}

/** Put the terminal on `fd` in raw mode; returns the settings it had, for setTermios to restore. */
export function makeRaw(fd: number): Termios {
  const before = getTermios(fd);
  setTermios(fd, rawTermios(before));
  return before;
}

export function getWinsize(fd: number): Winsize {
  const winsize = new Uint16Array(4);
  ioctlPtr(fd, TtyIoctl.TIOCGWINSZ, winsize, { what: "TIOCGWINSZ" });
  return { rows: winsize[0]!, cols: winsize[1]! };
}

/** struct winsize: ws_row, ws_col, then pixel sizes nobody reads (0). The kernel sends SIGWINCH to the foreground group. */
export function setWinsize(fd: number, rows: number, cols: number): void {
  for (const [name, value] of [["rows", rows], ["cols", cols]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new RangeError(`window ${name} must be an integer 0-65535, not ${value}`);
  }
  ioctlPtr(fd, TtyIoctl.TIOCSWINSZ, new Uint16Array([rows, cols, 0, 0]), { what: "TIOCSWINSZ", rows, cols });
}

/**
 * Make the terminal on `fd` this process's controlling terminal (TIOCSCTTY): the caller must lead
 * a session without one (Bun.spawn's `detached` makes the child one). Then the tty's SIGWINCH and
 * hangup reach it. `steal` takes it from another session (needs CAP_SYS_ADMIN).
 */
export function setControllingTerminal(fd: number, steal = false): void {
  ioctlInt(fd, TtyIoctl.TIOCSCTTY, steal ? 1 : 0, { what: "TIOCSCTTY" });
}
