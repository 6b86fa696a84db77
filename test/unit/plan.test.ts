// The step runner (src/boot/plan.ts): failure policies, skipped steps, and the timing records the
// boot report carries, all from an injected clock so the numbers are exact.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { BootFailure, runPlan, type BootReport, type Step } from "../../src/boot/plan";
import { log } from "../../src/log";
import { SysError } from "../../src/sys/errno";

interface Context {
  ran: string[];
  wantOptional: boolean;
}

/** A clock that ticks by one on every read: each record's start and end are distinct, known values. */
function tickingClock(): () => number {
  let t = 100;
  return () => t++;
}

function freshReport(): BootReport {
  return { mode: "test", kernel: "6.0.0-test", startedMs: 0, steps: [] };
}

function step(name: string, policy: "fatal" | "warn", run?: (context: Context) => void | Promise<void>, when?: (context: Context) => boolean): Step<Context> {
  return { name, policy, when, run: run ?? ((context) => void context.ran.push(name)) };
}

// runPlan logs a warning per failed warn step; keep the test output to the assertions.
let savedLevel = 0;
beforeAll(() => {
  savedLevel = log.level;
  log.level = -1;
});
afterAll(() => {
  log.level = savedLevel;
});

describe("runPlan", () => {
  test("every step runs in order; each record is timed from the injected clock", async () => {
    const context: Context = { ran: [], wantOptional: true };
    const report = freshReport();
    await runPlan([step("mounts", "fatal"), step("modules", "warn"), step("root", "fatal")], context, report, tickingClock());
    expect(context.ran).toEqual(["mounts", "modules", "root"]);
    expect(report.steps).toEqual([
      { name: "mounts", policy: "fatal", startMs: 100, endMs: 101, status: "ok" },
      { name: "modules", policy: "warn", startMs: 102, endMs: 103, status: "ok" },
      { name: "root", policy: "fatal", startMs: 104, endMs: 105, status: "ok" },
    ]);
  });

  test("a fatal step's failure throws BootFailure naming the step, is recorded, and stops the plan", async () => {
    const context: Context = { ran: [], wantOptional: true };
    const report = freshReport();
    const plan = [
      step("mounts", "fatal"),
      step("root", "fatal", () => {
        throw new SysError("mount", 19);
      }),
      step("agent", "fatal"),
    ];
    const failure = await runPlan(plan, context, report, tickingClock()).then(() => null, (error: unknown) => error);
    expect(failure).toBeInstanceOf(BootFailure);
    expect((failure as BootFailure).step).toBe("root");
    expect((failure as BootFailure).message).toMatch(/^root: mount.*ENODEV/);
    expect(context.ran).toEqual(["mounts"]);
    // The failed step is in the report (the fallback writes it); the steps after it are not.
    expect(report.steps.map((record) => [record.name, record.status])).toEqual([["mounts", "ok"], ["root", "failed"]]);
    expect(report.steps[1]!.error).toBe((failure as BootFailure).message.slice("root: ".length));
    expect(report.steps[1]).toMatchObject({ startMs: 102, endMs: 103 });
  });

  test("a warn step's failure is recorded with its error text and the plan goes on", async () => {
    const context: Context = { ran: [], wantOptional: true };
    const report = freshReport();
    await runPlan([step("zram", "warn", () => {
      throw new Error("no zram device");
    }), step("ports", "warn", () => {
      throw "a thrown string"; // not an Error: still described
    }), step("root", "fatal")], context, report, tickingClock());
    expect(context.ran).toEqual(["root"]);
    expect(report.steps).toEqual([
      { name: "zram", policy: "warn", startMs: 100, endMs: 101, status: "failed", error: "no zram device" },
      { name: "ports", policy: "warn", startMs: 102, endMs: 103, status: "failed", error: "a thrown string" },
      { name: "root", policy: "fatal", startMs: 104, endMs: 105, status: "ok" },
    ]);
  });

  test("when() false records 'skipped' without running the step; when() sees the context", async () => {
    const context: Context = { ran: [], wantOptional: false };
    const report = freshReport();
    const seen: Context[] = [];
    const plan = [
      step("optional", "fatal", undefined, (context) => (seen.push(context), context.wantOptional)),
      step("always", "warn", undefined, () => true),
    ];
    await runPlan(plan, context, report, tickingClock());
    expect(seen).toEqual([context]);
    expect(context.ran).toEqual(["always"]);
    expect(report.steps).toEqual([
      // A skipped step reads the clock once: start and end are the same instant.
      { name: "optional", policy: "fatal", startMs: 100, endMs: 100, status: "skipped" },
      { name: "always", policy: "warn", startMs: 101, endMs: 102, status: "ok" },
    ]);
  });

  test("async steps are awaited before the next starts; an async rejection follows the policy", async () => {
    const context: Context = { ran: [], wantOptional: true };
    const report = freshReport();
    const plan = [
      step("slow", "fatal", async (context) => {
        await Bun.sleep(20);
        context.ran.push("slow");
      }),
      step("after-slow", "warn", async () => {
        await Bun.sleep(1);
        throw new Error("late failure");
      }),
      step("check", "fatal"),
      step("fatal-async", "fatal", async () => {
        await Promise.resolve();
        throw new Error("async fatal");
      }),
      step("never", "fatal"),
    ];
    await expect(runPlan(plan, context, report, tickingClock())).rejects.toThrow(new BootFailure("fatal-async", new Error("async fatal")));
    expect(context.ran).toEqual(["slow", "check"]);
    expect(report.steps.map((record) => record.status)).toEqual(["ok", "failed", "ok", "failed"]);
    expect(report.steps[1]!.error).toBe("late failure");
  });

  test("with a real clock too, every record has startMs <= endMs and records follow each other", async () => {
    const report = freshReport();
    const plan: Step<Context>[] = [
      step("a", "warn", () => Bun.sleep(2)),
      step("b", "warn", () => {
        throw new Error("x");
      }),
      step("c", "warn", undefined, () => false),
      step("d", "fatal", () => Bun.sleep(1)),
    ];
    await runPlan(plan, { ran: [], wantOptional: true }, report, () => performance.now());
    for (const record of report.steps) expect(record.startMs).toBeLessThanOrEqual(record.endMs);
    for (let i = 1; i < report.steps.length; i++) expect(report.steps[i - 1]!.endMs).toBeLessThanOrEqual(report.steps[i]!.startMs);
    expect(report.steps[0]!.endMs - report.steps[0]!.startMs).toBeGreaterThanOrEqual(1);
  });

  test("BootFailure: name, step, and the cause's text after the step name", () => {
    const failure = new BootFailure("modules", new Error("finit_module: ENOEXEC"));
    expect(failure).toBeInstanceOf(Error);
    expect(failure.name).toBe("BootFailure");
    expect(failure.step).toBe("modules");
    expect(failure.message).toBe("modules: finit_module: ENOEXEC");
  });
});
