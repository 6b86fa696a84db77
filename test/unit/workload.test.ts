// The workload spec: its command-line keys (failing closed), user resolution, the OCI file, the
// merge into supervisor words, and the cgroup against a fake cgroupfs.
import { afterEach, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../../src/config/config";
import { CAPABILITIES, capabilityNumber, defaultWorkload, RLIMIT_NAMES, RLIMITS, type WorkloadRequest } from "../../src/config/workload";
import { prepareWorkloadCgroup } from "../../src/workload/cgroup";
import { parseOciSpec } from "../../src/workload/oci";
import { capabilityMask, formatBytes, resolveWorkload, supervisorWords, type ReadFile } from "../../src/workload/resolve";

/** Seeded and bounded, as every property test here: the same cases each run, a few seconds at most. */
const FUZZ = { seed: 0x776b6c64, numRuns: 300, interruptAfterTimeLimit: 5_000 } as const;
import { parseGroup, parsePasswd, resolveUser } from "../../src/workload/users";

const workload = (line: string) => parseConfig(line).workload;
const invalid = (line: string) => workload(line).invalid;

describe("workload keys", () => {
  test("defaults: nothing asked, nothing invalid; the Config carries it", () => {
    expect(workload("console=ttyS0")).toEqual(defaultWorkload());
    expect(defaultWorkload()).toEqual({ user: null, cwd: null, hostname: null, rlimits: {}, noNewPrivs: false, capsKeep: null, oomScoreAdj: null, memoryMax: null, pidsMax: null, specFile: null, invalid: [] });
  });

  test("every key, good values", () => {
    const request = workload(
      "burrow.user=app burrow.cwd=/srv burrow.hostname=web-1.example burrow.rlimit.nofile=1024:4096 burrow.rlimit.core=0 " +
        "burrow.rlimit.stack=8M:unlimited burrow.no-new-privs burrow.caps=chown,CAP_NET_BIND_SERVICE,Kill burrow.oom-score-adj=-500 " +
        "burrow.memory-max=64M burrow.pids-max=100 burrow.spec=/etc/workload/config.json",
    );
    expect(request).toEqual({
      user: "app",
      cwd: "/srv",
      hostname: "web-1.example",
      rlimits: { nofile: { soft: 1024, hard: 4096 }, core: { soft: 0, hard: 0 }, stack: { soft: 8 * 2 ** 20, hard: "inf" } },
      noNewPrivs: true,
      capsKeep: [0, 5, 10],
      oomScoreAdj: -500,
      memoryMax: 64 * 2 ** 20,
      pidsMax: 100,
      specFile: "/etc/workload/config.json",
      invalid: [],
    });
    expect(parseConfig("burrow.user=app").problems).toEqual([]);
  });

  test("user: NAME, UID, UID:GID; not names, ranges or shapes", () => {
    expect(workload("burrow.user=1000").user).toBe("1000");
    expect(workload("burrow.user=1000:27").user).toBe("1000:27");
    expect(workload("burrow.user=4294967294:0").user).toBe("4294967294:0");
    expect(workload("burrow.user=svc_a.b-c$").user).toBe("svc_a.b-c$");
    for (const bad of ["", "4294967295", "1000:4294967295", "a:b", "1:2:3", "x y", "-x", "a/b", "1000:"]) {
      expect(invalid(`"burrow.user=${bad}"`)).toHaveLength(1);
    }
    expect(invalid("burrow.user")).toEqual(["burrow.user: expected NAME, UID or UID:GID"]);
  });

  test("cwd and spec are absolute paths; hostname is RFC 1123 labels, 1 to 64 characters", () => {
    expect(invalid("burrow.cwd=srv")).toEqual(["burrow.cwd=srv: expected an absolute path"]);
    expect(invalid("burrow.spec=config.json")).toEqual(["burrow.spec=config.json: expected an absolute path"]);
    expect(invalid("burrow.cwd")).toHaveLength(1);
    expect(workload(`burrow.hostname=${"a".repeat(63)}`).hostname).toBe("a".repeat(63));
    for (const bad of ["", "-a", "a-", "a..b", ".a", "a.", "a_b", "a b", "é", "a".repeat(64), `${"a".repeat(32)}.${"b".repeat(32)}`]) {
      expect(invalid(`"burrow.hostname=${bad}"`)).toHaveLength(1);
    }
  });

  test("rlimits: every name; SOFT[:HARD]; sizes only for byte limits; soft ≤ hard", () => {
    for (const name of RLIMIT_NAMES) expect(workload(`burrow.rlimit.${name}=7`).rlimits[name]).toEqual({ soft: 7, hard: 7 });
    expect(workload("burrow.rlimit.as=1G:INF").rlimits.as).toEqual({ soft: 2 ** 30, hard: "inf" });
    // A byte limit's sizes are the one size grammar's (test/unit/size.test.ts).
    expect(workload("burrow.rlimit.stack=1.5M:8MiB").rlimits.stack).toEqual({ soft: 1.5 * 2 ** 20, hard: 8 * 2 ** 20 });
    for (const bad of ["8MB", "1.3M", "08M"]) expect(invalid(`burrow.rlimit.stack=${bad}`)).toHaveLength(1);
    expect(workload("burrow.rlimit.cpu=infinity:unlimited").rlimits.cpu).toEqual({ soft: "inf", hard: "inf" });
    expect(workload("burrow.rlimit.nofile=1:2 burrow.rlimit.nofile=3:4").rlimits.nofile).toEqual({ soft: 3, hard: 4 });
    expect(invalid("burrow.rlimit.bogus=1")).toEqual([expect.stringContaining("burrow.rlimit.bogus=1: unknown rlimit bogus")]);
    expect(invalid("burrow.rlimit.constructor=1")).toEqual([expect.stringContaining("unknown rlimit constructor")]);
    expect(invalid("burrow.rlimit.nofile=4096:1024")).toEqual(["burrow.rlimit.nofile=4096:1024: the soft limit is above the hard limit"]);
    expect(invalid("burrow.rlimit.nofile=inf:1024")).toHaveLength(1);
    for (const bad of ["", "64M", "-1", "1:2:3", "1.5", "x", "9007199254740992", ":1", "1:"]) expect(invalid(`"burrow.rlimit.nofile=${bad}"`)).toHaveLength(1);
    expect(invalid("burrow.rlimit.nofile")).toHaveLength(1);
  });

  test("no-new-privs is a switch; caps by name, any case, with or without CAP_; none and all", () => {
    expect(workload("burrow.no-new-privs=0").noNewPrivs).toBe(false);
    expect(workload("burrow.no-new-privs=yes").noNewPrivs).toBe(true);
    expect(invalid("burrow.no-new-privs=maybe")).toHaveLength(1);
    expect(workload("burrow.caps=none").capsKeep).toEqual([]);
    expect(workload("burrow.caps=ALL").capsKeep).toEqual(CAPABILITIES.map((_, index) => index));
    expect(workload("burrow.caps=sys_admin,chown,cap_chown").capsKeep).toEqual([0, 21]);
    expect(invalid("burrow.caps=chown,fly,cap_teleport")).toEqual(["burrow.caps=chown,fly,cap_teleport: unknown capability fly, cap_teleport"]);
    expect(invalid("burrow.caps=")).toHaveLength(1);
    expect(invalid("burrow.caps=none,chown")).toHaveLength(1);
  });

  test("the capability table: CAP_CHOWN 0 … CAP_CHECKPOINT_RESTORE 40", () => {
    expect(CAPABILITIES).toHaveLength(41);
    expect(new Set(CAPABILITIES).size).toBe(41);
    expect(capabilityNumber("CAP_CHOWN")).toBe(0);
    expect(capabilityNumber("setuid")).toBe(7);
    expect(capabilityNumber("net_admin")).toBe(12);
    expect(capabilityNumber("SYS_ADMIN")).toBe(21);
    expect(capabilityNumber("cap_audit_read")).toBe(37);
    expect(capabilityNumber("bpf")).toBe(39);
    expect(capabilityNumber("checkpoint_restore")).toBe(40);
    expect(capabilityNumber("toString")).toBeUndefined();
    expect(RLIMITS).toMatchObject({ cpu: 0, nofile: 7, as: 9, rttime: 15 });
  });

  test("oom-score-adj, memory-max, pids-max", () => {
    expect(workload("burrow.oom-score-adj=1000").oomScoreAdj).toBe(1000);
    expect(workload("burrow.oom-score-adj=+5").oomScoreAdj).toBe(5);
    for (const bad of ["1001", "-1001", "x", "", "1.5"]) expect(invalid(`burrow.oom-score-adj=${bad}`)).toHaveLength(1);
    expect(workload("burrow.memory-max=max").memoryMax).toBe("max");
    expect(workload("burrow.memory-max=1GiB").memoryMax).toBe(2 ** 30);
    expect(workload("burrow.memory-max=1048576").memoryMax).toBe(2 ** 20);
    expect(workload("burrow.memory-max=1.5G").memoryMax).toBe(1.5 * 2 ** 30);
    expect(workload("burrow.memory-max=1M").memoryMax).toBe(2 ** 20);
    for (const bad of ["0", "512K", "1048575", "lots", "", "-1", "MAX"]) expect(invalid(`burrow.memory-max=${bad}`)).toHaveLength(1);
    expect(invalid("burrow.memory-max=1GB")).toEqual(["burrow.memory-max=1GB: GB is ambiguous (1000s or 1024s): write G or GiB (expected a size: 64M, 1G, bytes; or max)"]);
    expect(invalid("burrow.memory-max=1.3G")).toEqual(["burrow.memory-max=1.3G: not a whole number of bytes (expected a size: 64M, 1G, bytes; or max)"]);
    expect(workload("burrow.pids-max=max").pidsMax).toBe("max");
    expect(workload("burrow.pids-max=4194304").pidsMax).toBe(4194304);
    for (const bad of ["0", "4194305", "x", "", "-1"]) expect(invalid(`burrow.pids-max=${bad}`)).toHaveLength(1);
  });

  test("a bad value fails the spec closed: it is a problem and invalid, and the setting stays unset", () => {
    const config = parseConfig("burrow.user=app burrow.memory-max=lots burrow.rlimit.nofile=9:1");
    expect(config.workload.invalid).toEqual(["burrow.memory-max=lots: not a size (expected a size: 64M, 1G, bytes; or max)", "burrow.rlimit.nofile=9:1: the soft limit is above the hard limit"]);
    expect(config.problems.map((problem) => problem.message)).toEqual(config.workload.invalid);
    expect(config.workload.memoryMax).toBeNull();
    expect(config.workload.rlimits).toEqual({});
    // A later good value does not wash out an earlier bad one.
    expect(invalid("burrow.pids-max=0 burrow.pids-max=10")).toHaveLength(1);
  });

  test("valid whatever burrow.supervise says, and in either mode", () => {
    expect(workload("burrow.user=1").user).toBe("1");
    expect(workload("burrow.supervise=1 burrow.user=1").user).toBe("1");
    expect(workload("burrow.supervise=0 burrow.user=1").user).toBe("1");
    expect(workload("burrow.mode=paravisor burrow.user=1").user).toBe("1");
  });

  test("property: random values for the workload keys never throw; every workload problem is in invalid", () => {
    const keys = ["burrow.user", "burrow.cwd", "burrow.hostname", "burrow.no-new-privs", "burrow.caps", "burrow.oom-score-adj", "burrow.memory-max", "burrow.pids-max", "burrow.spec", ...RLIMIT_NAMES.map((name) => `burrow.rlimit.${name}`), "burrow.rlimit.x"];
    const value = fc.oneof(fc.string({ maxLength: 24 }), fc.stringMatching(/^[0-9:a-zA-Z_,.\-+/]{0,20}$/), fc.constantFrom("max", "inf", "none", "all", "1024:4096", "64M", "-1000", "4294967295"));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...keys), value), { maxLength: 6 }), (pairs) => {
        const line = pairs.map(([key, text]) => `"${key}=${text.replace(/"/g, "")}"`).join(" ");
        const config = parseConfig(line);
        const workloadProblems = config.problems.filter((problem) => keys.includes(problem.key) || problem.key.startsWith("burrow.rlimit."));
        expect(config.workload.invalid).toEqual(workloadProblems.map((problem) => problem.message));
        const result = resolveWorkload(config.workload, () => null);
        if (config.workload.invalid.length) expect(result.ok).toBe(false);
      }),
      { ...FUZZ, numRuns: 400 },
    );
  });

  test("burrow cmdline's JSON view carries the workload (no bigint, no Map)", () => {
    expect(JSON.parse(JSON.stringify(workload("burrow.rlimit.nofile=1:inf burrow.caps=none")))).toMatchObject({ rlimits: { nofile: { soft: 1, hard: "inf" } }, capsKeep: [] });
  });
});

const PASSWD = [
  "root:x:0:0:root:/root:/bin/sh",
  "# a comment",
  "",
  "broken line",
  "huge:x:4294967295:1:h:/h:/bin/sh",
  "neg:x:-1:1:n:/n:/bin/sh",
  "+nis",
  "app:x:1000:1000:App:/home/app:/bin/sh\r",
  "app:x:2000:2000:second entry loses:/other:/bin/sh",
  "short:x:3000:3000",
  "relhome:x:3001:3001::home:/bin/sh",
  ":x:5:5::/:/bin/sh",
].join("\n");
const GROUP = ["root:x:0:", "wheel:x:10:root,app", "video:x:27: app ,other", "app:x:1000:", "bad:x:zz:app", "nomembers:x:50", "dup:x:27:app", "big:x:4294967295:app"].join("\n");

describe("users", () => {
  test("passwd and group parsing skip what is malformed", () => {
    expect(parsePasswd(PASSWD).map((entry) => entry.name)).toEqual(["root", "app", "app", "short", "relhome"]);
    expect(parsePasswd(PASSWD)[1]).toEqual({ name: "app", uid: 1000, gid: 1000, home: "/home/app" });
    expect(parsePasswd(PASSWD)[3]!.home).toBeNull();
    expect(parsePasswd(PASSWD)[4]!.home).toBeNull();
    expect(parseGroup(GROUP).map((entry) => entry.name)).toEqual(["root", "wheel", "video", "app", "dup"]);
    expect(parseGroup(GROUP)[2]!.members).toEqual(["app", "other"]);
  });

  test("NAME: the first entry's uid, gid and home; the primary group then every membership, once", () => {
    expect(resolveUser("app", PASSWD, GROUP)).toEqual({ ok: true, user: { uid: 1000, gid: 1000, groups: [1000, 10, 27], name: "app", home: "/home/app" } });
    expect(resolveUser("root", PASSWD, GROUP)).toEqual({ ok: true, user: { uid: 0, gid: 0, groups: [0, 10], name: "root", home: "/root" } });
    expect(resolveUser("short", PASSWD, null)).toEqual({ ok: true, user: { uid: 3000, gid: 3000, groups: [3000], name: "short", home: null } });
  });

  test("UID: the passwd entry's gid and groups when there is one, else gid = uid", () => {
    expect(resolveUser("1000", PASSWD, GROUP)).toEqual({ ok: true, user: { uid: 1000, gid: 1000, groups: [1000, 10, 27], name: "app", home: "/home/app" } });
    expect(resolveUser("4242", PASSWD, GROUP)).toEqual({ ok: true, user: { uid: 4242, gid: 4242, groups: [4242], name: null, home: null } });
    expect(resolveUser("4242", null, null)).toEqual({ ok: true, user: { uid: 4242, gid: 4242, groups: [4242], name: null, home: null } });
  });

  test("UID:GID: those ids; groups from the passwd name when the uid has one", () => {
    expect(resolveUser("1000:27", PASSWD, GROUP)).toEqual({ ok: true, user: { uid: 1000, gid: 27, groups: [27, 10], name: "app", home: "/home/app" } });
    expect(resolveUser("7:8", PASSWD, GROUP)).toEqual({ ok: true, user: { uid: 7, gid: 8, groups: [8], name: null, home: null } });
  });

  test("an unknown name, a missing passwd, huge ids and odd shapes are errors naming the user", () => {
    expect(resolveUser("nobody", PASSWD, GROUP)).toEqual({ ok: false, error: 'user "nobody" is not in /etc/passwd' });
    expect(resolveUser("app", null, GROUP)).toEqual({ ok: false, error: 'user "app" is not in /etc/passwd (no such file)' });
    expect(resolveUser("huge", PASSWD, GROUP).ok).toBe(false);
    expect(resolveUser("4294967295", PASSWD, GROUP).ok).toBe(false);
    expect(resolveUser("1:4294967295", PASSWD, GROUP).ok).toBe(false);
    expect(resolveUser("app:1", PASSWD, GROUP).ok).toBe(false);
    expect(resolveUser("1:2:3", PASSWD, GROUP).ok).toBe(false);
  });

  test("property: any passwd/group text resolves or errors, never throws", () => {
    const text = fc.array(fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom("app", "0", "1000", "4294967295", "a,app")), { maxLength: 8 }).map((fields) => fields.join(":")), { maxLength: 8 }).map((lines) => lines.join("\n"));
    fc.assert(
      fc.property(fc.constantFrom("app", "0", "1000", "1000:5"), text, text, (request, passwd, group) => {
        const result = resolveUser(request, passwd, group);
        if (result.ok) expect(result.user.groups[0]).toBe(result.user.gid);
      }),
      FUZZ,
    );
  });
});

const FULL_SPEC = {
  ociVersion: "1.0.2",
  process: {
    terminal: false,
    user: { uid: 1000, gid: 1000, additionalGids: [27, 1000], umask: 18 },
    args: ["/usr/bin/server", "--port", "80"],
    env: ["PATH=/usr/bin:/bin", "EMPTY="],
    cwd: "/srv",
    capabilities: { bounding: ["CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_FUTURE"], effective: ["CAP_KILL"] },
    rlimits: [
      { type: "RLIMIT_NOFILE", soft: 1024, hard: 4096 },
      { type: "RLIMIT_CORE", soft: 0, hard: 18446744073709551615 },
    ],
    noNewPrivileges: true,
    oomScoreAdj: 100,
  },
  root: { path: "rootfs", readonly: true },
  hostname: "box",
  mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
  linux: { resources: { memory: { limit: 134217728, swap: 1 }, pids: { limit: 64 }, cpu: { shares: 2 } }, namespaces: [{ type: "pid" }], seccomp: { defaultAction: "SCMP_ACT_ERRNO" } },
};

describe("OCI runtime spec", () => {
  test("a full file: what burrow applies, argv/env, and the confining fields it does not", () => {
    const result = parseOciSpec(JSON.stringify(FULL_SPEC));
    expect(result).toEqual({
      ok: true,
      spec: {
        request: {
          user: "1000:1000",
          cwd: "/srv",
          hostname: "box",
          rlimits: { nofile: { soft: 1024, hard: 4096 }, core: { soft: 0, hard: "inf" } },
          noNewPrivs: true,
          capsKeep: [5, 10],
          oomScoreAdj: 100,
          memoryMax: 134217728,
          pidsMax: 64,
        },
        additionalGids: [27, 1000],
        argv: ["/usr/bin/server", "--port", "80"],
        env: ["PATH=/usr/bin:/bin", "EMPTY="],
        ignored: ["process.user.umask", "linux.seccomp", "process.capabilities.effective", "process.capabilities.bounding CAP_FUTURE (unknown, dropped)", "linux.resources.memory.swap"],
      },
    });
  });

  test("an empty object (or nulls) asks for nothing", () => {
    const empty = { user: null, cwd: null, hostname: null, rlimits: {}, noNewPrivs: false, capsKeep: null, oomScoreAdj: null, memoryMax: null, pidsMax: null };
    expect(parseOciSpec("{}")).toEqual({ ok: true, spec: { request: empty, additionalGids: null, argv: null, env: null, ignored: [] } });
    expect(parseOciSpec('{"process":null,"hostname":"","linux":{"resources":null}}')).toMatchObject({ ok: true, spec: { request: empty } });
  });

  test("limits: -1 is max; memory 0 is unset, pids 0 is max; bounding [] keeps none", () => {
    const spec = (linux: unknown, process: unknown = {}) => parseOciSpec(JSON.stringify({ linux, process }));
    expect(spec({ resources: { memory: { limit: -1 }, pids: { limit: -1 } } })).toMatchObject({ ok: true, spec: { request: { memoryMax: "max", pidsMax: "max" } } });
    expect(spec({ resources: { memory: { limit: 0 }, pids: { limit: 0 } } })).toMatchObject({ ok: true, spec: { request: { memoryMax: null, pidsMax: "max" } } });
    expect(spec({}, { capabilities: { bounding: [] } })).toMatchObject({ ok: true, spec: { request: { capsKeep: [] } } });
  });

  test("wrong types are errors naming the JSON path", () => {
    const error = (value: unknown) => {
      const result = parseOciSpec(JSON.stringify(value));
      return result.ok ? "ok" : result.error;
    };
    expect(error({ process: { rlimits: [{ type: "RLIMIT_NOFILE", soft: 1, hard: 2 }, { type: "RLIMIT_CORE", soft: "0", hard: 0 }] } })).toBe("process.rlimits[1].soft: expected a number");
    expect(error({ process: { rlimits: [{ type: "RLIMIT_NOFILE", soft: 1, hard: 2 }, { type: "RLIMIT_NOFILE", soft: 1, hard: 2 }] } })).toBe("process.rlimits[1].type: RLIMIT_NOFILE given twice");
    expect(error({ process: { rlimits: [{ type: "RLIMIT_WARP", soft: 1, hard: 2 }] } })).toBe("process.rlimits[0].type: unknown rlimit RLIMIT_WARP");
    expect(error({ process: { rlimits: [{ type: "RLIMIT_NOFILE", soft: 3, hard: 2 }] } })).toBe("process.rlimits[0]: soft is above hard");
    expect(error({ process: { rlimits: [{ type: "RLIMIT_NOFILE", soft: 2 ** 60, hard: 2 ** 60 }] } })).toContain("process.rlimits[0].soft: expected a whole number");
    expect(error({ process: { rlimits: [null] } })).toBe("process.rlimits[0]: expected an object");
    expect(error({ process: { rlimits: {} } })).toBe("process.rlimits: expected an array");
    expect(error({ process: { args: ["a", 1] } })).toBe("process.args[1]: expected a string");
    expect(error({ process: { args: [] } })).toBe("process.args: expected at least one string");
    expect(error({ process: { args: ["a\u0000b"] } })).toBe("process.args[0]: expected a string");
    expect(error({ process: { env: ["NOEQUALS", "=x"] } })).toBe('process.env[0]: expected "NAME=value"; process.env[1]: expected "NAME=value"');
    expect(error({ process: { cwd: "srv" } })).toBe("process.cwd: expected an absolute path");
    expect(error({ process: { user: { uid: 1 } } })).toBe("process.user.gid: expected a number");
    expect(error({ process: { user: { uid: -1, gid: 0 } } })).toBe("process.user.uid: expected a whole number from 0 to 4294967294");
    expect(error({ process: { user: { uid: 0, gid: 0, additionalGids: ["wheel"] } } })).toBe("process.user.additionalGids[0]: expected a number");
    expect(error({ process: { noNewPrivileges: "yes" } })).toBe("process.noNewPrivileges: expected true or false");
    expect(error({ process: { oomScoreAdj: 1001 } })).toBe("process.oomScoreAdj: expected a whole number from -1000 to 1000");
    expect(error({ process: { capabilities: { bounding: "CAP_KILL" } } })).toBe("process.capabilities.bounding: expected an array");
    expect(error({ process: [] })).toBe("process: expected an object");
    expect(error({ hostname: "a_b" })).toStartWith("hostname: expected letters");
    expect(error({ linux: { resources: { memory: { limit: 4096 } } } })).toContain("linux.resources.memory.limit: below 1 MiB");
    expect(error({ linux: { resources: { memory: { limit: -2 } } } })).toContain("linux.resources.memory.limit: expected a whole number");
    expect(error({ linux: { resources: { pids: { limit: 1.5 } } } })).toContain("linux.resources.pids.limit: expected a whole number");
    expect(error({ process: { args: [1, 2, 3, 4, 5, 6] } })).toEndWith("; and 2 more");
  });

  test("not JSON, or not an object", () => {
    expect(parseOciSpec("{")).toMatchObject({ ok: false, error: expect.stringMatching(/^not JSON \(/) });
    expect(parseOciSpec("[]")).toEqual({ ok: false, error: "expected a JSON object" });
    expect(parseOciSpec("")).toMatchObject({ ok: false });
    expect(parseOciSpec('{"__proto__":{"process":{"args":["x"]}},"constructor":1}')).toMatchObject({ ok: true, spec: { argv: null } });
  });

  test("property: never throws, for any JSON and for mutations of a real file", () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => void parseOciSpec(JSON.stringify(value))), FUZZ);
    fc.assert(fc.property(fc.string(), (text) => void parseOciSpec(text)), FUZZ);
    const paths = [["process"], ["process", "user"], ["process", "rlimits"], ["process", "capabilities"], ["linux"], ["linux", "resources"], ["hostname"], ["process", "args"]];
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue(), (path, value) => {
        const spec = structuredClone(FULL_SPEC) as Record<string, unknown>;
        let at = spec;
        for (const key of path.slice(0, -1)) at = at[key] as Record<string, unknown>;
        at[path.at(-1)!] = value;
        const result = parseOciSpec(JSON.stringify(spec));
        if (!result.ok) expect(result.error).not.toContain("\n");
      }),
      FUZZ,
    );
  });
});

const files =
  (entries: Record<string, string>): ReadFile =>
  (path) =>
    Object.hasOwn(entries, path) ? entries[path]! : null;

const request = (fields: Partial<WorkloadRequest>): WorkloadRequest => ({ ...defaultWorkload(), ...fields });

describe("resolve", () => {
  test("nothing asked: no words, no cgroup, and no file read", () => {
    const read: string[] = [];
    const plan = resolveWorkload(defaultWorkload(), (path) => {
      read.push(path);
      return null;
    });
    expect(plan).toEqual({ ok: true, words: [], argv: null, env: [], cgroup: null, home: null, ignored: [], summary: "no workload settings" });
    expect(read).toEqual([]);
  });

  test("the command line alone: the words in their stable order, and one summary line", () => {
    const config = parseConfig(
      "burrow.oom-score-adj=-5 burrow.caps=kill,chown burrow.no-new-privs burrow.rlimit.nofile=1024:4096 burrow.rlimit.cpu=10:inf " +
        "burrow.hostname=box burrow.cwd=/srv burrow.user=app burrow.memory-max=64M burrow.pids-max=max",
    );
    const plan = resolveWorkload(config.workload, files({ "/etc/passwd": PASSWD, "/etc/group": GROUP }));
    expect(plan).toEqual({
      ok: true,
      words: ["uid=1000", "gid=1000", "groups=1000,10,27", "cwd=/srv", "hostname=box", "rlimit=0:10:inf", "rlimit=7:1024:4096", "nnp=1", "capkeep=21", "oom=-5"],
      argv: null,
      env: [],
      cgroup: { memoryMax: 64 * 2 ** 20, pidsMax: "max" },
      home: "/home/app",
      ignored: [],
      summary: "user 1000:1000 (app) groups 1000,10,27, cwd /srv, hostname box, rlimit cpu 10:inf nofile 1024:4096, no_new_privs, caps chown,kill, oom_score_adj -5, cgroup memory.max 64M pids.max max",
    });
  });

  test("the word encoding: groups= empty for none, capkeep as a hex mask, rlimits by resource number", () => {
    const words = supervisorWords({ user: { uid: 5, gid: 6, groups: [], name: null, home: null }, cwd: null, hostname: null, rlimits: { rttime: { soft: "inf", hard: "inf" }, as: { soft: 1, hard: 2 } }, noNewPrivs: false, capsKeep: [], oomScoreAdj: 0 });
    expect(words).toEqual(["uid=5", "gid=6", "groups=", "rlimit=9:1:2", "rlimit=15:inf:inf", "capkeep=0", "oom=0"]);
    expect(capabilityMask([0, 1, 40])).toBe("10000000003");
    expect(capabilityMask(CAPABILITIES.map((_, index) => index))).toBe("1ffffffffff");
    expect([formatBytes(64 * 2 ** 20), formatBytes(2 ** 30), formatBytes(1536), formatBytes(1000)]).toEqual(["64M", "1G", "1536", "1000"]);
  });

  test("the OCI file under the command line, field by field", () => {
    const spec = JSON.stringify(FULL_SPEC);
    const read = files({ "/spec.json": spec, "/etc/passwd": PASSWD, "/etc/group": GROUP });
    const fromFile = resolveWorkload(request({ specFile: "/spec.json" }), read);
    expect(fromFile).toMatchObject({
      ok: true,
      words: ["uid=1000", "gid=1000", "groups=1000,27", "cwd=/srv", "hostname=box", "rlimit=4:0:inf", "rlimit=7:1024:4096", "nnp=1", "capkeep=420", "oom=100"],
      argv: ["/usr/bin/server", "--port", "80"],
      env: ["PATH=/usr/bin:/bin", "EMPTY="],
      cgroup: { memoryMax: 134217728, pidsMax: 64 },
      home: "/home/app",
    });
    const over = resolveWorkload(request({ specFile: "/spec.json", user: "root", cwd: "/", rlimits: { nofile: { soft: 8, hard: 8 } }, capsKeep: [], pidsMax: 5, noNewPrivs: false }), read);
    expect(over).toMatchObject({
      ok: true,
      // The file's additionalGids went with the file's user; its no_new_privs stays (the stricter wins).
      words: ["uid=0", "gid=0", "groups=0,10", "cwd=/", "hostname=box", "rlimit=4:0:inf", "rlimit=7:8:8", "nnp=1", "capkeep=0", "oom=100"],
      cgroup: { memoryMax: 134217728, pidsMax: 5 },
    });
    if (over.ok) expect(over.ignored).toContain("linux.seccomp");
  });

  test("fails closed: an invalid key, an unknown user, a missing or bad file, a readFile that throws", () => {
    const refuse = (plan: ReturnType<typeof resolveWorkload>) => (plan.ok ? "ok" : plan.reason);
    expect(refuse(resolveWorkload(parseConfig("burrow.user=app burrow.rlimit.bogus=1").workload, files({})))).toStartWith("workload spec refused: burrow.rlimit.bogus=1: unknown rlimit bogus");
    expect(refuse(resolveWorkload(request({ user: "ghost" }), files({ "/etc/passwd": PASSWD })))).toBe('user "ghost" is not in /etc/passwd');
    expect(refuse(resolveWorkload(request({ user: "app" }), files({})))).toBe('user "app" is not in /etc/passwd (no such file)');
    expect(refuse(resolveWorkload(request({ specFile: "/nope.json" }), files({})))).toBe("burrow.spec /nope.json: cannot read it");
    expect(refuse(resolveWorkload(request({ specFile: "/s.json" }), files({ "/s.json": '{"process":{"rlimits":[{"type":"RLIMIT_NOFILE","soft":"x","hard":1}]}}' })))).toBe("burrow.spec /s.json: process.rlimits[0].soft: expected a number");
    expect(refuse(resolveWorkload(request({ specFile: "/s.json", user: "0" }), files({ "/s.json": '{"process":{"user":{"uid":"x","gid":0}}}' })))).toContain("process.user.uid");
    const throwing: ReadFile = () => {
      throw new Error("EIO");
    };
    expect(refuse(resolveWorkload(request({ user: "app" }), throwing))).toBe("workload spec: cannot resolve (EIO)");
    for (const plan of [resolveWorkload(request({ user: "ghost" }), files({}))]) expect(plan.ok ? "" : plan.reason).not.toContain("\n");
  });

  test("a numeric user needs no passwd file", () => {
    expect(resolveWorkload(request({ user: "1234" }), files({}))).toMatchObject({ ok: true, words: ["uid=1234", "gid=1234", "groups=1234"], summary: "user 1234:1234 groups 1234" });
  });
});

describe("workload cgroup", () => {
  let root = "";
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  /** A fake cgroupfs root: its controllers, and a child with the knobs the kernel would create. */
  function fakeRoot(controllers: string, knobs: string[]): string {
    root = mkdtempSync(join(tmpdir(), "burrow-cgroup-"));
    writeFileSync(join(root, "cgroup.controllers"), `${controllers}\n`);
    writeFileSync(join(root, "cgroup.subtree_control"), "");
    mkdirSync(join(root, "burrow-workload"));
    for (const knob of knobs) writeFileSync(join(root, "burrow-workload", knob), "");
    return root;
  }
  const read = (name: string) => readFileSync(join(root, name), "utf8");

  test("enables the controllers, writes the limits, oom.group and no swap under a byte limit", () => {
    fakeRoot("cpuset cpu io memory hugetlb pids rdma misc", ["memory.max", "memory.swap.max", "memory.oom.group", "pids.max"]);
    expect(prepareWorkloadCgroup({ memoryMax: 64 * 2 ** 20, pidsMax: 100 }, { root })).toBe(join(root, "burrow-workload"));
    expect(read("cgroup.subtree_control")).toBe("+memory +pids");
    expect(read("burrow-workload/memory.max")).toBe(String(64 * 2 ** 20));
    expect(read("burrow-workload/memory.swap.max")).toBe("0");
    expect(read("burrow-workload/memory.oom.group")).toBe("1");
    expect(read("burrow-workload/pids.max")).toBe("100");
  });

  test("only the controllers asked for; max leaves swap alone; no swap accounting is no error", () => {
    fakeRoot("memory pids", ["memory.max", "memory.swap.max", "memory.oom.group", "pids.max"]);
    prepareWorkloadCgroup({ memoryMax: null, pidsMax: "max" }, { root, name: "burrow-workload" });
    expect(read("cgroup.subtree_control")).toBe("+pids");
    expect(read("burrow-workload/pids.max")).toBe("max");
    expect(read("burrow-workload/memory.max")).toBe("");
    rmSync(root, { recursive: true });
    fakeRoot("memory", ["memory.max", "memory.swap.max", "memory.oom.group"]);
    prepareWorkloadCgroup({ memoryMax: "max", pidsMax: null }, { root });
    expect(read("burrow-workload/memory.max")).toBe("max");
    expect(read("burrow-workload/memory.swap.max")).toBe("");
    rmSync(root, { recursive: true });
    fakeRoot("memory", ["memory.max", "memory.oom.group"]);
    prepareWorkloadCgroup({ memoryMax: 2 ** 20, pidsMax: null }, { root });
    expect(read("burrow-workload/memory.max")).toBe("1048576");
  });

  test("fails closed with one line naming the file and the errno", () => {
    fakeRoot("memory", ["memory.max", "memory.oom.group"]);
    expect(() => prepareWorkloadCgroup({ memoryMax: null, pidsMax: 10 }, { root })).toThrow(`cgroup: controller pids not in ${join(root, "cgroup.controllers")}`);
    rmSync(root, { recursive: true });
    fakeRoot("memory pids", ["memory.max", "memory.oom.group"]);
    expect(() => prepareWorkloadCgroup({ memoryMax: 2 ** 30, pidsMax: 10 }, { root })).toThrow(`cgroup: cannot write "10" to ${join(root, "burrow-workload", "pids.max")}: ENOENT`);
    expect(() => prepareWorkloadCgroup({ memoryMax: 2 ** 30, pidsMax: null }, { root: join(root, "absent") })).toThrow(`cgroup: cannot read ${join(root, "absent", "cgroup.controllers")}: ENOENT`);
    expect(() => prepareWorkloadCgroup({ memoryMax: 2 ** 30, pidsMax: null }, { root, name: "missing/child" })).toThrow(`cgroup: cannot create ${join(root, "missing", "child")}: ENOENT`);
  });
});
