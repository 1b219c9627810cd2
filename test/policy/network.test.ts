// CIDR parsing and matching: exact bytes, partial-byte prefixes, and IPv4-mapped IPv6 folded to IPv4.

import { expect, test } from "bun:test";
import {
  addressInNetworks,
  canonicalAddress,
  inNetwork,
  type Network,
  parseNetwork,
} from "../../src/policy/network.ts";
import { parseIPLiteral } from "../../src/protocol/ip.ts";

function address(text: string) {
  const literal = parseIPLiteral(text);
  if (literal === null) throw new Error(`not an address: ${text}`);
  return canonicalAddress(literal);
}

test.each([
  ["10.0.0.0/8", "10.255.1.2", true],
  ["10.0.0.0/8", "11.0.0.1", false],
  ["192.168.1.5", "192.168.1.5", true],
  ["192.168.1.5", "192.168.1.6", false],
  ["172.16.0.0/12", "172.31.255.255", true], // partial byte: 0x10/12 covers 0x10..0x1f
  ["172.16.0.0/12", "172.32.0.0", false],
  ["0.0.0.0/0", "203.0.113.9", true],
  ["fe80::/10", "fe80::1", true],
  ["fe80::/10", "febf::1", true],
  ["fe80::/10", "fec0::1", false],
  ["2001:db8::/32", "2001:db8:ffff::1", true],
  ["10.0.0.0/8", "::ffff:10.1.2.3", true], // an IPv4 rule holds for the mapped form
  ["::ffff:10.0.0.0/104", "10.9.9.9", true], // a mapped network is an IPv4 one
  ["10.0.0.0/8", "fe80::1", false], // families never match each other
])("%s contains %s: %p", (network, text, expected) => {
  const parsed = parseNetwork(network);
  expect(parsed).not.toBeNull();
  expect(inNetwork(parsed!, address(text))).toBe(expected);
});

test.each([
  "10.0.0.0/33",
  "fe80::/129",
  "10.0.0.0/",
  "10.0.0.0/8/8",
  "10.0.0/8",
  "example.com",
  "fe80::1%eth0/64",
  "10.0.0.0/-1",
  "",
])("rejects %p", (text) => {
  expect(parseNetwork(text)).toBeNull();
});

test("host bits past the prefix are ignored, as routers read it", () => {
  expect(inNetwork(parseNetwork("10.1.2.3/8")!, address("10.200.0.1"))).toBe(true);
});

test("addressInNetworks: a socket's address against a list (trusted proxies); absent or bad fails closed", () => {
  const networks = ["127.0.0.2/32", "10.0.0.0/8", "fd00::/8"].map((text) => parseNetwork(text)!);
  expect(addressInNetworks(networks, "127.0.0.2")).toBe(true);
  expect(addressInNetworks(networks, "::ffff:127.0.0.2")).toBe(true); // a dual-stack listener's view
  expect(addressInNetworks(networks, "10.200.0.1")).toBe(true);
  expect(addressInNetworks(networks, "fd12::1")).toBe(true);
  expect(addressInNetworks(networks, "127.0.0.1")).toBe(false);
  expect(addressInNetworks(networks, undefined)).toBe(false);
  expect(addressInNetworks(networks, "not an address")).toBe(false);
  expect(addressInNetworks([] as Network[], "127.0.0.2")).toBe(false);
});
