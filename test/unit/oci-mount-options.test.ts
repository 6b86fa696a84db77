// config.json mount options → mount(2) flags, data, propagation and problems.
import { describe, expect, test } from "bun:test";
import { describeMountFlags, parseMountOptions } from "../../src/oci/mount-options";
import { MountFlags } from "../../src/sys/constants";

const { RDONLY, NOSUID, NODEV, NOEXEC, NOATIME, RELATIME, STRICTATIME, BIND, REC, PRIVATE, SLAVE, SHARED, UNBINDABLE, REMOUNT } = MountFlags;

describe("parseMountOptions", () => {
  test("what Podman gives a devpts mount: flags and the fs's own words", () => {
    expect(parseMountOptions(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"])).toEqual({
      flags: NOSUID | NOEXEC, data: "newinstance,ptmxmode=0666,mode=0620,gid=5", propagation: null, bind: false, recursive: false, ignored: [], problems: [],
    });
  });

  test("a tmpfs: strictatime, size=, mode=, tmpcopyup ignored (and said)", () => {
    const parsed = parseMountOptions(["nosuid", "nodev", "strictatime", "mode=755", "size=65536k", "nr_inodes=1000", "uid=0", "tmpcopyup"]);
    expect(parsed.flags).toBe(NOSUID | NODEV | STRICTATIME);
    expect(parsed.data).toBe("mode=755,size=65536k,nr_inodes=1000,uid=0");
    expect(parsed.ignored).toEqual(["tmpcopyup"]);
    expect(parsed.problems).toEqual([]);
  });

  test("bind and rbind, propagation words (the last wins)", () => {
    expect(parseMountOptions(["rbind", "rprivate", "rw"])).toMatchObject({ flags: BIND | REC, bind: true, recursive: true, propagation: PRIVATE | REC });
    expect(parseMountOptions(["bind", "ro"])).toMatchObject({ flags: BIND | RDONLY, bind: true, recursive: false, propagation: null });
    expect(parseMountOptions(["shared", "slave"]).propagation).toBe(SLAVE);
    expect(parseMountOptions(["rslave"]).propagation).toBe(SLAVE | REC);
    expect(parseMountOptions(["rshared"]).propagation).toBe(SHARED | REC);
    expect(parseMountOptions(["unbindable"]).propagation).toBe(UNBINDABLE);
    expect(parseMountOptions(["private"]).propagation).toBe(PRIVATE);
  });

  test("set and clear words apply in order", () => {
    expect(parseMountOptions(["ro", "rw"]).flags).toBe(0);
    expect(parseMountOptions(["rw", "ro"]).flags).toBe(RDONLY);
    expect(parseMountOptions(["noexec", "exec", "nodev", "suid"]).flags).toBe(NODEV);
    expect(parseMountOptions(["noatime", "atime", "relatime"]).flags).toBe(RELATIME);
    expect(parseMountOptions(["noatime"]).flags).toBe(NOATIME);
    expect(parseMountOptions(["remount", "ro"]).flags).toBe(REMOUNT | RDONLY);
    expect(parseMountOptions(["defaults"]).flags).toBe(0);
  });

  test("recursive attributes act like their plain word; idmap is refused", () => {
    expect(parseMountOptions(["rro", "rnosuid", "rnodev", "rnoexec"]).flags).toBe(RDONLY | NOSUID | NODEV | NOEXEC);
    expect(parseMountOptions(["rrw"]).flags).toBe(0);
    expect(parseMountOptions(["idmap"]).problems).toEqual(["idmap: idmapped mounts are not supported"]);
  });

  test("an unknown bare word, an empty word and a comma are problems; key=value always goes to data", () => {
    const parsed = parseMountOptions(["nosiud", "", "mode=1777,uid=0", "hidepid=2", "=x"]);
    expect(parsed.problems).toEqual([
      'unknown mount option "nosiud"',
      "an empty option",
      '"mode=1777,uid=0" holds a comma (give each option as its own string)',
      'unknown mount option "=x"',
    ]);
    expect(parsed.data).toBe("hidepid=2");
  });

  test("describeMountFlags names what is set", () => {
    expect(describeMountFlags(RDONLY | NOSUID | NODEV)).toBe("ro,nosuid,nodev");
    expect(describeMountFlags(BIND | REC)).toBe("rw,rbind");
    expect(describeMountFlags(0)).toBe("rw");
  });
});
