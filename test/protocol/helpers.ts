// Shared helpers for the codec tests: hex vectors, split-at-every-boundary checks, a seeded PRNG.

import { expect } from "bun:test";
import type { Decoded, ProtocolErrorCode } from "../../src/protocol/errors.ts";

/** "05 01 00" → bytes. Whitespace is ignored. */
export function fromHex(text: string): Uint8Array {
  const digits = text.replace(/\s+/g, "");
  if (digits.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(digits)) {
    throw new Error(`bad hex vector: ${text}`);
  }
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++)
    bytes[i] = Number.parseInt(digits.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** bytes → "05 01 00", the form the vectors are written in. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(" ");
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

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

/** mulberry32: small, fast, and reproducible from a 32-bit seed. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** SEED=… reproduces a run; otherwise a fresh seed. Printed either way. */
export function testSeed(label: string): number {
  const fromEnv = process.env.SEED;
  const seed =
    fromEnv === undefined
      ? (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0
      : Number(fromEnv) >>> 0;
  console.log(`${label}: seed ${seed} (rerun with SEED=${seed})`);
  return seed;
}
