// Guest architectures on the host side: --arch parsing, the QEMU command line per architecture,
// and the image builder refusing another architecture's binary or libraries.
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ARCH_INFO, archOfElf, hostArch, parseArch, type Arch } from "../../src/arch";
import type { RunOptions } from "../../src/host/qemu";
import { kernelCommandLine, qemuArgs } from "../../src/host/qemu-argv";
import { checkMachine, defaultMachine } from "../../src/host/options";
import { checkBinaryArch, libraryDirs } from "../../src/image/libraries";
import { buildImage } from "../../src/image/build";
import { elfHeader, oneModuleImage } from "../helpers/module-image";

const base: RunOptions = { kernel: "k", initrd: "i", disks: [], ports: [], mem: "512M", smp: 1, machine: "microvm", accel: "tcg", append: "", timeoutSeconds: 10 };

// The module checks build images for this host's architecture, whose supervisor the host's own cc
// compiles: unit tests need no cross compiler. An arm64 image of arm64 modules, cross-compiled, is
// built in test/boot/arm64.test.ts.
const IMAGE = hostArch();
const OTHER: Arch = IMAGE === "arm64" ? "x86_64" : "arm64";
const moduleImage = (work: string, file: string, bytes: Uint8Array) => oneModuleImage(work, file, bytes, IMAGE);

async function inScratch(run: (work: string) => Promise<void>): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "burrow-arch-"));
  try {
    await run(work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

describe("--arch", () => {
  test("names and aliases", () => {
    expect(parseArch("arm64")).toBe("arm64");
    expect(parseArch("aarch64")).toBe("arm64");
    expect(parseArch("x86_64")).toBe("x86_64");
    expect(parseArch("amd64")).toBe("x86_64");
    expect(hostArch()).toBe(process.arch === "arm64" ? "arm64" : "x86_64");
  });

  test("anything else is refused with one line naming it", () => {
    for (const bad of ["riscv64", "", "ARM64", "toString", "__proto__"]) expect(() => parseArch(bad)).toThrow(/--arch must be x86_64 \(amd64\) or arm64 \(aarch64\)/);
  });

  test("ELF machines", () => {
    expect(archOfElf(elfHeader(62))).toBe("x86_64");
    expect(archOfElf(elfHeader(183))).toBe("arm64");
    expect(archOfElf(elfHeader(243))).toBeNull();
    expect(archOfElf(new TextEncoder().encode("#!/bin/sh\n"))).toBeNull();
  });
});

describe("burrow run --arch arm64", () => {
  const arm: RunOptions = { ...base, arch: "arm64", machine: "virt" };

  test("qemu-system-aarch64 -machine virt -cpu max with the fast pointer-auth algorithm, PCI virtio devices, console on ttyAMA0, no x86 TSC hints", () => {
    const args = qemuArgs({ ...arm, disks: ["root.img"], ports: [{ name: "p", file: null }], append: "root=LABEL=x -- a" });
    expect(args[0]).toBe("qemu-system-aarch64");
    expect(args[args.indexOf("-machine") + 1]).toBe("virt");
    // QARMA5, QEMU's default, made every signed return cost hundreds of host instructions under TCG.
    expect(args[args.indexOf("-cpu") + 1]).toBe("max,pauth-impdef=on");
    const kvm = qemuArgs({ ...arm, accel: "kvm" });
    expect(kvm[kvm.indexOf("-cpu") + 1]).toBe("host");
    const devices = args.filter((_, i) => args[i - 1] === "-device");
    expect(devices.some((d) => d.startsWith("virtio-blk-pci,"))).toBe(true);
    expect(devices.some((d) => d.startsWith("virtio-serial-pci,"))).toBe(true);
    const append = args[args.indexOf("-append") + 1]!;
    expect(append).toMatch(/^console=ttyAMA0 panic=-1 root=LABEL=x -- a$/);
    expect(append).not.toMatch(/tsc|reboot=t/);
  });

  test("x86_64 keeps its machine, binary and console", () => {
    const args = qemuArgs({ ...base, arch: "x86_64" });
    expect(args[0]).toBe("qemu-system-x86_64");
    expect(args[args.indexOf("-machine") + 1]).toBe("microvm,rtc=on");
    expect(kernelCommandLine("", "q35")).toBe("console=ttyS0 panic=-1");
    expect(kernelCommandLine("", "virt")).toBe("console=ttyAMA0 panic=-1");
    expect(kernelCommandLine("console=hvc0", "virt")).toBe("panic=-1 console=hvc0");
  });

  test("a machine of the other architecture is refused with one line naming both", () => {
    expect(() => qemuArgs({ ...base, arch: "arm64", machine: "microvm" })).toThrow("--machine microvm is not an arm64 machine (arm64: virt)");
    expect(() => qemuArgs({ ...base, arch: "x86_64", machine: "virt" })).toThrow("--machine virt is not an x86_64 machine (x86_64: microvm, q35)");
    expect(() => checkMachine("arm64", "q35")).toThrow(/not an arm64 machine/);
    expect(defaultMachine("arm64")).toBe("virt");
    expect(defaultMachine("x86_64")).toBe("microvm");
  });

  test("the package to install is the architecture's QEMU", () => {
    expect(ARCH_INFO.arm64.qemuPackage).toBe("qemu-system-arm");
    expect(ARCH_INFO.x86_64.qemuPackage).toBe("qemu-system-x86");
  });
});

describe("burrow image --arch", () => {
  test("the host side loads none of the guest's system tables (their load refuses an architecture without one)", async () => {
    const entrypoints = ["image/build.ts", "host/qemu.ts", "host/snapshot.ts"].map((name) => new URL(`../../src/${name}`, import.meta.url).pathname);
    const built = await Bun.build({ entrypoints, target: "bun", format: "esm" });
    expect(built.success).toBe(true);
    for (const output of built.outputs) expect(await output.text()).not.toContain("system layer has tables");
  });

  test("libraries come from the architecture's multiarch directories only", () => {
    expect(libraryDirs("arm64")).toEqual(["/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]);
    expect(libraryDirs("x86_64").slice(0, 2)).toEqual(["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"]);
  });

  test("a binary of another architecture is refused before anything is written", async () => {
    expect(() => checkBinaryArch(elfHeader(62), "dist/burrow", "arm64")).toThrow("dist/burrow is an x86_64 binary but the image is for arm64 (--arch arm64; build it with `ARCH=arm64 just build`)");
    expect(() => checkBinaryArch(elfHeader(183), "b", "arm64")).not.toThrow();
    const work = mkdtempSync(join(tmpdir(), "burrow-arch-"));
    try {
      const binary = join(work, "burrow");
      writeFileSync(binary, elfHeader(183));
      const out = join(work, "out.img");
      await expect(buildImage({ binary, arch: "x86_64", out, kernelDir: null, modules: [], add: [], compress: "none", mtime: 0 })).rejects.toThrow(/is an arm64 binary but the image is for x86_64/);
      expect(existsSync(out)).toBe(false);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test("a compressed module of another architecture is refused too (its ELF header read decompressed)", async () => {
    const compressors: [string, (bytes: Uint8Array<ArrayBuffer>) => Uint8Array][] = [
      ["zst", (bytes) => Bun.zstdCompressSync(bytes)],
      ["gz", (bytes) => Bun.gzipSync(bytes)],
    ];
    if (Bun.which("xz")) compressors.push(["xz", (bytes) => new Uint8Array(Bun.spawnSync(["xz", "--stdout"], { stdin: bytes }).stdout)]);
    else console.warn("arch: no xz on this host: .ko.xz not tried");
    await inScratch(async (work) => {
      for (const [extension, pack] of compressors) {
        const wrong = moduleImage(work, `foo.ko.${extension}`, pack(elfHeader(ARCH_INFO[OTHER].elfMachine)));
        await expect(wrong.build()).rejects.toThrow(new RegExp(`module lib/modules/000/foo\\.ko\\.${extension} from .* is for ${OTHER}, but the image is for ${IMAGE}`));
        expect(existsSync(wrong.out)).toBe(false);
        expect((await moduleImage(work, `foo.ko.${extension}`, pack(elfHeader(ARCH_INFO[IMAGE].elfMachine))).build()).modules).toEqual(["foo"]);
      }
    });
  });

  test("a compressed module that does not decompress is refused by name", async () => {
    await inScratch(async (work) => {
      await expect(moduleImage(work, "foo.ko.zst", elfHeader(ARCH_INFO[IMAGE].elfMachine)).build()).rejects.toThrow(/module lib\/modules\/000\/foo\.ko\.zst: cannot decompress \(zst\)/);
    });
  });

  test("modules of another architecture than the image's are refused with one line", async () => {
    await inScratch(async (work) => {
      const wrong = moduleImage(work, "foo.ko", elfHeader(ARCH_INFO[OTHER].elfMachine));
      await expect(wrong.build()).rejects.toThrow(new RegExp(`module lib/modules/000/foo\\.ko from .* is for ${OTHER}, but the image is for ${IMAGE}`));
      expect(existsSync(wrong.out)).toBe(false);
      const summary = await moduleImage(work, "foo.ko", elfHeader(ARCH_INFO[IMAGE].elfMachine)).build();
      expect(summary.modules).toEqual(["foo"]);
      expect(summary.arch).toBe(IMAGE);
    });
  });
});
