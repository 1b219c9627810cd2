import { describe, expect, test } from "bun:test";
import { Command, REQUEST_BYTES_MAX, Reply } from "../../src/protocol/constants.ts";
import {
  addressFromHost,
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  type SocksRequest,
} from "../../src/protocol/request.ts";
import { concat, fromHex, toHex } from "../support/bytes.ts";
import { expectError, expectFraming, expectMessage } from "./helpers.ts";

// [name, wire, decoded request]
const goldenRequests: [string, string, SocksRequest][] = [
  [
    "CONNECT 127.0.0.1:80",
    "05 01 00 01 7f 00 00 01 00 50",
    { command: 1, address: { type: "ipv4", host: "127.0.0.1" }, port: 80 },
  ],
  [
    "CONNECT [2001:db8::1]:443",
    "05 01 00 04 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 01 bb",
    { command: 1, address: { type: "ipv6", host: "2001:db8::1" }, port: 443 },
  ],
  [
    "CONNECT example.com:80",
    "05 01 00 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50",
    { command: 1, address: { type: "domain", host: "example.com" }, port: 80 },
  ],
  [
    "CONNECT [::ffff:10.0.0.1]:65535",
    "05 01 00 04 00 00 00 00 00 00 00 00 00 00 ff ff 0a 00 00 01 ff ff",
    { command: 1, address: { type: "ipv6", host: "::ffff:10.0.0.1" }, port: 65535 },
  ],
  [
    "BIND 0.0.0.0:0",
    "05 02 00 01 00 00 00 00 00 00",
    { command: 2, address: { type: "ipv4", host: "0.0.0.0" }, port: 0 },
  ],
  [
    "UDP ASSOCIATE a:53",
    "05 03 00 03 01 61 00 35",
    { command: 3, address: { type: "domain", host: "a" }, port: 53 },
  ],
];

describe("decodeRequest", () => {
  test.each(goldenRequests)("golden %s", (_name, wire, request) => {
    expectFraming(decodeRequest, fromHex(wire), request);
    expect(toHex(encodeRequest(request))).toBe(toHex(fromHex(wire)));
  });

  test("BIND and UDP ASSOCIATE are messages: the caller answers 07", () => {
    expect(
      expectMessage(decodeRequest(fromHex("05 02 00 01 01 02 03 04 00 50"))).message.command,
    ).toBe(Command.BIND);
    expect(
      expectMessage(decodeRequest(fromHex("05 03 00 01 01 02 03 04 00 50"))).message.command,
    ).toBe(Command.UDP_ASSOCIATE);
  });

  test("255-byte domain is the largest request (262 bytes)", () => {
    const host = "a".repeat(255);
    const request: SocksRequest = { command: 1, address: { type: "domain", host }, port: 8080 };
    const wire = encodeRequest(request);
    expect(wire.length).toBe(REQUEST_BYTES_MAX);
    expect(toHex(wire.subarray(0, 5))).toBe("05 01 00 03 ff");
    expectFraming(decodeRequest, wire, request);
  });

  test("pipelined early data after the request is left for the caller", () => {
    const request = fromHex(goldenRequests[2][1]);
    const early = new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n");
    const { bytes } = expectMessage(decodeRequest(concat(request, early)));
    expect(bytes).toBe(request.length);
    expect(concat(request, early).subarray(bytes)).toEqual(early);
  });

  test("RSV is not checked (lenient)", () => {
    const { message } = expectMessage(decodeRequest(fromHex("05 01 ff 01 7f 00 00 01 00 50")));
    expect(message).toEqual(goldenRequests[0][2]);
  });

  test("UTF-8 domains decode; invalid bytes become U+FFFD; a BOM is kept", () => {
    const host = "bücher.example";
    const wire = encodeRequest({ command: 1, address: { type: "domain", host }, port: 80 });
    expect(expectMessage(decodeRequest(wire)).message.address.host).toBe(host);
    const invalid = fromHex("05 01 00 03 03 61 ff 62 00 50");
    expect(expectMessage(decodeRequest(invalid)).message.address.host).toBe("a\ufffdb");
    const bom = fromHex("05 01 00 03 04 ef bb bf 61 00 50");
    expect(expectMessage(decodeRequest(bom)).message.address.host).toBe("\ufeffa");
  });

  test("wrong version: close without a reply", () => {
    const error = expectError(
      decodeRequest(fromHex("04 01 00 50 7f 00 00 01 00")),
      "SOCKS_VERSION",
      null,
    );
    expect(error.message).toStartWith("unsupported SOCKS version 0x04 (expected 0x05)");
  });

  test.each([0x00, 0x04, 0x09, 0x80, 0xff])("unknown command byte %i → reply 07", (command) => {
    const wire = fromHex("05 00 00 01 7f 00 00 01 00 50");
    wire[1] = command;
    const error = expectError(decodeRequest(wire), "SOCKS_COMMAND", Reply.COMMAND_NOT_SUPPORTED);
    expect(error.message).toContain(
      `unsupported command 0x${command.toString(16).padStart(2, "0")}`,
    );
    // Detected from the first two bytes: no need to wait for the rest.
    expectError(decodeRequest(wire.subarray(0, 2)), "SOCKS_COMMAND", 0x07);
  });

  test.each([0x00, 0x02, 0x05, 0xff])(
    "unknown ATYP byte %i → reply 08, from four bytes",
    (atyp) => {
      const wire = fromHex("05 01 00 00");
      wire[3] = atyp;
      const error = expectError(
        decodeRequest(wire),
        "SOCKS_ADDRESS_TYPE",
        Reply.ADDRESS_TYPE_NOT_SUPPORTED,
      );
      expect(error.message).toContain("expected 0x01 IPv4, 0x03 domain or 0x04 IPv6");
    },
  );

  test("zero-length domain → reply 01", () => {
    const error = expectError(decodeRequest(fromHex("05 01 00 03 00")), "SOCKS_DOMAIN_EMPTY", 0x01);
    expect(error.message).toContain("length 0x00");
  });

  test("domain with a NUL byte → reply 01", () => {
    const wire = fromHex("05 01 00 03 05 61 00 62 63 64 00 50");
    const error = expectError(decodeRequest(wire), "SOCKS_DOMAIN_NUL", 0x01);
    expect(error.message).toContain("offset 1");
  });

  test("truncated inputs need more, with a lower bound that never overshoots", () => {
    expect(decodeRequest(new Uint8Array(0))).toEqual({ kind: "need-more", needed: 8 });
    expect(decodeRequest(fromHex("05 01 00"))).toEqual({ kind: "need-more", needed: 5 });
    expect(decodeRequest(fromHex("05 01 00 04"))).toEqual({ kind: "need-more", needed: 18 });
    expect(decodeRequest(fromHex("05 01 00 03"))).toEqual({ kind: "need-more", needed: 4 });
    expect(decodeRequest(fromHex("05 01 00 03 0b 65"))).toEqual({ kind: "need-more", needed: 12 });
  });
});

describe("encodeReply", () => {
  test.each([
    [
      "failure without an address",
      Reply.GENERAL_FAILURE,
      undefined,
      "05 01 00 01 00 00 00 00 00 00",
    ],
    ["refused", Reply.CONNECTION_REFUSED, undefined, "05 05 00 01 00 00 00 00 00 00"],
    ["IPv4", Reply.SUCCEEDED, { host: "127.0.0.1", port: 1080 }, "05 00 00 01 7f 00 00 01 04 38"],
    [
      "IPv6",
      Reply.SUCCEEDED,
      { host: "::1", port: 443 },
      "05 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 01 bb",
    ],
    [
      "IPv4-mapped IPv6",
      Reply.SUCCEEDED,
      { host: "::ffff:10.0.0.1", port: 80 },
      "05 00 00 04 00 00 00 00 00 00 00 00 00 00 ff ff 0a 00 00 01 00 50",
    ],
    [
      "IPv6 with a zone id, dropped",
      Reply.SUCCEEDED,
      { host: "fe80::1%eth0", port: 1 },
      "05 00 00 04 fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 01",
    ],
    [
      "a non-literal host is sent as a domain",
      Reply.SUCCEEDED,
      { host: "proxy.local", port: 1 },
      "05 00 00 03 0b 70 72 6f 78 79 2e 6c 6f 63 61 6c 00 01",
    ],
  ])("%s", (_name, reply, bound, wire) => {
    const encoded = encodeReply(reply, bound);
    expect(toHex(encoded)).toBe(toHex(fromHex(wire)));
    const { message, bytes } = expectMessage(decodeReply(encoded));
    expect(bytes).toBe(encoded.length);
    expect(message.reply).toBe(reply);
    expect(message.port).toBe(bound?.port ?? 0);
  });

  test("every reply code encodes", () => {
    for (const code of Object.values(Reply)) {
      expect(toHex(encodeReply(code).subarray(0, 4))).toBe(`05 0${code} 00 01`);
    }
  });

  test("bad arguments are bugs and throw", () => {
    expect(() => encodeReply(0x100)).toThrow(RangeError);
    expect(() => encodeReply(0, { host: "127.0.0.1", port: 65536 })).toThrow(RangeError);
    expect(() => encodeReply(0, { host: "127.0.0.1", port: -1 })).toThrow(RangeError);
    expect(() => encodeReply(0, { host: "127.0.0.1", port: 1.5 })).toThrow(RangeError);
    expect(() => encodeReply(0, { host: "", port: 1 })).toThrow(RangeError);
    expect(() => encodeReply(0, { host: "x".repeat(256), port: 1 })).toThrow(RangeError);
    expect(() => encodeReply(0, { host: "a\0b", port: 1 })).toThrow(RangeError);
  });
});

describe("decodeReply", () => {
  test("framing of a success reply", () => {
    expectFraming(decodeReply, fromHex("05 00 00 01 c0 00 02 01 d4 31"), {
      reply: 0,
      address: { type: "ipv4", host: "192.0.2.1" },
      port: 54321,
    });
  });

  test("any REP byte is returned; a bad version or ATYP is an error", () => {
    expect(expectMessage(decodeReply(encodeReply(0x7f))).message.reply).toBe(0x7f);
    expectError(decodeReply(fromHex("01 00")), "SOCKS_VERSION", null);
    expectError(decodeReply(fromHex("05 00 00 02")), "SOCKS_ADDRESS_TYPE", 0x08);
  });
});

describe("addressFromHost", () => {
  test.each([
    ["10.1.2.3", { type: "ipv4", host: "10.1.2.3" }],
    ["2001:DB8:0:0::1", { type: "ipv6", host: "2001:db8::1" }],
    ["fe80::1%lo", { type: "ipv6", host: "fe80::1" }],
    ["example.com", { type: "domain", host: "example.com" }],
    ["01.2.3.4", { type: "domain", host: "01.2.3.4" }], // not a literal we accept
  ])("%s", (host, address) => {
    expect(addressFromHost(host)).toEqual(address as ReturnType<typeof addressFromHost>);
  });
});
