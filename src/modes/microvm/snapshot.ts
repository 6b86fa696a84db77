// The snapshot point (burrow.snapshot=1): after every init step but the agent's exec, announce
// "ready" on the control port and block until the host sends a resume message. The host saves
// the VM while it waits; every restore continues here, with the host's entropy (credited, then
// a forced CRNG reseed), the host's wall clock, and the instance's own arguments and variables.
// Fail closed: a malformed message ends in the configured fallback, never in the agent.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { log } from "../../log";
import * as sys from "../../sys";
import { CONTROL_PORT, encodeReady, encodeResume, encodeResumed, MAX_MESSAGE_BYTES, parseResume, type ResumeMessage } from "../../snapshot/protocol";
import { listVirtioPorts } from "./devices";

/**
 * While the host side of the port is closed, read() returns 0 at once: retry, backing off from 5
 * to 100 ms, so a guest whose host never connects does not spin (a connected host's data wakes
 * the blocking read at once).
 */
const CLOSED_PORT_RETRY_MS = 5;
/** Larger agents are left on disk: their pages would swell every saved memory image. */
const WARM_MAX_BYTES = 64 * 2 ** 20;
const CLOSED_PORT_RETRY_MAX_MS = 100;

export interface ResumeRecord {
  instance: string;
  /** CLOCK_BOOTTIME ms: "ready" written, resume message complete (the gap spans the saved time). */
  readyMs: number;
  resumeMs: number;
  entropyBytes: number;
  args: string[] | null;
  env: string[];
}

/** The control port's device node, found by name in sysfs (the /dev/virtio-ports link may be gone with the initramfs). */
export function controlPortDevice(ports = listVirtioPorts()): string | null {
  const port = ports.find((entry) => entry.name === CONTROL_PORT);
  return port ? `/dev/${port.device}` : null;
}

/**
 * Bytes up to the first "\n" from `readChunk` (null: the host side is closed; before the line
 * starts, try again after `pause`). Refuses a line longer than `limit` without reading further,
 * and a line the host hung up in the middle of: what it would send next cannot complete it.
 */
export function readLine(readChunk: () => Uint8Array | null, pause: () => void, limit = MAX_MESSAGE_BYTES): string {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const chunk = readChunk();
    if (chunk === null) {
      if (chunks.length > 0) throw new Error(`the host closed the control port in the middle of the resume message (${length} bytes received)`);
      pause();
      continue;
    }
    const newline = chunk.indexOf(0x0a);
    const part = newline < 0 ? chunk : chunk.subarray(0, newline);
    length += part.length;
    if (length > limit) throw new Error(`resume message longer than ${limit} bytes`);
    chunks.push(part);
    if (newline >= 0) return Buffer.concat(chunks).toString("utf8");
  }
}

function writeText(fd: number, text: string): void {
  for (;;) {
    try {
      sys.writeAll(fd, text);
      return;
    } catch (error) {
      // The host has not opened its side yet.
      if (!sys.isErrno(error, "EAGAIN", "ENOTCONN", "EPIPE")) throw error;
      Bun.sleepSync(CLOSED_PORT_RETRY_MS);
    }
  }
}

/**
 * Read the agent's file, and a "#!" script's interpreter, once before the save: their pages are
 * then page cache inside the saved memory, and every restore execs the agent without reading the
 * disk (a busybox shell agent: exec → its first line 133 → ~104 ms after a restore under TCG; the
 * rest is translating the exec path afresh). Returns what was read; files that cannot be read or
 * are too large are skipped, and the exec reports them.
 */
export function warmAgent(agent: string, readHead: (path: string) => Uint8Array | null = readWhole): string[] {
  const warmed: string[] = [];
  let path: string | null = agent;
  // The agent, then at most one interpreter: a "#!" chain is the kernel's business.
  for (let hop = 0; hop < 2 && path !== null; hop++) {
    const head = readHead(path);
    if (head === null) break;
    warmed.push(path);
    path = /^#!\s*(\/\S+)/.exec(new TextDecoder("latin1").decode(head.subarray(0, 256)))?.[1] ?? null;
  }
  return warmed;
}

/** Read a whole file into the page cache; its first bytes, or null when it is missing or too large. */
function readWhole(path: string): Uint8Array | null {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    if (size > WARM_MAX_BYTES) return null;
    const buffer = new Uint8Array(Math.min(size, 1 << 20));
    let head: Uint8Array | null = null;
    for (let offset = 0; offset < size; ) {
      const count = readSync(fd, buffer, 0, buffer.length, offset);
      if (count <= 0) break;
      head ??= buffer.slice(0, Math.min(count, 256));
      offset += count;
    }
    return head ?? new Uint8Array();
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** Announce ready, wait for the resume message, apply it. Throws one line on any problem. */
export function snapshotPoint(now: () => number, agent: string): { message: ResumeMessage; record: ResumeRecord } {
  const device = controlPortDevice();
  if (device === null) throw new Error(`burrow.snapshot=1 but no virtio-serial port named ${CONTROL_PORT} (ENODEV); the host must add it`);
  const fd = sys.open(device, sys.OpenFlags.RDWR | sys.OpenFlags.CLOEXEC);
  try {
    rehearseResume();
    log.debug(`snapshot point: read ${warmAgent(agent).join(", ") || "nothing"} into the page cache for the restores`);
    // Said before "ready" is sent: the host may stop the VM the moment it reads it.
    log.info(`snapshot point: ready on ${CONTROL_PORT}; waiting for the host's resume message`);
    writeText(fd, encodeReady(now()));
    const readyMs = now();
    const buffer = new Uint8Array(4096);
    let pause = CLOSED_PORT_RETRY_MS;
    const line = readLine(
      () => {
        const count = sys.read(fd, buffer);
        return count === 0 ? null : buffer.slice(0, count);
      },
      () => {
        Bun.sleepSync(pause);
        pause = Math.min(pause * 2, CLOSED_PORT_RETRY_MAX_MS);
      },
    );
    const resumeMs = now();
    const parsed = parseResume(line);
    if (!parsed.ok) throw new Error(`malformed resume message on ${CONTROL_PORT}: ${parsed.problem}; not starting the agent from a cloned state`);
    const message = parsed.message;
    applyResume(message);
    writeText(fd, encodeResumed(message.instance));
    log.info(`resumed as instance ${message.instance}: ${message.entropy.length} bytes of host entropy, CRNG reseeded, clock set`);
    return {
      message,
      record: { instance: message.instance, readyMs, resumeMs, entropyBytes: message.entropy.length, args: message.args, env: message.env.map(([name]) => name) },
    };
  } finally {
    sys.close(fd);
  }
}

/**
 * Parse and answer a made-up resume message once before the VM is saved. Everything JavaScript
 * sets up lazily on first use (the parser's regular expressions, base64 and BigInt, the functions'
 * linked bytecode) is then part of the saved memory instead of being paid again by every restore
 * (measured ~35 ms of the ~50 ms the first parse took after a restore under TCG).
 */
function rehearseResume(): void {
  const sample = encodeResume({ instance: "rehearsal", entropy: new Uint8Array(64), realtimeNs: 1_800_000_000_000_000_000n, args: ["rehearsal"], env: [["REHEARSAL", "1"]] });
  const parsed = parseResume(sample.trimEnd());
  if (!parsed.ok) throw new Error(`burrow's own resume message does not parse (${parsed.problem}): a bug, not starting the snapshot point`);
  encodeResumed(parsed.message.instance);
}

/** Fresh randomness first (nothing random may be drawn from the cloned state), then the clock. */
function applyResume(message: ResumeMessage): void {
  const random = sys.open("/dev/urandom", sys.OpenFlags.WRONLY | sys.OpenFlags.CLOEXEC);
  try {
    sys.addEntropyAndReseed(random, message.entropy);
  } finally {
    sys.close(random);
  }
  sys.setClockNs(sys.Clock.REALTIME, message.realtimeNs);
}
