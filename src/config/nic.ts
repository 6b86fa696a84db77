// The guest NIC the host hands over on the kernel command line: burrow.net.mac= (which NIC),
// burrow.net.mtu=, burrow.net.addr=ADDR/PREFIX and burrow.net.route=DEST/PREFIX[,via=GW][,onlink]
// [,metric=N] (each repeatable, IPv4 or IPv6). One home for the spelling: the host writes the
// words with these functions (src/oci/network.ts), the guest's config parses them with them, and
// burrow's nic step (src/modes/microvm/nic.ts) applies what they parsed.

export type IpFamily = 4 | 6;

/** An address with its prefix length: the interface's own, or a route's destination. */
export interface IpPrefix {
  family: IpFamily;
  /** Canonical text of the address (what ipBytes reads back). */
  address: string;
  prefix: number;
}

export interface NicRoute {
  destination: IpPrefix;
  /** The next hop; null: the destination is on the link itself. */
  via: string | null;
  /** The gateway is on the link even though no address's prefix covers it (RTNH_F_ONLINK). */
  onlink: boolean;
  metric: number | null;
}

export interface NicSettings {
  /** The NIC to configure, by its MAC address (lower case); null: none asked for. */
  mac: string | null;
  mtu: number | null;
  addresses: IpPrefix[];
  routes: NicRoute[];
}

export const emptyNicSettings = (): NicSettings => ({ mac: null, mtu: null, addresses: [], routes: [] });

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** What Linux takes on an Ethernet device: 68 (IPv4's minimum) to 65535. */
export const MTU_MIN = 68;
export const MTU_MAX = 65535;

/** A unicast Ethernet MAC in lower case, or a problem. */
export function parseMac(text: string): string | { problem: string } {
  const mac = text.toLowerCase();
  if (!MAC.test(mac)) return { problem: "expected a MAC address (six hex pairs separated by colons)" };
  // The group bit: a NIC's own address is never multicast.
  if ((parseInt(mac.slice(0, 2), 16) & 1) !== 0) return { problem: "a multicast MAC address cannot be a NIC's" };
  if (mac === "00:00:00:00:00:00") return { problem: "the all-zero MAC address cannot be a NIC's" };
  return mac;
}

/** An IPv4 or IPv6 address's bytes (4 or 16), or null. IPv6 takes "::" and a trailing dotted quad; no zone. */
export function ipBytes(text: string): Uint8Array | null {
  if (!text.includes(":")) return ipv4Bytes(text);
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    const words = part.split(":");
    for (let index = 0; index < words.length; index++) {
      const word = words[index]!;
      if (index === words.length - 1 && word.includes(".")) {
        const quad = ipv4Bytes(word);
        if (quad === null) return null;
        out.push((quad[0]! << 8) | quad[1]!, (quad[2]! << 8) | quad[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(word)) {
        out.push(parseInt(word, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  // "::" stands for at least one group of zeros; without it there must be exactly eight.
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, index) => {
    bytes[index * 2] = group >> 8;
    bytes[index * 2 + 1] = group & 0xff;
  });
  return bytes;
}

function ipv4Bytes(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4 || parts.some((part) => !/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255)) return null;
  return Uint8Array.from(parts.map(Number));
}

/** The bytes of an address config already parsed with ipBytes: null there would be a bug, not input. */
export function parsedIpBytes(text: string): Uint8Array {
  const bytes = ipBytes(text);
  if (bytes === null) throw new Error(`internal: ${JSON.stringify(text)} is not an address`);
  return bytes;
}

/** The address's canonical text: dotted quad, or RFC 5952 IPv6 (lower case, the longest run of zero groups as "::"). */
export function ipText(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join(".");
  const groups = Array.from({ length: 8 }, (_, index) => (bytes[index * 2]! << 8) | bytes[index * 2 + 1]!);
  let best = { start: -1, length: 0 };
  for (let start = 0; start < 8; ) {
    if (groups[start] !== 0) {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === 0) end++;
    if (end - start > best.length) best = { start, length: end - start };
    start = end;
  }
  const hex = groups.map((group) => group.toString(16));
  if (best.length < 2) return hex.join(":");
  return `${hex.slice(0, best.start).join(":")}::${hex.slice(best.start + best.length).join(":")}`;
}

/** "ADDR/PREFIX" (a bare ADDR: a host route's /32 or /128 when `bareIsHost`). */
export function parseIpPrefix(text: string, bareIsHost = false): IpPrefix | { problem: string } {
  const slash = text.indexOf("/");
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const bytes = ipBytes(addressText);
  if (bytes === null) return { problem: `${JSON.stringify(addressText.slice(0, 45))} is not an IPv4 or IPv6 address` };
  const family: IpFamily = bytes.length === 4 ? 4 : 6;
  const bits = family === 4 ? 32 : 128;
  if (slash < 0 && !bareIsHost) return { problem: "expected ADDRESS/PREFIX" };
  const prefixText = slash < 0 ? String(bits) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return { problem: `prefix length must be 0 to ${bits}` };
  return { family, address: ipText(bytes), prefix: Number(prefixText) };
}

export function formatIpPrefix(prefix: IpPrefix): string {
  return `${prefix.address}/${prefix.prefix}`;
}

/** burrow.net.route's value. */
export function parseNicRoute(text: string): NicRoute | { problem: string } {
  const [destinationText = "", ...options] = text.split(",");
  const destination = parseIpPrefix(destinationText, true);
  if ("problem" in destination) return { problem: `destination: ${destination.problem}` };
  const route: NicRoute = { destination, via: null, onlink: false, metric: null };
  for (const option of options) {
    if (option === "onlink") route.onlink = true;
    else if (option.startsWith("via=")) {
      const bytes = ipBytes(option.slice(4));
      if (bytes === null) return { problem: `via: ${JSON.stringify(option.slice(4, 49))} is not an IPv4 or IPv6 address` };
      if ((bytes.length === 4 ? 4 : 6) !== destination.family) return { problem: "via: the gateway's family differs from the destination's" };
      route.via = ipText(bytes);
    } else if (option.startsWith("metric=")) {
      const metric = /^\d{1,10}$/.test(option.slice(7)) ? Number(option.slice(7)) : NaN;
      if (!(metric <= 0xffffffff)) return { problem: "metric: expected a whole number from 0 to 4294967295" };
      route.metric = metric;
    } else {
      return { problem: `unknown option ${JSON.stringify(option.slice(0, 20))} (expected via=GATEWAY, onlink or metric=N)` };
    }
  }
  if (route.onlink && route.via === null) return { problem: "onlink needs via=GATEWAY" };
  return route;
}

export function formatNicRoute(route: NicRoute): string {
  return [formatIpPrefix(route.destination), ...(route.via === null ? [] : [`via=${route.via}`]), ...(route.onlink ? ["onlink"] : []), ...(route.metric === null ? [] : [`metric=${route.metric}`])].join(",");
}

/** The kernel command line words for a NIC (the host side). */
export function nicWords(nic: NicSettings & { mac: string }): string[] {
  return [
    `burrow.net.mac=${nic.mac}`,
    ...(nic.mtu === null ? [] : [`burrow.net.mtu=${nic.mtu}`]),
    ...nic.addresses.map((address) => `burrow.net.addr=${formatIpPrefix(address)}`),
    ...nic.routes.map((route) => `burrow.net.route=${formatNicRoute(route)}`),
  ];
}

/** Setters for config.ts's key table: each returns a problem or applies the value to `nic`. */
export const NIC_SETTERS: ReadonlyMap<string, (nic: NicSettings, value: string | null) => string | void> = new Map<string, (nic: NicSettings, value: string | null) => string | void>([
  [
    "burrow.net.mac",
    (nic, value) => {
      const mac = parseMac(value ?? "");
      if (typeof mac !== "string") return mac.problem;
      nic.mac = mac;
    },
  ],
  [
    "burrow.net.mtu",
    (nic, value) => {
      const mtu = value !== null && /^\d{1,5}$/.test(value) ? Number(value) : NaN;
      if (!(mtu >= MTU_MIN && mtu <= MTU_MAX)) return `expected a whole number from ${MTU_MIN} to ${MTU_MAX}`;
      nic.mtu = mtu;
    },
  ],
  [
    "burrow.net.addr",
    (nic, value) => {
      const address = parseIpPrefix(value ?? "");
      if ("problem" in address) return address.problem;
      nic.addresses.push(address);
    },
  ],
  [
    "burrow.net.route",
    (nic, value) => {
      const route = parseNicRoute(value ?? "");
      if ("problem" in route) return route.problem;
      nic.routes.push(route);
    },
  ],
]);

/** What is wrong with the settings as a whole (every word was fine on its own). */
export function nicProblem(nic: NicSettings): string | null {
  if (nic.mac === null && (nic.mtu !== null || nic.addresses.length > 0 || nic.routes.length > 0)) return "burrow.net.mtu, burrow.net.addr and burrow.net.route need burrow.net.mac (the NIC they are for); ignored";
  return null;
}
