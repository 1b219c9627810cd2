// The SOCKS5 UDP request header (RFC 1928 §7): every ATYP, fragments reported, and every way a
// datagram's header can be malformed. A datagram is whole: short means malformed, not "wait".

import { describe, expect, test } from "bun:test";
import { decodeUdpHeader, encodeUdpHeader } from "../../src/protocol/udp.ts";

const payload = new TextEncoder().encode("dns?");
const datagram = (...parts: (Uint8Array | readonly number[])[]) =>
  Uint8Array.from(parts.flatMap((part) => [...part]));

describe("decodeUdpHeader", () => {
  test.each([
    ["IPv4", [0, 0, 0, 0x01, 192, 0, 2, 1, 0, 53], { type: "ipv4", host: "192.0.2.1" }, 53],
    [
      "IPv6",
      [0, 0, 0, 0x04, 0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1, 0x01, 0xbb],
      { type: "ipv6", host: "2001:db8::1" },
      443,
    ],
    [
      "domain",
      [0, 0, 0, 0x03, 11, ...new TextEncoder().encode("example.com"), 0x13, 0x88],
      { type: "domain", host: "example.com" },
      5000,
    ],
  ] as const)("%s: destination and payload offset", (_name, header, address, port) => {
    const decoded = decodeUdpHeader(datagram(header, payload));
    expect(decoded).toEqual({
      kind: "datagram",
      header: { frag: 0, address, port, dataOffset: header.length },
    });
  });

  test("an empty payload is a datagram (a zero-length UDP payload is legal)", () => {
    expect(decodeUdpHeader(datagram([0, 0, 0, 1, 127, 0, 0, 1, 0, 7])).kind).toBe("datagram");
  });

  test("FRAG is reported, for the caller to drop and count", () => {
    const decoded = decodeUdpHeader(datagram([0, 0, 3, 1, 127, 0, 0, 1, 0, 7], payload));
    expect(decoded.kind === "datagram" && decoded.header.frag).toBe(3);
  });

  test.each([
    ["shorter than RSV FRAG ATYP", [0, 0, 0], "truncated"],
    ["an IPv4 address cut short", [0, 0, 0, 1, 127, 0], "truncated"],
    ["no port", [0, 0, 0, 1, 127, 0, 0, 1, 0], "truncated"],
    ["a domain longer than the datagram", [0, 0, 0, 3, 20, 0x61, 0x62], "truncated"],
    ["an unknown ATYP", [0, 0, 0, 0x05, 1, 2, 3, 4, 0, 1], "address_type"],
    ["an empty domain", [0, 0, 0, 3, 0, 0, 53], "domain"],
    ["a domain with NUL", [0, 0, 0, 3, 3, 0x61, 0, 0x62, 0, 53], "domain"],
  ] as const)("%s is invalid (%s)", (_name, bytes, reason) => {
    expect(decodeUdpHeader(Uint8Array.from(bytes))).toEqual({ kind: "invalid", reason });
  });
});

describe("encodeUdpHeader", () => {
  test.each([
    ["192.0.2.1", 53],
    ["2001:db8::1", 443],
    ["example.com", 5000],
  ])("%s:%d round-trips through decodeUdpHeader", (host, port) => {
    const header = encodeUdpHeader(host, port);
    expect([...header.subarray(0, 3)]).toEqual([0, 0, 0]);
    const decoded = decodeUdpHeader(datagram(header, payload));
    expect(decoded.kind === "datagram" && decoded.header).toMatchObject({
      frag: 0,
      address: { host },
      port,
      dataOffset: header.length,
    });
  });
});
