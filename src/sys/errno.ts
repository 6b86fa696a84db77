// Linux errno numbers (x86_64 and the asm-generic table most architectures share).
// Kept as data, not taken from node:os, so the error text never depends on what the runtime exposes.
const ERRNO_NAMES: readonly string[] = [
  "", "EPERM", "ENOENT", "ESRCH", "EINTR", "EIO", "ENXIO", "E2BIG", "ENOEXEC", "EBADF", "ECHILD",
  "EAGAIN", "ENOMEM", "EACCES", "EFAULT", "ENOTBLK", "EBUSY", "EEXIST", "EXDEV", "ENODEV", "ENOTDIR",
  "EISDIR", "EINVAL", "ENFILE", "EMFILE", "ENOTTY", "ETXTBSY", "EFBIG", "ENOSPC", "ESPIPE", "EROFS",
  "EMLINK", "EPIPE", "EDOM", "ERANGE", "EDEADLK", "ENAMETOOLONG", "ENOLCK", "ENOSYS", "ENOTEMPTY", "ELOOP",
  "", "ENOMSG", "EIDRM", "ECHRNG", "EL2NSYNC", "EL3HLT", "EL3RST", "ELNRNG", "EUNATCH", "ENOCSI",
  "EL2HLT", "EBADE", "EBADR", "EXFULL", "ENOANO", "EBADRQC", "EBADSLT", "", "EBFONT", "ENOSTR",
  "ENODATA", "ETIME", "ENOSR", "ENONET", "ENOPKG", "EREMOTE", "ENOLINK", "EADV", "ESRMNT", "ECOMM",
  "EPROTO", "EMULTIHOP", "EDOTDOT", "EBADMSG", "EOVERFLOW", "ENOTUNIQ", "EBADFD", "EREMCHG", "ELIBACC", "ELIBBAD",
  "ELIBSCN", "ELIBMAX", "ELIBEXEC", "EILSEQ", "ERESTART", "ESTRPIPE", "EUSERS", "ENOTSOCK", "EDESTADDRREQ", "EMSGSIZE",
  "EPROTOTYPE", "ENOPROTOOPT", "EPROTONOSUPPORT", "ESOCKTNOSUPPORT", "EOPNOTSUPP", "EPFNOSUPPORT", "EAFNOSUPPORT", "EADDRINUSE", "EADDRNOTAVAIL", "ENETDOWN",
  "ENETUNREACH", "ENETRESET", "ECONNABORTED", "ECONNRESET", "ENOBUFS", "EISCONN", "ENOTCONN", "ESHUTDOWN", "ETOOMANYREFS", "ETIMEDOUT",
  "ECONNREFUSED", "EHOSTDOWN", "EHOSTUNREACH", "EALREADY", "EINPROGRESS", "ESTALE", "EUCLEAN", "ENOTNAM", "ENAVAIL", "EISNAM",
  "EREMOTEIO", "EDQUOT", "ENOMEDIUM", "EMEDIUMTYPE", "ECANCELED", "ENOKEY", "EKEYEXPIRED", "EKEYREVOKED", "EKEYREJECTED", "EOWNERDEAD",
  "ENOTRECOVERABLE", "ERFKILL", "EHWPOISON",
];

const ERRNO_TEXT: Record<string, string> = {
  EPERM: "operation not permitted", ENOENT: "no such file or directory", ESRCH: "no such process",
  EINTR: "interrupted system call", EIO: "input/output error", ENXIO: "no such device or address",
  E2BIG: "argument list too long", ENOEXEC: "exec format error", EBADF: "bad file descriptor",
  ECHILD: "no child processes", EAGAIN: "resource temporarily unavailable", ENOMEM: "cannot allocate memory",
  EACCES: "permission denied", EFAULT: "bad address", ENOTBLK: "block device required",
  EBUSY: "device or resource busy", EEXIST: "file exists", EXDEV: "invalid cross-device link",
  ENODEV: "no such device", ENOTDIR: "not a directory", EISDIR: "is a directory", EINVAL: "invalid argument",
  ENFILE: "too many open files in system", EMFILE: "too many open files", ENOTTY: "inappropriate ioctl for device",
  ETXTBSY: "text file busy", EFBIG: "file too large", ENOSPC: "no space left on device", ESPIPE: "illegal seek",
  EROFS: "read-only file system", EPIPE: "broken pipe", ERANGE: "numerical result out of range",
  ENAMETOOLONG: "file name too long", ENOSYS: "function not implemented", ENOTEMPTY: "directory not empty",
  ELOOP: "too many levels of symbolic links", ENODATA: "no data available", ETIME: "timer expired",
  EOVERFLOW: "value too large for defined data type", EBADMSG: "bad message", ENOKEY: "required key not available",
  EKEYREJECTED: "key was rejected by service", EOPNOTSUPP: "operation not supported",
  EAFNOSUPPORT: "address family not supported by protocol", EADDRINUSE: "address already in use",
  EADDRNOTAVAIL: "cannot assign requested address", ENETDOWN: "network is down", ENETUNREACH: "network is unreachable",
  EHOSTUNREACH: "no route to host",
  ECONNREFUSED: "connection refused", ECONNRESET: "connection reset by peer", ETIMEDOUT: "connection timed out",
  ENOTCONN: "transport endpoint is not connected", EUCLEAN: "structure needs cleaning",
  EMEDIUMTYPE: "wrong medium type", ECANCELED: "operation canceled", EHWPOISON: "memory page has hardware error",
};

/** The symbolic name of an errno value, e.g. 2 → "ENOENT"; unknown values give "E<n>". */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] || `E${errno}`;
}

/** The errno value of a symbolic name, or undefined. */
export function errnoValue(name: string): number | undefined {
  const index = ERRNO_NAMES.indexOf(name);
  return index > 0 ? index : undefined;
}

/** "ENOENT (no such file or directory)". */
function errnoReason(errno: number): string {
  return `${errnoName(errno)} (${ERRNO_TEXT[errnoName(errno)] ?? "unknown error"})`;
}

/**
 * The one error type of the system layer: which call failed, with which arguments that matter,
 * and why (errno name). Everything above src/sys/ can rely on `.errno` for decisions (EBUSY, EEXIST…).
 */
export class SysError extends Error {
  readonly call: string;
  readonly args: Record<string, unknown>;
  readonly errno: number;
  readonly code: string;

  constructor(call: string, errno: number, args: Record<string, unknown> = {}) {
    super(`${call}(${formatArgs(args)}) failed: ${errnoReason(errno)}`);
    this.name = "SysError";
    this.call = call;
    this.args = args;
    this.errno = errno;
    this.code = errnoName(errno);
  }

  /** Why, without the call: "ENOENT (no such file or directory)". */
  get reason(): string {
    return errnoReason(this.errno);
  }
}

function formatArgs(args: Record<string, unknown>): string {
  return Object.entries(args)
    .map(([key, value]) => `${key}=${typeof value === "string" ? JSON.stringify(value) : String(value)}`)
    .join(", ");
}

export function isErrno(error: unknown, ...codes: string[]): error is SysError {
  return error instanceof SysError && codes.includes(error.code);
}
