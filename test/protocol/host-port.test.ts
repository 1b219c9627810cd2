// HOST:PORT parsing and formatting: the one parser the config, the proxy and the tests use.

import { describe, expect, test } from "bun:test";
import { formatHostPort, parseHostPort } from "../../src/protocol/host-port.ts";
import { parseIPLiteral } from "../../src/protocol/ip.ts";

describe("parseHostPort", () => {
  test.each([
    ["127.0.0.1:1080", "127.0.0.1", 1080],
    ["[::1]:1080", "::1", 1080],
    ["[fe80::1%eth0]:80", "fe80::1%eth0", 80],
    ["[::ffff:10.0.0.1]:443", "::ffff:10.0.0.1", 443],
    ["example.com:0", "example.com", 0],
    ["db_primary.internal:65535", "db_primary.internal", 65535],
  ])("%s is host %s port %d", (text, host, port) => {
    expect(parseHostPort(text)).toEqual({ host, port });
  });

  test.each([
    "::1:80", // unbracketed IPv6
    "[::1]", // no port
    "[nope]:80", // brackets around something that is not IPv6
    "127.0.0.1:65536",
    "127.0.0.1:70000",
    "999.0.0.1:80",
    "1.2.3:80",
    ":80",
    "host:",
    "host:80x",
    "two words:80",
    `${"a".repeat(254)}:80`,
  ])("%s is refused", (text) => {
    expect(parseHostPort(text)).toBeNull();
  });
});

test("formatHostPort is the inverse of parseHostPort, bracketing IPv6", () => {
  expect(formatHostPort("127.0.0.1", 1080)).toBe("127.0.0.1:1080");
  expect(formatHostPort("::1", 0)).toBe("[::1]:0");
  for (const text of ["127.0.0.1:1080", "[::1]:443", "localhost:80", "[2001:db8::1]:65535"]) {
    const parsed = parseHostPort(text)!;
    expect(formatHostPort(parsed.host, parsed.port)).toBe(text);
  }
});

describe("parseIPLiteral", () => {
  test("IPv4, IPv6 and scoped IPv6 are literals; names and near misses are not", () => {
    expect(parseIPLiteral("192.0.2.1")).toEqual({ family: 4, bytes: Uint8Array.of(192, 0, 2, 1) });
    expect(parseIPLiteral("::1")?.family).toBe(6);
    expect(parseIPLiteral("fe80::1%eth0")).toMatchObject({ family: 6, zone: "eth0" });
    expect(parseIPLiteral("::1")).toMatchObject({ zone: undefined });
    for (const text of ["example.com", "999.0.0.1", "010.0.0.1", "1.2.3", "[::1]", ""]) {
      expect(parseIPLiteral(text)).toBeNull();
    }
  });
});
