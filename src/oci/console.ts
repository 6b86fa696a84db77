// The terminal of a container started with --console-socket, the way runc hands it over: a new pty
// pair, its master sent (SCM_RIGHTS) to the engine listening on that unix socket, which relays it
// to the user; the slave stays here, in raw mode, for the holder's relay to the guest, whose own
// pty does the line discipline (echo, line editing, ^C): one in each direction would do all twice.
import * as sys from "../sys";
import { describeError } from "../errors";

/**
 * The bytes that travel with the master: runc sends its master file's name (containerd/console
 * opens "/dev/ptmx"); conmon and containerd's shim read and ignore them.
 */
export const CONSOLE_PAYLOAD = "/dev/ptmx";

export interface Console {
  /** The pty slave, raw, close-on-exec: the holder's stdio (Bun.spawn dup2s it onto 0, 1 and 2). */
  slave: number;
  /** Its name (/dev/pts/N), for messages. */
  slavePath: string;
}

/**
 * Open a pty, put it in raw mode (and at `size`: config.json's process.consoleSize, as runc does
 * before sending), send the master to `consoleSocketPath`, keep no copy of it.
 */
export function sendConsole(consoleSocketPath: string, size?: sys.Winsize): Console {
  let pty: sys.Pty;
  try {
    pty = sys.openPty();
  } catch (error) {
    throw consoleError(consoleSocketPath, error);
  }
  try {
    sys.makeRaw(pty.slave);
    if (size !== undefined) sys.setWinsize(pty.master, size.rows, size.cols);
    sys.sendFd(consoleSocketPath, pty.master, CONSOLE_PAYLOAD);
  } catch (error) {
    sys.closeQuietly(pty.slave);
    throw consoleError(consoleSocketPath, error);
  } finally {
    // The engine holds the master now (or nobody does, on failure): the pty lives while it does.
    sys.closeQuietly(pty.master);
  }
  return { slave: pty.slave, slavePath: pty.slavePath };
}

/** One line: the socket, the call that failed (with what it worked on) and its errno name; the SysError stays as the cause. */
function consoleError(path: string, error: unknown): Error {
  let why = describeError(error);
  if (error instanceof sys.SysError) {
    const on = error.args.what ?? (error.args.path !== path ? error.args.path : undefined);
    why = `${error.call}${on === undefined ? "" : ` ${String(on)}`} failed: ${error.reason}`;
  }
  return new Error(`console socket ${path}: ${why}`, { cause: error });
}
