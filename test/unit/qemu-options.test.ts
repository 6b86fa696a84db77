// burrow run's user values on QEMU's command line: every -drive/-chardev/-device value built from
// them must read back, under QEMU's own option-list rules, as exactly the options we meant with
// the user's value intact; numbers are bounded and refused with one clear line.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import type { RunOptions } from "../../src/host/qemu";
import { parsePortSpec, qemuArgs } from "../../src/host/qemu-argv";
import { hostForwardRule, MAX_TIMEOUT_SECONDS, memBytes, parseForward, parseMem, parseSmp, parseTcgTbSize, parseTimeout, qemuOptionValue, withInitArgs } from "../../src/host/options";

const base: RunOptions = { kernel: "k", initrd: "i", disks: [], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "kvm", append: "", timeoutSeconds: 10 };

/**
 * QEMU's QemuOpts reading of "a=b,c,d=e" (util/qemu-option.c): names end at "=" or ","; a value
 * runs to the next single comma, ",," standing for one literal comma; an element without "=" is
 * a bare name (the implied first option, or a flag).
 */
function parseQemuOpts(text: string): [string, string | null][] {
  const options: [string, string | null][] = [];
  let i = 0;
  for (;;) {
    let name = "";
    while (i < text.length && text[i] !== "=" && text[i] !== ",") name += text[i++];
    if (text[i] !== "=") {
      options.push([name, null]);
    } else {
      i++;
      let value = "";
      while (i < text.length) {
        if (text[i] === ",") {
          if (text[i + 1] !== ",") break;
          i++;
        }
        value += text[i++];
      }
      options.push([name, value]);
    }
    if (i >= text.length) return options;
    i++; // the separating comma
  }
}

/** The values following each `flag` in argv, parsed. */
function optionLists(args: string[], flag: string): [string, string | null][][] {
  return args.flatMap((arg, index) => (args[index - 1] === flag ? [parseQemuOpts(arg)] : []));
}

const names = (list: [string, string | null][]) => list.map(([name]) => name);
const get = (list: [string, string | null][], name: string) => list.find(([key]) => key === name)?.[1];

describe("the test's own QemuOpts parser", () => {
  test("reads QEMU's escaping", () => {
    expect(parseQemuOpts("file,id=p,path=a,,b")).toEqual([["file", null], ["id", "p"], ["path", "a,b"]]);
    expect(parseQemuOpts("a=x,,,b=y")).toEqual([["a", "x,"], ["b", "y"]]);
    expect(parseQemuOpts("a=")).toEqual([["a", ""]]);
  });
});

describe("hostile paths stay one option each", () => {
  test("a comma in a disk path is part of the path (was: Could not open 'my')", () => {
    const drives = optionLists(qemuArgs({ ...base, disks: ["my,disk.raw"] }), "-drive");
    expect(drives).toHaveLength(1);
    expect(names(drives[0]!)).toEqual(["id", "if", "format", "file.driver", "file.filename"]);
    expect(get(drives[0]!, "file.filename")).toBe("my,disk.raw");
  });

  test("a disk path cannot inject snapshot=, file.locking= or another drive", () => {
    const path = "x.raw,snapshot=on,file.locking=off,if=virtio";
    const args = qemuArgs({ ...base, disks: [path] });
    const drives = optionLists(args, "-drive");
    expect(drives).toHaveLength(1);
    expect(names(drives[0]!)).toEqual(["id", "if", "format", "file.driver", "file.filename"]);
    expect(get(drives[0]!, "if")).toBe("none");
    expect(get(drives[0]!, "file.filename")).toBe(path);
  });

  test("a protocol-looking disk path is opened as a file, not as nbd:/json:", () => {
    for (const path of ["nbd:localhost:10809", 'json:{"driver":"null-co"}']) {
      const drive = optionLists(qemuArgs({ ...base, disks: [path] }), "-drive")[0]!;
      expect(get(drive, "file.driver")).toBe("file");
      expect(get(drive, "file")).toBeUndefined();
      expect(get(drive, "file.filename")).toBe(path);
    }
  });

  test("a port file cannot inject append= or other chardev options", () => {
    const port = parsePortSpec("a=/tmp/log,append=on,mux=on");
    expect(port).toEqual({ name: "a", file: "/tmp/log,append=on,mux=on" });
    const args = qemuArgs({ ...base, ports: [port] });
    const chardevs = optionLists(args, "-chardev").filter((list) => get(list, "id") === "port0");
    expect(chardevs).toHaveLength(1);
    expect(chardevs[0]).toEqual([["file", null], ["id", "port0"], ["path", "/tmp/log,append=on,mux=on"]]);
    const devices = optionLists(args, "-device");
    expect(devices.map((list) => names(list))).toEqual([["virtio-serial-device", "id"], ["virtserialport", "bus", "chardev", "name"]]);
    // Port names are checked even when a caller builds PortSpec itself.
    expect(() => qemuArgs({ ...base, ports: [{ name: "a,mux=on", file: null }] })).toThrow(/bad port name/);
  });

  test("the console socket path is escaped too", () => {
    const console = optionLists(qemuArgs({ ...base, consoleSocket: "/tmp/a,b=c/console.sock" }), "-chardev")[0]!;
    expect(console).toEqual([["socket", null], ["id", "console"], ["path", "/tmp/a,b=c/console.sock"], ["server", "on"], ["wait", "on"]]);
  });

  test("values QEMU cannot take are refused with one line", () => {
    expect(() => qemuArgs({ ...base, disks: [""] })).toThrow(/disk path "" is empty/);
    expect(() => qemuOptionValue("a\0b", "x")).toThrow(/NUL/);
  });

  test("property: any path (commas, =, spaces, any Unicode) reads back as itself, one option per value", () => {
    const piece = fc.oneof(fc.constantFrom(",", ",,", "=", " ", "file=", ",snapshot=on", "\\", '"', "\n"), fc.string({ unit: "binary", maxLength: 8 }));
    const path = fc.array(piece, { minLength: 1, maxLength: 10 }).map((parts) => parts.join("")).filter((text) => text !== "" && !text.includes("\0"));
    fc.assert(
      fc.property(path, path, (disk, file) => {
        const args = qemuArgs({ ...base, disks: [disk], ports: [{ name: "p", file }] });
        const drives = optionLists(args, "-drive");
        expect(drives).toHaveLength(1);
        expect(names(drives[0]!)).toEqual(["id", "if", "format", "file.driver", "file.filename"]);
        expect(get(drives[0]!, "file.filename")).toBe(disk);
        const port = optionLists(args, "-chardev").find((list) => get(list, "id") === "port0")!;
        expect(names(port)).toEqual(["file", "id", "path"]);
        expect(get(port, "path")).toBe(file);
      }),
      { seed: 20240609, numRuns: 500 },
    );
  });
});

describe("QEMU itself opens a disk whose name has commas and option text", () => {
  test("info block names the whole path, read-write, no snapshot", async () => {
    const dir = mkdtempSync(join(tmpdir(), "burrow-qemu-opts-"));
    try {
      const disk = join(dir, "my,disk.raw,snapshot=on,read-only=on");
      writeFileSync(disk, new Uint8Array(1 << 20));
      const drive = qemuArgs({ ...base, disks: [disk] }).filter((_, index, args) => args[index - 1] === "-drive")[0]!;
      // -machine none: no guest, just QEMU's block layer and its monitor on stdio.
      const child = Bun.spawn(["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none", "-monitor", "stdio", "-drive", drive], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
      child.stdin.write("info block\nquit\n");
      await child.stdin.end();
      const [out, err] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
      expect(err).toBe("");
      // Injected read-only=on would print "(raw, read-only)", snapshot=on a temporary qcow2 overlay instead of the path.
      expect(out).toContain(`: ${disk} (raw)\r\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("numbers are bounded", () => {
  test("--timeout: finite, positive, at most 7 days (setTimeout overflows past ~24.8 days)", () => {
    expect(parseTimeout("120")).toBe(120);
    expect(parseTimeout("0.5")).toBe(0.5);
    expect(parseTimeout(String(MAX_TIMEOUT_SECONDS))).toBe(MAX_TIMEOUT_SECONDS);
    expect(MAX_TIMEOUT_SECONDS * 1000).toBeLessThan(2 ** 31 - 1);
    for (const bad of ["0", "-1", "", "abc", "Infinity", "NaN", "1e9", "0x10", String(MAX_TIMEOUT_SECONDS + 1), "2147484"]) {
      expect(() => parseTimeout(bad)).toThrow(/^--timeout must be a number of seconds above 0 and at most 604800 \(7 days\), got /);
    }
  });
  test("--smp: a whole number of vCPUs", () => {
    expect(parseSmp("4")).toBe(4);
    for (const bad of ["0", "1.5", "-1", "4,maxcpus=8", "sockets=2", "", "289", "1e2"]) expect(() => parseSmp(bad)).toThrow(/^--smp must be a whole number of vCPUs from 1 to 288/);
    expect(() => qemuArgs({ ...base, smp: 0 })).toThrow(/--smp/);
  });
  test("arguments after --: after the line's own init words, quoted where the kernel would split them", () => {
    expect(withInitArgs("burrow.zram=64M", [])).toBe("burrow.zram=64M");
    expect(withInitArgs("burrow.zram=64M", ["--serve", "two words", ""])).toBe('burrow.zram=64M -- --serve "two words" ""');
    expect(withInitArgs('quiet -- first "a b"', ["second"])).toBe('quiet -- first "a b" second');
    expect(withInitArgs("", ["x\ty"])).toBe('-- "x\ty"');
    expect(() => withInitArgs("", ['say "hi"'])).toThrow('argument "say \\"hi\\"" after --: the kernel command line cannot carry a double quote or NUL (it has no escapes)');
  });
  test("--tcg-tb-size: whole MiB under TCG, refused under KVM", () => {
    expect(parseTcgTbSize("16")).toBe(16);
    for (const bad of ["0", "", "1.5", "16M", "-8", "2049", "1e3", "16,thread=single"]) expect(() => parseTcgTbSize(bad)).toThrow(/^--tcg-tb-size must be a whole number of MiB from 1 to 2048, got /);
    const tcg = qemuArgs({ ...base, accel: "tcg", tcgTbSizeMiB: 16 });
    expect(tcg[tcg.indexOf("-accel") + 1]).toBe("tcg,tb-size=16");
    const plain = qemuArgs({ ...base, accel: "tcg" });
    expect(plain[plain.indexOf("-accel") + 1]).toBe("tcg");
    expect(() => qemuArgs({ ...base, tcgTbSizeMiB: 16 })).toThrow("--tcg-tb-size sizes TCG's translation buffer, but this VM runs under kvm");
    expect(() => qemuArgs({ ...base, accel: "tcg", tcgTbSizeMiB: 0 })).toThrow(/^--tcg-tb-size must be/);
  });
  test("--mem: a size in the one grammar (bare digits: MiB), 1M to 4T, rounded up to QEMU's 8 KiB; nothing else reaches -m", () => {
    expect(parseMem("512M")).toBe("512M");
    expect(parseMem("512")).toBe("512M");
    expect(parseMem("2g")).toBe("2G");
    expect(parseMem(" 2GiB ")).toBe("2G");
    expect(parseMem("4096K")).toBe("4M");
    expect(parseMem("1.5G")).toBe("1536M");
    expect(parseMem("1.5")).toBe("1536K");
    expect(parseMem("1M")).toBe("1M");
    expect(parseMem("4T")).toBe("4T");
    expect(parseMem("1048576B")).toBe("1M");
    // QEMU 7.2 gives -m 1025K a guest of 1032K: memBytes says so, and a RAM file of it matches.
    expect(parseMem("1025K")).toBe("1032K");
    expect(memBytes("1025K")).toBe(1032 * 1024);
    expect(memBytes("1048577B")).toBe(2 ** 20 + 8192);
    expect(memBytes("512")).toBe(512 * 2 ** 20);
    for (const good of ["512", "1025K", "1.5G", "3.75G", "1048577B"]) expect(parseMem(parseMem(good))).toBe(parseMem(good));
    for (const bad of ["512M,maxmem=8G", "size=1G", "0", "-1G", "", "8T", "4097G", "512K", "1048575B", "99999999999999G", "lots"]) {
      expect(() => parseMem(bad)).toThrow(/^--mem must be a size like 512M or 2G/);
    }
    expect(() => parseMem("512MB")).toThrow('--mem must be a size like 512M or 2G (K/M/G/T; no suffix: MiB) from 1M to 4T, got "512MB": MB is ambiguous (1000s or 1024s): write M or MiB');
    expect(() => parseMem("lots")).toThrow(/got "lots"$/);
    expect(() => parseMem("1.3G")).toThrow(/got "1\.3G": not a whole number of bytes$/);
    expect(() => parseMem("8T")).toThrow(/got "8T"$/);
    expect(() => qemuArgs({ ...base, mem: "1G,slots=2" })).toThrow(/--mem/);
  });
});

describe("--net and --forward", () => {
  test("--forward takes [tcp:|udp:]HOSTPORT:GUESTPORT, tcp by default, and listens on 127.0.0.1 only", () => {
    expect(parseForward("8080:80")).toEqual({ protocol: "tcp", hostPort: 8080, guestPort: 80 });
    expect(parseForward("udp:5353:53")).toEqual({ protocol: "udp", hostPort: 5353, guestPort: 53 });
    expect(hostForwardRule(parseForward("tcp:2222:22"))).toBe("hostfwd=tcp:127.0.0.1:2222-:22");
  });

  test("anything else is refused with one line naming the value", () => {
    for (const bad of ["80", "0:80", "8080:65536", "sctp:1:2", "tcp:1:2:3", "a:b", "8080:80,hostfwd=tcp::1-:2", ":80", "1e3:80", ""]) {
      expect(() => parseForward(bad)).toThrow(/--forward needs \[tcp:\|udp:\]HOSTPORT:GUESTPORT/);
    }
  });

  test("a NIC per machine type, every forward on the netdev, burrow.net=1 unless the user set it", () => {
    const forwards = [parseForward("8080:80"), parseForward("udp:5353:53")];
    const microvm = qemuArgs({ ...base, net: { forwards } });
    expect(microvm).toContain("user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5353-:53");
    expect(microvm).toContain("virtio-net-device,netdev=net0");
    expect(microvm[microvm.indexOf("-append") + 1]).toContain("burrow.net=1");
    const q35 = qemuArgs({ ...base, machine: "q35", net: { forwards: [] }, append: "burrow.net=0 -- x" });
    expect(q35).toContain("virtio-net-pci,netdev=net0");
    expect(q35[q35.indexOf("-append") + 1]).not.toContain("burrow.net=1");
    const none = qemuArgs(base);
    expect(none).not.toContain("-netdev");
    expect(none[none.indexOf("-append") + 1]).not.toContain("burrow.net");
  });
});
