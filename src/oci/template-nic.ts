// A container on the engine's network, started from a template: the template VM was saved with
// one virtio-net NIC that was never configured (TEMPLATE_NIC: the same name and MAC in every
// template), and each restore hands the guest this container's NIC as container.plan lines —
// the very rtnetlink requests burrow's boot sends for burrow.net.* (src/sys/rtnetlink.ts builds
// both), plus the veth's MAC, with the interface index left for the supervisor to write in
// (image/supervisor/nic.c). The guest parses nothing but numbers and hex.
import { parseMac } from "../config/nic";
import { nicAddressRequest, nicRouteRequest } from "../modes/microvm/nic";
import { addressRequest, interfaceIndexOffset, linkUpRequest, NetlinkMessage, requestMessage, routeRequest } from "../sys/rtnetlink";
import type { NetworkPlan } from "./network";

/**
 * The NIC every template with a network has: the guest kernel's first Ethernet device, with a
 * locally administered MAC no engine hands out (the 02 bit), which each container's replaces.
 */
export const TEMPLATE_NIC = { name: "eth0", mac: "02:62:75:72:72:77" } as const;

const hex = (bytes: Uint8Array | string) => Buffer.from(bytes).toString("hex");

function macBytes(text: string): Uint8Array {
  const mac = parseMac(text);
  if (typeof mac !== "string") throw new Error(`the network's MAC ${JSON.stringify(text)}: ${mac.problem}`);
  return Uint8Array.from(mac.split(":").map((pair) => parseInt(pair, 16)));
}

/**
 * container.plan's NIC lines: `nic NAME MAC` (hex; the template's NIC the guest checks it has),
 * then `netlink OFFSET REQUEST` per request in order — the link with the veth's MAC and MTU up,
 * each address, each route — OFFSET being where the interface index goes in REQUEST.
 */
export function templateNicLines(network: NetworkPlan): string[] {
  // The index is written by the guest; 0 until then.
  const index = 0;
  const requests: { type: number; parts: { body: Uint8Array; attributes: Uint8Array[] } }[] = [
    { type: NetlinkMessage.RTM_NEWLINK, parts: linkUpRequest(index, network.mtu, macBytes(network.mac)) },
    ...network.addresses.map((address) => ({ type: NetlinkMessage.RTM_NEWADDR, parts: addressRequest(nicAddressRequest(index, address)) })),
    ...network.routes.map((route) => ({ type: NetlinkMessage.RTM_NEWROUTE, parts: routeRequest(nicRouteRequest(index, route)) })),
  ];
  const lines = [`nic ${hex(TEMPLATE_NIC.name)} ${hex(macBytes(TEMPLATE_NIC.mac))}`];
  requests.forEach(({ type, parts }, position) => {
    lines.push(`netlink ${interfaceIndexOffset(type)} ${hex(requestMessage(type, position + 1, parts))}`);
  });
  return lines;
}
