// The hardening table and burrow.harden= switches: names, defaults, reasons, parsing that never throws.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { parseConfig } from "../../src/config/config";
import { enabledRules, HARDEN_RULES, parseHardenSwitches, TMP_INODES } from "../../src/config/harden";
import { tmpLimitsData } from "../../src/modes/microvm/harden";

const names = (switches: Record<string, boolean>) => enabledRules(switches).map((rule) => rule.name);

describe("hardening table", () => {
  test("every rule has a unique name and a reason; the defaults are the ones that break no agent", () => {
    expect(new Set(HARDEN_RULES.map((rule) => rule.name)).size).toBe(HARDEN_RULES.length);
    for (const rule of HARDEN_RULES) expect(rule.why.length).toBeGreaterThan(20);
    expect(names({})).toEqual(["dev-mem", "random-mode", "proc-hidepid"]);
  });

  test("/tmp limits: half of MemTotal rounded down to a page, 16384 inodes", () => {
    expect(tmpLimitsData(500_003)).toBe(`mode=1777,size=${Math.floor((500_003 * 1024) / 2 / 4096) * 4096},nr_inodes=${TMP_INODES}`);
    expect(tmpLimitsData(1024 * 1024)).toBe("mode=1777,size=536870912,nr_inodes=16384");
  });
});

describe("burrow.harden=", () => {
  test("name on, -name off, all, none, left to right", () => {
    expect(names(parseHardenSwitches("tmp-limits,-proc-hidepid").switches)).toEqual(["dev-mem", "random-mode", "tmp-limits"]);
    expect(names(parseHardenSwitches("none,dev-mem").switches)).toEqual(["dev-mem"]);
    expect(names(parseHardenSwitches("all,-cgroupfs").switches)).toEqual(["dev-mem", "random-mode", "proc-hidepid", "tmp-limits"]);
    expect(names(parseHardenSwitches("cgroupfs,none").switches)).toEqual([]);
  });

  test("unknown names and empty values are problems; the known items still apply", () => {
    const { switches, problems } = parseHardenSwitches("tmp-limits,hidepid,-constructor");
    expect(names(switches)).toContain("tmp-limits");
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^unknown hardening rule "hidepid" \(rules: dev-mem, random-mode, proc-hidepid, tmp-limits, cgroupfs\)$/);
    expect(parseHardenSwitches("").problems).toHaveLength(1);
    expect(parseHardenSwitches(null).problems).toHaveLength(1);
  });

  test("on the command line: several burrow.harden words add up; problems are reported, never thrown", () => {
    const config = parseConfig("burrow.harden=tmp-limits burrow.harden=-dev-mem,bogus");
    expect(names(config.harden)).toEqual(["random-mode", "proc-hidepid", "tmp-limits"]);
    expect(config.problems.map((problem) => problem.message)).toEqual([expect.stringMatching(/^burrow\.harden=-dev-mem,bogus: unknown hardening rule "bogus"/)]);
    expect(parseConfig("").harden).toEqual({});
    expect(JSON.parse(JSON.stringify(config.harden))).toEqual({ "tmp-limits": true, "dev-mem": false });
  });

  test("any value: a result, never an exception; only rule names become switches", () => {
    fc.assert(
      fc.property(fc.string(), (value) => {
        const { switches } = parseHardenSwitches(value);
        for (const key of Object.keys(switches)) expect(HARDEN_RULES.some((rule) => rule.name === key)).toBe(true);
      }),
      { seed: 0x686172, numRuns: 1_000 },
    );
  });
});
