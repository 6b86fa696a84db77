// The control channel's wire: one virtio-serial port (CONTROL_PORT) between the host and the
// guest's resident supervisor, binary frames, many sessions multiplexed. This file is the one home
// of every number both sides must agree on; the supervisor's C header is generated from it at
// build time (src/control/c-header.ts), never typed twice.
//
// A frame is a fixed 12-byte header, little-endian, then `length` bytes of body:
//   u16 magic (FRAME_MAGIC)  u8 type  u8 flags  u32 session  u32 length
// The routing fields (type, session, length) sit in the header, so a relay forwards a frame
// without reading its body. A length above MAX_BODY_BYTES, a wrong magic or an unknown type is
// answered with an ERROR frame, never buffered: each side holds at most one frame at a time.
//
// Sessions: the host picks a session id (1 … 2^32-1) for each request and every frame of that
// exchange carries it; session 0 is the channel's own (HELLO, snapshot READY/RESUME, errors that
// belong to no session). HELLO starts a connection: the guest ends every session it still has (a
// restored clone never continues a session from before its save, nor one of a host that went).
//
// Flow control, so a writer without end blocks on its pipe instead of filling memory on either side:
//   guest → host: a session's STDOUT/STDERR/FILE_DATA bytes only within the credit the host gave
//     (OUTPUT_WINDOW_BYTES at the start, more with CREDIT frames as it consumes them).
//   host → guest: STDIN bytes only within INPUT_WINDOW_BYTES (PUT_DATA: PUT_WINDOW_BYTES) the guest
//     has not acknowledged with INPUT_CREDIT; more is a protocol error that ends the session.

/** The virtio-serial port's name (/dev/virtio-ports/burrow.control in the guest). */
export const CONTROL_PORT = "burrow.control";

export const FRAME_MAGIC = 0xb70e;
/** The protocol version HELLO carries; a guest speaking another refuses the connection. */
export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 12;
/** The largest body: a data chunk or a resume message (MAX_RESUME_BYTES) fits. */
export const MAX_BODY_BYTES = 73_728;
/** The most data one STDOUT/STDERR/STDIN/FILE_DATA/PUT_DATA frame carries. */
export const DATA_CHUNK_BYTES = 65_536;
/** Credit a new session starts with in each direction. */
export const OUTPUT_WINDOW_BYTES = 1_048_576;
export const INPUT_WINDOW_BYTES = 65_536;
/**
 * An upload's input window (PUT_DATA), larger than STDIN's: the guest writes each chunk straight to
 * the file and holds none, so several may be on their way and the upload never waits a round trip
 * for INPUT_CREDIT. HELLO_ACK announces it; a guest that does not gets INPUT_WINDOW_BYTES.
 */
export const PUT_WINDOW_BYTES = 262_144;
/** The guest's stdout pipe of an exec'd process: what it may write ahead of the channel (not a wire number, but a bound tests count on). */
export const OUTPUT_PIPE_BYTES = 262_144;
/** Sessions the guest serves at once (execs and file transfers together). */
export const MAX_SESSIONS = 128;
/** An exec request's bounds. */
export const MAX_EXEC_ARGS = 4096;
export const MAX_EXEC_ENV = 1024;
/** The longest guest path a PUT or GET may name (PATH_MAX). */
export const MAX_PATH_BYTES = 4095;

/** Frame types. Host → guest below 0x40, guest → host from 0x40. */
export const FrameType = {
  // host → guest, session 0 or a request's own
  HELLO: 0x01,
  PING: 0x02,
  INFO: 0x03,
  /** The orderly stop (SIGTERM, grace, SIGKILL, teardown, power off). */
  STOP: 0x04,
  /** body: u32 signal, to the workload's process. */
  SIGNAL_WORKLOAD: 0x05,
  /** body: the resume text of src/snapshot/protocol.ts (snapshot point or warm snapshot). */
  RESUME: 0x06,
  /** body: ExecField records (encodeExec). */
  EXEC: 0x10,
  /** body: bytes for the process's stdin; FLAG_EOF closes it (an empty body may carry it). */
  STDIN: 0x11,
  /** body: u16 rows, u16 cols. */
  RESIZE: 0x12,
  /** body: u32 signal, to the session's whole process group. */
  SIGNAL: 0x13,
  /** body: u32 bytes of output credit (for the session's streams together). */
  CREDIT: 0x14,
  /** body: u64 size, u32 mode, the path. Opens the upload; data follows in PUT_DATA. */
  PUT: 0x18,
  /** body: bytes; FLAG_EOF on the last (then the file is synced and renamed into place). */
  PUT_DATA: 0x19,
  /** body: the path. The guest answers FILE_INFO, FILE_DATA within credit, FILE_DONE. */
  GET: 0x1a,
  /** The host gives up a session: an exec's process group is killed, an upload discarded. */
  CLOSE: 0x1f,

  // guest → host
  /** body: u32 version, u32 max sessions, u32 output window, u32 input window, u32 data chunk, u32 put window. */
  HELLO_ACK: 0x41,
  PONG: 0x42,
  /** body: a JSON object (the workload, uptime, memory; describeInfo). */
  INFO_REPLY: 0x43,
  /** A request without an answer of its own was done (STOP, SIGNAL_WORKLOAD, SIGNAL, RESIZE). */
  OK: 0x44,
  /** body: u32 ErrorCode, then a text naming the cause. */
  ERROR: 0x45,
  /** Session 0, body: u64 CLOCK_BOOTTIME ms. The VM may be saved now. */
  READY: 0x46,
  /** Session 0, body: the instance. The resume message was applied. */
  RESUMED: 0x47,
  /** body: u32 pid. */
  STARTED: 0x50,
  /** body: u32 errno, u32 StartStep, then a text. The process never ran. */
  FAILED: 0x51,
  STDOUT: 0x52,
  STDERR: 0x53,
  /** body: u32 exit code (0–255, or 128+signal), u32 signal (0: exited), u8 oom, u8 timed out. */
  EXITED: 0x54,
  /** body: u32 bytes of STDIN/PUT_DATA the guest has taken off its buffer. */
  INPUT_CREDIT: 0x55,
  /** body: u64 size, u32 mode. GET's answer before the data. */
  FILE_INFO: 0x58,
  FILE_DATA: 0x59,
  /** body: u64 bytes. A PUT renamed into place, or a GET's data all sent. */
  FILE_DONE: 0x5a,
  /**
   * Session 0, body: u32 exit code. The workload ended (sent once, also to late connections via INFO);
   * a workload the host started (ExecField.WORKLOAD) has its session's EXITED sent first.
   */
  WORKLOAD_EXITED: 0x5b,
} as const;
export type FrameTypeName = keyof typeof FrameType;

/** Header flags. */
export const FLAG_EOF = 0x01;

/** ERROR codes: a typed answer to a frame the guest could not take. */
export const ErrorCode = {
  /** Wrong magic or a length above MAX_BODY_BYTES: the guest skipped to the next frame magic. */
  BAD_FRAME: 1,
  UNKNOWN_TYPE: 2,
  /** The session is not (or no longer) the guest's. */
  NO_SESSION: 3,
  /** A session id already in use. */
  SESSION_EXISTS: 4,
  /** MAX_SESSIONS are open. */
  TOO_MANY_SESSIONS: 5,
  /** More input than the window allowed: the session is ended. */
  CREDIT_EXCEEDED: 6,
  /** A body the guest cannot read (truncated, a field out of bounds). */
  BAD_REQUEST: 7,
  /** The orderly stop is under way: nothing new starts. */
  STOPPING: 8,
  /** A file operation failed: the text names the call and errno. */
  FILE: 9,
  /** HELLO with another protocol version. */
  VERSION: 10,
  /** A frame that does not fit the guest's state (RESUME with no snapshot pending, data before PUT). */
  NOT_NOW: 11,
  /**
   * EXEC with WORKLOAD the guest cannot take: its supervisor was not started to wait for the host's
   * workload (start=host), or that workload already started. Nothing was started.
   */
  WORKLOAD: 12,
} as const;
export type ErrorCodeName = keyof typeof ErrorCode;

/** EXEC body: records of u16 tag, u32 length, value. Repeatable: ARG, ENV, RLIMIT. */
export const ExecField = {
  /** One argument; the first is the program (looked up in PATH without a slash). */
  ARG: 1,
  /** NAME=VALUE over the workload's environment. */
  ENV: 2,
  CWD: 3,
  /** NAME or UID[:GID], resolved against the guest's /etc/passwd and /etc/group. */
  USER: 4,
  /** u32 resource, u64 soft, u64 hard (RLIM_INFINITY: all ones). */
  RLIMIT: 5,
  /** u16 rows, u16 cols: a pseudo-terminal instead of pipes (stdout only; stderr joins it). */
  TTY: 6,
  /** u32 ms: then SIGKILL to the whole process group, and EXITED says timed out. */
  TIMEOUT_MS: 7,
  /** u8 1: stdin is a pipe fed by STDIN frames; absent: /dev/null. */
  STDIN: 8,
  /**
   * Empty value: this process is the workload (a supervisor started with start=host waits for it).
   * Its exit ends the VM as the workload's does; its session still gets EXITED, before WORKLOAD_EXITED.
   */
  WORKLOAD: 9,
} as const;

/** Where a FAILED exec stopped (the supervisor's start steps, in order). */
export const StartStep = {
  FORK: 0,
  SETSID: 1,
  CGROUP: 2,
  OOM: 3,
  HOSTNAME: 4,
  RLIMIT: 5,
  CAPBSET: 6,
  SETGROUPS: 7,
  SETGID: 8,
  SETUID: 9,
  NNP: 10,
  CWD: 11,
  SIGNALS: 12,
  EXEC: 13,
  /** The user could not be resolved (no such name in /etc/passwd). */
  USER: 14,
  /** Pipes or the pseudo-terminal could not be made. */
  STDIO: 15,
} as const;
