// One way to turn anything thrown into the text of a log line.
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
