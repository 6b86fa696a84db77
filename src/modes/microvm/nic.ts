// The NIC the host handed over (burrow.net.mac= and the rest, config/nic.ts), configured before
// the workload starts: the interface with that MAC up with its MTU, its addresses, then its
// routes (a gateway must be reachable through an address's prefix first) — what the engine's
// network namespace held, so the container answers where the engine's bridge, port mappings and
// firewall expect it, with no DHCP client in the image. burrow.net.lo=1 brings loopback up too.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { formatIpPrefix, formatNicRoute, type IpPrefix, type NicRoute, type NicSettings, parsedIpBytes } from "../../config/nic";
import * as sys from "../../sys";

export interface NetInterface {
  name: string;
  index: number;
}

function readSysValue(dir: string, name: string, file: string): string | null {
  try {
    return readFileSync(join(dir, name, file), "utf8").trim();
  } catch {
    return null; // gone between the listing and the read
  }
}

/** The interface named `name`, or the one whose MAC is `mac` (lower case), from sysfs. */
export function findInterface(match: { name: string } | { mac: string }, sysClassNet = "/sys/class/net"): NetInterface | null {
  let names: string[];
  try {
    names = readdirSync(sysClassNet).sort();
  } catch {
    return null; // no sysfs: no interface to find
  }
  for (const name of names) {
    if ("name" in match ? name !== match.name : readSysValue(sysClassNet, name, "address")?.toLowerCase() !== match.mac) continue;
    const index = Number(readSysValue(sysClassNet, name, "ifindex"));
    if (Number.isInteger(index) && index > 0) return { name, index };
  }
  return null;
}

/** An address of the settings as RTM_NEWADDR takes it, on the interface `index`: here and in a template's container.plan (src/oci/template-nic.ts). */
export function nicAddressRequest(index: number, address: IpPrefix): sys.AddressRequest {
  return { index, address: parsedIpBytes(address.address), prefix: address.prefix };
}

/** A route of the settings as RTM_NEWROUTE takes it, on the interface `index`. */
export function nicRouteRequest(index: number, route: NicRoute): sys.RouteRequest {
  return { index, destination: parsedIpBytes(route.destination.address), prefix: route.destination.prefix, via: route.via === null ? null : parsedIpBytes(route.via), onlink: route.onlink, metric: route.metric };
}

/** Applies the settings; returns what it did, for the boot log. Throws on the first refusal (a SysError naming the request). */
export function configureNetwork(nic: NicSettings, loopback: boolean, sysClassNet = "/sys/class/net"): string[] {
  const done: string[] = [];
  const socket = sys.RouteSocket.open();
  try {
    if (loopback) {
      const lo = findInterface({ name: "lo" }, sysClassNet);
      if (lo === null) throw new Error("burrow.net.lo=1 but there is no loopback interface (ENODEV)");
      socket.setLinkUp(lo.index, null, lo.name);
      done.push("lo up");
    }
    if (nic.mac === null) return done;
    const nicInterface = findInterface({ mac: nic.mac }, sysClassNet);
    if (nicInterface === null) throw new Error(`burrow.net.mac=${nic.mac} but no network interface has that MAC address (ENODEV; no virtio-net device?)`);
    const { name, index } = nicInterface;
    socket.setLinkUp(index, nic.mtu, name);
    for (const address of nic.addresses) {
      socket.addAddress(nicAddressRequest(index, address), { dev: name, address: formatIpPrefix(address) });
    }
    for (const route of nic.routes) {
      socket.addRoute(nicRouteRequest(index, route), { dev: name, route: formatNicRoute(route) });
    }
    const addresses = nic.addresses.map(formatIpPrefix).join(" ") || "no address";
    const routes = nic.routes.length === 0 ? "" : `, routes ${nic.routes.map(formatNicRoute).join(" ")}`;
    done.push(`${name} (${nic.mac}) up${nic.mtu === null ? "" : ` mtu ${nic.mtu}`}: ${addresses}${routes}`);
    return done;
  } finally {
    socket.closeQuietly();
  }
}
