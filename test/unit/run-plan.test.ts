// burrow run's plan: each form (plain boot, save, restore) from typical words, every value parsed
// once, and every option the chosen form would not use refused with its own line.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUN_ARGS } from "../../src/cli";
import { planRun, type RunPlan } from "../../src/host/run-plan";

const work = mkdtempSync(join(tmpdir(), "burrow-run-plan-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const file = (name: string, bytes = 4096) => {
  const path = join(work, name);
  writeFileSync(path, new Uint8Array(bytes));
  return path;
};
const kernel = file("vmlinuz");
const initrd = file("initramfs.img");
const disk = file("root.ext4");
const bootDisk = file("boot.ext4");
const boot = ["--arch", "x86_64", "--kernel", kernel, "--initrd", initrd, "--disk", disk];
const snap = join(work, "snap");

const plan = (...words: string[]): RunPlan => planRun(words, RUN_ARGS);
const refusal = (...words: string[]): string => {
  try {
    plan(...words);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`planned: ${words.join(" ")}`);
};

const RESTORE_TAKES = "(the saved VM keeps its own; a restore takes --port NAME=FILE, --forward, --env, --timeout, --tcg-tb-size, --name, --detach and -- ARGS)";

describe("a plain boot", () => {
  test("typical words: every value parsed, the defaults filled in, the agent's arguments after the command line's", () => {
    const planned = plan(...boot, "--disk", disk, "--port", "agent.0=/tmp/a.log", "--smp", "2", "--mem=256M", "--forward", "udp:5353:53", "--append", "burrow.zram=25%", "--name", "web", "--", "--serve", "a b");
    expect(planned).toEqual({
      form: "plain",
      named: { name: "web", detach: false },
      run: {
        arch: "x86_64", kernel, initrd, disks: [disk, disk], serialDisks: [], ports: [{ name: "agent.0", file: "/tmp/a.log" }],
        mem: "256M", smp: 2, machine: "microvm", accel: "tcg", append: 'burrow.zram=25% -- --serve "a b"', timeoutSeconds: 120,
        net: { forwards: [{ protocol: "udp", hostPort: 5353, guestPort: 53 }] },
      },
    });
  });

  test("a boot disk goes first and replaces the initramfs; a value starting with - is the option's, not the separator", () => {
    const planned = plan("--arch", "x86_64", "--kernel", kernel, "--boot-disk", bootDisk, "--disk", disk, "--append", "-- --verbose", "--net");
    if (planned.form !== "plain") throw new Error(planned.form);
    expect(planned.run.initrd).toBeNull();
    expect(planned.run.disks).toEqual([bootDisk, disk]);
    expect(planned.run.readOnlyDisks).toEqual([bootDisk]);
    expect(planned.run.append).toBe("root=/dev/vda init=/init burrow.root=/dev/vdb -- --verbose");
    expect(planned.run.net).toEqual({ forwards: [] });
  });

  test("bad values are one line each, files included, before anything starts", () => {
    expect(refusal(...boot, "--mem", "lots")).toBe('--mem must be a size like 512M or 2G (K/M/G/T; no suffix: MiB) from 1M to 4T, got "lots"');
    expect(refusal(...boot, "--mem", "16M")).toStartWith("--mem 16M is below the smallest guest burrow boots");
    expect(refusal(...boot, "--smp", "0")).toBe('--smp must be a whole number of vCPUs from 1 to 288, got "0"');
    expect(refusal(...boot, "--timeout", "-1")).toStartWith("--timeout must be a number of seconds above 0");
    expect(refusal(...boot, "--forward", "80")).toBe('--forward needs [tcp:|udp:]HOSTPORT:GUESTPORT, got "80"');
    expect(refusal(...boot, "--machine", "virt")).toBe("--machine virt is not an x86_64 machine (x86_64: microvm, q35)");
    expect(refusal(...boot, "--accel", "kvm", "--tcg-tb-size", "64")).toBe("--tcg-tb-size sizes TCG's translation buffer, but this VM runs under kvm");
    expect(refusal(...boot, "--append", "burrow.runid=AAAAAAAAAAAA")).toBe("burrow.runid= is set by burrow run itself; remove it from --append");
    expect(refusal(...boot, "--disk", join(work, "missing.ext4"))).toBe(`not found: disk ${join(work, "missing.ext4")}`);
    expect(refusal(...boot, "--name", "-x")).toStartWith('bad VM name "-x"');
  });

  test("the boot disk replaces --initrd: one given with it is refused, not dropped", () => {
    expect(refusal(...boot, "--boot-disk", bootDisk)).toBe("--initrd cannot be combined with --boot-disk (the boot disk replaces the initramfs)");
    expect(plan(...boot, "--initrd", "", "--boot-disk", bootDisk).form).toBe("plain");
  });
});

describe("a save", () => {
  test("typical words: the boot as a plain one, the directory and the save's form", () => {
    const planned = plan(...boot, "--port", "agent.0", "--snapshot-save", snap, "--snapshot-warm");
    expect(planned).toMatchObject({ form: "save", dir: snap, save: { form: "mapped", warm: true }, run: { kernel, initrd, disks: [disk], ports: [{ name: "agent.0", file: null }] } });
    expect(plan(...boot, "--snapshot-save", snap, "--snapshot-copy")).toMatchObject({ save: { form: "copy", warm: false } });
  });

  test("the floor counts the control port every save has", () => {
    // Unsupervised, a plain boot has no virtio-serial device; a save has the control port whatever the line says.
    const tiny = ["--arch", "x86_64", "--kernel", kernel, "--initrd", "", "--disk", disk, "--mem", "32M", "--append", "burrow.supervise=0"];
    expect(plan(...tiny).form).toBe("plain");
    expect(refusal(...tiny, "--snapshot-save", snap)).toStartWith("--mem 32M is below the smallest guest burrow boots (38 MiB without an initramfs, with virtio-serial ports");
  });
});

describe("a restore", () => {
  test("typical words: this instance's ports, forwards, variables, arguments and limits", () => {
    expect(plan("--snapshot-restore", snap, "--port", "agent.0=/tmp/a.log", "--env", "MODE=x=y", "--forward", "8080:80", "--timeout", "30", "--tcg-tb-size", "64", "--name", "c1", "--detach", "--", "--serve")).toEqual({
      form: "restore",
      dir: snap,
      named: { name: "c1", detach: true },
      restore: { ports: [{ name: "agent.0", file: "/tmp/a.log" }], args: ["--serve"], env: [["MODE", "x=y"]], timeoutSeconds: 30, tcgTbSizeMiB: 64, forwards: [{ protocol: "tcp", hostPort: 8080, guestPort: 80 }] },
    });
  });

  test("without -- the saved arguments; with a bare -- none", () => {
    expect(plan("--snapshot-restore", snap)).toMatchObject({ restore: { args: null, env: [], ports: [], forwards: [], timeoutSeconds: 120 } });
    expect(plan("--snapshot-restore", snap, "--")).toMatchObject({ restore: { args: [] } });
  });

  test("each option the saved VM decides is refused by name, even at its default value", () => {
    const decided: [string, ...string[]][] = [
      ["--kernel", kernel], ["--initrd", initrd], ["--boot-disk", bootDisk], ["--disk", disk], ["--serial-disk", `base=${disk}`],
      ["--mem", "512M"], ["--smp", "1"], ["--arch", "x86_64"], ["--machine", "microvm"], ["--accel", "tcg"], ["--append", ""], ["--net"],
    ];
    for (const [option, ...value] of decided) {
      expect(refusal("--snapshot-restore", snap, option, ...value)).toBe(`${option} cannot be combined with --snapshot-restore ${RESTORE_TAKES}`);
    }
    expect(refusal("--mem=1G", "--snapshot-restore", snap, "--disk", disk, "--disk", disk)).toBe(`--disk, --mem cannot be combined with --snapshot-restore ${RESTORE_TAKES}`);
    // A switch turned off is not given.
    expect(plan("--snapshot-restore", snap, "--no-net").form).toBe("restore");
  });
});

describe("options foreign to the form", () => {
  test("each refused with its own line", () => {
    expect(refusal(...boot, "--env", "A=b")).toBe("--env needs --snapshot-restore");
    expect(refusal(...boot, "--snapshot-save", snap, "--env", "A=b")).toBe("--env needs --snapshot-restore");
    expect(refusal(...boot, "--snapshot-warm")).toBe("--snapshot-warm needs --snapshot-save");
    expect(refusal(...boot, "--snapshot-copy", "--snapshot-warm")).toBe("--snapshot-warm, --snapshot-copy need --snapshot-save");
    expect(refusal("--snapshot-restore", snap, "--snapshot-copy")).toBe("--snapshot-copy needs --snapshot-save");
    expect(refusal("--snapshot-restore", snap, "--snapshot-save", snap)).toBe("--snapshot-save cannot be combined with --snapshot-restore (a save boots a new VM, a restore starts a saved one)");
    expect(refusal(...boot, "--snapshot-save", snap, "--name", "web")).toBe("--name cannot be combined with --snapshot-save (a save ends its VM)");
    expect(refusal(...boot, "--snapshot-save", snap, "--name", "web", "--detach")).toBe("--name cannot be combined with --snapshot-save (a save ends its VM)");
    expect(refusal(...boot, "--detach")).toBe("--detach needs --name NAME (the name burrow exec, ps, stop and logs use)");
    expect(refusal(...boot, "--snapshot-save", snap, "--serial-disk", `base=${disk}`)).toBe("--serial-disk cannot be combined with --snapshot-save (snapshots record --disk disks only)");
    expect(refusal(...boot, "--snapshot-save", "")).toBe("--snapshot-save needs a directory");
  });

  test("a word burrow run does not know is refused, not dropped; the agent's words after -- are never ours", () => {
    expect(refusal(...boot, "--memory", "1G")).toBe("unknown option --memory (burrow run --help lists them)");
    expect(refusal(...boot, "-m", "1G")).toBe("unknown option -m (burrow run --help lists them)");
    expect(refusal(...boot, "--net", "extra.ext4")).toBe('unexpected argument "extra.ext4" (the agent\'s arguments go after --)');
    expect(refusal(...boot, "--mem")).toBe("--mem needs a value");
    expect(plan(...boot, "--", "--memory", "stray").form).toBe("plain");
    // citty's spellings stay accepted: --camelCase, and --no-NAME for a switch.
    expect(plan(...boot, "--bootDisk", bootDisk, "--initrd", "")).toMatchObject({ run: { disks: [bootDisk, disk] } });
  });
});
