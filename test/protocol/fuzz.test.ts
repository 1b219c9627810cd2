// Property-based fuzzing (fast-check) of the six pure SOCKS5 decoders on hostile and valid input.
// Not the handshake state machine (fuzz-handshake.test.ts) and not exact byte vectors (*.test.ts).
//
// Each decoder gets two properties, FUZZ_RUNS cases each (fuzz-runner.ts):
// - hostile input: mutated valid messages, random bytes with plausible headers, plain random bytes.
//   The decoder never throws; every result keeps the Decoded contract and its bounds; every prefix
//   (so every way the input can be split across reads) gives need-more or the whole's result; a
//   need-more prefix can still be completed into a message; bytes after a message change nothing;
//   a message's fields stay within the protocol's bounds and re-encode to the bytes consumed.
// - valid messages from the encoders: the exact message back, need-more at every strict prefix.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  AuthRequest,
  decodeAuthReply,
  decodeAuthRequest,
  encodeAuthReply,
  encodeAuthRequest,
} from "../../src/protocol/auth.ts";
import {
  AUTH_FIELD_BYTES_MAX,
  AUTH_REPLY_BYTES,
  AUTH_REQUEST_BYTES_MAX,
  AddressType,
  DOMAIN_BYTES_MAX,
  GREETING_BYTES_MAX,
  METHOD_SELECTION_BYTES,
  METHODS_MAX,
  PORT_MAX,
  REPLY_BYTES_MAX,
  REQUEST_BYTES_MAX,
  REQUEST_HEADER_BYTES,
} from "../../src/protocol/constants.ts";
import { type Decoded, ProtocolError, type ProtocolErrorCode } from "../../src/protocol/errors.ts";
import {
  decodeGreeting,
  decodeMethodSelection,
  encodeGreeting,
  encodeMethodSelection,
  type Greeting,
} from "../../src/protocol/greeting.ts";
import { formatIPv6, parseIPLiteral, parseIPv4, parseIPv6 } from "../../src/protocol/ip.ts";
import {
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  type SocksAddress,
  type SocksReply,
  type SocksRequest,
} from "../../src/protocol/request.ts";
import { concat, fromHex, toHex } from "../support/bytes.ts";
import {
  fieldBytes,
  mutated,
  randomBytes,
  type Valid,
  validAuthReply,
  validAuthRequest,
  validGreeting,
  validMethodSelection,
  validReply,
  validRequest,
} from "./fuzz-arbitraries.ts";
import { COVERAGE_RUNS, fuzz } from "./fuzz-runner.ts";
import { expectError } from "./helpers.ts";

const FILE = "test/protocol/fuzz.test.ts";

/** Random inputs run well past every message's end, so no-look-ahead is tested too. */
const RANDOM_BYTES_MAX = 600;

/**
 * How the encoder must reproduce a decoded message from the bytes it was decoded from:
 * - bytes: exactly these (the consumed bytes, with RSV set to the 00 the encoder sends);
 * - "lossy": a UTF-8 field was not UTF-8 and was decoded with U+FFFD, so the bytes are gone; the
 *   re-encoding must decode to the same message instead (when it fits: each U+FFFD is 3 bytes);
 * - "host": a reply's domain that spells an IP literal; encodeReply takes a host string and sends
 *   it as the IP (ATYP 01/04), by design, so there is nothing to compare.
 */
type Canonical = Uint8Array | "lossy" | "host";

interface Codec<T> {
  name: string;
  decode: (input: Uint8Array) => Decoded<T>;
  encode: (message: T) => Uint8Array;
  /** The largest message (constants.ts). */
  bytesMax: number;
  /** The error codes this decoder may return. */
  codes: readonly ProtocolErrorCode[];
  /** Valid values for the header bytes, so random input gets past them often enough. */
  header: number[][];
  valid: fc.Arbitrary<Valid<T>>;
  canonical: (consumed: Uint8Array) => Canonical;
  /** Throws unless the message's fields are within the protocol's bounds. */
  bounds: (message: T, bytes: number) => void;
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(what);
}

function summarize<T>(result: Decoded<T>): string {
  if (result.kind === "error") return `error ${result.error.code}: ${result.error.message}`;
  if (result.kind === "need-more") return `need-more ${result.needed}`;
  return `message of ${result.bytes} bytes: ${JSON.stringify(result.message)}`;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

const isByte = (value: number) => Number.isInteger(value) && value >= 0 && value <= 0xff;

function addressBounds(address: SocksAddress): void {
  const { type, host } = address;
  if (type === "ipv4") {
    check(host.length <= 15 && parseIPv4(host) !== null, `bad IPv4 host ${host}`);
  } else if (type === "ipv6") {
    const bytes = parseIPv6(host);
    check(host.length <= 39 && bytes !== null, `bad IPv6 host ${host}`);
    check(formatIPv6(bytes) === host, `IPv6 host not canonical: ${host}`);
  } else {
    check(type === "domain", `bad address type ${type}`);
    // Each UTF-16 unit comes from at least one byte: the string is never longer than LEN.
    check(host.length >= 1 && host.length <= DOMAIN_BYTES_MAX, `domain of ${host.length} units`);
    check(!host.includes("\0"), "domain with NUL");
  }
}

const portBounds = (port: number) =>
  check(Number.isInteger(port) && port >= 0 && port <= PORT_MAX, `port ${port}`);

/** RSV set to 00, and the domain's text form: what encodeRequest/encodeReply would send. */
function frameCanonical(consumed: Uint8Array, forReply: boolean): Canonical {
  if (consumed[3] === AddressType.DOMAIN) {
    const name = consumed.subarray(REQUEST_HEADER_BYTES + 1, consumed.length - 2);
    if (!isUtf8(name)) return "lossy";
    if (forReply && parseIPLiteral(strictUtf8.decode(name)) !== null) return "host";
  }
  const bytes = consumed.slice();
  bytes[2] = 0x00; // RSV is accepted as any value (request.ts), and always sent as 00
  return bytes;
}

const greeting: Codec<Greeting> = {
  name: "decodeGreeting",
  decode: decodeGreeting,
  encode: (message) => encodeGreeting(message.methods),
  bytesMax: GREETING_BYTES_MAX,
  codes: ["SOCKS_VERSION", "SOCKS_NO_METHODS"],
  header: [[0x05]],
  valid: validGreeting,
  canonical: (consumed) => consumed,
  bounds: ({ methods }, bytes) => {
    check(Array.isArray(methods), "methods is not an array");
    check(methods.length >= 1 && methods.length <= METHODS_MAX, `${methods.length} methods`);
    check(methods.every(isByte), "a method is not a byte");
    check(bytes === 2 + methods.length, `bytes ${bytes} for ${methods.length} methods`);
  },
};

const methodSelection: Codec<{ method: number }> = {
  name: "decodeMethodSelection",
  decode: decodeMethodSelection,
  encode: ({ method }) => encodeMethodSelection(method),
  bytesMax: METHOD_SELECTION_BYTES,
  codes: ["SOCKS_VERSION"],
  header: [[0x05]],
  valid: validMethodSelection,
  canonical: (consumed) => consumed,
  bounds: ({ method }, bytes) => {
    check(isByte(method), `method ${method}`);
    check(bytes === METHOD_SELECTION_BYTES, `bytes ${bytes}`);
  },
};

const authRequest: Codec<AuthRequest> = {
  name: "decodeAuthRequest",
  decode: decodeAuthRequest,
  encode: (message) => encodeAuthRequest(message.username, message.password),
  bytesMax: AUTH_REQUEST_BYTES_MAX,
  codes: ["AUTH_VERSION", "AUTH_EMPTY_USERNAME"],
  header: [[0x01]],
  valid: validAuthRequest,
  canonical: (consumed) => (isUtf8(consumed.subarray(2, 2 + consumed[1])) ? consumed : "lossy"),
  bounds: (message, bytes) => {
    check(message instanceof AuthRequest, "not an AuthRequest");
    const { username, password } = message;
    check(username.length >= 1 && username.length <= AUTH_FIELD_BYTES_MAX, "username length");
    check(password instanceof Uint8Array, "password is not bytes");
    check(password.length <= AUTH_FIELD_BYTES_MAX, `password of ${password.length} bytes`);
    // A copy of exactly its own size, not a view that keeps the whole input alive.
    check(
      password.byteOffset === 0 && password.buffer.byteLength === password.length,
      "password is a view of a larger buffer",
    );
    check(bytes <= AUTH_REQUEST_BYTES_MAX && bytes >= 3 + 1 + password.length, `bytes ${bytes}`);
  },
};

const authReply: Codec<{ status: number }> = {
  name: "decodeAuthReply",
  decode: decodeAuthReply,
  encode: ({ status }) => encodeAuthReply(status),
  bytesMax: AUTH_REPLY_BYTES,
  codes: ["AUTH_VERSION"],
  header: [[0x01]],
  valid: validAuthReply,
  canonical: (consumed) => consumed,
  bounds: ({ status }, bytes) => {
    check(isByte(status), `status ${status}`);
    check(bytes === AUTH_REPLY_BYTES, `bytes ${bytes}`);
  },
};

const request: Codec<SocksRequest> = {
  name: "decodeRequest",
  decode: decodeRequest,
  encode: encodeRequest,
  bytesMax: REQUEST_BYTES_MAX,
  codes: [
    "SOCKS_VERSION",
    "SOCKS_COMMAND",
    "SOCKS_ADDRESS_TYPE",
    "SOCKS_DOMAIN_EMPTY",
    "SOCKS_DOMAIN_NUL",
  ],
  header: [[0x05], [1, 2, 3], [0x00], [1, 3, 4]],
  valid: validRequest,
  canonical: (consumed) => frameCanonical(consumed, false),
  bounds: ({ command, address, port }, bytes) => {
    check(command === 1 || command === 2 || command === 3, `command ${command}`);
    addressBounds(address);
    portBounds(port);
    check(bytes <= REQUEST_BYTES_MAX, `bytes ${bytes}`);
  },
};

const reply: Codec<SocksReply> = {
  name: "decodeReply",
  decode: decodeReply,
  encode: (message) =>
    encodeReply(message.reply, { host: message.address.host, port: message.port }),
  bytesMax: REPLY_BYTES_MAX,
  codes: ["SOCKS_VERSION", "SOCKS_ADDRESS_TYPE", "SOCKS_DOMAIN_EMPTY", "SOCKS_DOMAIN_NUL"],
  header: [[0x05], [0x00], [0x00], [1, 3, 4]],
  valid: validReply,
  canonical: (consumed) => frameCanonical(consumed, true),
  bounds: ({ reply, address, port }, bytes) => {
    check(isByte(reply), `reply ${reply}`);
    addressBounds(address);
    portBounds(port);
    check(bytes <= REPLY_BYTES_MAX, `bytes ${bytes}`);
  },
};

/** The contract every result must meet, whatever the input. */
function checkResult<T>(codec: Codec<T>, input: Uint8Array, result: Decoded<T>): void {
  switch (result.kind) {
    case "message":
      check(Number.isInteger(result.bytes) && result.bytes > 0, `message of ${result.bytes} bytes`);
      check(
        result.bytes <= Math.min(input.length, codec.bytesMax),
        `message of ${result.bytes} bytes from ${input.length} (max ${codec.bytesMax})`,
      );
      codec.bounds(result.message, result.bytes);
      break;
    case "need-more":
      check(Number.isInteger(result.needed) && result.needed >= 1, `needed ${result.needed}`);
      // Bounded: a decoder never asks to buffer beyond its largest message.
      check(
        input.length + result.needed <= codec.bytesMax,
        `${input.length} bytes held + ${result.needed} needed > ${codec.bytesMax}`,
      );
      break;
    case "error":
      check(result.error instanceof ProtocolError, "error is not a ProtocolError");
      check(codec.codes.includes(result.error.code), `unexpected code ${result.error.code}`);
      check(
        result.error.reply === null || isByte(result.error.reply),
        `reply ${result.error.reply}`,
      );
      check(/0x[0-9a-f]{2}/.test(result.error.message), `message ${result.error.message}`);
      break;
    default:
      throw new Error(`unknown result kind: ${JSON.stringify(result)}`);
  }
}

/** The same message and byte count, or an error with the same code. */
function sameResult<T>(a: Decoded<T>, b: Decoded<T>): boolean {
  if (a.kind === "message" && b.kind === "message") {
    return a.bytes === b.bytes && Bun.deepEquals(a.message, b.message, true);
  }
  if (a.kind === "error" && b.kind === "error") return a.error.code === b.error.code;
  return a.kind === "need-more" && b.kind === "need-more";
}

/**
 * Appends filler until the decoder decides: a valid header byte where the header is missing, then
 * 01, which is valid in every later field (a length, a name byte, a port byte, a password byte).
 */
function complete<T>(codec: Codec<T>, prefix: Uint8Array, needed: number): Decoded<T> {
  let input = prefix;
  let result: Decoded<T> = { kind: "need-more", needed };
  while (result.kind === "need-more") {
    const filler = Array.from(
      { length: result.needed },
      (_, i) => codec.header[input.length + i]?.[0] ?? 0x01,
    );
    input = concat(input, Uint8Array.from(filler));
    check(input.length <= codec.bytesMax, `completion of ${toHex(prefix)} outgrew the bound`);
    result = codec.decode(input);
  }
  return result;
}

/** A decoded message must re-encode to the bytes it came from (see Canonical). */
function checkRoundTrip<T>(codec: Codec<T>, consumed: Uint8Array, message: T): void {
  const canonical = codec.canonical(consumed);
  if (canonical === "host") return;
  if (canonical === "lossy") {
    let again: Uint8Array;
    try {
      again = codec.encode(message);
    } catch (error) {
      // U+FFFD is 3 bytes: a long invalid field can re-encode past 255 bytes, which is refused.
      check(error instanceof RangeError, `encode threw ${error}`);
      return;
    }
    const redecoded = codec.decode(again);
    check(
      redecoded.kind === "message" && Bun.deepEquals(redecoded.message, message, true),
      `re-encoding a lossy message changed it: ${summarize(redecoded)}`,
    );
    return;
  }
  const encoded = codec.encode(message);
  check(
    toHex(encoded) === toHex(canonical),
    `encode(decode(x)) is ${toHex(encoded)}, expected ${toHex(canonical)}`,
  );
}

interface Tally {
  kinds: Record<Decoded<unknown>["kind"], number>;
  codes: Set<string>;
  /** need-more prefixes completed into a message. */
  completed: number;
}

/** Everything one hostile input must satisfy. */
function checkHostile<T>(codec: Codec<T>, input: Uint8Array, tally: Tally): void {
  const whole = codec.decode(input);
  checkResult(codec, input, whole);
  tally.kinds[whole.kind]++;
  if (whole.kind === "error") tally.codes.add(whole.error.code);

  if (whole.kind === "message") {
    const consumed = input.subarray(0, whole.bytes);
    // No look-ahead: the message alone decodes to the same thing (so garbage after it is ignored).
    check(sameResult(codec.decode(consumed), whole), "the message alone decodes differently");
    // A copy, not a view: overwriting the input afterwards leaves the message alone.
    const scratch = input.slice();
    const fromScratch = codec.decode(scratch);
    scratch.fill(0xa5);
    check(sameResult(fromScratch, whole), "the message changed when its input was overwritten");
    checkRoundTrip(codec, consumed, whole.message);
  }

  // Every prefix is every chunking: the pipeline re-feeds a growing prefix, so a split read only
  // ever shows the decoder a prefix. Longer prefixes than bytesMax + 8 are not tried: need-more is
  // bounded by bytesMax, so the decoder has decided by then, and the whole input is checked above.
  const cuts = Math.min(input.length, codec.bytesMax + 8);
  for (let cut = 0; cut < cuts; cut++) {
    const prefix = input.subarray(0, cut);
    const part = codec.decode(prefix);
    checkResult(codec, prefix, part);
    if (part.kind !== "need-more") {
      check(
        sameResult(part, whole),
        `prefix of ${cut} bytes: ${summarize(part)}; whole: ${summarize(whole)}`,
      );
      continue;
    }
    if (whole.kind === "message") {
      // need-more only strictly before the end, and `needed` never overshoots it.
      check(
        cut + part.needed <= whole.bytes,
        `prefix of ${cut} bytes needs ${part.needed}, message is ${whole.bytes}`,
      );
    }
    // need-more means a valid prefix: some completion of it is a message.
    const completed = complete(codec, prefix, part.needed);
    tally.completed++;
    check(
      completed.kind === "message",
      `need-more for ${toHex(prefix)}, but completing it gave ${summarize(completed)}`,
    );
  }
}

/** Everything one valid encoding must satisfy. */
function checkValid<T>(codec: Codec<T>, { wire, message }: Valid<T>, tail: Uint8Array): void {
  // The whole message decodes to what was encoded, and bytes after it are left alone.
  const whole = codec.decode(concat(wire, tail));
  check(whole.kind === "message", `valid ${toHex(wire)} gave ${summarize(whole)}`);
  check(whole.bytes === wire.length, `consumed ${whole.bytes} of ${wire.length}`);
  check(
    Bun.deepEquals(whole.message, message, true),
    `decoded ${JSON.stringify(whole.message)}, encoded ${JSON.stringify(message)}`,
  );
  checkRoundTrip(codec, wire, whole.message);
  // Every strict prefix needs more, with a lower bound that never overshoots the real end.
  for (let cut = 0; cut < wire.length; cut++) {
    const part = codec.decode(wire.subarray(0, cut));
    check(part.kind === "need-more", `prefix of ${cut}/${wire.length}: ${summarize(part)}`);
    check(part.needed >= 1 && cut + part.needed <= wire.length, `needed ${part.needed} at ${cut}`);
  }
}

/** The two properties of one decoder, as two tests. */
function properties<T>(codec: Codec<T>): void {
  describe(codec.name, () => {
    const hostileName = `${codec.name} on hostile input`;
    test(hostileName, () => {
      const tally: Tally = {
        kinds: { message: 0, "need-more": 0, error: 0 },
        codes: new Set(),
        completed: 0,
      };
      const hostile = fc.oneof(
        mutated(codec.valid),
        randomBytes(RANDOM_BYTES_MAX, codec.header),
        randomBytes(RANDOM_BYTES_MAX),
      );
      const runs = fuzz(FILE, hostileName, hostile, (input) => checkHostile(codec, input, tally));
      console.log(
        `  ${JSON.stringify(tally.kinds)}, error codes: ${[...tally.codes].sort().join(" ")}; ` +
          `prefixes completed ${tally.completed}`,
      );
      // The generators must actually reach every outcome, or the property proves little.
      if (runs >= COVERAGE_RUNS) {
        expect(tally.kinds.message).toBeGreaterThan(0);
        expect(tally.kinds["need-more"]).toBeGreaterThan(0);
        expect(tally.kinds.error).toBeGreaterThan(0);
      }
    });

    const validName = `${codec.name} on valid messages`;
    test(validName, () => {
      fuzz(FILE, validName, fc.tuple(codec.valid, fieldBytes(0, 16)), ([valid, tail]) =>
        checkValid(codec, valid, tail),
      );
    });
  });
}

properties(greeting);
properties(methodSelection);
properties(authRequest);
properties(authReply);
properties(request);
properties(reply);

// Found by the properties above: the Decoded contract says need-more means "the input is a valid
// prefix", but a domain's NUL byte used to be looked for only once the whole request, port
// included, had arrived. So `05 01 00 03 05 61 00` (a 5-byte domain "a\0…", 5 bytes short) was
// need-more although no completion can be a request, and a client that stopped there was held
// until the handshake timeout instead of being refused at once with 05 01.
test("a NUL in a partial domain is an error at once, not need-more", () => {
  const partial = fromHex("05 01 00 03 05 61 00");
  expectError(decodeRequest(partial), "SOCKS_DOMAIN_NUL", 0x01);
  expectError(decodeReply(partial), "SOCKS_DOMAIN_NUL", 0x01);
});
