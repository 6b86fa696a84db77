// `just bench-boot`: one boot of the demo microVM (micro kernel, boot disk, the demo root disk) to
// get a boot report for the timeline picture: bench/results/latest-boot.json and .svg. Boots
// through `dist/burrow run`, as a user would; the demo agent prints /run/burrow/boot.json.
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { bootPicture } from "./draw";
import { bootFromConsole, type BootData } from "./results-data";

const ROOT = resolve(import.meta.dir, "..");
const { values } = parseArgs({
  options: {
    kernel: { type: "string", default: "build/kernel-micro/vmlinuz" },
    "boot-disk": { type: "string", default: "dist/boot.ext4" },
    disk: { type: "string", default: "dist/rootfs.ext4" },
    mem: { type: "string", default: "512M" },
  },
});
for (const path of [values.kernel!, values["boot-disk"]!, values.disk!, "dist/burrow"]) {
  if (!existsSync(join(ROOT, path))) throw new Error(`${path} missing (just build kernel-micro rootfs; dist/boot.ext4: just image)`);
}
const run = Bun.spawnSync([join(ROOT, "dist/burrow"), "run", "--kernel", values.kernel!, "--boot-disk", values["boot-disk"]!, "--disk", values.disk!, "--port", "bench.port", "--mem", values.mem!, "--timeout", "300", "--append", "printk.time=1"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
const output = run.stdout.toString() + run.stderr.toString();
const boot = bootFromConsole(output);
if (!boot) throw new Error(`no boot report on the console (exit ${run.exitCode}):\n${output.split("\n").slice(-15).join("\n")}`);
const data: BootData = {
  date: new Date().toISOString(),
  description: `micro kernel, boot disk (${values["boot-disk"]}), ${values.disk}, QEMU TCG -machine microvm, ${values.mem}, printk.time=1; one boot`,
  ...boot,
};
const out = join(ROOT, "bench/results/latest-boot.json");
writeFileSync(out, JSON.stringify(data, null, 2) + "\n");
writeFileSync(out.replace(/\.json$/, ".svg"), bootPicture(data));
console.log(`wrote ${out} and latest-boot.svg: burrow's first line at ${(boot.report.startedMs / 1000).toFixed(2)} s, agent at ${((boot.agentStartMs ?? NaN) / 1000).toFixed(2)} s`);
