// Paravisor memory step under QEMU/TCG: Debian's kernel, burrow as PID 1 in paravisor
// mode, the mshv simulator loaded by burrow's memory step (or, for the invalid description, by a
// setup script), and a busybox worker that reports the simulator's debugfs state. Six boots:
// none, vbs (+ injected Timeouts), snp, tdx, an injected visibility failure in the second batch,
// and an invalid description.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildImage } from "../../src/image/build";
import { BURROW, KERNEL, KERNEL_DIR, ROOT } from "../helpers/artifacts";
import { boot, consoleLines, tail, type BootResult } from "../helpers/boot";

const FIXTURES = join(ROOT, "test/fixtures/partitions");
const SIM_DIR = join(ROOT, "test/fixtures/mshv-sim");
const SIM_KO = join(SIM_DIR, "out/mshv_sim.ko");
const WORK = join(ROOT, "build/test-memory");
const WINDOW = "memmap=64M$0x20000000 mshv_sim.backing_base=0x20000000 mshv_sim.backing_size=0x4000000";
const BASE_APPEND = `${WINDOW} burrow.mode=paravisor burrow.partition=/etc/partition.json burrow.onexit=poweroff burrow.onfail=shell`;

const PIN_WORKER = join(WORK, "pin-worker");

async function build(argv: string[], what: string): Promise<void> {
  const built = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [stderr] = await Promise.all([new Response(built.stderr).text(), built.exited]);
  if (built.exitCode !== 0) throw new Error(`${what} build failed: ${stderr}`);
}

beforeAll(async () => {
  // Fast and idempotent: builds test/fixtures/mshv-sim/out/mshv_sim.ko against Debian's headers.
  await build([join(SIM_DIR, "build.sh")], "mshv-sim");
  mkdirSync(WORK, { recursive: true });
  await build(["gcc", "-static", "-O2", "-Wall", "-o", PIN_WORKER, join(SIM_DIR, "pin/pin-worker.c")], "pin worker");
  rmSync(join(WORK, "sh"), { force: true });
  symlinkSync("/bin/openvmm_hcl", join(WORK, "sh"));
}, 300_000);

interface RunOptions {
  smp?: number;
  /** The worker: the reporter (default), or a program that runs before exec'ing it (/bin/report.sh). */
  worker?: string;
  modules?: string[];
}

async function image(name: string, partition: string, options: RunOptions): Promise<string> {
  const out = join(WORK, `${name}.img`);
  const worker: [string, string][] = options.worker
    ? [[options.worker, "/bin/openvmm_hcl"], [join(FIXTURES, "report.sh"), "/bin/report.sh"]]
    : [[join(FIXTURES, "report.sh"), "/bin/openvmm_hcl"]];
  await buildImage({
    binary: BURROW,
    out,
    kernelDir: KERNEL_DIR,
    modules: ["ttyprintk", ...(options.modules ?? [])],
    noDefaultModules: true,
    moduleLayout: "ordered",
    add: [
      ["/bin/busybox", "/bin/busybox"],
      ...worker,
      [join(WORK, "sh"), "/bin/sh"],
      [join(FIXTURES, "load-sim.sh"), "/etc/load-sim.sh"],
      [join(FIXTURES, partition), "/etc/partition.json"],
      [SIM_KO, "/lib/burrow/mshv_sim.ko"],
    ],
    compress: "none",
    mtime: 0,
  });
  return out;
}

interface Report {
  result: BootResult;
  lines: string[];
  counters: Map<string, Record<string, number>>;
  runs: Record<string, string>[];
  mem: Map<string, string>;
  json: any;
  burrowLines: string[];
}

async function run(name: string, partition: string, extra = "", options: RunOptions = {}): Promise<Report> {
  const initrd = await image(name, partition, options);
  const result = await boot({ kernel: KERNEL, initrd, machine: "q35", mem: "1G", smp: options.smp ?? 1, timeoutSeconds: name.includes("large") ? 850 : 120, append: `${BASE_APPEND} ${extra}`.trim() });
  writeFileSync(join(WORK, `${name}.log`), result.output);
  const lines = consoleLines(result.output).map((line) => /\[U\] mem: (.*)$/.exec(line)?.[1]).filter((line): line is string => line !== undefined);
  const counters = new Map<string, Record<string, number>>();
  const runs: Record<string, string>[] = [];
  const mem = new Map<string, string>();
  let json = "";
  for (const line of lines) {
    if (line.startsWith("counter ")) {
      const fields = Object.fromEntries(line.slice(8).split(" ").filter((kv) => kv.includes("=")).map((kv) => kv.split("=") as [string, string]));
      const key = fields.code ? `hvcall ${fields.code}` : fields.name ? `ioctl ${fields.name}` : `tdcall ${fields.leaf}`;
      counters.set(key, Object.fromEntries(Object.entries(fields).filter(([k]) => !["code", "name", "leaf"].includes(k)).map(([k, v]) => [k, Number(v)])));
    } else if (line.startsWith("runs ")) {
      runs.push(Object.fromEntries(line.slice(5).split(" ").map((kv) => kv.split("=") as [string, string])));
    } else if (line.startsWith("mem ")) {
      const [, gpa, bytes] = line.split(" ");
      mem.set(gpa!, bytes ?? "");
    } else if (line.startsWith("json ")) {
      json += line.split(" ")[2] ?? "";
    }
  }
  const burrowLines = consoleLines(result.output).filter((line) => /burrow: /.test(line));
  return { result, lines, counters, runs, mem, json: json ? JSON.parse(Buffer.from(json, "base64").toString("utf8")) : null, burrowLines };
}

interface HvCounter { calls: number; success: number; timeout: number; error: number; elements: number }
const hc = (report: Report, code: string): HvCounter => ({ calls: 0, success: 0, timeout: 0, error: 0, elements: 0, ...report.counters.get(`hvcall ${code}`) });
const ascii = (hexBytes: string) => Buffer.from(hexBytes, "hex").toString("latin1");
const marker = (isolation: string, gpa: string) => `burrow-memory-selftest isolation=${isolation} gpa=${gpa} `.padEnd(64, ".");

/** Pages of [gpn, gpn + count) in `runs` with field `key` = `value`. */
function pagesWith(runs: Record<string, string>[], from: number, to: number, predicate: (run: Record<string, string>) => boolean): number {
  let pages = 0;
  for (const run of runs) {
    const start = Number(run.gpn);
    const end = start + Number(run.count);
    const lo = Math.max(start, from);
    const hi = Math.min(end, to);
    if (hi > lo && predicate(run)) pages += hi - lo;
  }
  return pages;
}

function explain(report: Report): string {
  return `${report.burrowLines.slice(-15).join("\n")}\n--- reporter ---\n${report.lines.join("\n")}\n--- tail ---\n${tail(report.result, 30)}`;
}

const RAM_PAGES = 0x1f38; // [0, 0x1f38000)
const PRE_ACCEPTED = 0x123; // [0, 0x123000)
const POOL = [0x2000, 0x2300];
/** MSHV_VTL_ADD_VTL0_MEMORY of RAM's first 1 GiB chunk, clipped to each RAM range (debugfs vtl0_memory). */
const RAM_REGISTRATIONS = ["reg start_pfn=0x0 last_pfn=0x1000 shared=0", "reg start_pfn=0x1000 last_pfn=0x1f38 shared=0"];
const registrations = (report: Report) => report.lines.filter((line) => line.startsWith("reg "));

describe("boot: paravisor memory step on the mshv simulator", () => {
  test("none: VTL2 protections in ≤ 2 GiB units, VTL0 (alias) and VTL1 mappings, marker via VTL1", async () => {
    const report = await run("none", "none.json");
    expect(report.lines).toContain("end worker");
    // VsmPartitionConfig written once (0x0051) before the protections; the
    // simulator answers 0x000C with AccessDenied until it is, so without it nothing below holds.
    expect(hc(report, "0x0051")).toMatchObject({ calls: 1, success: 1, error: 0, elements: 1 });
    expect(report.lines).toContain("info vsm_partition_config=0xc3f");
    expect(report.json.protections.vsmPartitionConfig).toBe("0xc3f");
    expect(report.json.stats.calls["0x0051"]).toBe(1);
    const prot = hc(report, "0x000c");
    // 1024 pages low + 3 GiB high split into [4G,6G) and [6G,7G): ceil(1024/510) + ceil(524288/510) + ceil(262144/510)
    expect(prot.success).toBe(3 + 1029 + 515);
    expect(prot.error).toBe(0);
    expect(prot.elements).toBe(1024 + 786432);
    expect(report.json.protections.units).toBe(3);
    expect(report.json.protections.maxUnitBytes).toBeLessThanOrEqual(2 ** 31);
    expect(pagesWith(report.runs, 0x3000, 0x3400, (r) => r.prot2 === "0x0000")).toBe(0x400);
    expect(pagesWith(report.runs, 0x100000, 0x1c0000, (r) => r.prot2 === "0x0000")).toBe(0xc0000);
    expect(pagesWith(report.runs, 0, RAM_PAGES, (r) => r.prot2 === "0x0000")).toBe(0); // VTL0 RAM untouched
    expect(report.json.mappings.map((m: any) => [m.kind, m.fileOffsetBase])).toEqual([["vtl0", "0x10000000000"], ["vtl1", "0x0"]]);
    expect(ascii(report.mem.get("0x1800000")!)).toBe(marker("none", "0x1800000"));
    expect(hc(report, "0x00d9").calls + hc(report, "0x00db").calls).toBe(0);
    // Lazy registration (underhill_mem registrar.rs): the self-test exposed its VA in the VTL1
    // mapping, so that chunk, clipped to RAM, was registered once; the VTL0 alias mapping was not.
    expect(registrations(report)).toEqual(RAM_REGISTRATIONS);
    expect(report.json.selfTest.registrations).toBe(2);
    expect(report.json.mappings.map((m: any) => m.registration?.registered)).toEqual([[], ["[0x0, 0x1000000)", "[0x1000000, 0x1f38000)"]]);
    expect(report.counters.get("ioctl add_vtl0_memory")).toMatchObject({ calls: 2, errors: 0 });
  }, 150_000);

  test("vbs: accept via AcceptGpaPages (each RAM page once), pool accepted then shared; injected Timeouts resumed", async () => {
    const report = await run("vbs", "vbs.json", "mshv_sim.timeout_after=100");
    expect(report.lines).toContain("end worker");
    const accept = hc(report, "0x00d9");
    const vis = hc(report, "0x00db");
    const poolPages = POOL[1]! - POOL[0]!;
    // validated RAM accepted exactly once (+ the pool, accepted first on VBS)
    expect(accept.elements).toBe(RAM_PAGES - PRE_ACCEPTED + poolPages);
    expect(accept.error).toBe(0);
    expect(pagesWith(report.runs, 0, RAM_PAGES, (r) => r.acc === "1")).toBe(RAM_PAGES);
    // visibility: ceil(768/510) = 2 successful calls; each 100 elements a Timeout resumed from `processed`
    expect(vis.success).toBe(2);
    expect(vis.timeout).toBe(5 + 2);
    expect(vis.elements).toBe(poolPages);
    expect(pagesWith(report.runs, POOL[0]!, POOL[1]!, (r) => r.vis === "3")).toBe(poolPages);
    expect(pagesWith(report.runs, 0, RAM_PAGES, (r) => r.vis === "0")).toBe(RAM_PAGES);
    expect(report.json.stats.timeouts).toBe(accept.timeout + vis.timeout);
    expect(ascii(report.mem.get("0x1800000")!)).toBe(marker("vbs", "0x1800000"));
    expect(registrations(report)).toEqual(RAM_REGISTRATIONS); // lazily, by the self-test's exposure
  }, 150_000);

  test("snp: PVALIDATE once per unaccepted page, RMPADJUST VTL0 access everywhere, pool shared, zeroed, marker via private mapping", async () => {
    const report = await run("snp", "snp.json");
    expect(report.lines).toContain("end worker");
    const pvalidate = report.counters.get("ioctl pvalidate")!;
    const rmpadjust = report.counters.get("ioctl rmpadjust")!;
    expect(pvalidate.pages).toBe(RAM_PAGES - PRE_ACCEPTED);
    expect(pvalidate.errors).toBe(0);
    expect(rmpadjust.pages).toBe(RAM_PAGES);
    expect(pagesWith(report.runs, 0, RAM_PAGES, (r) => r.acc === "1" && r.prot0 === "0x000f")).toBe(RAM_PAGES);
    const vis = hc(report, "0x00db");
    expect([vis.success, vis.elements]).toEqual([2, 768]);
    expect(pagesWith(report.runs, POOL[0]!, POOL[1]!, (r) => r.vis === "3")).toBe(768);
    expect(report.mem.get("0x1900000")).toBe("00".repeat(64));
    expect(ascii(report.mem.get("0x1800000")!)).toBe(marker("snp", "0x1800000"));
    expect(report.json.mappings.map((m: any) => [m.kind, m.fileOffsetBase])).toEqual([["vtl0-private", "0x0"], ["shared", "0x8000010000000000"]]);
    expect(report.json.mappings[1].bitmaps.valid).toMatchObject({ pagesSet: 768, runs: ["[0x2000000, 0x2300000)"], truncated: false });
    expect(report.json.mappings[0].bitmaps.valid.pagesSet).toBe(RAM_PAGES);
    expect(report.json.stats.pagesZeroed).toBe(RAM_PAGES - PRE_ACCEPTED);
    // SNP registers all VTL0 RAM eagerly, before zeroing (underhill_mem init.rs).
    expect(registrations(report)).toEqual(RAM_REGISTRATIONS);
    expect(report.json.stats.ioctls.add_vtl0_memory).toBe(2);
    expect(report.json.phasesMs.register).toBeGreaterThanOrEqual(0);
    expect(report.json.fds.map((fd: any) => [fd.name, fd.workerFd])).toEqual([["mshv", 3], ["mshv_vtl", 4], ["hvcall", 5], ["vtl_low", 6], ["bitmap", 7], ["bitmap", 8]]);
    // The worker really holds them, at the numbers memory.json promises.
    const workerFds = new Map(report.lines.filter((line) => line.startsWith("fd ")).map((line) => line.slice(3).split(" ") as [string, string]));
    expect([3, 4, 5, 6, 7, 8].map((fd) => workerFds.get(String(fd)))).toEqual([
      "/dev/mshv", "anon_inode:mshv_vtl", "/dev/mshv_hvcall", "/dev/mshv_vtl_low", "/run/burrow/bitmaps/vtl0-private.valid", "/run/burrow/bitmaps/shared.valid",
    ]);
    // The worker reads the bitmaps through those fds: VTL0 RAM valid in the private
    // one (0x1f38 pages = 0x3e7 bytes of 0xff), only the pool (768 pages = 96 bytes) in the shared one.
    expect(report.json.mappings[0].bitmaps.valid).toMatchObject({ file: "/run/burrow/bitmaps/vtl0-private.valid", workerFd: 7 });
    expect(report.json.mappings[1].bitmaps.valid).toMatchObject({ file: "/run/burrow/bitmaps/shared.valid", workerFd: 8 });
    const bitmaps = report.lines.filter((line) => line.startsWith("bitmap ")).sort();
    expect(bitmaps).toEqual([
      `bitmap 7 /run/burrow/bitmaps/vtl0-private.valid size=${report.json.mappings[0].bitmaps.valid.bytes} ff=${RAM_PAGES / 8} other=0`,
      `bitmap 8 /run/burrow/bitmaps/shared.valid size=${report.json.mappings[1].bitmaps.valid.bytes} ff=96 other=0`,
    ]);
  }, 150_000);

  test("tdx: TDCALL accept (2M where aligned, 4K edges) + ATTR.WR, pool shared, marker via the shared mapping", async () => {
    const report = await run("tdx", "tdx.json");
    expect(report.lines).toContain("end worker");
    // 14 aligned 2 MiB pages + (0x200-0x123) + (0x1f38-0x1e00) 4 KiB edge pages
    const accepts = 14 + (0x200 - 0x123) + (0x1f38 - 0x1e00);
    expect(report.counters.get("tdcall 6")!.calls).toBe(accepts);
    expect(report.counters.get("tdcall 24")!.calls).toBe(accepts + PRE_ACCEPTED);
    expect(pagesWith(report.runs, 0, RAM_PAGES, (r) => r.acc === "1" && r.prot0 === "0x000f")).toBe(RAM_PAGES);
    expect(pagesWith(report.runs, POOL[0]!, POOL[1]!, (r) => r.vis === "3")).toBe(768);
    expect(hc(report, "0x00db").success).toBe(2);
    expect(report.json.mappings.map((m: any) => [m.kind, m.fileOffsetBase, m.dmaBase])).toEqual([["vtl0-private", "0x0", null], ["shared", "0x8000000000000000", "0x10000000000"]]);
    expect(ascii(report.mem.get("0x2100000")!)).toBe(marker("tdx", "0x2100000"));
    // TDX registers nothing (underhill_mem: no registrar on the private mapping, shared memory not since openvmm PR #1080).
    expect(registrations(report)).toEqual([]);
    expect(report.json.selfTest.registrations).toBeNull();
  }, 150_000);

  test("snp with a failure injected in the second visibility batch: fatal, and the error names GPN 0x2205", async () => {
    const report = await run("fail", "snp.json", "mshv_sim.fail_gpn=0x2205 mshv_sim.fail_code=0xdb");
    const fatal = report.burrowLines.filter((line) => /boot failed: /.test(line));
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatch(/boot failed: memory: unable to make shared pool \[0x2000000, 0x2300000\) host-visible: .*AccessDenied\(0x6\) at GPN 0x2205 \(element 517\)/);
    expect(report.lines).toContain("begin fallback");
    const vis = hc(report, "0x00db");
    expect([vis.calls, vis.success, vis.error, vis.elements]).toEqual([2, 1, 1, 517]);
    if (!report.lines.includes("end fallback")) console.error(explain(report));
    expect(report.lines).toContain("end fallback");
  }, 150_000);

  test("registration pins: O_DIRECT into registered VTL0 memory reads the file, into unregistered VTL0 memory fails (EEXIST on 6.1)", async () => {
    // The window backs GPAs [0x3e000000, 0x42000000): VTL0 RAM on both sides of 1 GiB. The
    // self-test's exposure at 0x41000000 registers its 1 GiB chunk clipped to RAM (underhill_mem registrar.rs),
    // which the simulator turns into ZONE_DEVICE pagemaps (K mshv_vtl_ioctl_add_vtl0_mem); the
    // worker then O_DIRECT-reads a loop device into each GPA through its own /dev/mshv_vtl_low mmap.
    const report = await run("pin", "pin.json", "mshv_sim.gpa_base=0x3e000000 -- pin=0x41010000 nopin=0x3f000000", { worker: PIN_WORKER, modules: ["loop"] });
    if (!report.lines.includes("end worker")) console.error(explain(report));
    expect(report.lines).toContain("end worker");
    expect(registrations(report)).toEqual(["reg start_pfn=0x40000 last_pfn=0x42000 shared=0"]);
    expect(report.json.mappings[0].registration.registered).toEqual(["[0x40000000, 0x42000000)"]);
    expect(report.lines).toContain("info pagemaps=16"); // 32 MiB in 2 MiB pagemaps
    // Pinned, then filled by the kernel through the direct map memremap_pages created.
    expect(report.lines).toContain("pin pin gpa=0x41010000 read=8192 errno=0 match=1");
    // Never registered: GUP refuses the PFN-mapped page and the read fails, nothing written. The
    // errno is 6.1's GUP answer for a PTE without a struct page (follow_pfn_pte: -EEXIST), which
    // the block layer's O_DIRECT path passes on unchanged.
    expect(report.lines).toContain("pin nopin gpa=0x3f000000 read=-1 errno=EEXIST match=0");
  }, 150_000);

  test("invalid description: one error line naming the range, nothing applied (all counters zero)", async () => {
    const report = await run("invalid", "invalid.json", "-- --setup-script=/etc/load-sim.sh");
    const fatal = report.burrowLines.filter((line) => /boot failed: /.test(line));
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatch(/boot failed: memory: \/etc\/partition.json: ram\[1\] \[0xff0000, 0x1f38000\) overlaps ram\[0\] \[0x0, 0x1000000\)/);
    expect(report.lines).toContain("begin fallback");
    expect(report.lines).toContain("module mshv_sim");
    expect(report.counters.size).toBeGreaterThan(0);
    for (const [key, value] of report.counters) {
      for (const [field, count] of Object.entries(value)) {
        if (count !== 0) throw new Error(`counter ${key} ${field}=${count} after a rejected description`);
      }
    }
    expect(report.runs.every((r) => r.acc === "0" && r.vis === "0")).toBe(true);
    expect(report.json).toBeNull();
  }, 150_000);
});

// Opt-in measurement (BURROW_MEMORY_LARGE=1): 64 GiB described ([0, 2G) + [4G, 66G)), sparse; only
// the 64 MiB window is backed. Checks what each isolation type did, as the small layouts do, then
// prints the memory step's guest time and the simulator's counters.
const LARGE_RAM_PAGES = 0x80000 + 0xf80000; // 64 GiB
const LARGE_POOL_PAGES = 0x4000; // [3G, 3G + 64M)
const LARGE_VALIDATED = ["[0x123000, 0x80000000)", "[0x100000000, 0x1080000000)"]; // RAM less the boot loader's [0, 0x123000)
const noOps = { ioctls: {}, tdcallLeaves: {}, pagesAccepted: 0, pagesProtected: 0, pagesShared: 0, pagesZeroed: 0 };
const LARGE: Record<string, { stats: Record<string, unknown>; validated: string[] | null; window: (run: Record<string, string>) => boolean }> = {
  none: {
    // VTL2 RAM [2G, 2G + 64M) and [66G, 70G) in three ≤ 2 GiB units: ceil(16384/510) + 2 × ceil(524288/510) calls.
    stats: { ...noOps, calls: { "0x000c": 33 + 2 * 1029, "0x0051": 1 }, timeouts: 0, pagesProtected: 0x4000 + 0x100000 },
    validated: null,
    window: (r) => r.prot2 === "0x0000", // none: VTL0 RAM untouched
  },
  vbs: {
    // AcceptGpaPages in ≤ 509-page calls over each piece of the split (7 lanes) and the pool; the pool shared in ≤ 510-GPN calls.
    stats: { ...noOps, calls: { "0x00d9": 32997, "0x00db": 33 }, timeouts: 0, pagesAccepted: LARGE_RAM_PAGES - 0x123 + LARGE_POOL_PAGES, pagesShared: LARGE_POOL_PAGES },
    validated: LARGE_VALIDATED,
    window: (r) => r.acc === "1",
  },
  snp: {
    // The boot loader accepted all RAM but [0x123000, 64M): PVALIDATE (8 calls) and zeroing over that, RMPADJUST over all
    // RAM: those 8 pieces, and the boot loader's RAM split the same way (1 edge + 7 chunks of each 2 MiB-aligned range).
    stats: { ...noOps, calls: { "0x00db": 33 }, timeouts: 0, ioctls: { add_vtl0_memory: 64, pvalidate: 8, rmpadjust: 8 + 15 }, pagesAccepted: 0x4000 - 0x123, pagesShared: LARGE_POOL_PAGES, pagesZeroed: 0x4000 - 0x123 },
    validated: ["[0x123000, 0x4000000)"],
    window: (r) => r.acc === "1" && r.prot0 === "0x000f",
  },
  tdx: {
    // ACCEPT + ATTR.WR per 2 MiB page (1023 + 31744) and per 4 KiB edge page (0x200 - 0x123); ATTR.WR over the 0x123 pre-accepted pages.
    stats: {
      ...noOps, calls: { "0x00db": 33 }, timeouts: 0, ioctls: { tdcall: 2 * 32988 + 0x123 }, tdcallLeaves: { "6": 32988, "24": 32988 + 0x123 },
      pagesAccepted: LARGE_RAM_PAGES - 0x123, pagesShared: LARGE_POOL_PAGES,
    },
    validated: LARGE_VALIDATED,
    window: (r) => r.acc === "1" && r.prot0 === "0x000f",
  },
};

describe.if(process.env.BURROW_MEMORY_LARGE === "1")("measure: 64 GiB sparse layout", () => {
  for (const isolation of ["none", "vbs", "snp", "tdx"]) {
    test(`large ${isolation}`, async () => {
      const report = await run(`large-${isolation}`, `large-${isolation}.json`, "");
      if (!report.json) console.error(explain(report));
      expect(report.lines).toContain("end worker");
      expect(report.json).not.toBeNull();
      const expected = LARGE[isolation]!;
      expect(report.json.isolation).toBe(isolation);
      expect(report.json.stats).toEqual(expected.stats);
      expect(report.json.accept?.validated ?? null).toEqual(expected.validated);
      if (isolation === "none") expect(report.json.protections.units).toBe(3);
      // The simulator saw exactly the calls burrow counted, all successful.
      for (const [code, calls] of Object.entries(report.json.stats.calls as Record<string, number>)) {
        expect(hc(report, code)).toMatchObject({ calls, success: calls, timeout: 0, error: 0 });
      }
      for (const [leaf, calls] of Object.entries(report.json.stats.tdcallLeaves as Record<string, number>)) {
        expect(report.counters.get(`tdcall ${leaf}`)?.calls).toBe(calls);
      }
      for (const [name, calls] of Object.entries(report.json.stats.ioctls as Record<string, number>)) {
        expect(report.counters.get(`ioctl ${name}`)).toMatchObject({ calls, errors: 0 });
      }
      if (isolation === "snp") {
        expect(report.counters.get("ioctl pvalidate")!.pages).toBe(0x4000 - 0x123);
        expect(report.counters.get("ioctl rmpadjust")!.pages).toBe(LARGE_RAM_PAGES);
      }
      const elements = { none: { "0x000c": 0x4000 + 0x100000 }, vbs: { "0x00d9": LARGE_RAM_PAGES - 0x123 + LARGE_POOL_PAGES, "0x00db": LARGE_POOL_PAGES } }[isolation] ?? { "0x00db": LARGE_POOL_PAGES };
      for (const [code, count] of Object.entries(elements)) expect(hc(report, code).elements).toBe(count);
      // The reporter's windows, GPNs [0, 0x3400) and [4G, 7G), are VTL0 RAM: accepted with VTL0 access, or (none) untouched.
      const windowPages = pagesWith(report.runs, 0, 0x3400, expected.window) + pagesWith(report.runs, 0x100000, 0x1c0000, expected.window);
      expect(windowPages).toBe(isolation === "none" ? 0 : 0x3400 + 0xc0000);
      const counters = [...report.counters].filter(([, value]) => Object.values(value).some((count) => count !== 0));
      console.log(JSON.stringify({
        isolation,
        memoryStepMs: report.json.totalMs,
        phasesMs: report.json.phasesMs,
        burrowStats: report.json.stats,
        simulator: Object.fromEntries(counters),
      }));
    }, 900_000);
  }
});

// The bulk work runs on one Bun Worker per vCPU (at most one per lane), each on
// its own fds. The 64 GiB sparse layouts (description vpCount 8) at -smp 1, 2 and 4: the calls
// are the plan's, the same at every vCPU count and the same the simulator counted; the step's
// guest time per vCPU count is printed.
describe("boot: the memory step across vCPUs", () => {
  for (const isolation of ["none", "vbs", "snp", "tdx"]) {
    const phase = isolation === "none" ? "vtl2-protections" : "accept";
    for (const smp of [1, 2, 4]) {
      test(`large ${isolation} at -smp ${smp}: ${phase} on min(lanes, ${smp}) threads, calls identical and as planned`, async () => {
        const report = await run(`smp${smp}-large-${isolation}`, `large-${isolation}.json`, "", { smp });
        if (!report.json) console.error(explain(report));
        expect(report.lines).toContain("end worker");
        const ran = report.json.parallel[phase];
        const lanes = isolation === "none" ? 3 : 7; // 3 protection units over 8 VPs; max(1, 8 − 1) accept lanes
        expect(ran).toMatchObject({ cpus: smp, threads: Math.min(lanes, smp), lanes });
        expect(ran.threadMs).toHaveLength(Math.min(lanes, smp));
        // Exactly the planned calls (each ≤ 509/510-element call full but the last of its piece), whatever the vCPU count.
        expect(report.json.stats).toEqual(LARGE[isolation]!.stats);
        for (const [code, calls] of Object.entries(report.json.stats.calls as Record<string, number>)) {
          expect(hc(report, code)).toMatchObject({ calls, success: calls, timeout: 0, error: 0 });
        }
        for (const [name, calls] of Object.entries(report.json.stats.ioctls as Record<string, number>)) {
          expect(report.counters.get(`ioctl ${name}`)).toMatchObject({ calls, errors: 0 });
        }
        for (const [leaf, calls] of Object.entries(report.json.stats.tdcallLeaves as Record<string, number>)) {
          expect(report.counters.get(`tdcall ${leaf}`)?.calls).toBe(calls);
        }
        const elements = { none: { "0x000c": 0x4000 + 0x100000 }, vbs: { "0x00d9": LARGE_RAM_PAGES - 0x123 + LARGE_POOL_PAGES, "0x00db": LARGE_POOL_PAGES } }[isolation] ?? { "0x00db": LARGE_POOL_PAGES };
        for (const [code, count] of Object.entries(elements)) expect(hc(report, code).elements).toBe(count);
        if (isolation === "snp") expect([report.counters.get("ioctl pvalidate")!.pages, report.counters.get("ioctl rmpadjust")!.pages]).toEqual([0x4000 - 0x123, LARGE_RAM_PAGES]);
        console.log(JSON.stringify({ isolation, smp, memoryStepMs: report.json.totalMs, phaseMs: report.json.phasesMs[phase], threads: ran.threads, threadMs: ran.threadMs, stats: report.json.stats }));
      }, 900_000);
    }
  }
});
