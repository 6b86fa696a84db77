// Paravisor mode pieces: init arguments, kmsg records, confidentiality, system writes, entropy,
// setup scripts, the worker's environment, module files and the reaper. What needs root is in
// test/privileged/entropy.test.ts, what needs build artifacts in test/boot/paravisor-artifacts.test.ts.
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "bun";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config";
import { formatKmsgRecord, CONSOLA_LEVEL } from "../../src/log";
import { describeStatus, runSetupScript } from "../../src/modes/paravisor/setup-scripts";
import { workerBaseEnv } from "../../src/modes/paravisor/worker";
import { envTruthy, readConfidentiality } from "../../src/modes/paravisor/confidential";
import { moduleNameFromPath } from "../../src/modules";
import { listModules, walkSorted } from "../../src/modes/paravisor/module-files";
import { paravisorWorkerArgv, parseParavisorArgs } from "../../src/modes/paravisor/options";
import { Reaper } from "../../src/modes/paravisor/reaper";
import {
  applyWrite, firstMissing, MAX_ENTROPY_SIZE, NVME_VFIO_WRITE, RNDADDENTROPY, systemWrites, useHostEntropy, writeValue,
} from "../../src/modes/paravisor/system";
import { ROOT } from "../helpers/artifacts";

const work = mkdtempSync(join(tmpdir(), "burrow-paravisor-unit-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const BUN = process.execPath;

describe("init arguments (underhill_init options)", () => {
  const cases: [string, string[], string[], string[]][] = [
    ["--setup-script=X form", ["--setup-script=echo A=1", "x"], ["echo A=1"], ["x"]],
    ["space form, repeatable", ["--setup-script", "a", "--setup-script", "b", "w"], ["a", "b"], ["w"]],
    ["value split at the first =", ["--setup-script=A=1=2"], ["A=1=2"], []],
    ["trailing option without a value ends parsing and is dropped", ["--setup-script"], [], []],
    ["unknown option stops parsing and is kept", ["--foo", "bar", "--setup-script", "s"], [], ["--foo", "bar", "--setup-script", "s"]],
    ["unknown =option is kept whole", ["--foo=1", "x"], [], ["--foo=1", "x"]],
    ["bare -- is skipped and stops parsing", ["--setup-script", "s", "--", "--setup-script", "t"], ["s"], ["--setup-script", "t"]],
    ["a plain word stops parsing", ["w", "--setup-script", "s"], [], ["w", "--setup-script", "s"]],
    ["a single - is a plain word", ["-", "x"], [], ["-", "x"]],
    ["space form consumes an option-looking value", ["--setup-script", "--foo", "w"], ["--foo"], ["w"]],
    ["empty", [], [], []],
  ];
  for (const [name, args, scripts, workerArgs] of cases) {
    test(name, () => {
      expect(parseParavisorArgs(args)).toEqual({ setupScripts: scripts, workerArgs });
    });
  }

  test("from the kernel command line, and the worker's argv", () => {
    const config = parseConfig('burrow.mode=paravisor -- --setup-script "echo A=1" --foo bar');
    const options = parseParavisorArgs(config.initArgs);
    expect(options).toEqual({ setupScripts: ["echo A=1"], workerArgs: ["--foo", "bar"] });
    expect(paravisorWorkerArgv(config.worker, options.workerArgs)).toEqual(["/bin/openvmm_hcl", "--pid", "/run/underhill.pid", "--foo", "bar"]);
  });
});

describe("kmsg records", () => {
  test("facility 2: error 19, warn 20, info 21 (NOTICE), debug 22, trace 23; one line per record", () => {
    expect(formatKmsgRecord(2, CONSOLA_LEVEL.error, "burrow", "fatal: x")).toBe("<19>burrow: fatal: x\n");
    expect(formatKmsgRecord(2, CONSOLA_LEVEL.warn, "burrow", "w")).toBe("<20>burrow: w\n");
    expect(formatKmsgRecord(2, CONSOLA_LEVEL.info, "burrow", "i")).toBe("<21>burrow: i\n");
    expect(formatKmsgRecord(2, CONSOLA_LEVEL.debug, "burrow", "d")).toBe("<22>burrow: d\n");
    expect(formatKmsgRecord(2, CONSOLA_LEVEL.trace, "burrow", "t")).toBe("<23>burrow: t\n");
    expect(formatKmsgRecord(2, CONSOLA_LEVEL.info, "burrow", "a\nb")).toBe("<21>burrow: a | b\n");
    const long = formatKmsgRecord(2, CONSOLA_LEVEL.info, "burrow", "x".repeat(5000));
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(1000);
    expect(long.endsWith("...\n")).toBe(true);
  });
});

describe("confidentiality", () => {
  test("truthiness: set, non-empty, not exactly 0 ('false' is true)", () => {
    const table: [string | undefined, boolean][] = [
      [undefined, false], ["", false], ["0", false], ["1", true], ["false", true], ["no", true], ["00", true], [" 0", true], ["true", true],
    ];
    for (const [value, expected] of table) expect([value, envTruthy(value)]).toEqual([value, expected]);
  });

  test("new or legacy names (OR); filtering = confidential && !debug", () => {
    expect(readConfidentiality({})).toEqual({ confidential: false, debug: false, filtering: false });
    expect(readConfidentiality({ OPENHCL_CONFIDENTIAL: "1" })).toEqual({ confidential: true, debug: false, filtering: true });
    expect(readConfidentiality({ UNDERHILL_CONFIDENTIAL: "false" })).toEqual({ confidential: true, debug: false, filtering: true });
    expect(readConfidentiality({ OPENHCL_CONFIDENTIAL: "0", UNDERHILL_CONFIDENTIAL: "1" })).toEqual({ confidential: true, debug: false, filtering: true });
    expect(readConfidentiality({ OPENHCL_CONFIDENTIAL: "1", OPENHCL_CONFIDENTIAL_DEBUG: "1" })).toEqual({ confidential: true, debug: true, filtering: false });
    expect(readConfidentiality({ OPENHCL_CONFIDENTIAL: "1", UNDERHILL_CONFIDENTIAL_DEBUG: "yes" })).toEqual({ confidential: true, debug: true, filtering: false });
    expect(readConfidentiality({ OPENHCL_CONFIDENTIAL_DEBUG: "1" })).toEqual({ confidential: false, debug: true, filtering: false });
  });
});

describe("system writes", () => {
  test("the reference's table, in order; core_pattern empty under confidential filtering", () => {
    const open = systemWrites(false).map((write) => [write.path, write.value]);
    expect(open).toEqual([
      ["/proc/sys/kernel/threads-max", "32768"],
      ["/proc/sys/kernel/kptr_restrict", "1"],
      ["/sys/kernel/mm/transparent_hugepage/enabled", "madvise"],
      ["/sys/bus/vmbus/drivers/uio_hv_generic/new_id", "8dedd1aa-9056-49e4-bfd6-1bf90dc38ef0"],
      ["/sys/bus/vmbus/drivers/uio_hv_generic/new_id", "8b60ccf6-709f-4c11-90b5-229c959a9e6a"],
      ["/sys/bus/vmbus/drivers/uio_hv_generic/new_id", "427b03e7-4ceb-4286-b5fc-486f4a1dd439"],
      ["/proc/sys/kernel/core_pattern", "|/bin/underhill-crash %p %i %s %e"],
      ["/proc/sys/kernel/core_pipe_limit", "1"],
      ["/proc/sys/vm/panic_on_oom", "1"],
      ["/proc/sys/vm/min_free_kbytes", "1024"],
      ["/proc/sys/vm/watermark_scale_factor", "1"],
      ["/proc/sys/vm/watermark_boost_factor", "0"],
    ]);
    expect(systemWrites(true).find((write) => write.path.endsWith("core_pattern"))!.value).toBe("");
    expect(NVME_VFIO_WRITE).toMatchObject({ path: "/sys/bus/pci/drivers/vfio-pci/new_id", value: "ffffffff ffffffff ffffffff ffffffff 010802 ffffff" });
  });

  test("a failed write names the path and the value", () => {
    expect(() => writeValue(join(work, "no/such/file"), "32768")).toThrow(`failed to write "32768" to ${join(work, "no/such/file")}: open: ENOENT`);
  });

  test("one write of the value; an empty value is written as a newline (clears a sysctl string)", () => {
    const file = join(work, "value");
    writeFileSync(file, "");
    writeValue(file, "madvise");
    expect(readFileSync(file, "utf8")).toBe("madvise");
    writeFileSync(file, "");
    writeValue(file, "");
    expect(readFileSync(file, "utf8")).toBe("\n");
  });

  test("a write under a bus this machine lacks is skipped; the first missing directory is named", () => {
    const bus = join(work, "sys/bus");
    mkdirSync(bus, { recursive: true });
    expect(firstMissing(join(bus, "vmbus/drivers/uio_hv_generic"))).toBe(join(bus, "vmbus"));
    expect(firstMissing(bus)).toBeNull();
    expect(applyWrite({ path: join(bus, "vmbus/drivers/uio_hv_generic/new_id"), value: "x", needs: join(bus, "vmbus/drivers/uio_hv_generic"), why: "test" })).toBe("skipped");
  });
});

describe("host entropy", () => {
  const source = join(work, "entropy-reg");
  const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7 + 3) & 0xff);
  writeFileSync(source, bytes);

  test("missing source: a warning, nothing written", () => {
    expect(useHostEntropy({ source: join(work, "absent"), confidential: false, randomPath: "/nonexistent" })).toEqual({ kind: "missing", reason: "ENOENT" });
  });

  test("not confidential: RNDADDENTROPY 0x40085203 with {bits, size, buf}, truncated to 256 bytes", () => {
    const fake = join(work, "random-credit");
    writeFileSync(fake, "");
    const calls: { request: number; argument: Uint8Array }[] = [];
    const outcome = useHostEntropy({ source, confidential: false, randomPath: fake, ioctl: (_fd, request, argument) => (calls.push({ request, argument: argument.slice() }), 0) });
    expect(outcome).toEqual({ kind: "credited", bytes: 256, truncatedFrom: 300 });
    expect(calls.length).toBe(1);
    expect(calls[0]!.request).toBe(RNDADDENTROPY);
    const view = new DataView(calls[0]!.argument.buffer);
    expect(view.getInt32(0, true)).toBe(256 * 8);
    expect(view.getInt32(4, true)).toBe(256);
    expect(calls[0]!.argument.subarray(8, 8 + MAX_ENTROPY_SIZE)).toEqual(bytes.subarray(0, 256));
    expect(readFileSync(fake).length).toBe(0); // credited through the ioctl only
  });

  test("short entropy: bits = bytes * 8", () => {
    const short = join(work, "entropy-short");
    writeFileSync(short, bytes.subarray(0, 32));
    let argument = new Uint8Array();
    useHostEntropy({ source: short, confidential: false, randomPath: "/dev/null", ioctl: (_fd, _request, arg) => ((argument = arg.slice()), 0) });
    expect(new DataView(argument.buffer).getInt32(0, true)).toBe(256);
    expect(new DataView(argument.buffer).getInt32(4, true)).toBe(32);
  });
});

describe("setup scripts and the worker's environment", () => {
  const reaper = new Reaper();

  test("KEY=VALUE lines of stdout, split at the first '='", async () => {
    const pairs = await runSetupScript("echo A=1; echo 'B=x=y'; echo no-equals; echo =empty-key; echo 'C='", { reaper }, { PATH: "/usr/bin:/bin" });
    expect(pairs).toEqual([["A", "1"], ["B", "x=y"], ["C", ""]]); // "=empty-key" names no variable
  });

  test("a failing script is fatal, naming the script and its status", async () => {
    await expect(runSetupScript("echo A=1; exit 3", { reaper }, { PATH: "/usr/bin:/bin" })).rejects.toThrow('setup script "echo A=1; exit 3" failed: exit status 3');
    await expect(runSetupScript("kill -9 $$", { reaper }, { PATH: "/usr/bin:/bin" })).rejects.toThrow(/failed: signal SIGKILL/);
  });

  test("inherited environment minus BUN_*, JSC_* and BURROW_*", () => {
    expect(workerBaseEnv({ HOME: "/", TERM: "linux", BUN_BE_BUN: "1", JSC_SIGNAL_FOR_GC: "40", BURROW_X: "1", OPENHCL_NVME_VFIO: "1", GONE: undefined })).toEqual({
      HOME: "/", TERM: "linux", OPENHCL_NVME_VFIO: "1",
    });
    expect(describeStatus({ exitCode: null, signalCode: "SIGKILL" })).toBe("signal SIGKILL");
  });
});

describe("module files", () => {
  test("walk sorted by name at every level; only module files; parameters from the command line", () => {
    const root = join(work, "lib-modules");
    for (const [dir, file] of [["002", "zram.ko"], ["000", "ttyprintk.ko"], ["001", "zsmalloc.ko"], ["010", "hv-storvsc.ko"], ["001", "a-b.ko.xz"]]) {
      mkdirSync(join(root, dir!), { recursive: true });
      writeFileSync(join(root, dir!, file!), "");
    }
    writeFileSync(join(root, "modules.dep"), "");
    expect(walkSorted(root).map((path) => path.slice(root.length + 1))).toEqual([
      "000/ttyprintk.ko", "001/a-b.ko.xz", "001/zsmalloc.ko", "002/zram.ko", "010/hv-storvsc.ko", "modules.dep",
    ]);
    const config = parseConfig("zram.num_devices=2 zram.x=\"a b\" hv-storvsc.ring=4 burrow.log=debug");
    const modules = listModules(config, root);
    expect(modules.map((module) => [module.name, module.params, module.flags])).toEqual([
      ["ttyprintk", "", 0], ["a_b", "", 4], ["zsmalloc", "", 0], ["zram", 'num_devices=2 x="a b"', 0], ["hv_storvsc", "ring=4", 0],
    ]);
    expect(moduleNameFromPath("crc32c-intel.ko.zst")).toBe("crc32c_intel");
  });
});

describe("reaper", () => {
  test("reaps orphans without stealing the Bun.spawn child's status (as a child subreaper)", () => {
    const result = spawnSync([BUN, join(ROOT, "test/fixtures/paravisor/reaper-check.ts")], { stdout: "pipe", stderr: "pipe" });
    expect(result.exitCode).toBe(0);
    const report = JSON.parse(result.stdout.toString());
    expect(report).toMatchObject({ exitCode: 9, exitError: null, zombies: [] });
    expect(report.reaped).toBeGreaterThanOrEqual(3);
  }, 30_000);
});

describe("resident footprint", () => {
  test("VmRSS, its parts and the thread count from /proc/self/status", async () => {
    const { residentFootprint } = await import("../../src/modes/paravisor/boot");
    const status = "Name:\tinit\nVmRSS:\t   36600 kB\nRssAnon:\t    7052 kB\nRssFile:\t   29548 kB\nRssShmem:\t       0 kB\nThreads:\t9\n";
    expect(residentFootprint(status)).toEqual({ rssKiB: 36600, anonKiB: 7052, fileKiB: 29548, shmemKiB: 0, threads: 9 });
    expect(residentFootprint("")).toEqual({ rssKiB: 0, anonKiB: 0, fileKiB: 0, shmemKiB: 0, threads: 0 });
  });
});
