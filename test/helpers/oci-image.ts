// The OCI engine tests' image, built offline: Debian's busybox-static with applet links, an
// /etc/passwd and /etc/group (root, user 1000, nobody), /tmp — one layer in a docker-archive (the
// `docker save` format), which `podman load`, `ctr images import` and `docker load` all read. Made
// by hand (tar + sha256), so no engine is needed to build it and its digest is the same every time.
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const TEST_IMAGE = "localhost/burrow-test:1";

/** What the tests run; every name is a busybox applet linked in /bin. */
const APPLETS = [
  "sh", "echo", "cat", "ls", "sleep", "id", "pwd", "env", "head", "tail", "tr", "touch", "mkdir", "rm",
  "printf", "hostname", "stat", "readlink", "ln", "true", "false", "test", "[", "wc", "grep", "sed",
  "ps", "kill", "uname", "whoami", "tty", "dd", "seq", "chmod", "mv", "cp", "df", "sync", "nproc",
  "cut", "mount", "sort", "timeout", "stty", "setsid", "cmp",
  // The network tests: a server, clients, the interface's view.
  "httpd", "wget", "nc", "ip",
];

const PASSWD = ["root:x:0:0:root:/root:/bin/sh", "user:x:1000:1000:user:/tmp:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/bin/false"];
const GROUP = ["root:x:0:", "user:x:1000:", "nogroup:x:65534:"];

/** The architecture name OCI image configs use for this host. */
function ociArch(): string {
  if (process.arch === "x64") return "amd64";
  if (process.arch === "arm64") return "arm64";
  throw new Error(`oci-image: no OCI architecture name for ${process.arch}`);
}

/** Throws unless `path` is an ELF executable without a program interpreter (a static busybox). */
function requireStatic(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    throw new Error(`oci-image: ${path} is missing: busybox-static is not installed (npx just deps)`);
  }
  try {
    const header = Buffer.alloc(64);
    readSync(fd, header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2) throw new Error(`oci-image: ${path} is not a 64-bit ELF file`);
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      // PT_INTERP: a dynamic executable, which would need a libc the image does not have.
      if (table.readUInt32LE(i * phentsize) === 3) throw new Error(`oci-image: ${path} is dynamically linked: install busybox-static (npx just deps)`);
    }
  } finally {
    closeSync(fd);
  }
}

function run(argv: string[]): void {
  const result = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`oci-image: ${argv.join(" ")} failed (status ${result.exitCode}): ${result.stderr.toString().trim()}`);
}

/** A tar of `dir`'s contents, owned by root, sorted and dated 0: the same bytes for the same tree. */
function tarOf(dir: string, out: string, extra: string[] = []): void {
  run(["tar", "--create", "--file", out, "--numeric-owner", "--owner=0", "--group=0", "--sort=name", "--mtime=@0", ...extra, "-C", dir, "."]);
}

function sha256(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  return Bun.file(path).arrayBuffer().then((bytes) => hasher.update(bytes).digest("hex"));
}

/** Writes the image's root filesystem under `root` (made if missing): a bundle's rootfs for a runtime run directly. */
export async function writeTestRootfs(root: string, busybox = "/bin/busybox"): Promise<void> {
  requireStatic(busybox);
  // Modes set explicitly, not through the umask: the image must be the same whoever builds it.
  for (const dir of ["bin", "dev", "etc", "proc", "sys", "run", "root", "tmp", "var", "var/tmp"]) mkdirSync(join(root, dir), { recursive: true });
  for (const dir of [".", "bin", "dev", "etc", "proc", "sys", "run", "var"]) chmodSync(join(root, dir), 0o755);
  chmodSync(join(root, "tmp"), 0o1777);
  chmodSync(join(root, "var/tmp"), 0o1777);
  chmodSync(join(root, "root"), 0o700);
  writeFileSync(join(root, "bin/busybox"), await Bun.file(busybox).bytes());
  chmodSync(join(root, "bin/busybox"), 0o755);
  for (const applet of APPLETS) symlinkSync("busybox", join(root, "bin", applet));
  writeFileSync(join(root, "etc/passwd"), `${PASSWD.join("\n")}\n`);
  writeFileSync(join(root, "etc/group"), `${GROUP.join("\n")}\n`);
  for (const file of ["etc/passwd", "etc/group"]) chmodSync(join(root, file), 0o644);
}

/**
 * Writes the test image as a docker-archive at `out` (replacing it) and returns `out`. Its staging
 * files live in a temporary directory removed before it returns, on every path.
 */
export async function buildTestImage(out: string, busybox = "/bin/busybox"): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), "burrow-oci-image-"));
  try {
    const root = join(work, "rootfs");
    await writeTestRootfs(root, busybox);

    const archive = join(work, "archive");
    mkdirSync(archive);
    const layerTar = join(work, "layer.tar");
    tarOf(root, layerTar);
    const layerId = await sha256(layerTar);
    mkdirSync(join(archive, layerId));
    writeFileSync(join(archive, layerId, "layer.tar"), await Bun.file(layerTar).bytes());

    const config = JSON.stringify({
      architecture: ociArch(),
      os: "linux",
      created: "1970-01-01T00:00:00Z",
      config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/sh"], WorkingDir: "/" },
      rootfs: { type: "layers", diff_ids: [`sha256:${layerId}`] },
      history: [{ created: "1970-01-01T00:00:00Z", created_by: "burrow test/helpers/oci-image.ts" }],
    });
    const configId = new Bun.CryptoHasher("sha256").update(config).digest("hex");
    writeFileSync(join(archive, `${configId}.json`), config);
    writeFileSync(join(archive, "manifest.json"), JSON.stringify([{ Config: `${configId}.json`, RepoTags: [TEST_IMAGE], Layers: [`${layerId}/layer.tar`] }]));
    rmSync(out, { force: true });
    // The wrapper's own entries readable whatever the umask (the layer's modes are set above).
    tarOf(archive, out, ["--mode=a+rX,go-w"]);
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
