// Inputs for image-building unit tests that need neither root nor built artifacts.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A 64-byte ELF64 little-endian header with no program or section headers: a "static binary" to the builder. */
export function fakeStaticBinary(dir: string): string {
  const header = new Uint8Array(64);
  header.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  const path = join(dir, "fake-burrow");
  writeFileSync(path, header, { mode: 0o755 });
  return path;
}

export function scratchDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `burrow-${prefix}-`));
}
