// Codec-test assertions: unwrap a decode result, check framing at every split. Not byte helpers.

import { expect } from "bun:test";
import type { Decoded, ProtocolErrorCode } from "../../src/protocol/errors.ts";

import { concat, fromHex } from "../support/bytes.ts";

/** Unwraps a result that must be a message. */
export function expectMessage<T>(result: Decoded<T>): { message: T; bytes: number } {
  if (result.kind !== "message") throw new Error(`expected a message, got ${summarize(result)}`);
  return result;
}

/** Unwraps a result that must be an error, checking its code and reply byte. */
export function expectError<T>(result: Decoded<T>, code: ProtocolErrorCode, reply: number | null) {
  if (result.kind !== "error") throw new Error(`expected error ${code}, got ${summarize(result)}`);
  expect(result.error.code).toBe(code);
  expect(result.error.reply).toBe(reply);
  return result.error;
}

function summarize<T>(result: Decoded<T>): string {
  if (result.kind === "error") return `error ${result.error.code}: ${result.error.message}`;
  if (result.kind === "need-more") return `need-more ${result.needed}`;
  return `message (${result.bytes} bytes)`;
}

/**
 * The framing contract, for one complete message `wire`:
 * - every strict prefix is "need-more", and its `needed` never overshoots the real end;
 * - the whole message decodes to `expected` and consumes exactly `wire.length` bytes;
 * - trailing bytes (pipelined data) are left alone: `bytes` still points at the boundary.
 */
export function expectFraming<T>(
  decode: (input: Uint8Array) => Decoded<T>,
  wire: Uint8Array,
  expected: T,
): void {
  for (let cut = 0; cut < wire.length; cut++) {
    const result = decode(wire.subarray(0, cut));
    if (result.kind !== "need-more") {
      throw new Error(`prefix of ${cut}/${wire.length} bytes gave ${summarize(result)}`);
    }
    expect(result.needed).toBeGreaterThanOrEqual(1);
    expect(cut + result.needed).toBeLessThanOrEqual(wire.length);
  }
  const whole = expectMessage(decode(wire));
  expect(whole.bytes).toBe(wire.length);
  expect(whole.message).toEqual(expected);

  const trailing = fromHex("de ad be ef 00 05 01");
  const pipelined = expectMessage(decode(concat(wire, trailing)));
  expect(pipelined.bytes).toBe(wire.length);
  expect(pipelined.message).toEqual(expected);
}
