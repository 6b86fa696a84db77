// What a paravisor PID 1 costs the VM while its worker runs, measured from inside the worker
// (test/fixtures/paravisor/measure-worker.sh) under three PID 1s on the same kernel and QEMU line:
// the smallest busybox init, burrow from an initramfs, and burrow from a read-only boot disk
// (whose pages the kernel can evict). Used by the boot test and by `just bench-paravisor`.
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runVm, type RunResult } from "../../src/host/qemu";
import { buildImage } from "../../src/image/build";
import { BURROW, ROOT } from "./artifacts";

export const PARAVISOR_VARIANTS = ["reference", "burrow-initramfs", "burrow-disk"] as const;
export type ParavisorVariant = (typeof PARAVISOR_VARIANTS)[number];

export interface Pid1Cost {
  rssKiB: number;
  anonKiB: number;
  fileKiB: number;
  shmemKiB: number;
  threads: number;
  /** Context switches of all PID 1 threads while the worker slept 3 s. */
  wakeups3s: number;
  memAvailableKiB: number;
}

const WORKER = join(ROOT, "test/fixtures/paravisor/measure-worker.sh");
const REFERENCE_INIT = join(ROOT, "test/fixtures/paravisor/reference-init.sh");
const BUSYBOX = ["/bin/busybox", "/usr/bin/busybox"].find(existsSync) ?? "/bin/busybox";

/** "hcl: pid1 rss_kib=… …" → numbers; null when the worker did not report. */
export function parsePid1Cost(output: string): Pid1Cost | null {
  const line = /hcl: pid1 (.*?)\r?$/m.exec(output)?.[1];
  if (!line) return null;
  const fields = Object.fromEntries(line.split(" ").map((pair) => pair.split("=") as [string, string]));
  const number = (key: string) => Number(fields[key]);
  const cost: Pid1Cost = {
    rssKiB: number("rss_kib"), anonKiB: number("anon_kib"), fileKiB: number("file_kib"), shmemKiB: number("shmem_kib"),
    threads: number("threads"), wakeups3s: number("wakeups_3s"), memAvailableKiB: number("memavailable_kib"),
  };
  return Object.values(cost).every(Number.isFinite) ? cost : null;
}

export class ParavisorCostImages {
  readonly work = mkdtempSync(join(tmpdir(), "burrow-paravisor-cost-"));
  private readonly images = new Map<ParavisorVariant, string>();
  /** /bin/sh in every image: a symlink to busybox (dangling here, resolved in the guest). */
  private readonly sh = join(this.work, "sh");

  constructor() {
    symlinkSync("busybox", this.sh);
  }

  async image(variant: ParavisorVariant): Promise<string> {
    const cached = this.images.get(variant);
    if (cached) return cached;
    const sh = this.sh;
    const common = { kernelDir: null, modules: [], compress: "none" as const, mtime: 0 };
    const tools: [string, string][] = [[BUSYBOX, "/bin/busybox"], [sh, "/bin/sh"], [WORKER, "/bin/openvmm_hcl"]];
    const out = join(this.work, `${variant}.img`);
    if (variant === "reference") await buildImage({ ...common, binary: BUSYBOX, binaryPath: "/bin/busybox", out, add: [[sh, "/bin/sh"], [WORKER, "/bin/openvmm_hcl"], [REFERENCE_INIT, "/init"]] });
    else await buildImage({ ...common, binary: BURROW, out, add: tools, format: variant === "burrow-disk" ? "ext4" : "cpio" });
    this.images.set(variant, out);
    return out;
  }

  async run(variant: ParavisorVariant, kernel: string, mem = "512M"): Promise<{ cost: Pid1Cost | null; result: RunResult }> {
    const image = await this.image(variant);
    const disk = variant === "burrow-disk";
    const result = await runVm({
      kernel, initrd: disk ? null : image, disks: disk ? [image] : [], ports: [], mem, smp: 1, machine: "microvm", accel: "tcg",
      append: variant === "reference" ? "" : `burrow.mode=paravisor${disk ? " root=/dev/vda ro init=/init" : ""}`,
      timeoutSeconds: 150,
    });
    return { cost: parsePid1Cost(result.output), result };
  }

  close(): void {
    rmSync(this.work, { recursive: true, force: true });
  }
}
