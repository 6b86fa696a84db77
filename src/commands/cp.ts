// `burrow cp NAME:PATH LOCALPATH` and `burrow cp LOCALPATH NAME:PATH`: one file, streamed within the
// channel's credit either way, binary-safe. A download goes to a temporary file beside LOCALPATH,
// renamed into place once whole; an upload appears in the guest whole or not at all.
import { defineCommand } from "citty";
import { randomBytes } from "node:crypto";
import { open, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { GuestError } from "../control/client";
import { DATA_CHUNK_BYTES } from "../control/wire";
import { describeError } from "../errors";
import { STOP_SIGNALS } from "../host/stop-signals";
import { checkVmName } from "../host/vm-registry";
import { parseCommandLine } from "./command-line";
import { connectVm } from "./vm-connection";

export const CP_USAGE = "burrow cp NAME:PATH LOCALPATH | burrow cp LOCALPATH NAME:PATH";

export interface GuestLocation {
  name: string;
  path: string;
}

export type CopyPlan = { direction: "from-guest"; guest: GuestLocation; local: string } | { direction: "to-guest"; local: string; guest: GuestLocation };

/** NAME:PATH when the part before the first ":" is a VM name; a local path with a colon is written ./a:b. */
export function parseGuestLocation(arg: string): GuestLocation | null {
  const colon = arg.indexOf(":");
  if (colon <= 0) return null;
  const name = arg.slice(0, colon);
  try {
    checkVmName(name);
  } catch {
    return null;
  }
  const path = arg.slice(colon + 1);
  if (!path.startsWith("/")) throw new Error(`${arg}: the guest path must be absolute`);
  return { name, path };
}

export function parseCpArgs(args: readonly string[]): CopyPlan {
  const line = parseCommandLine(args, { command: "cp", usage: CP_USAGE, options: [], positionals: { min: 2, max: 2 } });
  const [from, to] = line.positionals as [string, string];
  const source = parseGuestLocation(from);
  const target = parseGuestLocation(to);
  if (source && target) throw new Error("both sides name a VM; one side must be a local path (write ./a:b for a local path with a colon)");
  if (!source && !target) throw new Error("neither side names a VM (NAME:PATH)");
  if (source) return { direction: "from-guest", guest: source, local: to };
  return { direction: "to-guest", local: from, guest: target! };
}

/** A failure already worded for the user (the side it happened on, then why). */
class CopyFailure extends Error {}

/** The guest's own words for a refused transfer (its errno text), else the error's. */
function transferFailure(where: string, error: unknown): Error {
  return new CopyFailure(`${where}: ${error instanceof GuestError ? error.guestText : describeError(error)}`);
}

/** Aborted by SIGINT, SIGTERM or SIGHUP, so the copy ends through its cleanup rather than mid-write. */
function stopOnSignals(): { signal: AbortSignal; stoppedBy: () => NodeJS.Signals | null; dispose(): void } {
  const abort = new AbortController();
  let stoppedBy: NodeJS.Signals | null = null;
  const listeners = STOP_SIGNALS.map((signal) => [signal, () => {
    stoppedBy ??= signal;
    abort.abort(new Error(`stopped by ${signal}`));
  }] as const);
  for (const [signal, listener] of listeners) process.on(signal, listener);
  return { signal: abort.signal, stoppedBy: () => stoppedBy, dispose: () => listeners.forEach(([signal, listener]) => process.off(signal, listener)) };
}

async function download(plan: Extract<CopyPlan, { direction: "from-guest" }>, signal: AbortSignal): Promise<void> {
  const where = `${plan.guest.name}:${plan.guest.path}`;
  let local = plan.local;
  // Into a directory: under the guest file's name, as cp does.
  if ((await stat(local).catch(() => null))?.isDirectory()) local = join(local, basename(plan.guest.path));
  const { client } = await connectVm(plan.guest.name);
  const temporary = join(dirname(local), `.${basename(local)}.burrow-cp-${randomBytes(4).toString("hex")}`);
  const { info, stream } = client.getFile(plan.guest.path);
  const reader = stream.getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  let file: Awaited<ReturnType<typeof open>> | null = null;
  try {
    let mode: number;
    try {
      mode = (await info).mode & 0o7777;
    } catch (error) {
      throw transferFailure(where, error);
    }
    file = await open(temporary, "wx", 0o600).catch((error) => {
      throw new CopyFailure(`${local}: ${describeError(error)}`);
    });
    for (;;) {
      let next: Awaited<ReturnType<typeof reader.read>>;
      try {
        next = await reader.read();
      } catch (error) {
        throw signal.aborted ? signal.reason : transferFailure(where, error);
      }
      if (next.done) break;
      // Awaited: the guest's next bytes are granted only as fast as the disk takes these.
      await file.write(next.value);
    }
    if (signal.aborted) throw signal.reason;
    await file.chmod(mode);
    await file.sync();
    await file.close();
    file = null;
    await rename(temporary, local);
  } catch (error) {
    reader.cancel().catch(() => {});
    await file?.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error instanceof CopyFailure ? error : new CopyFailure(`${local}: ${describeError(error)}`);
  } finally {
    signal.removeEventListener("abort", onAbort);
    client.close();
  }
}

async function upload(plan: Extract<CopyPlan, { direction: "to-guest" }>, signal: AbortSignal): Promise<void> {
  const facts = await stat(plan.local).catch((error) => {
    throw new Error(`${plan.local}: ${describeError(error)}`);
  });
  if (!facts.isFile()) throw new Error(`${plan.local}: not a regular file (burrow cp copies one file)`);
  // NAME:/dir/ means the file keeps its name there.
  const guestPath = plan.guest.path.endsWith("/") ? plan.guest.path + basename(plan.local) : plan.guest.path;
  const where = `${plan.guest.name}:${guestPath}`;
  const { client } = await connectVm(plan.guest.name);
  const file = await open(plan.local, "r");
  try {
    // Read one chunk at a time, the next only once the guest's window took the last.
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for (;;) {
        if (signal.aborted) throw signal.reason;
        const buffer = new Uint8Array(DATA_CHUNK_BYTES);
        const { bytesRead } = await file.read(buffer, 0, buffer.byteLength, null);
        if (bytesRead === 0) return;
        yield buffer.subarray(0, bytesRead);
      }
    }
    await client.putFile(guestPath, chunks(), facts.size, facts.mode & 0o7777).catch((error) => {
      throw signal.aborted ? signal.reason : transferFailure(where, error);
    });
  } finally {
    await file.close().catch(() => {});
    client.close();
  }
}

export async function runCp(plan: CopyPlan): Promise<number> {
  const stop = stopOnSignals();
  try {
    if (plan.direction === "from-guest") await download(plan, stop.signal);
    else await upload(plan, stop.signal);
    return 0;
  } catch (error) {
    const stoppedBy = stop.stoppedBy();
    if (stoppedBy !== null) throw new Error(`stopped by ${stoppedBy}; nothing was copied`);
    throw error;
  } finally {
    stop.dispose();
  }
}

export const cp = defineCommand({
  meta: { name: "cp", description: "Copy one file into or out of a named VM: burrow cp NAME:PATH LOCALPATH, or LOCALPATH NAME:PATH" },
  args: {
    source: { type: "positional", required: false, description: "NAME:PATH (a guest file) or a local file" },
    target: { type: "positional", required: false, description: "a local path (a directory: the file keeps its name) or NAME:PATH (ending in /: the file keeps its name)" },
  },
  async run({ rawArgs }) {
    process.exitCode = await runCp(parseCpArgs(rawArgs));
  },
});
