// What a container's host process (the holder, an exec holder) passes on to the guest process it
// stands for: the signals it gets, and the size of the terminal on its stdin.
import * as sys from "../sys";

/** Signals forwarded (SIGKILL and SIGSTOP cannot be caught; SIGCHLD, SIGPIPE and SIGWINCH are the host process's own). */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = [
  "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU",
  "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGPWR", "SIGSYS", "SIGTRAP", "SIGABRT",
];

/** A classic terminal's size, for a pty whose size nobody set. */
const DEFAULT_SIZE = { rows: 24, cols: 80 };

/** The size of the terminal on our stdin (a pty's slave), or 24x80 when none is set. */
export function terminalSize(): { rows: number; cols: number } {
  try {
    const { rows, cols } = sys.getWinsize(0);
    if (rows > 0 && cols > 0) return { rows, cols };
  } catch {
    // Not a terminal after all: the default.
  }
  return DEFAULT_SIZE;
}
