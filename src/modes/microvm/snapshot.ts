// The snapshot point (burrow.snapshot=1): every init step runs as usual, then burrow execs the
// resident supervisor with control=PORT point=1 instead of the agent. The supervisor (image/supervisor/)
// says READY on the control channel and blocks; the host saves the VM there, with burrow's
// runtime already gone; every restore continues in the supervisor, which credits the host's
// entropy, reseeds the CRNG, sets the clock and replaces the saved arguments and variables with
// the instance's before the agent's exec. Fail closed: a malformed message ends in burrow.onfail.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { CONTROL_PORT } from "../../control/wire";
import { listVirtioPorts } from "./devices";

/** Larger agents are left on disk: their pages would swell every saved memory image. */
const WARM_MAX_BYTES = 64 * 2 ** 20;

/** The control port's device node, found by name in sysfs (the /dev/virtio-ports link may be gone with the initramfs). */
export function controlPortDevice(ports = listVirtioPorts()): string | null {
  const port = ports.find((entry) => entry.name === CONTROL_PORT);
  return port ? `/dev/${port.device}` : null;
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
