// The PROXY protocol header codec against byte vectors: the examples of HAProxy's specification
// (v1 lines, the worst-case line, UNKNOWN), a v2 header captured from HAProxy's send-proxy-v2, and
// every way a header can be malformed, whole and fed a byte at a time.

import { describe, expect, test } from "bun:test";
import {
  encodeProxyV1,
  encodeProxyV2,
  PROXY_V1_BYTES_MAX,
  PROXY_V2_BYTES_MAX,
  PROXY_V2_SIGNATURE,
  parseProxyHeader,
} from "../../src/protocol/proxy-header.ts";

const text = (line: string) => new TextEncoder().encode(line);
const hex = (digits: string) => Uint8Array.from(Buffer.from(digits.replace(/\s+/g, ""), "hex"));

/** Feeds `bytes` one more byte at a time: every proper prefix must be need-more. */
function prefixesNeedMore(bytes: Uint8Array, upTo = bytes.length): void {
  for (let length = 0; length < upTo; length++) {
    expect(parseProxyHeader(bytes.subarray(0, length))).toEqual({ kind: "need-more" });
  }
}

describe("version 1", () => {
  test("the specification's TCP4 example, with the payload after it left alone", () => {
    const header = text("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
    const input = new Uint8Array([...header, ...text("GET / HTTP/1.1\r\n")]);
    expect(parseProxyHeader(input)).toEqual({
      kind: "header",
      header: {
        version: 1,
        source: { host: "192.168.0.1", port: 56324 },
        destination: { host: "192.168.0.11", port: 443 },
      },
      consumed: header.length,
    });
    prefixesNeedMore(header);
  });

  test("TCP6, normalised", () => {
    const header = text("PROXY TCP6 2001:DB8::1 ::ffff:192.0.2.1 65535 0\r\n");
    expect(parseProxyHeader(header)).toEqual({
      kind: "header",
      header: {
        version: 1,
        source: { host: "2001:db8::1", port: 65535 },
        destination: { host: "::ffff:192.0.2.1", port: 0 },
      },
      consumed: header.length,
    });
  });

  test("the specification's worst case is exactly 107 bytes and accepted", () => {
    const worst = text(
      "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".replaceAll(
        "ffff:f...f:ffff",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      ),
    );
    expect(worst.length).toBe(PROXY_V1_BYTES_MAX);
    expect(parseProxyHeader(worst)).toEqual({
      kind: "header",
      header: { version: 1 },
      consumed: PROXY_V1_BYTES_MAX,
    });
    const tcp6 = text(new TextDecoder().decode(worst).replace("UNKNOWN", "TCP6"));
    expect(parseProxyHeader(tcp6).kind).toBe("header");
  });

  test("UNKNOWN carries no address, with or without the rest of the line", () => {
    for (const line of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"]) {
      expect(parseProxyHeader(text(line))).toEqual({
        kind: "header",
        header: { version: 1 },
        consumed: line.length,
      });
    }
  });

  test.each([
    ["PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n", "expected PROXY TCP4|TCP6"],
    ["PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n", 'unknown protocol "TCP5"'],
    ["PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n", "bad TCP4 address"],
    ["PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n", "bad TCP4 address"],
    ["PROXY TCP4 ::1 ::1 1 2\r\n", "bad TCP4 address"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n", "or port"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n", "or port"],
    ["PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n", "expected PROXY TCP4|TCP6"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX", "CR not followed by LF"],
    ["PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n", "printable ASCII"],
    ["GET / HTTP/1.1\r\n", "not a PROXY protocol header"],
    ["\x05\x01\x00", "not a PROXY protocol header"],
  ])("%j is invalid: %s", (line, reason) => {
    const step = parseProxyHeader(text(line));
    expect(step.kind).toBe("invalid");
    expect(step.kind === "invalid" && step.reason).toContain(reason);
  });

  test("a line with no CRLF within 107 bytes is invalid, before that it waits", () => {
    const long = text(`PROXY TCP4 ${"1".repeat(200)}`);
    prefixesNeedMore(long, PROXY_V1_BYTES_MAX);
    expect(parseProxyHeader(long.subarray(0, PROXY_V1_BYTES_MAX))).toEqual({
      kind: "invalid",
      reason: "v1: no CRLF within 107 bytes",
    });
  });
});

describe("version 2", () => {
  // HAProxy's send-proxy-v2 for 172.19.0.1:42578 → 172.19.0.3:80, then the client's request.
  const HAPROXY_V2 = hex(`
    0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a 21 11 00 0c
    ac 13 00 01 ac 13 00 03 a6 52 00 50`);

  test("a header captured from HAProxy", () => {
    const input = new Uint8Array([...HAPROXY_V2, ...text("GET / HTTP/1.1\r\n")]);
    expect(parseProxyHeader(input)).toEqual({
      kind: "header",
      header: {
        version: 2,
        source: { host: "172.19.0.1", port: 42578 },
        destination: { host: "172.19.0.3", port: 80 },
      },
      consumed: 28,
    });
    prefixesNeedMore(HAPROXY_V2);
  });

  test("INET6 with TLVs after the addresses: the TLVs are skipped", () => {
    const addresses = encodeProxyV2(
      { host: "2001:db8::7", port: 5000 },
      { host: "2001:db8::1", port: 1080 },
    );
    const tlv = hex("04 00 03 61 62 63"); // PP2_TYPE_NOOP, 3 bytes
    const input = new Uint8Array([...addresses, ...tlv]);
    new DataView(input.buffer).setUint16(14, 36 + tlv.length);
    expect(parseProxyHeader(input)).toEqual({
      kind: "header",
      header: {
        version: 2,
        source: { host: "2001:db8::7", port: 5000 },
        destination: { host: "2001:db8::1", port: 1080 },
      },
      consumed: 16 + 36 + tlv.length,
    });
  });

  test("LOCAL (a balancer's health check) is consumed with no address", () => {
    const local = encodeProxyV2();
    expect([...local.subarray(12)]).toEqual([0x20, 0x00, 0x00, 0x00]);
    expect(parseProxyHeader(local)).toEqual({
      kind: "header",
      header: { version: 2 },
      consumed: 16,
    });
  });

  test("UNSPEC, UNIX and DGRAM under PROXY keep the connection's own addresses", () => {
    for (const [familyTransport, length] of [
      [0x00, 0],
      [0x31, 216],
      [0x12, 12],
    ] as const) {
      const header = new Uint8Array(16 + length);
      header.set(PROXY_V2_SIGNATURE);
      header[12] = 0x21;
      header[13] = familyTransport;
      new DataView(header.buffer).setUint16(14, length);
      expect(parseProxyHeader(header)).toEqual({
        kind: "header",
        header: { version: 2 },
        consumed: 16 + length,
      });
    }
  });

  function withByte(index: number, value: number): Uint8Array {
    const copy = HAPROXY_V2.slice();
    copy[index] = value;
    return copy;
  }

  test.each([
    ["version 1 in a v2 block", withByte(12, 0x11), "version 1, expected 2"],
    ["command 2", withByte(12, 0x22), "unknown command 2"],
    ["family 4", withByte(13, 0x41), "unknown family/transport 0x41"],
    ["transport 3", withByte(13, 0x13), "unknown family/transport 0x13"],
    ["a length too short for INET", withByte(15, 11), "cannot hold the addresses"],
    ["a length over our bound", withByte(14, 0x02), `over our bound of ${PROXY_V2_BYTES_MAX}`],
    ["a broken signature", withByte(11, 0x0b), "not a PROXY protocol header"],
  ])("%s is invalid", (_name, bytes, reason) => {
    const step = parseProxyHeader(bytes);
    expect(step.kind).toBe("invalid");
    expect(step.kind === "invalid" && step.reason).toContain(reason);
  });
});

describe("encoders round-trip through the parser", () => {
  test.each([
    [
      { host: "192.0.2.1", port: 1 },
      { host: "198.51.100.2", port: 65535 },
    ],
    [
      { host: "::1", port: 0 },
      { host: "fe80::1", port: 443 },
    ],
  ])("%p → %p", (source, destination) => {
    for (const [version, bytes] of [
      [1, encodeProxyV1(source, destination)],
      [2, encodeProxyV2(source, destination)],
    ] as const) {
      expect(parseProxyHeader(bytes)).toEqual({
        kind: "header",
        header: { version, source, destination },
        consumed: bytes.length,
      });
    }
  });
});
