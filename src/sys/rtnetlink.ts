// rtnetlink (NETLINK_ROUTE): an interface up with its MTU, its addresses and routes — what `ip link
// set up`, `ip addr add` and `ip route add` send. Each request asks for the kernel's ack; a
// refusal throws a SysError naming the request (RTM_NEWADDR…), its arguments and the errno. The
// layouts and numbers are <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_addr.h> and
// <linux/if_link.h>'s (test/unit/sys-rtnetlink.test.ts compiles them against the headers).
import { AddressFamily, NetlinkProtocol, SocketType } from "./constants";
import { SysError } from "./errno";
import { close, closeQuietly, read, write } from "./fs";
import { socket } from "./socket";

export const NLMSGHDR = { size: 16, nlmsg_len: 0, nlmsg_type: 4, nlmsg_flags: 6, nlmsg_seq: 8, nlmsg_pid: 12 } as const;
export const IFINFOMSG = { size: 16, ifi_family: 0, ifi_type: 2, ifi_index: 4, ifi_flags: 8, ifi_change: 12 } as const;
export const IFADDRMSG = { size: 8, ifa_family: 0, ifa_prefixlen: 1, ifa_flags: 2, ifa_scope: 3, ifa_index: 4 } as const;
export const RTMSG = { size: 12, rtm_family: 0, rtm_dst_len: 1, rtm_src_len: 2, rtm_tos: 3, rtm_table: 4, rtm_protocol: 5, rtm_scope: 6, rtm_type: 7, rtm_flags: 8 } as const;
/** struct rtattr: length and type, the payload 4-aligned after it. */
export const RTATTR = { size: 4, rta_len: 0, rta_type: 2 } as const;
/** struct nlmsgerr: the error (a negative errno, 0 for an ack), then the request's header. */
export const NLMSGERR = { error: 0 } as const;

export const NetlinkFlags = { REQUEST: 0x1, ACK: 0x4, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400 } as const;
export const NetlinkMessage = { NLMSG_ERROR: 2, RTM_NEWLINK: 16, RTM_NEWADDR: 20, RTM_NEWROUTE: 24 } as const;
export const IflaAttr = { IFLA_ADDRESS: 1, IFLA_MTU: 4 } as const;
export const IfaAttr = { IFA_ADDRESS: 1, IFA_LOCAL: 2, IFA_BROADCAST: 4 } as const;
export const IfaFlags = { IFA_F_NODAD: 0x02 } as const;
export const RtaAttr = { RTA_DST: 1, RTA_OIF: 4, RTA_GATEWAY: 5, RTA_PRIORITY: 6 } as const;
export const RouteConst = { RT_TABLE_MAIN: 254, RTPROT_STATIC: 4, RT_SCOPE_UNIVERSE: 0, RT_SCOPE_LINK: 253, RT_SCOPE_HOST: 254, RTN_UNICAST: 1, RTNH_F_ONLINK: 4 } as const;
export const IFF_UP = 0x1;

const align4 = (length: number) => (length + 3) & ~3;

/** One attribute, padded to 4 bytes. */
export function rtattr(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(align4(RTATTR.size + payload.byteLength));
  const view = new DataView(out.buffer);
  view.setUint16(RTATTR.rta_len, RTATTR.size + payload.byteLength, true);
  view.setUint16(RTATTR.rta_type, type, true);
  out.set(payload, RTATTR.size);
  return out;
}

export function netlinkU32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

/** A whole request: the header, the fixed part, the attributes. */
export function netlinkMessage(type: number, flags: number, seq: number, body: Uint8Array, attributes: readonly Uint8Array[] = []): Uint8Array {
  const length = NLMSGHDR.size + align4(body.byteLength) + attributes.reduce((sum, attribute) => sum + attribute.byteLength, 0);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint32(NLMSGHDR.nlmsg_len, length, true);
  view.setUint16(NLMSGHDR.nlmsg_type, type, true);
  view.setUint16(NLMSGHDR.nlmsg_flags, flags, true);
  view.setUint32(NLMSGHDR.nlmsg_seq, seq, true);
  out.set(body, NLMSGHDR.size);
  let offset = NLMSGHDR.size + align4(body.byteLength);
  for (const attribute of attributes) {
    out.set(attribute, offset);
    offset += attribute.byteLength;
  }
  return out;
}

/**
 * RTM_NEWLINK's fixed part and attributes: the interface up (IFF_UP in flags and change), its MTU
 * when given, and its MAC when given — set before the flags in one request, so while it is still down.
 */
export function linkUpRequest(index: number, mtu: number | null, mac: Uint8Array | null = null): { body: Uint8Array; attributes: Uint8Array[] } {
  const body = new Uint8Array(IFINFOMSG.size);
  const view = new DataView(body.buffer);
  view.setInt32(IFINFOMSG.ifi_index, index, true);
  view.setUint32(IFINFOMSG.ifi_flags, IFF_UP, true);
  view.setUint32(IFINFOMSG.ifi_change, IFF_UP, true);
  const attributes = [...(mac === null ? [] : [rtattr(IflaAttr.IFLA_ADDRESS, mac)]), ...(mtu === null ? [] : [rtattr(IflaAttr.IFLA_MTU, netlinkU32(mtu))])];
  return { body, attributes };
}

export interface AddressRequest {
  index: number;
  address: Uint8Array;
  prefix: number;
}

/** RTM_NEWADDR's: IPv4 with its broadcast (prefixes up to /30), IPv6 without duplicate detection (the engine's address, checked once on its network). */
export function addressRequest(request: AddressRequest): { body: Uint8Array; attributes: Uint8Array[] } {
  const v4 = request.address.byteLength === 4;
  const body = new Uint8Array(IFADDRMSG.size);
  const view = new DataView(body.buffer);
  body[IFADDRMSG.ifa_family] = v4 ? AddressFamily.INET : AddressFamily.INET6;
  body[IFADDRMSG.ifa_prefixlen] = request.prefix;
  body[IFADDRMSG.ifa_flags] = v4 ? 0 : IfaFlags.IFA_F_NODAD;
  body[IFADDRMSG.ifa_scope] = RouteConst.RT_SCOPE_UNIVERSE;
  view.setUint32(IFADDRMSG.ifa_index, request.index, true);
  const attributes = [rtattr(IfaAttr.IFA_LOCAL, request.address), rtattr(IfaAttr.IFA_ADDRESS, request.address)];
  if (v4 && request.prefix <= 30) {
    const broadcast = Uint8Array.from(request.address);
    const host = 32 - request.prefix;
    const mask = host === 32 ? 0xffffffff : (1 << host) - 1;
    const value = (((broadcast[0]! << 24) | (broadcast[1]! << 16) | (broadcast[2]! << 8) | broadcast[3]!) | mask) >>> 0;
    new DataView(broadcast.buffer).setUint32(0, value, false);
    attributes.push(rtattr(IfaAttr.IFA_BROADCAST, broadcast));
  }
  return { body, attributes };
}

export interface RouteRequest {
  index: number;
  destination: Uint8Array;
  prefix: number;
  via: Uint8Array | null;
  onlink: boolean;
  metric: number | null;
}

/** RTM_NEWROUTE's: a unicast route in the main table, through the interface (scope link without a gateway). */
export function routeRequest(request: RouteRequest): { body: Uint8Array; attributes: Uint8Array[] } {
  const body = new Uint8Array(RTMSG.size);
  const view = new DataView(body.buffer);
  body[RTMSG.rtm_family] = request.destination.byteLength === 4 ? AddressFamily.INET : AddressFamily.INET6;
  body[RTMSG.rtm_dst_len] = request.prefix;
  body[RTMSG.rtm_table] = RouteConst.RT_TABLE_MAIN;
  body[RTMSG.rtm_protocol] = RouteConst.RTPROT_STATIC;
  body[RTMSG.rtm_scope] = request.via === null ? RouteConst.RT_SCOPE_LINK : RouteConst.RT_SCOPE_UNIVERSE;
  body[RTMSG.rtm_type] = RouteConst.RTN_UNICAST;
  view.setUint32(RTMSG.rtm_flags, request.onlink ? RouteConst.RTNH_F_ONLINK : 0, true);
  const attributes = [rtattr(RtaAttr.RTA_OIF, netlinkU32(request.index))];
  if (request.prefix > 0) attributes.push(rtattr(RtaAttr.RTA_DST, request.destination));
  if (request.via !== null) attributes.push(rtattr(RtaAttr.RTA_GATEWAY, request.via));
  if (request.metric !== null) attributes.push(rtattr(RtaAttr.RTA_PRIORITY, netlinkU32(request.metric)));
  return { body, attributes };
}

/** The errno of the kernel's answer to request `seq` in `reply` (0: acked), or null when it holds none. */
export function ackError(reply: Uint8Array, seq: number): number | null {
  const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
  for (let offset = 0; offset + NLMSGHDR.size <= reply.byteLength; ) {
    const length = view.getUint32(offset + NLMSGHDR.nlmsg_len, true);
    if (length < NLMSGHDR.size || offset + length > reply.byteLength) return null;
    if (view.getUint16(offset + NLMSGHDR.nlmsg_type, true) === NetlinkMessage.NLMSG_ERROR && view.getUint32(offset + NLMSGHDR.nlmsg_seq, true) === seq && length >= NLMSGHDR.size + 4) {
      return Math.abs(view.getInt32(offset + NLMSGHDR.size + NLMSGERR.error, true));
    }
    offset += align4(length);
  }
  return null;
}

/** The flags each request goes with beside REQUEST and ACK: an address or route already there is replaced, not an error. */
const REQUEST_FLAGS: Record<number, number> = {
  [NetlinkMessage.RTM_NEWLINK]: 0,
  [NetlinkMessage.RTM_NEWADDR]: NetlinkFlags.CREATE | NetlinkFlags.REPLACE,
  [NetlinkMessage.RTM_NEWROUTE]: NetlinkFlags.CREATE | NetlinkFlags.REPLACE,
};

/** A whole request as burrow sends it, acked: what RouteSocket writes, and what a template's supervisor sends (src/oci/template-nic.ts). */
export function requestMessage(type: number, seq: number, parts: { body: Uint8Array; attributes: Uint8Array[] }): Uint8Array {
  return netlinkMessage(type, NetlinkFlags.REQUEST | NetlinkFlags.ACK | (REQUEST_FLAGS[type] ?? 0), seq, parts.body, parts.attributes);
}

/**
 * Where a whole request (netlinkMessage) holds its interface index: the fixed part's for links
 * and addresses, RTA_OIF's payload for a route (routeRequest puts it first). Whoever sends a
 * request built before the index is known writes it there.
 */
export function interfaceIndexOffset(type: number): number {
  if (type === NetlinkMessage.RTM_NEWLINK) return NLMSGHDR.size + IFINFOMSG.ifi_index;
  if (type === NetlinkMessage.RTM_NEWADDR) return NLMSGHDR.size + IFADDRMSG.ifa_index;
  if (type === NetlinkMessage.RTM_NEWROUTE) return NLMSGHDR.size + RTMSG.size + RTATTR.size;
  throw new Error(`internal: netlink message ${type} carries no interface index`);
}

const REQUEST_NAMES: Record<number, string> = { [NetlinkMessage.RTM_NEWLINK]: "RTM_NEWLINK", [NetlinkMessage.RTM_NEWADDR]: "RTM_NEWADDR", [NetlinkMessage.RTM_NEWROUTE]: "RTM_NEWROUTE" };

/** A NETLINK_ROUTE socket that sends one request at a time and waits for its ack. */
export class RouteSocket {
  private seq = 0;
  private readonly reply = new Uint8Array(8192);
  private constructor(private readonly fd: number) {}

  static open(): RouteSocket {
    return new RouteSocket(socket(AddressFamily.NETLINK, SocketType.RAW | SocketType.CLOEXEC, NetlinkProtocol.ROUTE));
  }

  /** Send a request (to the kernel: the socket's default peer) and throw unless it is acked. */
  request(type: number, parts: { body: Uint8Array; attributes: Uint8Array[] }, what: Record<string, unknown>): void {
    const seq = ++this.seq;
    const call = REQUEST_NAMES[type] ?? `netlink message ${type}`;
    write(this.fd, requestMessage(type, seq, parts));
    // The kernel answers each request before it takes the next: what arrives is this one's ack or error.
    for (;;) {
      const length = read(this.fd, this.reply);
      const error = ackError(this.reply.subarray(0, length), seq);
      if (error === null) continue;
      if (error !== 0) throw new SysError(call, error, what);
      return;
    }
  }

  setLinkUp(index: number, mtu: number | null, name: string): void {
    this.request(NetlinkMessage.RTM_NEWLINK, linkUpRequest(index, mtu), { dev: name, ...(mtu === null ? {} : { mtu }) });
  }

  addAddress(request: AddressRequest, what: Record<string, unknown>): void {
    this.request(NetlinkMessage.RTM_NEWADDR, addressRequest(request), what);
  }

  addRoute(request: RouteRequest, what: Record<string, unknown>): void {
    this.request(NetlinkMessage.RTM_NEWROUTE, routeRequest(request), what);
  }

  close(): void {
    close(this.fd);
  }

  closeQuietly(): void {
    closeQuietly(this.fd);
  }
}
