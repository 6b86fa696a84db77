// The hand-off's words (src/boot/supervisor.ts) and the supervisor's build (src/image/supervisor.ts):
// one static program per architecture with no interpreter and no libc, small enough to stay resident.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ARCH_INFO, archOfElf, hostArch, type Arch } from "../../src/arch";
import { supervisorArgv } from "../../src/boot/supervisor";
import { supervisorWireHeader } from "../../src/control/c-header";
import { FrameType, MAX_BODY_BYTES } from "../../src/control/wire";
import { parseConfig } from "../../src/config/config";
import { compileSupervisor } from "../../src/image/supervisor";

const work = mkdtempSync(join(tmpdir(), "burrow-supervisor-unit-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("supervisorArgv", () => {
  const config = parseConfig("burrow.supervise=1 burrow.stop-timeout=1500 burrow.onexit=halt burrow.ctrl-alt-del=ignore burrow.log=debug burrow.onfail=shell burrow.runid=abcdefgh1234");

  test("spawn: the options, the control port, the spec words, then -- and the workload", () => {
    const argv = supervisorArgv(config, { kind: "spawn", argv: ["/bin/app", "--flag"], controlPort: "/dev/vport0p1", warm: true }, ["uid=1000", "gid=1000", "groups=1000"], [7]);
    expect(argv[0]).toBe("/lib/burrow/supervisor");
    expect(argv).toContain("onexit=halt");
    expect(argv).toContain("onfail=shell");
    expect(argv).toContain("ctrl-alt-del=ignore");
    expect(argv).toContain("stop-timeout=1500");
    expect(argv).toContain("log=6");
    expect(argv).toContain("runid=abcdefgh1234");
    expect(argv).toContain("freeze-fd=7");
    expect(argv).toContain("control=/dev/vport0p1");
    expect(argv).toContain("warm=1");
    expect(argv).not.toContain("point=1");
    const dashes = argv.indexOf("--");
    expect(argv.slice(dashes - 3, dashes)).toEqual(["uid=1000", "gid=1000", "groups=1000"]);
    expect(argv.slice(dashes + 1)).toEqual(["/bin/app", "--flag"]);
    // Every option is one KEY=VALUE word: the supervisor splits nothing else.
    expect(argv.slice(1, dashes).every((word) => /^[a-z-]+=\S*$/.test(word))).toBe(true);
  });

  test("no control port: no channel, no snapshot words", () => {
    const argv = supervisorArgv(config, { kind: "spawn", argv: ["/bin/app"], controlPort: null, warm: true, point: true });
    expect(argv.some((word) => /^(control|warm|point)=/.test(word))).toBe(false);
  });

  test("adopt: no workload argv, no control port; exec: exec=1 before the spec, the snapshot point's port when asked", () => {
    expect(supervisorArgv(config, { kind: "adopt", pid: 31 }).at(-1)).toBe("adopt=31");
    expect(supervisorArgv(config, { kind: "adopt", pid: 31 })).not.toContain("--");
    const exec = supervisorArgv(config, { kind: "exec", argv: ["/bin/sh"] }, ["nnp=1"]);
    expect(exec.slice(exec.indexOf("exec=1"))).toEqual(["exec=1", "nnp=1", "--", "/bin/sh"]);
    expect(exec.some((word) => word.startsWith("control="))).toBe(false);
    const point = supervisorArgv(config, { kind: "exec", argv: ["/bin/sh"], pointPort: "/dev/vport0p2" });
    expect(point.slice(point.indexOf("exec=1"), point.indexOf("--"))).toEqual(["exec=1", "control=/dev/vport0p2", "point=1"]);
  });

  test("host: the control port, start=host and the spec words; no -- and no workload argv", () => {
    const argv = supervisorArgv(config, { kind: "host", controlPort: "/dev/vport0p1" }, ["uid=1000", "nnp=1"], [7]);
    expect(argv).not.toContain("--");
    expect(argv.slice(-4)).toEqual(["control=/dev/vport0p1", "start=host", "uid=1000", "nnp=1"]);
    expect(argv).toContain("freeze-fd=7");
    expect(argv.slice(1).every((word) => /^[a-z-]+=\S*$/.test(word))).toBe(true);
  });

  test("the microvm default ends the VM with a power-off; the paravisor's hands the status to the kernel", () => {
    expect(supervisorArgv(parseConfig("burrow.supervise=1"), { kind: "adopt", pid: 2 })).toContain("onexit=poweroff");
    expect(supervisorArgv(parseConfig("burrow.mode=paravisor"), { kind: "adopt", pid: 2 })).toContain("onexit=exit");
  });
});

describe("the supervisor's wire.h, generated from the TypeScript homes", () => {
  const header = supervisorWireHeader();
  test("every frame type and bound as wire.ts has it", () => {
    for (const [name, value] of Object.entries(FrameType)) expect(header).toContain(`#define FT_${name} ${value}\n`);
    expect(header).toContain(`#define MAX_BODY_BYTES ${MAX_BODY_BYTES}\n`);
    expect(header).toContain('#define EXIT_STATUS_MARKER "burrow: guest exit status"');
    expect(header).toContain('#define RUNTIME_ENV_PREFIXES { "BUN_",');
  });
});

/** Program headers of a 64-bit little-endian ELF: their types. */
function programHeaderTypes(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const offset = Number(view.getBigUint64(32, true));
  const size = view.getUint16(54, true);
  const count = view.getUint16(56, true);
  return Array.from({ length: count }, (_, index) => view.getUint32(offset + index * size, true));
}

const PT_INTERP = 3;
const PT_DYNAMIC = 2;

describe("the supervisor's build", () => {
  const arches: Arch[] = ["x86_64", "arm64"].filter((arch) => arch === hostArch() || ARCH_INFO[arch as Arch].compilers.some((name) => Bun.which(name))) as Arch[];
  for (const arch of arches) {
    test(`${arch}: static, no interpreter, no dynamic section, under 64 KiB`, () => {
      const bytes = compileSupervisor(mkdtempSync(join(work, `${arch}-`)), arch);
      expect(archOfElf(bytes)).toBe(arch);
      const types = programHeaderTypes(bytes);
      expect(types).not.toContain(PT_INTERP);
      expect(types).not.toContain(PT_DYNAMIC);
      expect(bytes.byteLength).toBeLessThan(64 * 1024);
    });
  }

  test("the build is reproducible", () => {
    const first = compileSupervisor(mkdtempSync(join(work, "a-")));
    const second = compileSupervisor(mkdtempSync(join(work, "b-")));
    expect(Buffer.from(first).equals(Buffer.from(second))).toBe(true);
  });
});
