// The supervisor's view of every constant the host (TypeScript) and the guest's supervisor (C)
// must agree on, generated at build time into wire.h beside the supervisor's sources. Each value
// keeps its one home in TypeScript; this file only spells them in C.
import { RUNTIME_ENV_PREFIXES } from "../config/environment";
import { EXIT_STATUS_MARKER } from "../exit-marker";
import { MAX_ARGS, MAX_ENTROPY_BYTES, MAX_ENV, MAX_SUPERVISOR_RESUME_BYTES, MIN_ENTROPY_BYTES, RESERVED_ENV, INSTANCE_MAX_CHARS } from "../snapshot/protocol";
import { TEARDOWN_BUDGET_MS } from "../stop-port";
import * as wire from "./wire";

const cString = (value: string) => JSON.stringify(value);

function defines(prefix: string, table: Record<string, number>): string[] {
  return Object.entries(table).map(([name, value]) => `#define ${prefix}${name} ${value}`);
}

function stringList(name: string, values: readonly string[]): string[] {
  return [`#define ${name} { ${[...values.map(cString), "0"].join(", ")} }`];
}

/** The early-mounts library's one shared list (image/early-mounts.c): the variables PID 1 re-executes itself without. */
export function runtimeEnvHeader(): string {
  return [
    "/* Generated from src/config/environment.ts (src/control/c-header.ts): do not edit. */",
    ...stringList("RUNTIME_ENV_PREFIXES", RUNTIME_ENV_PREFIXES),
    "",
  ].join("\n");
}

export function supervisorWireHeader(): string {
  const lines = [
    "/* Generated from src/control/wire.ts and the TypeScript homes named below (src/control/c-header.ts): do not edit. */",
    "#ifndef BURROW_WIRE_H",
    "#define BURROW_WIRE_H",
    "",
    "/* src/control/wire.ts: the control channel */",
    `#define CONTROL_PORT_NAME ${cString(wire.CONTROL_PORT)}`,
    `#define FRAME_MAGIC 0x${wire.FRAME_MAGIC.toString(16)}`,
    `#define PROTOCOL_VERSION ${wire.PROTOCOL_VERSION}`,
    `#define HEADER_BYTES ${wire.HEADER_BYTES}`,
    `#define MAX_BODY_BYTES ${wire.MAX_BODY_BYTES}`,
    `#define DATA_CHUNK_BYTES ${wire.DATA_CHUNK_BYTES}`,
    `#define OUTPUT_WINDOW_BYTES ${wire.OUTPUT_WINDOW_BYTES}`,
    `#define INPUT_WINDOW_BYTES ${wire.INPUT_WINDOW_BYTES}`,
    `#define PUT_WINDOW_BYTES ${wire.PUT_WINDOW_BYTES}`,
    `#define OUTPUT_PIPE_BYTES ${wire.OUTPUT_PIPE_BYTES}`,
    `#define MAX_SESSIONS ${wire.MAX_SESSIONS}`,
    `#define MAX_EXEC_ARGS ${wire.MAX_EXEC_ARGS}`,
    `#define MAX_EXEC_ENV ${wire.MAX_EXEC_ENV}`,
    `#define MAX_PATH_BYTES ${wire.MAX_PATH_BYTES}`,
    `#define FLAG_EOF ${wire.FLAG_EOF}`,
    ...defines("FT_", wire.FrameType),
    ...defines("EC_", wire.ErrorCode),
    ...defines("EF_", wire.ExecField),
    ...defines("STEP_", wire.StartStep),
    "",
    "/* src/snapshot/protocol.ts: the resume message */",
    `#define MIN_ENTROPY_BYTES ${MIN_ENTROPY_BYTES}`,
    `#define MAX_ENTROPY_BYTES ${MAX_ENTROPY_BYTES}`,
    `#define RESUME_MAX_ARGS ${MAX_ARGS}`,
    `#define RESUME_MAX_ENV ${MAX_ENV}`,
    `#define RESUME_MAX_BYTES ${MAX_SUPERVISOR_RESUME_BYTES}`,
    `#define INSTANCE_MAX_CHARS ${INSTANCE_MAX_CHARS}`,
    ...stringList("RESERVED_ENV_NAMES", [...RESERVED_ENV]),
    "",
    "/* src/config/environment.ts: variables that steer the runtime or the loader */",
    ...stringList("RUNTIME_ENV_PREFIXES", RUNTIME_ENV_PREFIXES),
    "",
    "/* src/exit-marker.ts: the console line burrow run trusts */",
    `#define EXIT_STATUS_MARKER ${cString(EXIT_STATUS_MARKER)}`,
    "",
    "/* src/stop-port.ts: the teardown's bound */",
    `#define TEARDOWN_BUDGET_MS ${TEARDOWN_BUDGET_MS}`,
    "",
    "#endif",
    "",
  ];
  return lines.join("\n");
}
