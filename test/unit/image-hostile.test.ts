// The image builder against hostile input: it never writes outside its staging tree, never
// replaces what the image needs, and refuses what it cannot store, naming the paths, before writing.
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildImage, type ImageOptions } from "../../src/image/build";
import { ImageError } from "../../src/image/error";
import { stageEntries } from "../../src/image/stage";
import { fakeStaticBinary, scratchDir } from "./image-fixtures";

const work = scratchDir("image-hostile");
afterAll(() => rmSync(work, { recursive: true, force: true }));

const staticBinary = fakeStaticBinary(work);
const hostDir = join(work, "host-lib");
mkdirSync(hostDir);
const link = join(work, "lib-link");
symlinkSync(hostDir, link);
const file = join(work, "file.txt");
writeFileSync(file, "hello\n");

type Format = "cpio" | "ext4";
const FORMATS: Format[] = ["cpio", "ext4"];

/** The build's error (an ImageError, one line), after checking no image and no temporary file was left. */
async function refusal(format: Format, add: [string, string][], binary = staticBinary): Promise<string> {
  const out = join(work, `out-${format}`, "image");
  const options: ImageOptions = { binary, out, kernelDir: null, modules: [], add, compress: "none", format, mtime: 0 };
  const error = await buildImage(options).then(() => null, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(ImageError);
  const message = (error as Error).message;
  expect(message.split("\n")).toHaveLength(1);
  expect(existsSync(out)).toBe(false);
  expect(existsSync(join(work, `out-${format}`)) ? readdirSync(join(work, `out-${format}`)) : []).toEqual([]);
  expect(readdirSync(hostDir)).toEqual([]);
  return message;
}

describe.each(FORMATS)("--add refusals (%s)", (format) => {
  test("a symlink to a host directory replacing /lib (a glibc binary's runtime) is refused, naming both paths", async () => {
    // /bin/true is dynamically linked: the image has /lib/x86_64-linux-gnu/libc.so.6 and the preload.
    const message = await refusal(format, [[link, "/lib"]], "/bin/true");
    expect(message).toBe(`cannot add ${link} as /lib: it would replace the directory /lib with a symlink`);
  }, 30_000);

  test("a file or symlink replacing a directory or a file of the image itself is refused", async () => {
    expect(await refusal(format, [[file, "/etc"]])).toBe(`cannot add ${file} as /etc: it would replace the directory /etc with a file`);
    expect(await refusal(format, [[link, "/etc/"]])).toBe(`cannot add ${link} as /etc/: it would replace the directory /etc with a symlink`);
    expect(await refusal(format, [[file, "/init"]])).toBe(`cannot add ${file} as /init: /init is the image's own file; it is not replaced`);
    expect(await refusal(format, [[hostDir, "/init"]])).toBe(`cannot add ${hostDir} as /init: /init is the image's own file; it is not replaced`);
  });

  test("nothing is added under a symlink stored in the image", async () => {
    expect(await refusal(format, [[link, "/opt"], [file, "/opt/x"]])).toBe(`cannot add ${file} as /opt/x: /opt in the image is a symlink, not a directory; nothing is written through it`);
  });

  test("names over NAME_MAX or PATH_MAX are refused, naming the path", async () => {
    const longComponent = "n".repeat(256);
    const component = await refusal(format, [[file, `/opt/${longComponent}`]]);
    expect(component).toStartWith(`cannot add ${file} as "/opt/${"n".repeat(115)}`);
    expect(component).toContain("is 256 bytes, over NAME_MAX (255)");
    const deep = `/${Array.from({ length: 20 }, () => "d".repeat(250)).join("/")}`;
    const path = await refusal(format, [[file, deep]]);
    expect(path).toContain(`cannot add ${file} as "/dddd`);
    expect(path).toContain("longer than PATH_MAX (4096 bytes with the NUL)");
    expect(await refusal(format, [[file, "/opt/../etc/passwd"]])).toBe(`cannot add ${file} as /opt/../etc/passwd: it has a "." or ".." component`);
  });

  test("a symlink stored in the image stays a symlink: the host directory it names is not written", async () => {
    const out = join(work, `symlink.${format}`);
    await buildImage({ binary: staticBinary, out, kernelDir: null, modules: [], add: [[link, "/opt"]], compress: "none", format, mtime: 0 });
    expect(readdirSync(hostDir)).toEqual([]);
    if (format === "ext4") {
      const stat = spawnSync(["/usr/sbin/debugfs", "-R", "stat /opt", out], { stdout: "pipe", stderr: "pipe" }).stdout.toString();
      expect(stat).toContain("Type: symlink");
      expect(stat).toContain(`Fast link dest: "${hostDir}"`);
    } else {
      const listing = spawnSync(["cpio", "-itv", "--quiet"], { stdin: Bun.file(out), stdout: "pipe" }).stdout.toString();
      expect(listing).toContain(`opt -> ${hostDir}`);
    }
  });
});

test("cpio: a file of 4 GiB or more is refused before it is read, naming it", async () => {
  const huge = join(work, "huge.bin");
  const fd = openSync(huge, "w");
  closeSync(fd);
  spawnSync(["truncate", "-s", String(2 ** 32), huge]);
  expect(await refusal("cpio", [[huge, "/data/huge.bin"]])).toBe(
    `cannot add ${huge} as /data/huge.bin: ${2 ** 32} bytes is 4 GiB or more, more than a cpio newc size field holds (use --format ext4)`,
  );
  rmSync(huge);
});

test("the ext4 stager never writes through a symlink, even one it was handed directly", () => {
  const root = join(work, "stage-root");
  mkdirSync(root);
  expect(() =>
    stageEntries([
      { type: "symlink", path: "lib", target: hostDir },
      { type: "file", path: "lib/libc.so.6", data: new Uint8Array(4) },
    ], root, 1),
  ).toThrow(`cannot stage "/lib/libc.so.6": /lib is not a directory of the image, and nothing is written through a symlink or a file`);
  expect(readdirSync(hostDir)).toEqual([]);
});
