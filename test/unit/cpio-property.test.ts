// Property: any tree of files, directories and symlinks whose names are within the kernel's
// limits survives our newc writer → GNU cpio (listing and extraction) unchanged.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import fc from "fast-check";
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { CpioArchive, type CpioEntry } from "../../src/image/cpio";
import { scratchDir } from "./image-fixtures";

type Node =
  | { type: "file"; data: Uint8Array; mode: number }
  | { type: "symlink"; target: string }
  | { type: "dir"; mode: number; children: [string, Node][] };

// Awkward but legal bytes: spaces, quotes, glob and shell characters, newlines, multibyte UTF-8.
const CHARS = [..."abcXYZ019 -_.'\"*?$\\\n\t~#", "é", "日", "🙂", "\u{ff5e}"];
const name = fc.oneof(
  { weight: 9, arbitrary: fc.string({ unit: fc.constantFrom(...CHARS), minLength: 1, maxLength: 12 }) },
  // Up to NAME_MAX bytes ("日" is 3 bytes: 85 of them are 255).
  { weight: 1, arbitrary: fc.constantFrom("n".repeat(255), "日".repeat(85), "🙂".repeat(63)) },
).filter((candidate) => candidate !== "." && candidate !== "..");
const children = (node: fc.Arbitrary<Node>) => fc.uniqueArray(fc.tuple(name, node), { selector: ([childName]) => childName, maxLength: 5 });

const tree = fc.letrec<{ node: Node; dir: Node }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 4, depthSize: "small" },
    fc.record({ type: fc.constant("file" as const), data: fc.uint8Array({ maxLength: 3000 }), mode: fc.constantFrom(0o644, 0o600, 0o755, 0o640, 0o444, 0o4755) }),
    fc.record({ type: fc.constant("symlink" as const), target: fc.string({ unit: fc.constantFrom(...CHARS, "/"), minLength: 1, maxLength: 40 }) }),
    tie("dir"),
  ),
  dir: fc.record({ type: fc.constant("dir" as const), mode: fc.constantFrom(0o755, 0o700, 0o750, 0o1777), children: children(tie("node")) }),
})).dir;

function flatten(node: Node, path: string, out: CpioEntry[]): CpioEntry[] {
  if (node.type === "dir") {
    if (path) out.push({ type: "dir", path, mode: node.mode });
    for (const [childName, child] of node.children) flatten(child, path ? `${path}/${childName}` : childName, out);
  } else if (node.type === "file") out.push({ type: "file", path, data: node.data, mode: node.mode });
  else out.push({ type: "symlink", path, target: node.target });
  return out;
}

function walk(root: string, relative = ""): string[] {
  return readdirSync(join(root, relative)).flatMap((child) => {
    const path = relative ? `${relative}/${child}` : child;
    return lstatSync(join(root, path)).isDirectory() ? [path, ...walk(root, path)] : [path];
  });
}

describe("cpio newc writer (property)", () => {
  test("random trees round-trip through cpio -t and cpio -i", () => {
    fc.assert(
      fc.property(tree, (root) => {
        const entries = flatten(root, "", []);
        const archive = new CpioArchive();
        for (const entry of entries) archive.add({ ...entry, path: `/${entry.path}` });
        const bytes = archive.bytes({ mtime: 1_700_000_000 });

        const listing = spawnSync(["cpio", "-t", "--quiet"], { stdin: bytes, stdout: "pipe", stderr: "pipe" });
        expect(listing.exitCode).toBe(0);
        expect(listing.stdout.toString()).toBe(archive.list().map((entry) => `${entry.path}\n`).join(""));

        const dir = scratchDir("cpio-property");
        try {
          const extract = spawnSync(["cpio", "-i", "--make-directories", "--no-absolute-filenames", "--quiet"], { cwd: dir, stdin: bytes, stderr: "pipe" });
          expect(extract.stderr.toString()).toBe("");
          expect(extract.exitCode).toBe(0);
          expect(walk(dir).sort()).toEqual(entries.map((entry) => entry.path).sort());
          for (const entry of entries) {
            const path = join(dir, entry.path);
            const info = lstatSync(path);
            if (entry.type === "dir") {
              expect(info.isDirectory()).toBe(true);
              expect(info.mode & 0o7777).toBe(entry.mode!);
            } else if (entry.type === "file") {
              expect(info.isFile()).toBe(true);
              expect(info.mode & 0o7777).toBe(entry.mode!);
              expect(Buffer.from(readFileSync(path)).equals(Buffer.from(entry.data))).toBe(true);
            } else if (entry.type === "symlink") {
              expect(info.isSymbolicLink()).toBe(true);
              expect(readlinkSync(path)).toBe(entry.target);
            }
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { seed: 42, numRuns: 200 },
    );
  }, 60_000);
});
