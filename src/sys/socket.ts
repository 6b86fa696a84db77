// Sockets: AF_NETLINK for kernel uevents; AF_UNIX by path and file descriptor passing (a pty master
// to a container engine's --console-socket, as runc does). The memory self-test builds its own
// abstract address.
import { ptr } from "bun:ffi";
import { check, errno, libc } from "./libc";
import { errnoName, SysError } from "./errno";
import { closeQuietly } from "./fs";
import { AddressFamily, NetlinkProtocol, SocketType } from "./constants";

export function socket(family: number, type: number, protocol: number): number {
  return check(libc("socket")(family, type, protocol), "socket", { family, type, protocol });
}

export function bind(fd: number, address: Uint8Array, what: Record<string, unknown> = {}): void {
  check(libc("bind")(fd, address, address.byteLength), "bind", { fd, ...what });
}

export function connect(fd: number, address: Uint8Array, what: Record<string, unknown> = {}): void {
  check(libc("connect")(fd, address, address.byteLength), "connect", { fd, ...what });
}

/** struct sockaddr_nl for a multicast group subscription. */
function sockaddrNetlink(groups: number, pid = 0): Uint8Array {
  const address = new Uint8Array(12);
  const view = new DataView(address.buffer);
  view.setUint16(0, AddressFamily.NETLINK, true);
  view.setUint32(4, pid, true);
  view.setUint32(8, groups, true);
  return address;
}

/** A non-blocking socket subscribed to kernel uevents (group 1). */
export function openUeventSocket(): number {
  const fd = socket(AddressFamily.NETLINK, SocketType.DGRAM | SocketType.NONBLOCK | SocketType.CLOEXEC, NetlinkProtocol.KOBJECT_UEVENT);
  bind(fd, sockaddrNetlink(1));
  return fd;
}

export function listen(fd: number, backlog: number, what: Record<string, unknown> = {}): void {
  check(libc("listen")(fd, backlog), "listen", { fd, backlog, ...what });
}

/** accept4 without the peer's address; the new socket is close-on-exec unless `flags` says otherwise. */
export function accept(fd: number, flags: number = SocketType.CLOEXEC, what: Record<string, unknown> = {}): number {
  return check(libc("accept4")(fd, null, null, flags), "accept4", { fd, ...what });
}

export function socketpair(family: number, type: number, protocol = 0): [number, number] {
  const fds = new Int32Array(2);
  check(libc("socketpair")(family, type, protocol, fds), "socketpair", { family, type, protocol });
  return [fds[0]!, fds[1]!];
}

/** The LP64 layouts (x86_64 and arm64 alike) of what sendmsg/recvmsg take; checked by test/unit/sys-pty.test.ts. */
export const SOCKADDR_UN = { sun_family: 0, sun_path: 2, pathSize: 108 } as const;
export const MSGHDR = { size: 56, msg_name: 0, msg_namelen: 8, msg_iov: 16, msg_iovlen: 24, msg_control: 32, msg_controllen: 40, msg_flags: 48 } as const;
export const IOVEC = { size: 16, iov_base: 0, iov_len: 8 } as const;
/** struct cmsghdr; CMSG_DATA starts at `size`, and each message is padded to `align`. */
export const CMSGHDR = { size: 16, cmsg_len: 0, cmsg_level: 8, cmsg_type: 12, align: 8 } as const;
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;
export const MsgFlags = { CTRUNC: 0x8, NOSIGNAL: 0x4000, CMSG_CLOEXEC: 0x40000000 } as const;

/** runc's limit on the name sent with a file descriptor (its RecvFd reads at most this much, NUL included). */
export const FD_PAYLOAD_MAX = 4096;

/** struct sockaddr_un for a filesystem path; sun_path holds 108 bytes with its NUL. */
export function sockaddrUnix(path: string): Uint8Array {
  const name = Buffer.from(path, "utf8");
  if (name.byteLength === 0 || name.byteLength >= SOCKADDR_UN.pathSize || name.includes(0)) {
    throw new Error(`unix socket path ${JSON.stringify(path)} must be 1-${SOCKADDR_UN.pathSize - 1} bytes without NUL, not ${name.byteLength}`);
  }
  const address = new Uint8Array(SOCKADDR_UN.sun_path + name.byteLength + 1);
  new DataView(address.buffer).setUint16(SOCKADDR_UN.sun_family, AddressFamily.UNIX, true);
  address.set(name, SOCKADDR_UN.sun_path);
  return address;
}

/** A close-on-exec AF_UNIX socket connected to `path`. */
export function connectUnix(path: string, type: number = SocketType.STREAM): number {
  const address = sockaddrUnix(path);
  const fd = socket(AddressFamily.UNIX, type | SocketType.CLOEXEC, 0);
  try {
    connect(fd, address, { path });
    return fd;
  } catch (error) {
    closeQuietly(fd);
    throw error;
  }
}

/** A close-on-exec AF_UNIX socket bound to `path` (which must not exist) and listening. */
export function listenUnix(path: string, backlog = 16, type: number = SocketType.STREAM): number {
  const address = sockaddrUnix(path);
  const fd = socket(AddressFamily.UNIX, type | SocketType.CLOEXEC, 0);
  try {
    bind(fd, address, { path });
    listen(fd, backlog, { path });
    return fd;
  } catch (error) {
    closeQuietly(fd);
    throw error;
  }
}

/**
 * Send `fd` (SCM_RIGHTS) with `payload` as the message's bytes, as runc's SendRawFd does: to a
 * connected socket, or to a new SOCK_STREAM connection to the path `target`, closed after. The
 * payload cannot be empty: a stream socket carries ancillary data only with at least one byte.
 */
export function sendFd(target: string | number, fd: number, payload: string | Uint8Array): void {
  const bytes = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
  if (bytes.byteLength === 0 || bytes.byteLength >= FD_PAYLOAD_MAX) throw new RangeError(`the payload sent with a file descriptor must be 1-${FD_PAYLOAD_MAX - 1} bytes, not ${bytes.byteLength}`);
  if (typeof target === "number") return sendWithRights(target, fd, bytes, {});
  const socketFd = connectUnix(target);
  try {
    sendWithRights(socketFd, fd, bytes, { path: target });
  } finally {
    closeQuietly(socketFd);
  }
}

function sendWithRights(socketFd: number, fd: number, bytes: Uint8Array, what: Record<string, unknown>): void {
  const control = new Uint8Array(cmsgSpace(4));
  const controlView = new DataView(control.buffer);
  controlView.setBigUint64(CMSGHDR.cmsg_len, BigInt(CMSGHDR.size + 4), true);
  controlView.setInt32(CMSGHDR.cmsg_level, SOL_SOCKET, true);
  controlView.setInt32(CMSGHDR.cmsg_type, SCM_RIGHTS, true);
  controlView.setInt32(CMSGHDR.size, fd, true);
  let sent = sendmsg(socketFd, bytes, control, { fd, ...what });
  // The descriptor travelled with the first byte; a short write only leaves bytes to send.
  while (sent < bytes.byteLength) sent += sendmsg(socketFd, bytes.subarray(sent), null, { fd, ...what });
}

export interface ReceivedFd {
  fd: number;
  /** The message's bytes that came with it (runc: the file's name). */
  payload: Buffer;
}

/** How many descriptors one receive makes room for: more than one is refused, but each is closed, not leaked. */
const RECEIVE_FDS_MAX = 16;

/**
 * Receive one message carrying exactly one descriptor (SCM_RIGHTS), close-on-exec. Blocks unless the
 * socket is non-blocking (then EAGAIN throws). Anything else that arrives (no descriptor, several,
 * a truncated control message) is refused, every descriptor received closed.
 */
export function receiveFd(socketFd: number): ReceivedFd {
  const data = new Uint8Array(FD_PAYLOAD_MAX);
  const control = new Uint8Array(cmsgSpace(4 * RECEIVE_FDS_MAX));
  const { length, flags, controlLength } = recvmsg(socketFd, data, control);
  const fds = rightsIn(control.subarray(0, controlLength));
  const refuse = (why: string): never => {
    for (const received of fds) closeQuietly(received);
    throw new Error(`recvmsg(fd=${socketFd}) ${why}`);
  };
  if ((flags & MsgFlags.CTRUNC) !== 0) refuse(`truncated its control message (more than ${RECEIVE_FDS_MAX} descriptors)`);
  if (fds.length === 0) refuse(length === 0 ? "got end of file before a file descriptor" : `got ${length} bytes without a file descriptor`);
  if (fds.length > 1) refuse(`got ${fds.length} file descriptors, expected one`);
  return { fd: fds[0]!, payload: Buffer.from(data.subarray(0, length)) };
}

/** CMSG_SPACE: header plus data, padded. */
function cmsgSpace(dataLength: number): number {
  return CMSGHDR.size + Math.ceil(dataLength / CMSGHDR.align) * CMSGHDR.align;
}

/** Every descriptor in the SCM_RIGHTS messages of a received control buffer. */
function rightsIn(control: Uint8Array): number[] {
  const view = new DataView(control.buffer, control.byteOffset, control.byteLength);
  const fds: number[] = [];
  let offset = 0;
  while (offset + CMSGHDR.size <= control.byteLength) {
    const length = Number(view.getBigUint64(offset + CMSGHDR.cmsg_len, true));
    if (length < CMSGHDR.size || offset + length > control.byteLength) break;
    if (view.getInt32(offset + CMSGHDR.cmsg_level, true) === SOL_SOCKET && view.getInt32(offset + CMSGHDR.cmsg_type, true) === SCM_RIGHTS) {
      for (let at = offset + CMSGHDR.size; at + 4 <= offset + length; at += 4) fds.push(view.getInt32(at, true));
    }
    offset += cmsgSpace(length - CMSGHDR.size);
  }
  return fds;
}

/** struct msghdr with one iovec over `data` and `control` (or none); the buffers must outlive the call. */
function messageHeader(data: Uint8Array, control: Uint8Array | null): { header: Uint8Array; iov: Uint8Array } {
  const iov = new Uint8Array(IOVEC.size);
  const iovView = new DataView(iov.buffer);
  iovView.setBigUint64(IOVEC.iov_base, BigInt(ptr(data)), true);
  iovView.setBigUint64(IOVEC.iov_len, BigInt(data.byteLength), true);
  const header = new Uint8Array(MSGHDR.size);
  const view = new DataView(header.buffer);
  view.setBigUint64(MSGHDR.msg_iov, BigInt(ptr(iov)), true);
  view.setBigUint64(MSGHDR.msg_iovlen, 1n, true);
  if (control !== null) {
    view.setBigUint64(MSGHDR.msg_control, BigInt(ptr(control)), true);
    view.setBigUint64(MSGHDR.msg_controllen, BigInt(control.byteLength), true);
  }
  return { header, iov };
}

/** sendmsg, again after EINTR; MSG_NOSIGNAL: a vanished peer is EPIPE, not a SIGPIPE. */
function sendmsg(socketFd: number, data: Uint8Array, control: Uint8Array | null, what: Record<string, unknown>): number {
  const { header, iov } = messageHeader(data, control);
  for (;;) {
    const result = Number(libc("sendmsg")(socketFd, header, MsgFlags.NOSIGNAL));
    if (result >= 0) {
      void [iov, data, control];
      return result;
    }
    const code = errno();
    if (errnoName(code) !== "EINTR") throw new SysError("sendmsg", code, { socket: socketFd, ...what });
  }
}

/** recvmsg with MSG_CMSG_CLOEXEC, again after EINTR. */
function recvmsg(socketFd: number, data: Uint8Array, control: Uint8Array): { length: number; flags: number; controlLength: number } {
  const { header, iov } = messageHeader(data, control);
  for (;;) {
    const result = Number(libc("recvmsg")(socketFd, header, MsgFlags.CMSG_CLOEXEC));
    if (result >= 0) {
      void [iov, data, control];
      const view = new DataView(header.buffer);
      return { length: result, flags: view.getInt32(MSGHDR.msg_flags, true), controlLength: Number(view.getBigUint64(MSGHDR.msg_controllen, true)) };
    }
    const code = errno();
    if (errnoName(code) !== "EINTR") throw new SysError("recvmsg", code, { socket: socketFd });
  }
}
