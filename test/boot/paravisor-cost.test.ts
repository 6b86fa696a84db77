// Issue 14's measurement: what the paravisor PID 1 costs the VM while its worker runs, seen from
// the worker, under the smallest busybox init, burrow from an initramfs and burrow from a
// read-only boot disk, all on the micro kernel (drivers built in) with the same QEMU line.
import { afterAll, describe, expect, test } from "bun:test";
import { KERNEL_MICRO, requireArtifacts, BURROW } from "../helpers/artifacts";
import { tail } from "../helpers/boot";
import { ParavisorCostImages, PARAVISOR_VARIANTS, type Pid1Cost, type ParavisorVariant } from "../helpers/paravisor-cost";

const images = new ParavisorCostImages();
afterAll(() => images.close());

describe("paravisor: PID 1's cost while the worker runs", () => {
  test("burrow from a read-only boot disk costs the worker far less memory than from an initramfs", async () => {
    requireArtifacts(KERNEL_MICRO, BURROW);
    const costs = new Map<ParavisorVariant, Pid1Cost>();
    for (const variant of PARAVISOR_VARIANTS) {
      const { cost, result } = await images.run(variant, KERNEL_MICRO);
      if (!cost) throw new Error(`${variant}: the worker did not report (${result.reason})\n${tail(result, 60)}`);
      expect(result.output).not.toMatch(/uncaught error|Kernel panic - not syncing: (?!Attempted to kill init)/);
      costs.set(variant, cost);
      if (variant !== "reference") {
        // burrow writes its own footprint into the boot report once the worker runs.
        const resident = JSON.parse(/hcl: resident (\{.*\})\r?$/m.exec(result.output)?.[1] ?? "{}") as { rssKiB?: number; threads?: number };
        expect(resident.threads ?? 0).toBeGreaterThan(1);
        expect(resident.rssKiB ?? 0).toBeGreaterThan(1024);
      }
    }
    const reference = costs.get("reference")!;
    const lines = [...costs].map(([variant, cost]) => `${variant}: MemAvailable ${cost.memAvailableKiB} KiB (cost ${reference.memAvailableKiB - cost.memAvailableKiB} KiB), PID 1 RSS ${cost.rssKiB} KiB (anon ${cost.anonKiB}, file ${cost.fileKiB}, shmem ${cost.shmemKiB}), ${cost.threads} threads, ${cost.wakeups3s} wake-ups in 3 s`);
    console.error(`paravisor PID 1 cost:\n${lines.join("\n")}`);
    const initramfs = costs.get("burrow-initramfs")!;
    const disk = costs.get("burrow-disk")!;
    // From the disk, burrow's ~110 MB executable is page cache the kernel may evict, not ramfs.
    expect(disk.memAvailableKiB - initramfs.memAvailableKiB).toBeGreaterThan(50 * 1024);
    expect(disk.shmemKiB).toBeLessThan(1024);
    expect(initramfs.shmemKiB).toBeGreaterThan(10 * 1024);
  }, 600_000);
});
