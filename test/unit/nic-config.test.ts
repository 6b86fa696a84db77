// The guest NIC's kernel command line words (config/nic.ts): addresses read and written back in
// canonical form, routes with their options, the words the host writes parsed by the guest's
// config into the same settings, and every bad value a problem naming the word.
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/config";
import { formatNicRoute, ipBytes, ipText, nicWords, parseIpPrefix, parseMac, parseNicRoute, type NicSettings } from "../../src/config/nic";

describe("addresses", () => {
  test("IPv4 and IPv6 to bytes and back, in canonical form (RFC 5952)", () => {
    expect([...ipBytes("10.88.0.4")!]).toEqual([10, 88, 0, 4]);
    const cases: [string, string][] = [
      ["fd42:b::2", "fd42:b::2"],
      ["FD42:000B:0:0:0:0:0:0002", "fd42:b::2"],
      ["::", "::"],
      ["::1", "::1"],
      ["fe80::a49c:89ff:fece:e611", "fe80::a49c:89ff:fece:e611"],
      ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
      ["1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"],
      ["::ffff:10.1.2.3", "::ffff:a01:203"],
    ];
    for (const [input, canonical] of cases) {
      const bytes = ipBytes(input);
      expect(bytes?.length).toBe(16);
      expect(ipText(bytes!)).toBe(canonical);
    }
  });

  test("what is no address", () => {
    for (const bad of ["", "10.88.0", "10.88.0.256", "10.088.0.1", "1.2.3.4.5", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", "::g", "12345::", "fe80::1%eth0", "1:2:3:4:5:6:7::8"]) {
      expect(ipBytes(bad)).toBeNull();
    }
  });

  test("ADDR/PREFIX; a bare address only where a host route is meant", () => {
    expect(parseIpPrefix("10.88.0.4/16")).toEqual({ family: 4, address: "10.88.0.4", prefix: 16 });
    expect(parseIpPrefix("fd42:B::2/64")).toEqual({ family: 6, address: "fd42:b::2", prefix: 64 });
    expect(parseIpPrefix("10.88.0.4")).toEqual({ problem: "expected ADDRESS/PREFIX" });
    expect(parseIpPrefix("10.88.0.4", true)).toEqual({ family: 4, address: "10.88.0.4", prefix: 32 });
    expect(parseIpPrefix("::1", true)).toEqual({ family: 6, address: "::1", prefix: 128 });
    expect(parseIpPrefix("10.88.0.4/33")).toEqual({ problem: "prefix length must be 0 to 32" });
    expect(parseIpPrefix("::1/129")).toEqual({ problem: "prefix length must be 0 to 128" });
    expect(parseIpPrefix("10.88.0.4/")).toEqual({ problem: "prefix length must be 0 to 32" });
    expect(parseIpPrefix("web/24")).toEqual({ problem: '"web" is not an IPv4 or IPv6 address' });
  });

  test("a NIC's MAC: six hex pairs, unicast, not all zero; lower-cased", () => {
    expect(parseMac("A6:9C:89:CE:E6:11")).toBe("a6:9c:89:ce:e6:11");
    expect(parseMac("a6-9c-89-ce-e6-11")).toEqual({ problem: "expected a MAC address (six hex pairs separated by colons)" });
    expect(parseMac("01:00:5e:00:00:01")).toEqual({ problem: "a multicast MAC address cannot be a NIC's" });
    expect(parseMac("00:00:00:00:00:00")).toEqual({ problem: "the all-zero MAC address cannot be a NIC's" });
  });
});

describe("routes", () => {
  test("DEST/PREFIX with via, onlink and metric, written back the same", () => {
    const route = parseNicRoute("0.0.0.0/0,via=10.88.0.1,metric=100");
    expect(route).toEqual({ destination: { family: 4, address: "0.0.0.0", prefix: 0 }, via: "10.88.0.1", onlink: false, metric: 100 });
    expect(formatNicRoute(route as never)).toBe("0.0.0.0/0,via=10.88.0.1,metric=100");
    const onlink = parseNicRoute("::/0,via=FE80::1,onlink");
    expect(onlink).toEqual({ destination: { family: 6, address: "::", prefix: 0 }, via: "fe80::1", onlink: true, metric: null });
    expect(formatNicRoute(onlink as never)).toBe("::/0,via=fe80::1,onlink");
    // A link route (no gateway): Calico's 169.254.1.1 next hop.
    expect(formatNicRoute(parseNicRoute("169.254.1.1") as never)).toBe("169.254.1.1/32");
  });

  test("bad routes are refused with what is wrong", () => {
    expect(parseNicRoute("default,via=10.88.0.1")).toEqual({ problem: 'destination: "default" is not an IPv4 or IPv6 address' });
    expect(parseNicRoute("0.0.0.0/0,via=fd42::1")).toEqual({ problem: "via: the gateway's family differs from the destination's" });
    expect(parseNicRoute("0.0.0.0/0,via=gw")).toEqual({ problem: 'via: "gw" is not an IPv4 or IPv6 address' });
    expect(parseNicRoute("0.0.0.0/0,metric=-1")).toEqual({ problem: "metric: expected a whole number from 0 to 4294967295" });
    expect(parseNicRoute("0.0.0.0/0,metric=4294967296")).toEqual({ problem: "metric: expected a whole number from 0 to 4294967295" });
    expect(parseNicRoute("0.0.0.0/0,onlink")).toEqual({ problem: "onlink needs via=GATEWAY" });
    expect(parseNicRoute("0.0.0.0/0,dev=eth0")).toEqual({ problem: 'unknown option "dev=eth0" (expected via=GATEWAY, onlink or metric=N)' });
  });
});

describe("the host's words, the guest's config", () => {
  const nic: NicSettings & { mac: string } = {
    mac: "a6:9c:89:ce:e6:11",
    mtu: 1400,
    addresses: [{ family: 4, address: "10.88.0.4", prefix: 16 }, { family: 6, address: "fd42:b::2", prefix: 64 }],
    routes: [
      { destination: { family: 4, address: "0.0.0.0", prefix: 0 }, via: "10.88.0.1", onlink: false, metric: 100 },
      { destination: { family: 6, address: "::", prefix: 0 }, via: "fd42:b::1", onlink: false, metric: null },
    ],
  };

  test("nicWords parsed by parseConfig give the same settings, no problem", () => {
    const words = nicWords(nic);
    expect(words).toEqual([
      "burrow.net.mac=a6:9c:89:ce:e6:11",
      "burrow.net.mtu=1400",
      "burrow.net.addr=10.88.0.4/16",
      "burrow.net.addr=fd42:b::2/64",
      "burrow.net.route=0.0.0.0/0,via=10.88.0.1,metric=100",
      "burrow.net.route=::/0,via=fd42:b::1",
    ]);
    const config = parseConfig(`burrow.net.lo=1 ${words.join(" ")}`);
    expect(config.problems).toEqual([]);
    expect(config.nic).toEqual(nic);
    expect(config.loopback).toBe(true);
  });

  test("the defaults: no NIC, loopback left alone", () => {
    const config = parseConfig("");
    expect(config.nic).toEqual({ mac: null, mtu: null, addresses: [], routes: [] });
    expect(config.loopback).toBe(false);
  });

  test("each bad word is a problem naming it; the good ones stand", () => {
    const config = parseConfig("burrow.net.mac=a6:9c:89:ce:e6:11 burrow.net.mtu=67 burrow.net.addr=10.88.0.4 burrow.net.route=0.0.0.0/0,via=fd42::1 burrow.net.addr=10.88.0.5/16");
    expect(config.problems.map((problem) => problem.message)).toEqual([
      "burrow.net.mtu=67: expected a whole number from 68 to 65535",
      "burrow.net.addr=10.88.0.4: expected ADDRESS/PREFIX",
      "burrow.net.route=0.0.0.0/0,via=fd42::1: via: the gateway's family differs from the destination's",
    ]);
    expect(config.nic).toEqual({ mac: "a6:9c:89:ce:e6:11", mtu: null, addresses: [{ family: 4, address: "10.88.0.5", prefix: 16 }], routes: [] });
  });

  test("settings without burrow.net.mac are one problem and dropped", () => {
    const config = parseConfig("burrow.net.addr=10.88.0.4/16 burrow.net.mtu=1500");
    expect(config.problems.map((problem) => problem.message)).toEqual(["burrow.net.mtu, burrow.net.addr and burrow.net.route need burrow.net.mac (the NIC they are for); ignored"]);
    expect(config.nic).toEqual({ mac: null, mtu: null, addresses: [], routes: [] });
  });

  test("a bad MAC is refused", () => {
    const config = parseConfig("burrow.net.mac=ff:ff:ff:ff:ff:ff");
    expect(config.problems.map((problem) => problem.message)).toEqual(["burrow.net.mac=ff:ff:ff:ff:ff:ff: a multicast MAC address cannot be a NIC's"]);
    expect(config.nic.mac).toBeNull();
  });
});
