import { describe, expect, test } from "bun:test";
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "../../src/protocol/ip.ts";
import { fromHex, toHex } from "../support/bytes.ts";
import { Prng } from "../support/prng.ts";
import { testSeed } from "../support/seed.ts";

describe("IPv4", () => {
  test.each([
    ["0.0.0.0", "00 00 00 00"],
    ["127.0.0.1", "7f 00 00 01"],
    ["192.0.2.1", "c0 00 02 01"],
    ["255.255.255.255", "ff ff ff ff"],
  ])("%s ⇄ %s", (text, wire) => {
    expect(toHex(parseIPv4(text)!)).toBe(wire);
    expect(formatIPv4(fromHex(wire))).toBe(text);
  });

  test.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.0.0.1",
    "1.2.3.1000",
    "01.2.3.4", // leading zero: octal to inet_aton
    "1..2.3",
    "a.b.c.d",
    "1.2.3.-4",
    "1.2.3.+4",
    " 1.2.3.4",
    "1.2.3.4 ",
    "0x7f.0.0.1",
    "::1",
  ])("refuses %j", (text) => {
    expect(parseIPv4(text)).toBeNull();
  });
});

describe("IPv6", () => {
  // [text as written, canonical text, bytes]
  test.each([
    ["::", "::", "00000000000000000000000000000000"],
    ["::1", "::1", "00000000000000000000000000000001"],
    ["1::", "1::", "00010000000000000000000000000000"],
    ["2001:db8::1", "2001:db8::1", "20010db8000000000000000000000001"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", "20010db8000000000000000000000001"],
    ["2001:DB8::A", "2001:db8::a", "20010db800000000000000000000000a"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8", "00010002000300040005000600070008"],
    ["fe80::", "fe80::", "fe800000000000000000000000000000"],
    // A lone zero group is not compressed (RFC 5952 §4.2.2).
    ["1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7", "00010000000200030004000500060007"],
    // "::" may stand for one group on input; output spells it out.
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0", "00010002000300040005000600070000"],
    // The longest run wins (§4.2.3) ...
    ["1:0:0:2:0:0:0:3", "1:0:0:2::3", "00010000000000020000000000000003"],
    // ... and the first one on a tie.
    ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4", "00010000000000020000000000030004"],
    [
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      "ff".repeat(16),
    ],
    // IPv4-mapped keeps its dotted tail (§5), whichever way it was written.
    ["::ffff:1.2.3.4", "::ffff:1.2.3.4", "00000000000000000000ffff01020304"],
    ["::FFFF:102:304", "::ffff:1.2.3.4", "00000000000000000000ffff01020304"],
    ["0:0:0:0:0:ffff:192.0.2.128", "::ffff:192.0.2.128", "00000000000000000000ffffc0000280"],
    // Other embeddings are plain hex on output.
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221", "0064ff9b0000000000000000c0000221"],
    ["::1.2.3.4", "::102:304", "00000000000000000000000001020304"],
  ])("%s → %s", (text, canonical, wire) => {
    const bytes = parseIPv6(text);
    expect(bytes).not.toBeNull();
    expect(toHex(bytes!)).toBe(toHex(fromHex(wire)));
    expect(formatIPv6(bytes!)).toBe(canonical);
    expect(toHex(parseIPv6(canonical)!)).toBe(toHex(bytes!));
  });

  test.each([
    "",
    ":",
    ":::",
    "1::2::3",
    "::1::",
    "12345::",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:8::",
    "::1:2:3:4:5:6:7:8",
    ":1::",
    "1::2:",
    ":1:2:3:4:5:6:7:8",
    "g::",
    "1.2.3.4",
    "1.2.3.4::",
    "::1.2.3",
    "::1.2.3.256",
    "::01.2.3.4",
    "::ffff:1.2.3.4:5",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::1%eth0",
    "[::1]",
    " ::1",
    "::1 ",
    "0000:0000:0000:0000:0000:0000:255.255.255.255:0",
  ])("refuses %j", (text) => {
    expect(parseIPv6(text)).toBeNull();
  });

  test("the longest valid text (45 chars) parses", () => {
    const text = "0000:0000:0000:0000:0000:ffff:255.255.255.255";
    expect(text.length).toBe(45);
    expect(formatIPv6(parseIPv6(text)!)).toBe("::ffff:255.255.255.255");
  });

  test("formatters refuse the wrong byte count", () => {
    expect(() => formatIPv4(new Uint8Array(16))).toThrow(RangeError);
    expect(() => formatIPv6(new Uint8Array(4))).toThrow(RangeError);
  });

  test("random addresses: parse(format(bytes)) === bytes, and the text is canonical", () => {
    const random = new Prng(testSeed("ip.test random IPv6"));
    for (let round = 0; round < 5000; round++) {
      const bytes = new Uint8Array(16);
      // Mostly-zero groups, so zero runs of every length and position come up.
      for (let group = 0; group < 8; group++) {
        if (random.next() < 0.5) continue;
        const value = random.next() < 0.3 ? 0xffff : random.int(0x10000);
        bytes[group * 2] = value >> 8;
        bytes[group * 2 + 1] = value & 0xff;
      }
      const text = formatIPv6(bytes);
      expect(text).toBe(text.toLowerCase());
      expect(text).not.toMatch(/(^|:)0[0-9a-f]/); // no leading zeros
      expect(text.split("::").length).toBeLessThanOrEqual(2);
      expect(toHex(parseIPv6(text)!)).toBe(toHex(bytes));
      // Oracle: the WHATWG URL serializer compresses the same way, but writes mapped IPv4 in hex.
      if (!text.startsWith("::ffff:") || !text.includes(".")) {
        expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`);
      }
    }
  });
});
