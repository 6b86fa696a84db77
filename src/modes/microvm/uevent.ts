// Kernel uevents (NETLINK_KOBJECT_UEVENT): the parser (pure) and a watcher that wakes waiters on
// every event. Waits are event-driven: check the current state first, then re-check on each event,
// until a deadline. The socket is opened before modules load, so no device's "add" is missed.
import { log } from "../../log";
import * as sys from "../../sys";
import { describeError } from "../../errors";

export interface Uevent {
  action: string;
  devpath: string;
  env: Record<string, string>;
}

/**
 * One datagram is "ACTION@DEVPATH\0KEY=VALUE\0…". A stream read may hand over several datagrams
 * back to back, so a new message starts at every token that has "@" and no "=". Messages from
 * udev ("libudev\0" + binary header) are skipped.
 */
export function parseUevents(data: Uint8Array): Uevent[] {
  const events: Uevent[] = [];
  let current: Uevent | null = null;
  for (const token of Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("latin1").split("\0")) {
    if (token === "") continue;
    const at = token.indexOf("@");
    const equals = token.indexOf("=");
    if (at > 0 && (equals < 0 || equals > at) && /^[a-z]+@\//.test(token)) {
      current = { action: token.slice(0, at), devpath: token.slice(at + 1), env: {} };
      events.push(current);
    } else if (token === "libudev") {
      current = null;
    } else if (current && equals > 0) {
      current.env[token.slice(0, equals)] = token.slice(equals + 1);
    }
  }
  return events;
}

type Wake = () => void;

/** The polling backoff when no uevent socket wakes us: 1, 2, 4, … ms, capped at 32 ms. */
export const MAX_BACKOFF_MS = 32;
export function nextBackoffMs(ms: number): number {
  return Math.min(ms * 2, MAX_BACKOFF_MS);
}

export class UeventWatcher {
  private readonly wakers = new Set<Wake>();
  private reader: { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(): Promise<void> } | null = null;
  private stopped = false;
  count = 0;

  private constructor(private readonly fd: number | null) {}

  /**
   * A watcher on the uevent socket; without one (no netlink), waits fall back to a short backoff.
   * The socket is open from here on, so the kernel queues every event for it; reading starts only
   * when a wait first has to block (a wait re-checks after the socket opened, so nothing is
   * missed). A boot whose devices are all there already never pays for the stream reader (~20 ms
   * of first-use code under TCG).
   */
  static open(): UeventWatcher {
    try {
      return new UeventWatcher(sys.openUeventSocket());
    } catch (error) {
      log.warn(`uevents: cannot open the netlink socket (${describeError(error)}); device waits will poll`);
      return UeventWatcher.polling();
    }
  }

  /** A watcher without a socket (what open() falls back to): waits poll with nextBackoffMs. */
  static polling(): UeventWatcher {
    return new UeventWatcher(null);
  }

  get eventDriven(): boolean {
    return this.fd !== null && !this.stopped;
  }

  private start(): void {
    // Bun polls the non-blocking socket with epoll; each chunk is one or more datagrams.
    this.reader = Bun.file(this.fd!).stream().getReader();
    const pump = async () => {
      try {
        for (;;) {
          const { done, value } = await this.reader!.read();
          if (done) break;
          if (!value) continue;
          for (const event of parseUevents(value)) {
            this.count++;
            log.trace(`uevent ${event.action} ${event.devpath}${event.env.DEVNAME ? ` ${event.env.DEVNAME}` : ""}`);
          }
          this.wakeAll();
        }
      } catch (error) {
        if (!this.stopped) log.warn(`uevents: read failed (${describeError(error)}); device waits will poll`);
      }
      this.stopped = true;
      this.wakeAll();
    };
    void pump();
  }

  private wakeAll(): void {
    for (const wake of [...this.wakers]) wake();
  }

  /** Resolves on the next event (or after a short backoff when not event-driven), or at the deadline. */
  private next(deadline: number, now: () => number, backoffMs: number): Promise<void> {
    if (this.eventDriven && this.reader === null) this.start();
    return new Promise((resolve) => {
      const wait = Math.max(0, deadline - now());
      const timer = setTimeout(done, this.eventDriven ? wait : Math.min(wait, backoffMs));
      const wakers = this.wakers;
      function done() {
        clearTimeout(timer);
        wakers.delete(done);
        resolve();
      }
      if (this.eventDriven) wakers.add(done);
    });
  }

  /** check() now, then after every event, until it returns non-null or timeoutMs passes (→ null). */
  async waitFor<T>(check: () => T | null, timeoutMs: number, now: () => number): Promise<T | null> {
    const deadline = now() + timeoutMs;
    let backoff = 1;
    for (;;) {
      const result = check();
      if (result !== null) return result;
      if (now() >= deadline) return null;
      await this.next(deadline, now, backoff);
      backoff = nextBackoffMs(backoff);
    }
  }

  close(): void {
    this.stopped = true;
    this.wakeAll();
    if (this.reader === null) {
      // Never read from: the socket is still ours to close.
      if (this.fd !== null) sys.close(this.fd);
      return;
    }
    try {
      void this.reader.cancel().catch(() => {});
    } catch {
      // A reader that already ended has nothing left to cancel.
    }
  }
}
