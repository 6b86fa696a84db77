// The burrow CLI (init, image, run, cmdline). citty's runMain calls process.exit, fatal for
// PID 1, so commands run through runCommand inside our own try/catch.
import { resolve as resolvePath } from "node:path";
import { type ArgsDef, defineCommand, runCommand, renderUsage } from "citty";
import { stripAnsi } from "consola/utils";
import { BURROW_VERSION } from "./boot/version";
import { cp } from "./commands/cp";
import { exec } from "./commands/exec";
import { kill } from "./commands/kill";
import { logs } from "./commands/logs";
import { ps } from "./commands/ps";
import { stop } from "./commands/stop";
import { describeError, ExitStatusError } from "./errors";
import { RUN_DEFAULTS } from "./host/options";
import { log } from "./log";

const init = defineCommand({
  meta: { name: "init", description: "Run the boot plan (what the binary does as PID 1)" },
  async run() {
    const { runInit } = await import("./pid1");
    await runInit();
  },
});

const image = defineCommand({
  meta: { name: "image", description: "Build the initramfs (cpio newc): burrow, its runtime, device nodes, modules" },
  args: {
    binary: { type: "string", description: "burrow executable to put at /init (default: this executable if compiled, else dist/burrow; for another --arch, dist/<arch>/burrow)" },
    arch: { type: "string", description: "guest architecture: x86_64 (amd64) or arm64 (aarch64); default this host's" },
    "kernel-dir": { type: "string", description: "unpacked kernel holding lib/modules/<release>/, e.g. build/kernel (default \"none\": no modules, drivers built in, as in the micro kernel)" },
    "kernel-release": { type: "string", description: "which release under lib/modules when there are several" },
    modules: { type: "string", description: "extra modules, comma-separated (added to the default set)" },
    "only-modules": { type: "boolean", description: "use only --modules, not the default set" },
    mode: { type: "enum", options: ["microvm", "paravisor"], default: "microvm", description: "the boot plan the image is for: its default modules (microvm: virtio, ext4, zram…; paravisor: ttyprintk) and module layout" },
    "module-layout": { type: "enum", options: ["tree", "ordered"], description: "tree: /lib/modules/<release>/… with its index (microvm's default); ordered: /lib/modules/NNN/<name>.ko in load order (paravisor's default)" },
    add: { type: "string", description: "extra file or tree SRC:DEST (repeatable)" },
    compress: { type: "enum", options: ["none", "gzip", "zstd"], default: "none", description: "compression (cpio)" },
    format: { type: "enum", options: ["cpio", "ext4"], default: "cpio", description: "cpio initramfs, or an ext4 boot disk (no initramfs: root=/dev/vda ro init=/init)" },
    out: { type: "string", default: "dist/initramfs.img", description: "output path" },
  },
  async run({ args, rawArgs }) {
    const { buildImage } = await import("./image/build");
    const adds = collectRepeated(rawArgs, "--add").map((spec) => {
      const colon = spec.lastIndexOf(":");
      if (colon <= 0 || colon === spec.length - 1) throw new Error(`--add needs SRC:DEST, got ${JSON.stringify(spec)}`);
      return [spec.slice(0, colon), spec.slice(colon + 1)] as [string, string];
    });
    const epoch = process.env.SOURCE_DATE_EPOCH;
    // reproducible-builds.org: a malformed SOURCE_DATE_EPOCH fails the build rather than stamping 0.
    if (epoch && !/^\d+$/.test(epoch)) throw new Error(`SOURCE_DATE_EPOCH must be whole seconds since 1970, got ${JSON.stringify(epoch)}`);
    const { hostArch, parseArch } = await import("./arch");
    const arch = args.arch === undefined ? hostArch() : parseArch(args.arch);
    const summary = await buildImage({
      // Another architecture's burrow is never this executable: `ARCH=arm64 just build` writes dist/arm64/burrow.
      binary: args.binary ?? (arch !== hostArch() ? `dist/${arch}/burrow` : Bun.isStandaloneExecutable ? process.execPath : "dist/burrow"),
      arch,
      out: args.out,
      kernelDir: args["kernel-dir"] === undefined || args["kernel-dir"] === "none" ? null : args["kernel-dir"],
      kernelRelease: args["kernel-release"],
      modules: (args.modules ?? "").split(",").map((m) => m.trim()).filter(Boolean),
      noDefaultModules: args["only-modules"],
      mode: args.mode as "microvm" | "paravisor",
      moduleLayout: args["module-layout"] as "tree" | "ordered" | undefined,
      add: adds,
      compress: args.compress as "none" | "gzip" | "zstd",
      format: args.format as "cpio" | "ext4",
      mtime: epoch ? Number(epoch) : 0,
    });
    log.info(`wrote ${summary.out} (${summary.arch}): ${(summary.bytes / 2 ** 20).toFixed(1)} MiB, ${summary.entries} entries, ${summary.modules.length} modules${summary.kernelRelease ? ` for ${summary.kernelRelease}` : ""}`);
    log.debug(`modules: ${summary.modules.join(" ")}`);
  },
});

/**
 * `burrow run`'s options: citty parses them and renders the help; the run's plan (host/run-plan.ts)
 * checks them, reading which ones the user gave from the words (citty fills in the defaults).
 */
export const RUN_ARGS = {
  kernel: { type: "string", description: "kernel image (default build/kernel-micro/vmlinuz, `just kernel-micro`; Debian's: build/kernel/vmlinuz; --arch arm64: build/kernel-micro-arm64/vmlinuz, Debian's build/kernel-arm64/vmlinuz)" },
  initrd: { type: "string", description: "initramfs (default dist/initramfs.img; --arch arm64: dist/arm64/initramfs.img; \"\": none; not with --boot-disk)" },
  "boot-disk": { type: "string", description: "burrow's ext4 boot disk (burrow image --format ext4) instead of --initrd: the kernel runs burrow from it; root= becomes burrow.root=, default the first --disk" },
  disk: { type: "string", description: "raw disk image, virtio-blk (repeatable)" },
  "serial-disk": { type: "string", description: "NAME=PATH: a raw disk with virtio serial NAME (root=SERIAL=NAME), after the --disk ones (repeatable; not with --snapshot-save)" },
  port: { type: "string", description: "virtio-serial port NAME[=FILE] (repeatable)" },
  mem: { type: "string", default: RUN_DEFAULTS.mem, description: "guest memory" },
  smp: { type: "string", default: String(RUN_DEFAULTS.smp), description: "vCPUs" },
  arch: { type: "string", description: "guest architecture: x86_64 (amd64) or arm64 (aarch64; qemu-system-aarch64 -machine virt); default this host's" },
  machine: { type: "enum", options: ["microvm", "q35", "virt"], description: "QEMU machine (x86_64: microvm, the default, or q35; arm64: virt)" },
  accel: { type: "enum", options: ["tcg", "kvm"], default: RUN_DEFAULTS.accel, description: "accelerator" },
  "tcg-tb-size": { type: "string", description: "TCG's translation buffer in MiB (default QEMU's, 1 GiB): a smaller one costs each VM less memory and commit charge, and a guest translating more than it holds retranslates (docs/snapshots.md; also with --snapshot-restore)" },
  append: { type: "string", default: RUN_DEFAULTS.append, description: "kernel command line (burrow.* keys, -- init args)" },
  timeout: { type: "string", default: String(RUN_DEFAULTS.timeoutSeconds), description: "seconds before the guest is killed (at most 7 days)" },
  "snapshot-save": { type: "string", description: "boot to burrow's snapshot point and save the VM into this directory (not with --snapshot-restore)" },
  "snapshot-restore": { type: "string", description: "start a VM saved with --snapshot-save: it keeps the saved kernel, disks, memory, machine, command line and NIC (those options are refused); takes --port NAME=FILE, --forward, --env, --timeout, --tcg-tb-size, --name, --detach, agent args after --" },
  "snapshot-warm": { type: "boolean", description: "with --snapshot-save, in supervise mode (the default; not burrow.supervise=0): save when the running workload asks (READY=1 on BURROW_NOTIFY_FD), not before it starts" },
  "snapshot-copy": { type: "boolean", description: "with --snapshot-save: put the RAM into the saved stream, copied back by every restore, instead of a file every restore maps (to compare)" },
  env: { type: "string", description: "with --snapshot-restore only: NAME=VALUE for the agent (repeatable)" },
  net: { type: "boolean", description: "a virtio-net NIC on QEMU's user network (DHCP from QEMU; adds burrow.net=1)" },
  forward: { type: "string", description: "[tcp:|udp:]HOSTPORT:GUESTPORT, host side on 127.0.0.1 (repeatable; implies --net; with --snapshot-restore: this clone's, the save having had --net)" },
  name: { type: "string", description: "register the VM under NAME (1-64 of A-Z a-z 0-9 _ . -) for burrow exec, cp, ps, stop, kill and logs; not with --snapshot-save" },
  detach: { type: "boolean", description: "with --name: run in the background, print the name once the workload runs (gives up after --timeout)" },
} satisfies ArgsDef;

const run = defineCommand({
  meta: { name: "run", description: "Boot a kernel and initramfs in QEMU and stream the guest console" },
  args: RUN_ARGS,
  async run({ rawArgs }) {
    const { planRun } = await import("./host/run-plan");
    // Every option checked, and every one the run would not use refused, before anything starts.
    const plan = planRun(rawArgs, RUN_ARGS);
    const toStdout = (text: string) => process.stdout.write(text);
    if (plan.form === "save") {
      const { saveSnapshot } = await import("./host/snapshot");
      const { manifest } = await saveSnapshot(plan.run, plan.dir, toStdout, plan.save);
      const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
      const ram = manifest.saved.ram ? `, RAM file ${mib(manifest.ramAllocatedBytes)} written of ${mib(manifest.saved.ram.size)}` : "";
      log.info(`saved ${plan.dir} (${manifest.form}${manifest.warm ? ", warm" : ""}): ready after ${manifest.readyAfterMs} ms, saved in ${manifest.saveMs} ms, state ${mib(manifest.saved.state.size)}${ram}, sealed in ${manifest.sealMs} ms`);
      return;
    }
    const name = plan.named?.name ?? null;
    if (plan.named?.detach) {
      const { detachRun } = await import("./host/detach");
      // The background run plans the same words again; what it refuses later (a snapshot's files) comes back as the reason.
      const detached = await detachRun(plan.named.name, rawArgs, plan.form === "plain" ? plan.run.timeoutSeconds : plan.restore.timeoutSeconds);
      if (detached.stdout !== null) process.stdout.write(`${detached.stdout}\n`);
      if (detached.stderr !== null) process.stderr.write(`${detached.stderr}\n`);
      process.exitCode = detached.exitCode;
      return;
    }
    const { hostNamedVm } = await import("./host/named-vm");
    if (plan.form === "restore") {
      const { restoreSnapshot } = await import("./host/snapshot");
      const { dir, restore } = plan;
      const result = name === null
        ? await restoreSnapshot(dir, restore, toStdout)
        : await hostNamedVm(name, resolvePath(dir), toStdout, (hooks) => restoreSnapshot(dir, { ...restore, ...hooks }, hooks.onOutput));
      const t = result.timings;
      if (t) log.info(`restore ${result.instance} (${result.form}): files checked in ${t.checkMs.toFixed(0)} ms${t.hashed ? " (hashed in full: not the files last verified)" : ""}, QMP up ${t.qmpMs.toFixed(0)} ms, RAM loaded ${t.loadedMs.toFixed(0)} ms, continued ${t.continuedMs.toFixed(0)} ms, agent starting ${t.resumedMs.toFixed(0)} ms after launch`);
      (result.exitCode === 0 ? log.info : log.error)(`${result.reason} (${(result.wallMs / 1000).toFixed(2)} s)`);
      process.exitCode = result.exitCode;
      return;
    }
    const { runVm } = await import("./host/qemu");
    const options = plan.run;
    const result = name === null
      ? await runVm(options, toStdout)
      : await hostNamedVm(name, null, toStdout, (hooks) => runVm({
        ...options,
        signal: hooks.signal,
        onSpawn: (vm) => {
          hooks.onQemu(vm.pid);
          if (vm.control) hooks.onControl(vm.control);
        },
      }, hooks.onOutput));
    const line = `burrow run: ${result.reason} (${(result.wallMs / 1000).toFixed(2)} s)`;
    if (result.exitCode === 0) log.info(line.replace("burrow run: ", ""));
    else log.error(line.replace("burrow run: ", ""));
    process.exitCode = result.exitCode;
  },
});

const cmdline = defineCommand({
  meta: { name: "cmdline", description: "Parse a kernel command line (default /proc/cmdline) and print the effective configuration" },
  args: { line: { type: "positional", required: false, description: "command line to parse" } },
  async run({ args }) {
    const { describeCmdline } = await import("./describe-cmdline");
    const { fromProcCmdline } = await import("./config/cmdline");
    const text = args.line ?? fromProcCmdline(await Bun.file("/proc/cmdline").bytes());
    const { json, warnings } = describeCmdline(text);
    for (const warning of warnings) log.warn(warning);
    process.stdout.write(JSON.stringify(json, null, 2) + "\n");
  },
});

const main = defineCommand({
  meta: { name: "burrow", version: BURROW_VERSION, description: "A PID 1 for microVMs and paravisors" },
  subCommands: { init, image, run, cmdline, exec, cp, ps, stop, kill, logs },
});

/** citty keeps only the last of a repeated string flag; read all of them from the raw arguments. */
function collectRepeated(rawArgs: string[], flag: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") break; // the agent's arguments from here, never flags of ours
    if (arg === flag && i + 1 < rawArgs.length) values.push(rawArgs[++i]!);
    else if (arg.startsWith(`${flag}=`)) values.push(arg.slice(flag.length + 1));
  }
  return values;
}

/** Colour only on a terminal, and never with NO_COLOR set (https://no-color.org). */
function plainUnlessTerminal(text: string, stream: { isTTY?: boolean } = process.stdout): string {
  const colour = stream.isTTY === true && !process.env.NO_COLOR;
  return colour ? text : stripAnsi(text);
}

export async function cli(rawArgs: string[]): Promise<number> {
  if (rawArgs.length === 0 || rawArgs[0] === "--help" || rawArgs[0] === "-h") {
    process.stdout.write(plainUnlessTerminal(await renderUsage(main)) + "\n");
    return 0;
  }
  if (rawArgs[0] === "--version") {
    process.stdout.write(`${BURROW_VERSION}\n`);
    return 0;
  }
  const sub = rawArgs[0]!;
  // runc's command line has its own grammar (global options before the verb): not citty's.
  if (sub === "oci") return (await import("./oci/cli")).ociMain(rawArgs.slice(1));
  const commands = main.subCommands as Record<string, Parameters<typeof renderUsage>[0]>;
  // Own keys only: "burrow toString" is an unknown command, not Object.prototype.toString.
  const command = Object.hasOwn(commands, sub) ? commands[sub] : undefined;
  if (!command) {
    log.error(`unknown command ${JSON.stringify(sub)}; commands: ${Object.keys(commands).join(", ")}`);
    return 2;
  }
  // After "--" the words are a guest command's (burrow exec NAME -- ls --help), never ours.
  const ours = rawArgs.includes("--") ? rawArgs.slice(0, rawArgs.indexOf("--")) : rawArgs;
  if (ours.includes("--help") || ours.includes("-h")) {
    process.stdout.write(plainUnlessTerminal(await renderUsage(command, main)) + "\n");
    return 0;
  }
  try {
    await runCommand(main, { rawArgs });
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (error) {
    // citty colours the values in its own messages (a bad --mode or --format); errors go to stderr.
    log.error(plainUnlessTerminal(describeError(error), process.stderr));
    return error instanceof ExitStatusError ? error.exitStatus : 1;
  }
}

