// The hand-off to the resident supervisor (image/supervisor/): burrow has set the machine up;
// the supervisor, exec'd as PID 1, does the resident duty (reaping, control signals, the orderly
// stop, the exit status) for a few pages. This module spells its options and execs it; both
// modes use it (microvm: supervise mode and a workload spec before the exec; paravisor: always).
import type { Config, LogLevelName } from "../config/config";
import { supervisorLogSettings } from "../log";
import * as sys from "../sys";
import { closeOnExecAllBut, prepareForExec } from "./ending";
import { SUPERVISOR_PATH } from "./paths";

/** burrow's log levels as kmsg severities (src/log.ts maps them the same way). */
const SEVERITY: Record<LogLevelName, number> = { error: 3, warn: 4, info: 5, debug: 6, trace: 7 };

export type SupervisorRole =
  /**
   * Start `argv` under the spec and supervise it (microvm supervise mode), serving the host's
   * control channel on controlPort (null: the host added none). warm: the workload may ask for a
   * warm snapshot (burrow.snapshot=warm); point: wait at the snapshot point on the control port
   * before anything starts (burrow.snapshot=1).
   */
  | { kind: "spawn"; argv: string[]; controlPort: string | null; warm?: boolean; point?: boolean }
  /**
   * Start nothing: serve the control channel on controlPort and supervise the workload the host
   * starts with an EXEC carrying the workload field (burrow.start=host). No "--", no argv.
   * template: a container template's bundle share tag — wait at the snapshot point first, then
   * attach the container's root from it after the resume (burrow.template=1).
   */
  | { kind: "host"; controlPort: string; template?: string }
  /** Supervise a child burrow started (the paravisor worker). */
  | { kind: "adopt"; pid: number }
  /** Apply the spec and exec `argv` as PID 1 (microvm exec mode with a workload spec, or after the snapshot point). */
  | { kind: "exec"; argv: string[]; pointPort?: string | null };

/** The supervisor's argv: its options, the spec words, then "--" and the workload's argv (none when the host starts it). */
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
  if (role.kind === "host") return [...words, `control=${role.controlPort}`, "start=host", ...(role.template ? ["point=1", `template=${role.template}`] : []), ...specWords];
  if (role.kind === "exec") return [...words, "exec=1", ...(role.pointPort ? [`control=${role.pointPort}`, "point=1"] : []), ...specWords, "--", ...role.argv];
  const channel = role.controlPort ? [`control=${role.controlPort}`, ...(role.warm ? ["warm=1"] : []), ...(role.point ? ["point=1"] : [])] : [];
  return [...words, ...channel, ...specWords, "--", ...role.argv];
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
