// The hand-off to the resident supervisor (image/supervisor.c): burrow has set the machine up;
// the supervisor, exec'd as PID 1, does the resident duty (reaping, control signals, the orderly
// stop, the exit status) for a few pages. This module spells its options and execs it; both
// modes use it (microvm: supervise mode and a workload spec before the exec; paravisor: always).
import type { Config, LogLevelName } from "../config/config";
import { supervisorLogSettings } from "../log";
import * as sys from "../sys";
import { STOP_PORT } from "../stop-port";
import { closeOnExecAllBut, prepareForExec } from "./ending";
import { SUPERVISOR_PATH } from "./paths";

/** burrow's log levels as kmsg severities (src/log.ts maps them the same way). */
const SEVERITY: Record<LogLevelName, number> = { error: 3, warn: 4, info: 5, debug: 6, trace: 7 };

/** Where the host's stop port appears once the ports are linked (src/stop-port.ts). */
export const STOP_PORT_PATH = `/dev/virtio-ports/${STOP_PORT}`;

export type SupervisorRole =
  /**
   * Start `argv` under the spec and supervise it (microvm supervise mode). warmPort: the control
   * port a warm snapshot is announced on (burrow.snapshot=warm); pointPort: the one the snapshot
   * point waits on before anything starts (burrow.snapshot=1); null or absent: none.
   */
  | { kind: "spawn"; argv: string[]; stopPort: boolean; warmPort?: string | null; pointPort?: string | null }
  /** Supervise a child burrow started (the paravisor worker). */
  | { kind: "adopt"; pid: number }
  /** Apply the spec and exec `argv` as PID 1 (microvm exec mode with a workload spec, or after the snapshot point). */
  | { kind: "exec"; argv: string[]; pointPort?: string | null };

/** The supervisor's argv: its options, the spec words, then "--" and the workload's argv. */
export function supervisorArgv(config: Config, role: SupervisorRole, specWords: readonly string[] = [], freezeFds: readonly number[] = []): string[] {
  const { facility, consoleLevel } = supervisorLogSettings();
  const words = [
    SUPERVISOR_PATH,
    `onexit=${config.onexit}`,
    `onfail=${config.onfail}`,
    `ctrl-alt-del=${config.ctrlAltDel}`,
    `stop-timeout=${config.stopTimeoutMs}`,
    `log=${SEVERITY[config.log]}`,
    `facility=${facility}`,
    `console-level=${consoleLevel}`,
    ...(config.runId ? [`runid=${config.runId}`] : []),
    ...freezeFds.map((fd) => `freeze-fd=${fd}`),
  ];
  if (role.kind === "adopt") return [...words, `adopt=${role.pid}`];
  const point = role.pointPort ? [`point=${role.pointPort}`] : [];
  if (role.kind === "exec") return [...words, "exec=1", ...point, ...specWords, "--", ...role.argv];
  return [...words, ...(role.stopPort ? [`stop-port=${STOP_PORT_PATH}`] : []), ...(role.warmPort ? [`warm=${role.warmPort}`] : []), ...point, ...specWords, "--", ...role.argv];
}

/** The supervisor's file, open before the root switch takes it out of reach (close-on-exec: fexecve does not need it kept). */
export function openSupervisor(): number {
  return sys.open(SUPERVISOR_PATH, sys.OpenFlags.RDONLY | sys.OpenFlags.CLOEXEC);
}

/**
 * Exec the supervisor from its open file. Only `keepFds` (the teardown's freeze fds) cross over;
 * everything else of burrow's is closed by the exec. Only returns by throwing.
 */
export function execSupervisor(fd: number, argv: string[], env: string[], keepFds: readonly number[] = []): never {
  prepareForExec();
  closeOnExecAllBut(keepFds);
  return sys.fexecve(fd, argv, env);
}
