// The auto front, pure: the first byte picks SOCKS5 or HTTP CONNECT, and every later call goes to
// the front it picked. Not either protocol's own cases (socks-handshake.test.ts, http-connect.test.ts).

import { describe, expect, test } from "bun:test";
import { AutoFront } from "../../src/protocol/auto-front.ts";
import { dialFailure } from "../../src/protocol/failures.ts";
import { HttpConnectFront } from "../../src/protocol/http-connect.ts";
import { Socks5Handshake } from "../../src/protocol/socks-handshake.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const auto = () =>
  new AutoFront(
    () => new Socks5Handshake(null),
    () => new HttpConnectFront(null, 4096),
  );

describe("AutoFront", () => {
  test("0x05 is SOCKS5: the greeting is answered 05 00", () => {
    const front = auto();
    expect(front.protocol).toBeNull();
    expect(front.feed(Uint8Array.of(0x05, 0x01, 0x00))).toEqual({
      kind: "reply",
      consumed: 3,
      bytes: Uint8Array.of(0x05, 0x00),
    });
    expect(front.protocol).toBe("socks");
    expect(front.describe(front.dialFailed(dialFailure("ECONNREFUSED")))).toEqual({ reply: 5 });
  });

  test("a letter is HTTP: a CONNECT head dials, and answers are HTTP", () => {
    const front = auto();
    expect(front.feed(bytes("CONNECT a.example:443 HTTP/1.1\r\n\r\nearly"))).toEqual({
      kind: "dial",
      consumed: 34, // the head; "early" is left for the relay
      request: { host: "a.example", port: 443 },
    });
    expect(front.protocol).toBe("http");
    expect(front.describe(front.dialFailed(dialFailure("ETIMEDOUT")))).toEqual({ status: 504 });
    const lower = auto();
    expect(lower.feed(bytes("get / HTTP/1.1\r\n\r\n"))).toMatchObject({ kind: "refuse" });
    expect(lower.protocol).toBe("http");
  });

  test("a split first message: nothing is chosen on no bytes, and the choice holds after", () => {
    const front = auto();
    expect(front.feed(new Uint8Array())).toEqual({ kind: "need-more" });
    expect(front.protocol).toBeNull();
    expect(front.feed(bytes("CONN"))).toEqual({ kind: "need-more" });
    expect(front.feed(bytes("CONNECT b:1 HTTP/1.1\r\n\r\n"))).toMatchObject({ kind: "dial" });
  });

  test("anything else is SOCKS5's wrong version: refused with no reply", () => {
    for (const first of [0x04, 0x00, 0x31, 0x7f, 0xff]) {
      expect(auto().feed(Uint8Array.of(first, 0x01, 0x00))).toMatchObject({
        kind: "refuse",
        code: "SOCKS_VERSION",
        reply: null,
      });
    }
  });

  test("an answer before the first byte is a bug, and says so", () => {
    expect(() => auto().succeeded({ host: "0.0.0.0", port: 0 })).toThrow("before its first byte");
  });
});
