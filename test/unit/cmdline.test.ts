import { describe, expect, test } from "bun:test";
import { parseWord, splitAppend, splitWords, tokenize, wordKey } from "../../src/config/cmdline";
import { moduleParamString, parseConfig, parseZram } from "../../src/config/config";
import { describeCmdline } from "../../src/describe-cmdline";

describe("kernel command line tokenizer", () => {
  test("splits on whitespace and keeps quoted groups", () => {
    expect(splitWords(' console=ttyS0  foo="a b"  "x y=z" -- q\n')).toEqual(["console=ttyS0", 'foo="a b"', '"x y=z"', "--", "q"]);
  });

  test("strips quotes the way the kernel's next_arg does", () => {
    expect(parseWord('foo="a b"')).toEqual({ key: "foo", value: "a b" });
    expect(parseWord('"echo A=1"')).toEqual({ key: "echo A", value: "1" });
    expect(parseWord('"quoted word"')).toEqual({ key: "quoted word", value: null });
    expect(parseWord("ro")).toEqual({ key: "ro", value: null });
    expect(parseWord("a=b=c")).toEqual({ key: "a", value: "b=c" });
    expect(parseWord("empty=")).toEqual({ key: "empty", value: "" });
  });

  test("-- separates init arguments, which keep '=' and lose quotes", () => {
    const { params, initArgs } = tokenize('root=/dev/vda -- --setup-script "echo A=1" --foo bar -- baz');
    expect(params).toEqual([{ key: "root", value: "/dev/vda" }]);
    // As the kernel: parse_args stops at the second "--" and init never sees it or what follows.
    expect(initArgs).toEqual(["--setup-script", "echo A=1", "--foo", "bar"]);
  });

  test("no -- means no init arguments", () => {
    expect(tokenize("a b").initArgs).toEqual([]);
    expect(tokenize("").params).toEqual([]);
  });
});

describe("configuration", () => {
  test("defaults", () => {
    const config = parseConfig("console=ttyS0");
    expect(config.mode).toBe("microvm");
    expect(config.root).toBe("/dev/vda");
    expect(config.zram).toEqual({ kind: "percent", percent: 50 });
    expect(config.zramAlgorithms).toEqual(["lz4", "lzo-rle", "lzo"]);
    expect(config.supervise).toBe(true);
    expect(config.problems).toEqual([]);
  });

  test("burrow.supervise: supervise mode is microvm's default; 0 execs the agent as PID 1; a bad value is reported and keeps the default", () => {
    expect(parseConfig("").supervise).toBe(true);
    expect(parseConfig("burrow.supervise=0").supervise).toBe(false);
    expect(parseConfig("burrow.supervise=off").supervise).toBe(false);
    expect(parseConfig("burrow.supervise=1").supervise).toBe(true);
    expect(parseConfig("burrow.supervise=0 burrow.supervise").supervise).toBe(true);
    // After "--" it is the agent's argument, not a setting.
    expect(parseConfig("-- burrow.supervise=0").supervise).toBe(true);
    const bad = parseConfig("burrow.supervise=maybe");
    expect(bad.supervise).toBe(true);
    expect(bad.problems.map((problem) => problem.message)).toEqual(["burrow.supervise=maybe: expected 1/0, on/off, true/false or yes/no"]);
    expect(parseConfig("burrow.supervise=0 burrow.supervise=2").supervise).toBe(false);
    // paravisor hands PID 1 to the supervisor whatever the key says: not "supervised" unless the line asks.
    expect(parseConfig("burrow.mode=paravisor").supervise).toBe(false);
    expect(parseConfig("burrow.mode=paravisor burrow.supervise=maybe").supervise).toBe(false);
    expect(parseConfig("burrow.supervise=1 burrow.mode=paravisor").supervise).toBe(true);
  });

  test("burrow.start: boot by default, host to wait for the host's workload; a bad value is reported; paravisor mode refuses host", () => {
    expect(parseConfig("").start).toBe("boot");
    expect(parseConfig("burrow.start=host").start).toBe("host");
    expect(parseConfig("burrow.start=host burrow.start=boot").start).toBe("boot");
    expect(parseConfig("burrow.start=host").problems).toEqual([]);
    const bad = parseConfig("burrow.start=later");
    expect(bad.start).toBe("boot");
    expect(bad.problems.map((problem) => problem.message)).toEqual(["burrow.start=later: expected one of boot|host"]);
    expect(parseConfig("burrow.start").problems.map((problem) => problem.message)).toEqual(["burrow.start: expected one of boot|host"]);
    const paravisor = parseConfig("burrow.mode=paravisor burrow.start=host");
    expect(paravisor.start).toBe("boot");
    expect(paravisor.problems.map((problem) => problem.message)).toEqual(["burrow.start=host: only microvm mode waits for the host's workload; ignored"]);
    // Supervise mode is checked where the workload would start (src/modes/microvm/boot.ts): the key itself parses.
    expect(parseConfig("burrow.supervise=0 burrow.start=host").start).toBe("host");
  });

  test("burrow cmdline's microvm plan names PID 1 once the agent runs", () => {
    expect(describeCmdline("-- x").json.plan).toEqual({ root: "/dev/vda", agent: { path: "/usr/local/bin/guest-agent", argv: ["/usr/local/bin/guest-agent", "x"] }, pid1: "supervisor" });
    expect((describeCmdline("burrow.supervise=0").json.plan as { pid1: string }).pid1).toBe("agent");
    expect(describeCmdline("burrow.supervise=0").json.supervise).toBe(false);
  });

  test("module parameters: dashes equal underscores, repeated keys accumulate, quotes kept", () => {
    const config = parseConfig('virtio-blk.queue_depth=4 virtio_blk.poll_queues=1 zram.num_devices=2 foo.bar="x y" printk.time=1');
    expect(moduleParamString(config.moduleParams, "virtio_blk")).toBe("queue_depth=4 poll_queues=1");
    expect(moduleParamString(config.moduleParams, "virtio-blk")).toBe("queue_depth=4 poll_queues=1");
    expect(moduleParamString(config.moduleParams, "zram")).toBe("num_devices=2");
    expect(moduleParamString(config.moduleParams, "foo")).toBe('bar="x y"');
    expect(moduleParamString(config.moduleParams, "ext4")).toBe("");
  });

  test("burrow.* and init.* keys are not module parameters", () => {
    const config = parseConfig("burrow.net=1 init.balloon=1");
    expect(config.moduleParams.size).toBe(0);
    expect(config.net).toBe(true);
    expect(config.balloon).toBe(true);
  });

  test("unknown burrow.* keys and bad values are reported, never ignored", () => {
    const config = parseConfig("burrow.mode=fast burrow.colour=blue burrow.rootwait=soon burrow.net=maybe");
    expect(config.problems.map((problem) => problem.key)).toEqual(["burrow.mode", "burrow.colour", "burrow.rootwait", "burrow.net"]);
    expect(config.problems[1]!.message).toContain("unknown key burrow.colour");
    expect(config.mode).toBe("microvm");
  });

  test("repeated keys: last wins for values, lists accumulate", () => {
    const config = parseConfig("root=/dev/vdb burrow.root=LABEL=data burrow.modules=a,b burrow.modules=c ro rw ro");
    expect(config.root).toBe("LABEL=data");
    expect(config.modules).toEqual(["a", "b", "c"]);
    expect(config.readOnly).toBe(true);
  });

  test("burrow.root= wins over the kernel's root= in either order", () => {
    expect(parseConfig("burrow.root=/dev/vdb root=/dev/vda ro").root).toBe("/dev/vdb");
    expect(parseConfig("root=/dev/vda burrow.root=/dev/vdb").root).toBe("/dev/vdb");
    expect(parseConfig("root=/dev/vda").root).toBe("/dev/vda");
  });

  test("garbage does not throw", () => {
    for (const line of ['"""', "= == ===", "burrow.=x", '-- "', "\u0000\u0001 burrow.log", "a".repeat(5000)]) {
      expect(() => parseConfig(line)).not.toThrow();
    }
    expect(parseConfig("burrow.log").problems.length).toBe(1);
  });

  test("zram settings: off, N% or a size in the one grammar (test/unit/size.test.ts), at least 64 KiB", () => {
    for (const off of ["off", "OFF", "0%", "no", "false", "none"]) expect(parseZram(off)).toEqual({ kind: "off" });
    expect(parseZram("25%")).toEqual({ kind: "percent", percent: 25 });
    expect(parseZram("12.5%")).toEqual({ kind: "percent", percent: 12.5 });
    expect(parseZram("100%")).toEqual({ kind: "percent", percent: 100 });
    expect(parseZram("256M")).toEqual({ kind: "bytes", bytes: 256 * 2 ** 20 });
    expect(parseZram("1.5g")).toEqual({ kind: "bytes", bytes: 1.5 * 2 ** 30 });
    expect(parseZram("64KiB")).toEqual({ kind: "bytes", bytes: 65536 });
    expect(parseZram("65536")).toEqual({ kind: "bytes", bytes: 65536 });
    expect(parseZram("12QB")).toEqual({ problem: "not a size (expected off, N% or a size: 512M, 1G, bytes)" });
    expect(parseZram("512MB")).toEqual({ problem: "MB is ambiguous (1000s or 1024s): write M or MiB (expected off, N% or a size: 512M, 1G, bytes)" });
    expect(parseZram("1.3G")).toEqual({ problem: "not a whole number of bytes (expected off, N% or a size: 512M, 1G, bytes)" });
    expect(parseZram("0")).toEqual({ problem: "size 0" });
    expect(parseZram("0K")).toEqual({ problem: "size 0" });
    expect(parseZram("65535")).toEqual({ problem: "smaller than the 64 KiB a swap area needs" });
    expect(parseZram("150%")).toEqual({ problem: "a percentage must be above 0 and at most 100" });
    expect(parseZram("")).toHaveProperty("problem");
  });

  test("a bad burrow.zram= is reported and keeps the 50 % default (or what was set before it)", () => {
    const bad = parseConfig("burrow.zram=12QB");
    expect(bad.zram).toEqual({ kind: "percent", percent: 50 });
    expect(bad.problems.map((problem) => problem.message)).toEqual(["burrow.zram=12QB: not a size (expected off, N% or a size: 512M, 1G, bytes); keeping 50% of RAM"]);
    const earlier = parseConfig("burrow.zram=256M burrow.zram=0");
    expect(earlier.zram).toEqual({ kind: "bytes", bytes: 256 * 2 ** 20 });
    expect(earlier.problems.map((problem) => problem.message)).toEqual(["burrow.zram=0: size 0; keeping 256M"]);
    expect(parseConfig("burrow.zram=off burrow.zram=150%").zram).toEqual({ kind: "off" });
  });
});

describe("splitAppend and wordKey (host tools rebuilding a line)", () => {
  test("kernel words, then everything from the first -- on; quotes kept as the kernel separates them", () => {
    expect(splitAppend('root=/dev/vda mod.p="a b" -- x -- y')).toEqual({ kernelWords: ["root=/dev/vda", 'mod.p="a b"'], initWords: ["--", "x", "--", "y"] });
    expect(splitAppend("ro quiet")).toEqual({ kernelWords: ["ro", "quiet"], initWords: [] });
    expect(splitAppend("")).toEqual({ kernelWords: [], initWords: [] });
  });

  test("a word's key ends at its first =", () => {
    expect(wordKey("root=LABEL=x")).toBe("root");
    expect(wordKey("ro")).toBe("ro");
    expect(wordKey("=x")).toBe("");
  });
});
