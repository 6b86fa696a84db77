// burrow-oci's command line against the lines the engines send (captured from Podman 4.3.1/conmon
// 2.1.6, containerd 1.6.20's runc shim v2 and Docker 20.10.24; /work/shared/reference/oci-runtimes.md):
// each verb's options in both spellings, booleans, what is ignored and what is refused in one line.
import { describe, expect, test } from "bun:test";
import { checkContainerId, DEFAULT_ROOT, type GlobalOptions, parseCommandLine, singleId, UsageError, type VerbLine } from "../../src/oci/command-line";

/** A command line as the engines' logs show it: words separated by single spaces. */
const words = (line: string): string[] => line.split(" ").filter((word) => word !== "");

/** The verb part in plain values, for toEqual. */
function verbOf(line: string) {
  const parsed = parseCommandLine(words(line));
  const command = parsed.command;
  if (command === null) throw new Error(`no verb in ${line}`);
  return {
    globals: parsed.globals,
    verb: command.verb,
    flags: [...command.flags].sort(),
    values: Object.fromEntries(command.values),
    lists: Object.fromEntries(command.lists),
    positionals: command.positionals,
  };
}

/** The one line a refused command line fails with. */
function refusal(line: string | string[]): string {
  try {
    parseCommandLine(typeof line === "string" ? words(line) : line);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    const message = (error as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error(`accepted ${JSON.stringify(line)}`);
}

const PODMAN_ID = "4b1e0a7c9f3d2e8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a";
const PODMAN_USERDATA = `/var/lib/containers/storage/overlay-containers/${PODMAN_ID}/userdata`;
const TASK_ID = "redis-1";
const TASK_DIR = `/run/containerd/io.containerd.runtime.v2.task/default/${TASK_ID}`;
const SHIM_GLOBALS = `--root /run/containerd/runc/default --log ${TASK_DIR}/log.json --log-format json`;
const DOCKER_ID = "9d2f6c3e1b0a";
const DOCKER_DIR = `/run/containerd/io.containerd.runtime.v2.task/moby/${DOCKER_ID}`;
const DOCKER_GLOBALS = `--root /run/docker/runtime-runc/moby --log ${DOCKER_DIR}/log.json --log-format json`;

const noGlobals: GlobalOptions = { root: DEFAULT_ROOT, log: null, logFormat: "text", debug: false, systemdCgroup: false, ignored: [] };

describe("Podman 4.3 / conmon", () => {
  test("create with and without a console socket", () => {
    expect(verbOf(`create --bundle ${PODMAN_USERDATA} --pid-file ${PODMAN_USERDATA}/pidfile ${PODMAN_ID}`)).toEqual({
      globals: noGlobals,
      verb: "create",
      flags: [],
      values: { bundle: PODMAN_USERDATA, "pid-file": `${PODMAN_USERDATA}/pidfile` },
      lists: {},
      positionals: [PODMAN_ID],
    });
    expect(verbOf(`create --bundle ${PODMAN_USERDATA} --pid-file ${PODMAN_USERDATA}/pidfile --console-socket /tmp/conmon-term.Q5W8K1 ${PODMAN_ID}`).values).toEqual({
      bundle: PODMAN_USERDATA,
      "pid-file": `${PODMAN_USERDATA}/pidfile`,
      "console-socket": "/tmp/conmon-term.Q5W8K1",
    });
  });

  test("a runtime named like runc also gets --log-format=json --log FILE first", () => {
    const line = verbOf(`--log-format=json --log ${PODMAN_USERDATA}/oci-log create --bundle ${PODMAN_USERDATA} --pid-file ${PODMAN_USERDATA}/pidfile ${PODMAN_ID}`);
    expect(line.globals).toEqual({ ...noGlobals, log: `${PODMAN_USERDATA}/oci-log`, logFormat: "json" });
    expect(line.verb).toBe("create");
    expect(line.positionals).toEqual([PODMAN_ID]);
  });

  test("start, state, pause, resume: the id alone", () => {
    for (const verb of ["start", "state", "pause", "resume"] as const) {
      expect(verbOf(`${verb} ${PODMAN_ID}`)).toEqual({ globals: noGlobals, verb, flags: [], values: {}, lists: {}, positionals: [PODMAN_ID] });
    }
  });

  test("exec, detached, with and without a terminal", () => {
    const exec = `exec --pid-file ${PODMAN_USERDATA}/exec_pid_AbC --process /tmp/exec-process-123 --detach`;
    expect(verbOf(`${exec} ${PODMAN_ID}`)).toMatchObject({
      verb: "exec",
      flags: ["detach"],
      values: { "pid-file": `${PODMAN_USERDATA}/exec_pid_AbC`, process: "/tmp/exec-process-123" },
      positionals: [PODMAN_ID],
    });
    expect(verbOf(`${exec} --tty --console-socket /tmp/conmon-term.ZZ9 ${PODMAN_ID}`)).toMatchObject({
      flags: ["detach", "tty"],
      values: { "pid-file": `${PODMAN_USERDATA}/exec_pid_AbC`, process: "/tmp/exec-process-123", "console-socket": "/tmp/conmon-term.ZZ9" },
      positionals: [PODMAN_ID],
    });
  });

  test("kill ID SIGNAL: the signal is the second positional", () => {
    for (const signal of ["15", "9", "10"]) {
      const line = parseCommandLine(words(`kill ${PODMAN_ID} ${signal}`)).command!;
      expect(line.positionals).toEqual([PODMAN_ID, signal]);
      expect(singleId(line, 1)).toBe(PODMAN_ID);
    }
  });

  test("delete --force", () => {
    expect(verbOf(`delete --force ${PODMAN_ID}`)).toMatchObject({ verb: "delete", flags: ["force"], positionals: [PODMAN_ID] });
  });
});

describe("containerd 1.6 runc shim v2", () => {
  const shim = (rest: string) => verbOf(`${SHIM_GLOBALS} ${rest}`);
  const globals: GlobalOptions = { root: "/run/containerd/runc/default", log: `${TASK_DIR}/log.json`, logFormat: "json", debug: false, systemdCgroup: false, ignored: [] };

  test("create: the globals before the verb", () => {
    expect(shim(`create --bundle ${TASK_DIR} --pid-file ${TASK_DIR}/init.pid ${TASK_ID}`)).toEqual({
      globals,
      verb: "create",
      flags: [],
      values: { bundle: TASK_DIR, "pid-file": `${TASK_DIR}/init.pid` },
      lists: {},
      positionals: [TASK_ID],
    });
    expect(shim(`create --bundle ${TASK_DIR} --pid-file ${TASK_DIR}/init.pid --console-socket /tmp/pty123456789/pty.sock ${TASK_ID}`).values["console-socket"]).toBe("/tmp/pty123456789/pty.sock");
  });

  test("start, exec, kill, pause, resume, ps, delete", () => {
    expect(shim(`start ${TASK_ID}`)).toMatchObject({ globals, verb: "start", positionals: [TASK_ID] });
    expect(shim(`exec --process /tmp/runc-process987654321 --detach --pid-file ${TASK_DIR}/exec1.pid ${TASK_ID}`)).toMatchObject({
      globals,
      verb: "exec",
      flags: ["detach"],
      values: { process: "/tmp/runc-process987654321", "pid-file": `${TASK_DIR}/exec1.pid` },
      positionals: [TASK_ID],
    });
    expect(shim(`exec --process /tmp/runc-process1 --console-socket /tmp/pty1/pty.sock --detach --pid-file ${TASK_DIR}/exec2.pid ${TASK_ID}`).values).toEqual({
      process: "/tmp/runc-process1",
      "console-socket": "/tmp/pty1/pty.sock",
      "pid-file": `${TASK_DIR}/exec2.pid`,
    });
    expect(shim(`kill ${TASK_ID} 9`)).toMatchObject({ verb: "kill", positionals: [TASK_ID, "9"] });
    expect(shim(`pause ${TASK_ID}`)).toMatchObject({ verb: "pause", positionals: [TASK_ID] });
    expect(shim(`resume ${TASK_ID}`)).toMatchObject({ verb: "resume", positionals: [TASK_ID] });
    expect(shim(`ps --format json ${TASK_ID}`)).toMatchObject({ verb: "ps", values: { format: "json" }, positionals: [TASK_ID] });
    expect(shim(`delete ${TASK_ID}`)).toMatchObject({ verb: "delete", flags: [], positionals: [TASK_ID] });
    expect(shim(`delete --force ${TASK_ID}`)).toMatchObject({ verb: "delete", flags: ["force"], positionals: [TASK_ID] });
  });
});

describe("Docker 20.10", () => {
  test("the shim's lines under Docker's --root, and features", () => {
    const line = verbOf(`${DOCKER_GLOBALS} create --bundle ${DOCKER_DIR} --pid-file ${DOCKER_DIR}/init.pid ${DOCKER_ID}`);
    expect(line.globals).toEqual({ root: "/run/docker/runtime-runc/moby", log: `${DOCKER_DIR}/log.json`, logFormat: "json", debug: false, systemdCgroup: false, ignored: [] });
    expect(line.positionals).toEqual([DOCKER_ID]);
    expect(verbOf(`${DOCKER_GLOBALS} delete --force ${DOCKER_ID}`)).toMatchObject({ verb: "delete", flags: ["force"] });
    expect(verbOf("features")).toEqual({ globals: noGlobals, verb: "features", flags: [], values: {}, lists: {}, positionals: [] });
  });
});

describe("option spellings", () => {
  test("--opt=value and --opt value, single-dash long names, short names", () => {
    const spaced = verbOf("--root /r/oci --log /r/log create --bundle /b --pid-file /p c1");
    const joined = verbOf("--root=/r/oci --log=/r/log create --bundle=/b --pid-file=/p c1");
    const single = verbOf("-root /r/oci -log=/r/log create -bundle /b -pid-file=/p c1");
    expect(joined).toEqual(spaced);
    expect(single).toEqual(spaced);
    expect(spaced.globals.root).toBe("/r/oci");
    expect(verbOf("create -b /b c1").values).toEqual({ bundle: "/b" });
    expect(verbOf("exec -p /proc.json -d -t c1")).toMatchObject({ flags: ["detach", "tty"], values: { process: "/proc.json" } });
  });

  test("a value after = keeps its own = and may be empty", () => {
    expect(verbOf("exec --env=A=B=C -e D= --env E=1 c1").lists).toEqual({ env: ["A=B=C", "D=", "E=1"] });
    expect(verbOf("create --pid-file= c1").values).toEqual({ "pid-file": "" });
  });

  test("a value that looks like an option is still the option's value", () => {
    expect(verbOf("create --bundle --weird c1").values).toEqual({ bundle: "--weird" });
  });

  test("booleans: bare is true, =true/=1/=t/=yes set it, =false/=0/=f/=no clear it, the last one wins", () => {
    for (const on of ["", "=true", "=1", "=t", "=yes"]) expect(verbOf(`delete --force${on} c1`).flags).toEqual(["force"]);
    for (const off of ["=false", "=0", "=f", "=no"]) expect(verbOf(`delete --force${off} c1`).flags).toEqual([]);
    expect(verbOf("delete --force --force=false c1").flags).toEqual([]);
    expect(verbOf("delete --force=false -f c1").flags).toEqual(["force"]);
    expect(verbOf("--debug=false state c1").globals.debug).toBe(false);
    expect(verbOf("--debug state c1").globals.debug).toBe(true);
  });

  test("a boolean takes no next word: `--force false` makes false a positional", () => {
    const line = parseCommandLine(words("delete --force false c1")).command!;
    expect([...line.flags]).toEqual(["force"]);
    expect(line.positionals).toEqual(["false", "c1"]);
    expect(() => singleId(line)).toThrow("delete: unexpected arguments after the container id: c1");
  });

  test("a boolean given something other than true or false is refused", () => {
    expect(refusal("delete --force=maybe c1")).toBe('delete: --force takes true or false, got "maybe"');
  });

  test("-- ends the options", () => {
    expect(verbOf("exec --detach -- c1 --tty").positionals).toEqual(["c1", "--tty"]);
    expect(verbOf("exec --detach -- c1 --tty").flags).toEqual(["detach"]);
  });

  test("an option with no value at the end is refused", () => {
    expect(refusal("create --bundle")).toBe("create: --bundle needs a value");
    expect(refusal("--root")).toBe("burrow-oci: --root needs a value");
  });
});

describe("what is ignored, what is refused", () => {
  test("options with no effect on a VM are accepted and listed in globals.ignored", () => {
    const line = verbOf("--criu /usr/sbin/criu create --no-pivot --no-new-keyring --bundle /b c1");
    expect(line.globals.ignored).toEqual(["--criu", "--no-pivot", "--no-new-keyring"]);
    expect(line.flags).toEqual(["no-new-keyring", "no-pivot"]);
    expect(line.values).toEqual({ bundle: "/b" });
    expect(verbOf("exec --cap CAP_NET_ADMIN -c CAP_SYS_ADMIN --apparmor unconfined --process-label x -g 10 --cgroup /c c1").globals.ignored).toEqual([
      "--cap",
      "--cap",
      "--apparmor",
      "--process-label",
      "--additional-gids",
      "--cgroup",
    ]);
  });

  test("an ignored boolean turned off is not reported", () => {
    expect(verbOf("create --no-pivot=false --no-new-keyring=false c1").globals.ignored).toEqual([]);
  });

  test("--systemd-cgroup: cgroupsPath read as systemd's slice:prefix:name, not ignored; =false turns it off", () => {
    expect(verbOf("--systemd-cgroup create --bundle /b c1").globals).toMatchObject({ systemdCgroup: true, ignored: [] });
    expect(verbOf("--systemd-cgroup=false create c1").globals.systemdCgroup).toBe(false);
    expect(verbOf("create c1").globals.systemdCgroup).toBe(false);
  });

  test("unknown options are refused in one line naming the option and where", () => {
    expect(refusal("--bogus state c1")).toBe("burrow-oci: unknown option --bogus");
    expect(refusal("create --bundle /b --bogus=1 c1")).toBe("create: unknown option --bogus=1");
    // An option of another verb is unknown here.
    expect(refusal("start --force c1")).toBe("start: unknown option --force");
    expect(refusal("state --bundle /b c1")).toBe("state: unknown option --bundle");
    // A verb's option before the verb is not a global.
    expect(refusal("--bundle /b create c1")).toBe("burrow-oci: unknown option --bundle");
    expect(refusal(["create", `--${"x".repeat(200)}`, "c1"])).toBe(`create: unknown option --${"x".repeat(58)}`);
  });

  test("an unknown verb is refused, listing the commands", () => {
    expect(refusal("checkpoint c1")).toBe('unknown command "checkpoint"; commands: create, start, state, kill, delete, exec, pause, resume, ps, features');
  });

  test("--rootless: false and auto are accepted, anything else refused", () => {
    expect(verbOf("--rootless false state c1").globals.root).toBe(DEFAULT_ROOT);
    expect(verbOf("--rootless=auto state c1").verb).toBe("state");
    expect(refusal("--rootless true state c1")).toBe("--rootless true: not supported (use false or auto)");
    expect(refusal("--rootless=1 state c1")).toBe("--rootless 1: not supported (use false or auto)");
  });

  test("--log-format: text or json", () => {
    expect(verbOf("--log-format text state c1").globals.logFormat).toBe("text");
    expect(refusal("--log-format xml state c1")).toBe('--log-format: expected text or json, got "xml"');
  });

  test("the internal verbs parse, with their own options only", () => {
    expect(verbOf("--root /r holder c1")).toMatchObject({ verb: "holder", positionals: ["c1"] });
    expect(verbOf("exec-holder --process /p.json --tty c1")).toMatchObject({ verb: "exec-holder", flags: ["tty"], values: { process: "/p.json" } });
    expect(refusal("holder --bundle /b c1")).toBe("holder: unknown option --bundle");
  });
});

describe("--version and --help", () => {
  test("--version and -v alone: no verb", () => {
    for (const flag of ["--version", "-v"]) {
      expect(parseCommandLine([flag])).toEqual({ globals: noGlobals, command: null, version: true, help: false });
    }
    expect(parseCommandLine(["--debug", "--version"])).toMatchObject({ command: null, version: true, globals: { debug: true } });
  });

  test("--help and -h; an empty line is neither", () => {
    expect(parseCommandLine(["--help"])).toMatchObject({ command: null, version: false, help: true });
    expect(parseCommandLine(["-h"])).toMatchObject({ command: null, help: true });
    expect(parseCommandLine([])).toEqual({ globals: noGlobals, command: null, version: false, help: false });
  });

  test("words after the verb are the verb's: -v there is not --version", () => {
    expect(refusal("state -v c1")).toBe("state: unknown option -v");
  });
});

describe("container ids", () => {
  test("1 to 128 of A-Z a-z 0-9 _ + . -", () => {
    for (const id of [PODMAN_ID, TASK_ID, "a", "A_b+c.d-e", "...", "x".repeat(128)]) expect(checkContainerId(id)).toBe(id);
  });

  test("missing, empty, a path, dot names, too long, non-ASCII: refused", () => {
    expect(() => checkContainerId(undefined)).toThrow("a container id is required");
    expect(() => checkContainerId("")).toThrow("a container id is required");
    for (const id of ["a/b", "/abs", ".", "..", "x".repeat(129), "a b", "é", "a\n", "a:b"]) {
      expect(() => checkContainerId(id)).toThrow(`invalid container id ${JSON.stringify(id.slice(0, 80))} (1 to 128 of A-Z a-z 0-9 _ + . -)`);
    }
  });

  test("singleId: the one positional, checked; extras refused, not dropped", () => {
    const line = (positionals: string[]): VerbLine => ({ verb: "state", flags: new Set(), values: new Map(), lists: new Map(), positionals });
    expect(singleId(line(["c1"]))).toBe("c1");
    expect(() => singleId(line([]))).toThrow("a container id is required");
    expect(() => singleId(line(["c1", "c2", "c3"]))).toThrow("state: unexpected arguments after the container id: c2 c3");
    expect(singleId(line(["c1", "KILL"]), 1)).toBe("c1");
    expect(() => singleId(line(["c1", "KILL", "x"]), 1)).toThrow("state: unexpected arguments after the container id: x");
    expect(() => singleId(line(["../x"]))).toThrow(UsageError);
  });
});
