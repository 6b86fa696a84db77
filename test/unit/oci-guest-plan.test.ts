// The guest mount plan (mounts.json): what parses, what is refused and by which JSON path, and the
// host's serializer agreeing with the guest's parser.
import { describe, expect, test } from "bun:test";
import { parseGuestPlan, serializeGuestPlan, type GuestPlan } from "../../src/oci/guest-plan";

const GOOD: GuestPlan = {
  version: 1,
  readonlyRoot: true,
  mounts: [
    { kind: "fs", type: "proc", source: "proc", destination: "/proc", options: ["nosuid", "noexec", "nodev"] },
    { kind: "fs", type: "devpts", source: "devpts", destination: "/dev/pts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { kind: "share", tag: "vol0", destination: "/data", options: ["rbind", "rprivate", "rw"] },
    { kind: "file", file: "files/hosts", destination: "/etc/hosts", options: ["bind", "ro"] },
  ],
};

function refused(value: unknown): string {
  const result = parseGuestPlan(JSON.stringify(value));
  if (result.ok) throw new Error(`accepted ${JSON.stringify(value)}`);
  return result.error;
}

function withMount(mount: unknown): unknown {
  return { version: 1, readonlyRoot: false, mounts: [GOOD.mounts[0], mount] };
}

describe("parseGuestPlan", () => {
  test("a good plan parses to the same value, and serializes back to text that parses", () => {
    const text = serializeGuestPlan(GOOD);
    expect(parseGuestPlan(text)).toEqual({ ok: true, plan: GOOD });
    expect(parseGuestPlan(JSON.stringify(GOOD))).toEqual({ ok: true, plan: GOOD });
    expect(text.endsWith("\n")).toBe(true);
  });

  test("not JSON, wrong version, wrong top-level types", () => {
    expect(parseGuestPlan("{")).toMatchObject({ ok: false, error: expect.stringMatching(/^mounts\.json is not JSON/) });
    expect(refused([])).toBe("$: expected an object");
    expect(refused({ ...GOOD, version: 2 })).toBe("$.version: 2 is not a plan version this burrow reads (1)");
    expect(refused({ ...GOOD, readonlyRoot: "yes" })).toBe("$.readonlyRoot: expected true or false");
    expect(refused({ ...GOOD, mounts: {} })).toBe("$.mounts: expected an array");
    expect(refused({ ...GOOD, extra: 1 })).toMatch(/^\$\.extra: unknown field/);
  });

  test("destinations: absolute, no '..', not the root", () => {
    const at = (destination: unknown) => refused(withMount({ kind: "fs", type: "tmpfs", source: "tmpfs", destination, options: [] }));
    expect(at("tmp")).toBe('$.mounts[1].destination: "tmp" is not an absolute path');
    expect(at("/a/../etc")).toBe('$.mounts[1].destination: "/a/../etc" has a ".." component');
    expect(at("/..")).toMatch(/^\$\.mounts\[1\]\.destination: .*"\.\." component/);
    expect(at("/")).toBe("$.mounts[1].destination: is the root itself");
    expect(at("//./")).toBe("$.mounts[1].destination: is the root itself");
    expect(at(7)).toBe("$.mounts[1].destination: expected a string");
    expect(at("/a\0b")).toBe("$.mounts[1].destination: contains a NUL byte");
    expect(at(`/${"a".repeat(4095)}`)).toMatch(/longer than 4095 bytes/);
    // ".." inside a name is a name, not a component.
    expect(parseGuestPlan(JSON.stringify(withMount({ kind: "fs", type: "tmpfs", source: "t", destination: "/a..b/c", options: [] }))).ok).toBe(true);
  });

  test("share tags: 1 to 31 bytes of A-Za-z0-9._-", () => {
    const tag = (value: unknown) => refused(withMount({ kind: "share", tag: value, destination: "/v", options: [] }));
    expect(tag("")).toBe('$.mounts[1].tag: "" is not a share tag (1 to 31 of A-Z a-z 0-9 . _ -)');
    expect(tag("a".repeat(32))).toMatch(/is not a share tag/);
    expect(tag("vol,x")).toMatch(/is not a share tag/);
    expect(tag("vol 1")).toMatch(/is not a share tag/);
    expect(parseGuestPlan(JSON.stringify(withMount({ kind: "share", tag: "A.b_c-9".padEnd(31, "x"), destination: "/v", options: [] }))).ok).toBe(true);
  });

  test("bundle files: relative, no '..', naming something", () => {
    const file = (value: unknown) => refused(withMount({ kind: "file", file: value, destination: "/etc/hosts", options: [] }));
    expect(file("/etc/hosts")).toBe('$.mounts[1].file: "/etc/hosts" must be relative to the bundle share');
    expect(file("files/../../x")).toBe('$.mounts[1].file: "files/../../x" has a ".." component');
    expect(file("./")).toBe("$.mounts[1].file: names no file");
    expect(file(undefined)).toBe("$.mounts[1].file: missing (expected a string)");
  });

  test("kinds, fs types, options and stray fields", () => {
    expect(refused(withMount({ kind: "bind", destination: "/x", options: [] }))).toBe('$.mounts[1].kind: "bind" is not a mount kind (share, file or fs)');
    expect(refused(withMount({ destination: "/x", options: [] }))).toBe("$.mounts[1].kind: null is not a mount kind (share, file or fs)");
    expect(refused(withMount("tmpfs"))).toBe("$.mounts[1]: expected an object");
    expect(refused(withMount({ kind: "fs", type: "Bad Type", source: "x", destination: "/x", options: [] }))).toBe('$.mounts[1].type: "Bad Type" is not a filesystem type name');
    expect(refused(withMount({ kind: "fs", type: "tmpfs", destination: "/x", options: [] }))).toBe("$.mounts[1].source: missing (expected a string)");
    expect(refused(withMount({ kind: "fs", type: "tmpfs", source: "t", destination: "/x", options: "ro" }))).toBe("$.mounts[1].options: expected an array of strings");
    expect(refused(withMount({ kind: "fs", type: "tmpfs", source: "t", destination: "/x", options: ["ro", 1] }))).toBe("$.mounts[1].options[1]: expected a string");
    expect(refused(withMount({ kind: "fs", type: "tmpfs", source: "t", destination: "/x" }))).toBe("$.mounts[1].options: missing (expected an array of strings)");
    expect(refused(withMount({ kind: "share", tag: "v", destination: "/x", options: [], file: "f" }))).toMatch(/^\$\.mounts\[1\]\.file: unknown field/);
  });

  test("the serializer refuses what the guest would refuse, naming the field", () => {
    const bad = { ...GOOD, mounts: [{ kind: "share", tag: "has space", destination: "/v", options: [] }] } as GuestPlan;
    expect(() => serializeGuestPlan(bad)).toThrow('guest mount plan: $.mounts[0].tag: "has space" is not a share tag');
  });
});
