// One way to turn anything thrown into the text of a log line.
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** A failure that ends a command with its own exit status (QEMU failing: 126), not the generic 1. */
export class ExitStatusError extends Error {
  constructor(message: string, readonly exitStatus: number) {
    super(message);
  }
}
