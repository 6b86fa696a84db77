// The builder's private working directory (the compiled preload, the depmod tree, the ext4
// staging tree), removed whatever happens.
import { chmodSync, lstatSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export async function withScratch<T>(use: (scratch: string) => T | Promise<T>): Promise<T> {
  const scratch = mkdtempSync(join(resolve(tmpdir()), "burrow-image-"));
  try {
    return await use(scratch);
  } finally {
    removeTree(scratch);
  }
}

/** Removes a tree even when --add gave some of its directories modes that keep their owner out (0555, 0000). */
function removeTree(root: string): void {
  const unlock = (path: string) => {
    if (!lstatSync(path, { throwIfNoEntry: false })?.isDirectory()) return;
    chmodSync(path, 0o700);
    for (const child of readdirSync(path)) unlock(join(path, child));
  };
  unlock(root);
  rmSync(root, { recursive: true, force: true });
}
