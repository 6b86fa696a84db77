// The snapshot directory's own files: sealed at the save, refused at a restore when damaged, and
// hashed in full only when a file is not the one last verified. The manifest, field by field.
import { afterAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { copyFileSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, truncateSync, utimesSync, writeFileSync, writeSync, closeSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkSealed, sealFile, VERIFIED } from "../../src/host/snapshot-files";
import { MANIFEST, MANIFEST_VERSION, parseManifest, readManifest, type SnapshotManifest } from "../../src/host/snapshot-manifest";

const work = mkdtempSync(join(tmpdir(), "burrow-sealed-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function snapshotDir(name: string): string {
  const dir = join(work, name);
  Bun.spawnSync(["mkdir", "-p", dir]);
  writeFileSync(join(dir, "ram"), Buffer.alloc(3 << 20, 7));
  return dir;
}

describe("sealed files", () => {
  test("in place: trusted without hashing; a flipped byte: refused after hashing", () => {
    const dir = snapshotDir("flip");
    const sealed = sealFile(dir, "ram");
    expect(checkSealed(dir, sealed)).toEqual({ problem: null, hashed: false });
    const fd = openSync(join(dir, "ram"), "r+");
    writeSync(fd, Buffer.from([8]), 0, 1, 1 << 20);
    closeSync(fd);
    expect(checkSealed(dir, sealed)).toEqual({ problem: `${join(dir, "ram")} does not hold what the save wrote (its sha256 differs)`, hashed: true });
  });

  test("a flipped byte with the times set back is still caught (ctime cannot be set back)", () => {
    const dir = snapshotDir("times");
    const before = statSync(join(dir, "ram"));
    const sealed = sealFile(dir, "ram");
    const fd = openSync(join(dir, "ram"), "r+");
    writeSync(fd, Buffer.from([9]), 0, 1, 5);
    closeSync(fd);
    utimesSync(join(dir, "ram"), before.atime, before.mtime);
    expect(checkSealed(dir, sealed).problem).toMatch(/its sha256 differs/);
  });

  test("truncated or missing: refused without reading it", () => {
    const dir = snapshotDir("short");
    const sealed = sealFile(dir, "ram");
    truncateSync(join(dir, "ram"), 1 << 20);
    expect(checkSealed(dir, sealed)).toEqual({ problem: `${join(dir, "ram")} is ${1 << 20} bytes, the save wrote ${3 << 20} (truncated or replaced)`, hashed: false });
    rmSync(join(dir, "ram"));
    expect(checkSealed(dir, sealed).problem).toBe(`${join(dir, "ram")} is missing (ENOENT)`);
  });

  test("an identical copy is hashed once, then trusted; a different copy is refused", () => {
    const dir = snapshotDir("copied");
    const sealed = sealFile(dir, "ram");
    copyFileSync(join(dir, "ram"), join(dir, "ram.copy"));
    renameSync(join(dir, "ram.copy"), join(dir, "ram"));
    expect(checkSealed(dir, sealed)).toEqual({ problem: null, hashed: true });
    expect(JSON.parse(readFileSync(join(dir, VERIFIED), "utf8")).ram).toBeString();
    expect(checkSealed(dir, sealed)).toEqual({ problem: null, hashed: false });
    writeFileSync(join(dir, "ram.other"), Buffer.alloc(3 << 20, 1));
    renameSync(join(dir, "ram.other"), join(dir, "ram"));
    expect(checkSealed(dir, sealed).problem).toMatch(/its sha256 differs/);
  });
});

const HASH = "a".repeat(64);
const identity = (path: string) => ({ path, size: 10, mtimeMs: 1, head: HASH, tail: HASH });

function manifest(): SnapshotManifest {
  return {
    burrowSnapshot: 4,
    form: "mapped",
    warm: false,
    qemu: "7.2.22",
    savedAt: "2026-12-01T00:00:00.000Z",
    options: { arch: "x86_64", kernel: "/k", initrd: "/i", disks: ["/d"], readOnlyDisks: [], ports: [{ name: "demo.port", file: null }], mem: "512M", smp: 1, machine: "microvm", accel: "tcg", append: "burrow.snapshot=1 ro", runId: "A".repeat(24), extraArgs: [], net: true },
    files: { kernel: identity("/k"), initrd: identity("/i"), disks: [identity("/d")] },
    sha256: { kernel: HASH, initrd: null },
    saved: { state: { name: "state", size: 67650, sha256: HASH, identity: "1:2:3:4:5" }, ram: { name: "ram", size: 512 * 2 ** 20, sha256: HASH, identity: "1:3:3:4:5" } },
    ramAllocatedBytes: 80 << 20,
    readyAfterMs: 1500,
    saveMs: 16,
    sealMs: 400,
  };
}

function edited(edit: (value: Record<string, any>) => void): string {
  const value = structuredClone(manifest()) as Record<string, any>;
  edit(value);
  return JSON.stringify(value);
}

describe("the manifest", () => {
  test("a saved manifest reads back as it was", () => {
    expect(parseManifest(JSON.stringify(manifest()))).toEqual(manifest());
    // Both values of the NIC flag come back as saved.
    expect(parseManifest(edited((m) => (m.options.net = false))).options.net).toBe(false);
  });

  test("every edited, missing or mistyped field is refused with its name", () => {
    const refused = (text: string) => {
      try {
        parseManifest(text);
        return "accepted";
      } catch (error) {
        return (error as Error).message;
      }
    };
    expect(refused("{")).toBe("not JSON");
    expect(MANIFEST_VERSION).toBe(4);
    expect(refused(edited((m) => (m.burrowSnapshot = 1)))).toMatch(/^saved by an older burrow \(version 1/);
    // Version 3's guest read its resume as a text line on a port of its own: refused, with why.
    expect(refused(edited((m) => (m.burrowSnapshot = 3)))).toBe("saved by an older burrow (version 3, whose guest read its resume as a text line, before the control channel); this burrow restores version 4");
    expect(refused(edited((m) => (m.burrowSnapshot = 5)))).toBe("not a burrow snapshot manifest of version 4 (burrowSnapshot: 5)");
    expect(refused(edited((m) => delete m.options.mem))).toBe("options.mem: expected a string");
    expect(refused(edited((m) => (m.options.mem = "3X")))).toMatch(/^options\.mem: expected a valid value \(--mem must be/);
    expect(refused(edited((m) => (m.options.smp = "1")))).toBe("options.smp: expected a number of at least 0");
    expect(refused(edited((m) => (m.options.machine = "virt")))).toMatch(/^options\.machine: expected a valid value \(x86_64: microvm, q35\)/);
    expect(refused(edited((m) => (m.options.extraArgs = ["-x", 1])))).toBe("options.extraArgs: expected a list of strings");
    // Whether a restore gets a NIC: required, and a boolean (not a truthy string).
    expect(refused(edited((m) => delete m.options.net))).toBe("options.net: expected true or false");
    expect(refused(edited((m) => (m.options.net = "false")))).toBe("options.net: expected true or false");
    expect(refused(edited((m) => (m.options.ports[0].name = "a,b")))).toMatch(/^options\.ports\[0\]\.name: expected a string matching/);
    expect(refused(edited((m) => (m.options.runId = "short")))).toMatch(/^options\.runId: expected a string matching/);
    expect(refused(edited((m) => (m.files.disks = [])))).toMatch(/^files\.disks: expected one identity per disk/);
    expect(refused(edited((m) => (m.saved.ram = null)))).toBe("saved.ram: expected the RAM file for the mapped form");
    expect(refused(edited((m) => (m.saved.ram.size = 1)))).toMatch(/^saved\.ram\.size: expected the guest's memory, 536870912 bytes/);
    expect(refused(edited((m) => (m.saved.state.name = "../x")))).toMatch(/^saved\.state\.name: expected a string matching/);
    expect(refused(edited((m) => (m.sha256.kernel = "zz")))).toMatch(/^sha256\.kernel: expected a string matching/);
    expect(refused(edited((m) => (m.form = "copy")))).toBe("saved.ram: expected null for the copy form");
  });

  test("any mutation of a manifest is accepted or refused with a line, never a crash (fuzz)", () => {
    const paths = (value: unknown, prefix: string[] = []): string[][] =>
      value !== null && typeof value === "object" ? Object.entries(value).flatMap(([key, child]) => [[...prefix, key], ...paths(child, [...prefix, key])]) : [];
    const all = paths(manifest());
    // Every field is mutated, the NIC flag too.
    expect(all).toContainEqual(["options", "net"]);
    fc.assert(fc.property(fc.constantFrom(...all), fc.jsonValue(), (path, replacement) => {
      const text = edited((m) => {
        let target = m;
        for (const key of path.slice(0, -1)) target = target[key];
        target[path.at(-1)!] = replacement;
      });
      try {
        parseManifest(text);
      } catch (error) {
        expect(error).toBeInstanceOf(Error);
        expect((error as Error).message).not.toContain("undefined is not");
        expect((error as Error).message.split("\n").length).toBe(1);
      }
    }), { seed: 23, numRuns: 2000 });
  });

  test("readManifest names the directory and says to save again", () => {
    const dir = join(work, "manifest");
    Bun.spawnSync(["mkdir", "-p", dir]);
    expect(() => readManifest(dir)).toThrow(`--snapshot-restore ${dir}: no manifest.json: not a snapshot, or its save did not finish (save again)`);
    writeFileSync(join(dir, MANIFEST), edited((m) => (m.options.accel = "hvf")));
    expect(() => readManifest(dir)).toThrow(`--snapshot-restore ${dir}: ${join(dir, MANIFEST)}: options.accel: expected one of tcg, kvm; the snapshot is damaged or was edited (save again)`);
  });
});
