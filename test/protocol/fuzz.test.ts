// Decoders on hostile input: random bytes and random corruptions of valid messages.
// Each decoder must return one of its three results, never throw, and stay within its bounds.

import { describe, expect, test } from "bun:test";
import { AuthRequest, decodeAuthRequest, encodeAuthRequest } from "../../src/protocol/auth.ts";
import {
  AUTH_REQUEST_BYTES_MAX,
  GREETING_BYTES_MAX,
  REPLY_BYTES_MAX,
  REQUEST_BYTES_MAX,
} from "../../src/protocol/constants.ts";
import { type Decoded, ProtocolError } from "../../src/protocol/errors.ts";
import { decodeGreeting, encodeGreeting } from "../../src/protocol/greeting.ts";
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  type SocksRequest,
} from "../../src/protocol/request.ts";
import { Prng } from "../support/prng.ts";
import { testSeed } from "../support/seed.ts";

const ROUNDS = 20_000;
const KNOWN_CODES = new Set([
  "SOCKS_VERSION",
  "SOCKS_NO_METHODS",
  "SOCKS_COMMAND",
  "SOCKS_ADDRESS_TYPE",
  "SOCKS_DOMAIN_EMPTY",
  "SOCKS_DOMAIN_NUL",
  "AUTH_VERSION",
  "AUTH_EMPTY_USERNAME",
]);

interface Codec {
  name: string;
  decode: (input: Uint8Array) => Decoded<unknown>;
  bytesMax: number;
  /** Valid values for the header bytes, so random input gets past them often enough. */
  header: number[][];
  sample: (random: Prng) => Uint8Array;
}

// One draw per byte (not Prng.fill), so a printed seed replays the same inputs.
const randomBytes = (random: Prng, length: number) =>
  Uint8Array.from({ length }, () => random.int(256));

function randomRequest(random: Prng): SocksRequest {
  const kind = random.int(3);
  const command = (1 + random.int(3)) as SocksRequest["command"];
  const port = random.int(0x10000);
  if (kind === 0) {
    const host = Array.from(randomBytes(random, 4)).join(".");
    return { command, address: { type: "ipv4", host }, port };
  }
  if (kind === 1) {
    const groups = Array.from({ length: 8 }, () => (random.next() < 0.5 ? 0 : random.int(0x10000)));
    return {
      command,
      address: { type: "ipv6", host: groups.map((g) => g.toString(16)).join(":") },
      port,
    };
  }
  const length = 1 + random.int(255);
  const host = Array.from({ length }, () => String.fromCharCode(0x21 + random.int(94))).join("");
  return { command, address: { type: "domain", host }, port };
}

const codecs: Codec[] = [
  {
    name: "decodeGreeting",
    decode: decodeGreeting,
    header: [[0x05]],
    bytesMax: GREETING_BYTES_MAX,
    sample: (random) => encodeGreeting(Array.from(randomBytes(random, 1 + random.int(255)))),
  },
  {
    name: "decodeAuthRequest",
    decode: decodeAuthRequest,
    header: [[0x01]],
    bytesMax: AUTH_REQUEST_BYTES_MAX,
    sample: (random) =>
      encodeAuthRequest(
        randomBytes(random, 1 + random.int(255)),
        randomBytes(random, random.int(256)),
      ),
  },
  {
    name: "decodeRequest",
    decode: decodeRequest,
    header: [[0x05], [1, 2, 3], [0x00], [1, 3, 4]],
    bytesMax: REQUEST_BYTES_MAX,
    sample: (random) => encodeRequest(randomRequest(random)),
  },
  {
    name: "decodeReply",
    decode: decodeReply,
    header: [[0x05], [0x00], [0x00], [1, 3, 4]],
    bytesMax: REPLY_BYTES_MAX,
    sample: (random) => {
      const { address, port } = randomRequest(random);
      return encodeReply(random.int(9), { host: address.host, port });
    },
  },
];

// The contract every result must meet, whatever the input.
function checkResult(codec: Codec, input: Uint8Array, result: Decoded<unknown>): void {
  switch (result.kind) {
    case "message":
      expect(result.bytes).toBeGreaterThan(0);
      expect(result.bytes).toBeLessThanOrEqual(Math.min(input.length, codec.bytesMax));
      // No look-ahead: the message alone decodes to the same thing.
      expect(codec.decode(input.subarray(0, result.bytes))).toEqual(result);
      break;
    case "need-more":
      expect(result.needed).toBeGreaterThanOrEqual(1);
      // Bounded: a decoder never asks to buffer beyond its largest message.
      expect(input.length + result.needed).toBeLessThanOrEqual(codec.bytesMax);
      break;
    case "error":
      expect(result.error).toBeInstanceOf(ProtocolError);
      expect(KNOWN_CODES.has(result.error.code)).toBe(true);
      expect(
        result.error.reply === null || (result.error.reply >= 0 && result.error.reply <= 0xff),
      ).toBe(true);
      expect(result.error.message).toMatch(/0x[0-9a-f]{2}/);
      break;
    default:
      throw new Error(`unknown result kind: ${JSON.stringify(result)}`);
  }
}

describe.each(codecs)("$name on hostile input", (codec) => {
  test("random bytes: never throws, always one of the three results", () => {
    const random = new Prng(testSeed(`${codec.name} random bytes`));
    const kinds = { message: 0, "need-more": 0, error: 0 };
    const errorCodes = new Set<string>();
    for (let round = 0; round < ROUNDS; round++) {
      const input = randomBytes(random, random.int(600));
      // Half the time make each header byte valid, so the fuzzing reaches the later fields.
      for (let at = 0; at < Math.min(codec.header.length, input.length); at++) {
        const valid = codec.header[at];
        if (random.next() < 0.5) input[at] = valid[random.int(valid.length)];
      }
      const result = codec.decode(input);
      kinds[result.kind]++;
      if (result.kind === "error") errorCodes.add(result.error.code);
      checkResult(codec, input, result);
    }
    // The generator must actually reach every outcome, or the test proves little.
    expect(kinds.message).toBeGreaterThan(0);
    expect(kinds["need-more"]).toBeGreaterThan(0);
    expect(kinds.error).toBeGreaterThan(0);
    console.log(`  ${JSON.stringify(kinds)}, error codes: ${[...errorCodes].sort().join(" ")}`);
  });

  test("corrupted and truncated valid messages: never throws, stays bounded", () => {
    const random = new Prng(testSeed(`${codec.name} corruption`));
    for (let round = 0; round < ROUNDS / 4; round++) {
      const valid = codec.sample(random);
      const whole = codec.decode(valid);
      expect(whole.kind).toBe("message");
      if (whole.kind === "message") expect(whole.bytes).toBe(valid.length);

      const input = valid.slice(0, random.int(valid.length + 1));
      const flips = random.int(3);
      for (let flip = 0; flip < flips && input.length > 0; flip++) {
        input[random.int(input.length)] = random.int(256);
      }
      checkResult(codec, input, codec.decode(input));
    }
  });
});

describe("round trips over random valid messages", () => {
  test("decodeRequest(encodeRequest(r)) re-encodes to the same bytes", () => {
    const random = new Prng(testSeed("request round trip"));
    for (let round = 0; round < ROUNDS / 4; round++) {
      const wire = encodeRequest(randomRequest(random));
      const result = decodeRequest(wire);
      if (result.kind !== "message") throw new Error(`decode failed: ${JSON.stringify(result)}`);
      expect(encodeRequest(result.message)).toEqual(wire);
    }
  });

  test("auth requests round-trip byte for byte", () => {
    const random = new Prng(testSeed("auth round trip"));
    for (let round = 0; round < ROUNDS / 4; round++) {
      const username = Array.from({ length: 1 + random.int(60) }, () =>
        String.fromCharCode(0x20 + random.int(0x7e0)),
      ).join("");
      const password = randomBytes(random, random.int(256));
      const wire = encodeAuthRequest(username, password);
      const result = decodeAuthRequest(wire);
      if (result.kind !== "message") throw new Error(`decode failed: ${JSON.stringify(result)}`);
      expect(result.message).toEqual(new AuthRequest(username, password));
    }
  });
});
