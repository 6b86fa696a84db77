// What the paravisor PID 1 costs the VM while its worker runs, seen from the worker, under the
// smallest busybox init, burrow from an initramfs and burrow from a read-only boot disk, all on the
// micro kernel (drivers built in) with the same QEMU line. Once the worker runs, burrow hands PID 1
// to the resident supervisor: from either layout PID 1 is then one thread of a few pages.
import { afterAll, describe, expect, test } from "bun:test";
import { KERNEL_MICRO, requireArtifacts, BURROW } from "../helpers/artifacts";
import { tail } from "../helpers/boot";
import { ParavisorCostImages, PARAVISOR_VARIANTS, type Pid1Cost, type ParavisorVariant } from "../helpers/paravisor-cost";

const images = new ParavisorCostImages();
afterAll(() => images.close());

describe("paravisor: PID 1's cost while the worker runs", () => {
  test("after the hand-off PID 1 costs the worker next to nothing, from an initramfs as from a boot disk", async () => {
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
    for (const variant of ["burrow-initramfs", "burrow-disk"] as const) {
      const cost = costs.get(variant)!;
      // The supervisor: one thread, a few pages, asleep; burrow's executable left the initramfs.
      expect(cost.threads).toBe(1);
      expect(cost.rssKiB).toBeLessThan(256);
      expect(cost.shmemKiB).toBe(0);
      expect(cost.wakeups3s).toBe(0);
      // 113 MiB before the hand-off existed; the figure itself is the bench's (bench/results/paravisor.md).
      expect(reference.memAvailableKiB - cost.memAvailableKiB).toBeLessThan(8 * 1024);
    }
  }, 600_000);
});
