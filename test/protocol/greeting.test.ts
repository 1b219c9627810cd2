import { describe, expect, test } from "bun:test";
import { Method } from "../../src/protocol/constants.ts";
import {
  chooseMethod,
  decodeGreeting,
  decodeMethodSelection,
  encodeGreeting,
  encodeMethodSelection,
} from "../../src/protocol/greeting.ts";
import { fromHex, toHex } from "../support/bytes.ts";
import { expectError, expectFraming, expectMessage } from "./helpers.ts";

describe("decodeGreeting", () => {
  test.each([
    ["05 01 00", [0x00]],
    ["05 02 00 02", [0x00, 0x02]],
    ["05 03 02 01 00", [0x02, 0x01, 0x00]],
  ])("golden %s", (wire, methods) => {
    expectFraming(decodeGreeting, fromHex(wire), { methods });
  });

  test("255 methods is the largest greeting (257 bytes)", () => {
    const methods = Array.from({ length: 255 }, (_, i) => i);
    const wire = encodeGreeting(methods);
    expect(wire.length).toBe(257);
    expectFraming(decodeGreeting, wire, { methods });
  });

  test("the methods are a copy, not a view of the caller's buffer", () => {
    const wire = fromHex("05 01 00");
    const { message } = expectMessage(decodeGreeting(wire));
    wire[2] = 0x02;
    expect(message.methods).toEqual([0x00]);
  });

  test("SOCKS4 first byte: close without a reply", () => {
    const error = expectError(decodeGreeting(fromHex("04 01 00 50")), "SOCKS_VERSION", null);
    expect(error.message).toStartWith("unsupported SOCKS version 0x04 (expected 0x05)");
    expect(error.message).toContain("SOCKS4");
  });

  test("wrong version is reported from the first byte alone", () => {
    expectError(decodeGreeting(fromHex("04")), "SOCKS_VERSION", null);
  });

  test("an HTTP request gets a hint", () => {
    const http = new TextEncoder().encode("GET / HTTP/1.1\r\n");
    const error = expectError(decodeGreeting(http), "SOCKS_VERSION", null);
    expect(error.message).toStartWith("unsupported SOCKS version 0x47 (expected 0x05)");
    expect(error.message).toContain("HTTP");
  });

  test("NMETHODS 0: answer 05 FF", () => {
    const error = expectError(decodeGreeting(fromHex("05 00")), "SOCKS_NO_METHODS", 0xff);
    expect(error.message).toContain("NMETHODS 0x00");
    expect(toHex(encodeMethodSelection(error.reply!))).toBe("05 ff");
  });

  test("empty and truncated input need more", () => {
    expect(decodeGreeting(new Uint8Array(0))).toEqual({ kind: "need-more", needed: 3 });
    expect(decodeGreeting(fromHex("05"))).toEqual({ kind: "need-more", needed: 2 });
    expect(decodeGreeting(fromHex("05 04 00 02"))).toEqual({ kind: "need-more", needed: 2 });
  });
});

describe("encodeMethodSelection", () => {
  test.each([
    [Method.NO_AUTH, "05 00"],
    [Method.USERNAME_PASSWORD, "05 02"],
    [Method.NO_ACCEPTABLE, "05 ff"],
  ])("method %i encodes as %s", (method, wire) => {
    expect(toHex(encodeMethodSelection(method))).toBe(wire);
    expect(expectMessage(decodeMethodSelection(fromHex(wire))).message).toEqual({ method });
  });

  test("a non-byte is a bug and throws", () => {
    expect(() => encodeMethodSelection(256)).toThrow(RangeError);
    expect(() => encodeMethodSelection(-1)).toThrow(RangeError);
  });
});

describe("chooseMethod", () => {
  test.each([
    [[0x00], false, 0x00],
    [[0x02, 0x00], false, 0x00],
    [[0x02], false, 0xff], // no users configured: nothing to check the password against
    [[0x01], false, 0xff],
    [[0x00, 0x02], true, 0x02],
    [[0x02], true, 0x02],
    [[0x00], true, 0xff],
    [[0x00, 0x01, 0x80], true, 0xff],
  ])("offered %j, authRequired %p → %i", (offered, authRequired, expected) => {
    expect(chooseMethod(offered, { authRequired })).toBe(expected);
    expect(chooseMethod(Uint8Array.from(offered), { authRequired })).toBe(expected);
  });
});

describe("client side", () => {
  test("encodeGreeting golden and bounds", () => {
    expect(toHex(encodeGreeting([0x00, 0x02]))).toBe("05 02 00 02");
    expect(() => encodeGreeting([])).toThrow(RangeError);
    expect(() => encodeGreeting(new Array(256).fill(0))).toThrow(RangeError);
  });

  test("decodeMethodSelection framing and wrong version", () => {
    expectFraming(decodeMethodSelection, fromHex("05 02"), { method: 0x02 });
    expectError(decodeMethodSelection(fromHex("01 00")), "SOCKS_VERSION", null);
  });
});
