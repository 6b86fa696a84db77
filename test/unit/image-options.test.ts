// `burrow image` judges every option before it compiles anything: each bad one is one line naming
// it, and neither a C compiler nor the output file is touched. The compilers on PATH here only
// record that they ran, so the test sees whether the build got as far as compiling.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ARCH_INFO, hostArch } from "../../src/arch";
import { SUPERVISOR_PATH } from "../../src/boot/paths";
import { elfHeader } from "../helpers/module-image";
import { scratchDir } from "./image-fixtures";

const MAIN = resolve(import.meta.dir, "../../src/main.ts");
const OTHER = hostArch() === "arm64" ? "x86_64" : "arm64";

let work = "";
let ranLog = "";
let bin = "";
let binary = "";
let out = "";

beforeAll(() => {
  work = scratchDir("image-options");
  ranLog = join(work, "compilers-ran");
  bin = join(work, "bin");
  mkdirSync(bin);
  // Every name compilerFor may pick, for either architecture; each fails after noting its call.
  for (const name of ["cc", "gcc", ...ARCH_INFO.x86_64.compilers, ...ARCH_INFO.arm64.compilers]) {
    writeFileSync(join(bin, name), `#!/bin/sh\necho "$0" >> '${ranLog}'\necho "recording compiler: not built" >&2\nexit 1\n`);
    chmodSync(join(bin, name), 0o755);
  }
  // A bare ELF header of this host's architecture: a static binary, so the build goes straight to the supervisor.
  binary = join(work, "burrow");
  writeFileSync(binary, elfHeader(ARCH_INFO[hostArch()].elfMachine));
  out = join(work, "out", "image.img");
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** `burrow image ARGS` from an empty directory with the recording compilers first on PATH. */
function image(args: string[], env: Record<string, string> = {}): { stderr: string; code: number } {
  rmSync(ranLog, { force: true });
  const cwd = join(work, "cwd");
  mkdirSync(cwd, { recursive: true });
  const run = Bun.spawnSync([process.execPath, MAIN, "image", ...args], {
    cwd, stdout: "pipe", stderr: "pipe",
    env: { ...process.env, SOURCE_DATE_EPOCH: "", ...env, PATH: `${bin}:${process.env.PATH ?? ""}`, NO_COLOR: "1" },
  });
  return { stderr: run.stderr.toString(), code: run.exitCode ?? -1 };
}

function compilersRan(): string[] {
  return existsSync(ranLog) ? readFileSync(ranLog, "utf8").trim().split("\n") : [];
}

describe("burrow image checks its options before compiling", () => {
  test("valid options do reach the compiler (what the refusals below are measured against)", () => {
    const { stderr, code } = image(["--binary", binary, "--kernel-dir", "none", "--out", out]);
    expect(code).toBe(1);
    expect(stderr).toContain("building the supervisor failed: recording compiler: not built");
    expect(compilersRan().length).toBe(1);
    expect(existsSync(out)).toBe(false);
  });

  test("each bad option: one line naming it, no compiler run, no output written", () => {
    const source = join(work, "source.txt");
    writeFileSync(source, "x\n");
    const foreign = join(work, "burrow-foreign");
    writeFileSync(foreign, elfHeader(ARCH_INFO[OTHER].elfMachine));
    const kernelDir = join(work, "kernel");
    mkdirSync(join(kernelDir, "lib/modules/6.1.0-test"), { recursive: true });
    writeFileSync(join(kernelDir, "lib/modules/6.1.0-test/modules.dep"), "kernel/foo.ko:\n");
    const outDir = join(work, "an-out-dir");
    mkdirSync(outDir);
    const cases: [string[], Record<string, string>, string][] = [
      [["--add", "no-colon"], {}, '--add needs SRC:DEST, got "no-colon"'],
      [["--add", `${join(work, "missing")}:/x`], {}, `--add source not found: ${join(work, "missing")}`],
      [["--add", `${source}:${SUPERVISOR_PATH}`], {}, `${SUPERVISOR_PATH} is the image's own file; it is not replaced`],
      [["--add", `${source}:/lib/burrow`], {}, "it would replace the directory /lib/burrow with a file"],
      [["--arch", "riscv64"], {}, '--arch must be x86_64 (amd64) or arm64 (aarch64), got "riscv64"'],
      [["--binary", join(work, "nothing")], {}, `burrow binary not found: ${join(work, "nothing")}`],
      [["--binary", work], {}, `burrow binary ${work} is not a file`],
      [["--binary", foreign], {}, `${foreign} is an ${OTHER} binary but the image is for ${hostArch()}`],
      [["--kernel-dir", join(work, "no-kernel")], {}, `kernel directory not found: ${join(work, "no-kernel")}`],
      [["--kernel-dir", kernelDir, "--modules", "nosuch", "--only-modules"], {}, "module not found: nosuch"],
      [["--kernel-dir", kernelDir, "--kernel-release", "9.9"], {}, "kernel release 9.9 not found"],
      [["--modules", "foo"], {}, "--modules needs --kernel-dir"],
      [["--kernel-release", "6.1.0-test"], {}, "--kernel-release 6.1.0-test needs --kernel-dir"],
      [["--out", outDir], {}, `--out ${outDir} is a directory; name the image file`],
      [[], { SOURCE_DATE_EPOCH: "yesterday" }, 'SOURCE_DATE_EPOCH must be whole seconds since 1970, got "yesterday"'],
      [[], { SOURCE_DATE_EPOCH: String(2 ** 32) }, "mtime 4294967296 (SOURCE_DATE_EPOCH) does not fit a cpio newc header"],
    ];
    for (const [args, env, message] of cases) {
      const full = [...(args.includes("--binary") ? [] : ["--binary", binary]), ...(args.includes("--out") ? [] : ["--out", out]), ...args];
      const { stderr, code } = image(full, env);
      const what = `burrow image ${full.join(" ")}`;
      expect({ what, code }).toEqual({ what, code: 1 });
      expect({ what, lines: stderr.trim().split("\n").length }).toEqual({ what, lines: 1 });
      expect({ what, stderr }).toEqual({ what, stderr: expect.stringContaining(message) });
      expect({ what, compilers: compilersRan() }).toEqual({ what, compilers: [] });
      expect({ what, written: existsSync(out) }).toEqual({ what, written: false });
    }
  });
});
