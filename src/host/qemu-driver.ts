// A program driving a running QEMU over its sockets (QMP, the snapshot control port) beside the
// console stream. Its end is a value from the moment it settles: a failure is never an unhandled
// rejection reported late with a stack trace, and it says whether QEMU ending was the cause.

export interface SpawnedQemu {
  kill(signal?: NodeJS.Signals): void;
  exited: Promise<number>;
}

export type DriverEnd<T> =
  | { ok: true; value: T }
  /** cause "qemu": QEMU ended on its own (its reason is the one to report); "driver": we stopped it. */
  | { ok: false; error: unknown; cause: "qemu" | "driver" };

/** How long a failed driver waits for QEMU to end by itself: a closed socket means QEMU is going. */
export const QEMU_END_GRACE_MS = 300;

/**
 * Run `drive` against a spawned QEMU. Its signal aborts once QEMU has exited, so connects give
 * up at once instead of at their deadline. On failure QEMU is killed, unless it ends by itself
 * within QEMU_END_GRACE_MS.
 */
export function startDriver<T>(qemu: SpawnedQemu, drive: (qemuGone: AbortSignal) => Promise<T>, graceMs = QEMU_END_GRACE_MS): Promise<DriverEnd<T>> {
  const gone = new AbortController();
  const ended = qemu.exited.then(() => true, () => true);
  void ended.then(() => gone.abort());
  return drive(gone.signal).then(
    (value): DriverEnd<T> => ({ ok: true, value }),
    async (error: unknown): Promise<DriverEnd<T>> => {
      const byItself = await Promise.race([ended, Bun.sleep(graceMs).then(() => false)]);
      if (!byItself) qemu.kill("SIGKILL");
      return { ok: false, error, cause: byItself ? "qemu" : "driver" };
    },
  );
}
