import { describe, expect, test } from "bun:test";
import {
  AuthRequest,
  decodeAuthReply,
  decodeAuthRequest,
  encodeAuthReply,
  encodeAuthRequest,
} from "../../src/protocol/auth.ts";
import { AuthStatus } from "../../src/protocol/constants.ts";
import { fromHex, toHex } from "../support/bytes.ts";
import { expectError, expectFraming, expectMessage } from "./helpers.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("decodeAuthRequest", () => {
  test("golden alice/secret", () => {
    const wire = fromHex("01 05 61 6c 69 63 65 06 73 65 63 72 65 74");
    expect(toHex(encodeAuthRequest("alice", "secret"))).toBe(toHex(wire));
    expectFraming(decodeAuthRequest, wire, new AuthRequest("alice", bytes("secret")));
  });

  test("empty password is accepted (curl sends it for socks5://user@host)", () => {
    expectFraming(
      decodeAuthRequest,
      fromHex("01 01 61 00"),
      new AuthRequest("a", new Uint8Array(0)),
    );
  });

  test("largest request: 255-byte username and password (513 bytes)", () => {
    const username = "u".repeat(255);
    const password = new Uint8Array(255).fill(0xfe);
    const wire = encodeAuthRequest(username, password);
    expect(wire.length).toBe(513);
    expectFraming(decodeAuthRequest, wire, new AuthRequest(username, password));
  });

  test("round trip of UTF-8 and arbitrary password bytes", () => {
    const password = Uint8Array.from([0x00, 0xff, 0x80, 0x41]);
    const wire = encodeAuthRequest("jürgen", password);
    const { message, bytes: used } = expectMessage(decodeAuthRequest(wire));
    expect(used).toBe(wire.length);
    expect(message.username).toBe("jürgen");
    expect(message.password).toEqual(password);
  });

  test("password bytes are a copy of the input", () => {
    const wire = encodeAuthRequest("a", "pw");
    const { message } = expectMessage(decodeAuthRequest(wire));
    wire.fill(0);
    expect(message.password).toEqual(bytes("pw"));
  });

  test("ULEN 0: failure status, reported from two bytes", () => {
    const error = expectError(decodeAuthRequest(fromHex("01 00")), "AUTH_EMPTY_USERNAME", 0x01);
    expect(error.message).toContain("ULEN 0x00");
    expect(toHex(encodeAuthReply(error.reply!))).toBe("01 01");
  });

  test("version 0x05 instead of 0x01: close without a reply", () => {
    const error = expectError(decodeAuthRequest(fromHex("05 01 00")), "AUTH_VERSION", null);
    expect(error.message).toStartWith(
      "unsupported username/password auth version 0x05 (expected 0x01)",
    );
  });

  test("truncated inputs need more, never overshooting", () => {
    expect(decodeAuthRequest(new Uint8Array(0))).toEqual({ kind: "need-more", needed: 4 });
    expect(decodeAuthRequest(fromHex("01"))).toEqual({ kind: "need-more", needed: 3 });
    expect(decodeAuthRequest(fromHex("01 05 61 6c"))).toEqual({ kind: "need-more", needed: 4 });
    expect(decodeAuthRequest(fromHex("01 01 61 03 70"))).toEqual({ kind: "need-more", needed: 2 });
  });

  test("the password never appears in errors or logs", () => {
    const wire = encodeAuthRequest("alice", "hunter2");
    const { message } = expectMessage(decodeAuthRequest(wire));
    expect(JSON.stringify(message)).not.toContain("hunter2");
    expect(JSON.stringify(message)).toContain("[redacted]");
    expect(Bun.inspect(message)).not.toContain("hunter2");
    expect(Bun.inspect({ nested: message })).not.toContain("104"); // 'h' as a byte
    expect(Bun.inspect(message)).toContain("alice");
    // Every corruption of the version or ULEN byte is an error; none may quote the password.
    for (const at of [0, 1]) {
      for (let value = 0; value < 256; value++) {
        const corrupt = wire.slice();
        corrupt[at] = value;
        const result = decodeAuthRequest(corrupt);
        if (result.kind === "error") expect(result.error.message).not.toContain("hunter2");
      }
    }
  });

  test("a too-long password is refused by the encoder, without quoting it", () => {
    const secret = "s".repeat(256);
    expect(() => encodeAuthRequest("a", secret)).toThrow("password must be 0..255 bytes, got 256");
    expect(() => encodeAuthRequest("", "x")).toThrow(RangeError);
  });
});

describe("encodeAuthReply", () => {
  test.each([
    [AuthStatus.SUCCESS, "01 00"],
    [AuthStatus.FAILURE, "01 01"],
  ])("status %i encodes as %s, starting with 01 not 05", (status, wire) => {
    expect(toHex(encodeAuthReply(status))).toBe(wire);
    expectFraming(decodeAuthReply, fromHex(wire), { status });
  });

  test("decodeAuthReply refuses a SOCKS5 version byte", () => {
    expectError(decodeAuthReply(fromHex("05 00")), "AUTH_VERSION", null);
  });

  test("a non-byte status is a bug and throws", () => {
    expect(() => encodeAuthReply(0x100)).toThrow(RangeError);
  });
});
