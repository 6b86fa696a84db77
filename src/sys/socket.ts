// Sockets: AF_NETLINK for kernel uevents; AF_UNIX (the memory self-test) builds its own address.
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
