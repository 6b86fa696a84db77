// Sockets for AF_NETLINK (kernel uevents) and AF_VSOCK (host channels).
import { check, libc } from "./libc";
import { AddressFamily, NetlinkProtocol, SocketType } from "./constants";

export function socket(family: number, type: number, protocol: number): number {
  return check(libc("socket")(family, type, protocol), "socket", { family, type, protocol });
}

export function bind(fd: number, address: Uint8Array): void {
  check(libc("bind")(fd, address, address.byteLength), "bind", { fd });
}

export function connect(fd: number, address: Uint8Array, what: Record<string, unknown> = {}): void {
  check(libc("connect")(fd, address, address.byteLength), "connect", { fd, ...what });
}

export function sendto(fd: number, data: Uint8Array, flags = 0, address: Uint8Array | null = null): number {
  return check(libc("sendto")(fd, data, data.byteLength, flags, address, address?.byteLength ?? 0), "sendto", { fd });
}

/** recv; returns -1 (without throwing) on EAGAIN for non-blocking sockets. */
export function recv(fd: number, buffer: Uint8Array, flags = 0): number {
  const result = libc("recv")(fd, buffer, buffer.byteLength, flags);
  if (result < 0) {
    try {
      check(result, "recv", { fd });
    } catch (error) {
      if ((error as { code?: string }).code === "EAGAIN") return -1;
      throw error;
    }
  }
  return result;
}

/** struct sockaddr_nl for a multicast group subscription. */
export function sockaddrNetlink(groups: number, pid = 0): Uint8Array {
  const address = new Uint8Array(12);
  const view = new DataView(address.buffer);
  view.setUint16(0, AddressFamily.NETLINK, true);
  view.setUint32(4, pid, true);
  view.setUint32(8, groups, true);
  return address;
}

/** struct sockaddr_vm. */
export function sockaddrVsock(cid: number, port: number): Uint8Array {
  const address = new Uint8Array(16);
  const view = new DataView(address.buffer);
  view.setUint16(0, AddressFamily.VSOCK, true);
  view.setUint32(4, port, true);
  view.setUint32(8, cid, true);
  return address;
}

/** A non-blocking socket subscribed to kernel uevents (group 1). */
export function openUeventSocket(): number {
  const fd = socket(AddressFamily.NETLINK, SocketType.DGRAM | SocketType.NONBLOCK | SocketType.CLOEXEC, NetlinkProtocol.KOBJECT_UEVENT);
  bind(fd, sockaddrNetlink(1));
  return fd;
}

export function vsockConnect(cid: number, port: number): number {
  const fd = socket(AddressFamily.VSOCK, SocketType.STREAM | SocketType.CLOEXEC, 0);
  connect(fd, sockaddrVsock(cid, port), { cid, port });
  return fd;
}
