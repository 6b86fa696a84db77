// Snapshot boot tests' shared pieces: the micro-kernel guest they save, and a restore driven by
// hand (bare QEMU, no burrow run driver) for sending the guest what a real host never would.
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { encodeFrame, u32Body } from "../../src/control/frames";
import { FrameType, PROTOCOL_VERSION } from "../../src/control/wire";
import { QmpClient } from "../../src/host/qmp";
import { runVm, type RunOptions, type RunResult } from "../../src/host/qemu";
import { incomingUri } from "../../src/host/qemu-argv";
import { RAM, readManifest, STATE } from "../../src/host/snapshot-manifest";
import { INITRAMFS, KERNEL_MICRO } from "./artifacts";

/** The 512 MiB micro-kernel guest on `disk`, with one demo port. */
export function microGuest(disk: string, append: string): RunOptions {
  return { kernel: KERNEL_MICRO, initrd: INITRAMFS, disks: [disk], ports: [{ name: "demo.port", file: null }], mem: "512M", smp: 1, machine: "microvm", accel: "tcg", append, timeoutSeconds: 150 };
}

/** What a host sends first on a connection. */
export const HELLO = encodeFrame(FrameType.HELLO, 0, u32Body(PROTOCOL_VERSION));

/** A connection that greets the guest, then hands it `text` as its resume message (whatever it holds). */
export function resumeFrames(text: string | Uint8Array): Uint8Array[] {
  return [HELLO, encodeFrame(FrameType.RESUME, 0, typeof text === "string" ? new TextEncoder().encode(text) : text)];
}

/**
 * Restore `dir` (a mapped snapshot) with bare QEMU and send `send`'s bytes on the control port
 * (then hang up if `hangUp`), or nothing (then QEMU is killed after `silentMs`: a guest without a
 * message waits for ever).
 */
export function restoreByHand(dir: string, scratch: string, send: Uint8Array[] | null, { silentMs = 8_000, hangUp = false } = {}): Promise<RunResult> {
  const manifest = readManifest(dir);
  const sockets = mkdtempSync(join(scratch, "s-"));
  const { net, ...saved } = manifest.options;
  return runVm({
    ...saved,
    ...(net ? { net: { forwards: [] } } : {}),
    timeoutSeconds: 60,
    snapshotDisks: true,
    controlSocket: join(sockets, "control"),
    rawControl: true,
    qmpSocket: join(sockets, "qmp"),
    incomingFile: join(dir, STATE),
    ramFile: { path: join(dir, RAM), shared: false },
    incomingDeferred: true,
    onSpawn: (qemu) => {
      void (async () => {
        const qmp = await QmpClient.connect(join(sockets, "qmp"));
        await qmp.execute("migrate-set-capabilities", { capabilities: [{ capability: "x-ignore-shared", state: true }] });
        await qmp.execute("migrate-incoming", { uri: incomingUri() });
        await qmp.waitFor<{ status: string }>("query-status", (value) => value.status !== "inmigrate", 60_000);
        if (send !== null) {
          const control = await Bun.connect({ unix: join(sockets, "control"), socket: { data() {} } });
          for (const bytes of send) control.write(bytes);
          if (hangUp) setTimeout(() => control.end(), 200);
        }
        await qmp.execute("cont");
        if (send === null) setTimeout(() => qemu.kill(), silentMs);
      })().catch(() => qemu.kill());
    },
  });
}
