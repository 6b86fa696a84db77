// Files whose absence is an answer, not a failure (a /sys attribute this device lacks, /proc not
// mounted yet, a file the new root does not have): each caller says what a missing one means.
import { readFileSync } from "node:fs";

/** The file's text, or null when it cannot be read. */
export function readOptionalText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}
