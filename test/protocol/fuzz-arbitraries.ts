// fast-check generators for the SOCKS5 fuzz properties: valid messages built with the encoders,
// byte-level mutations of them, hostile byte strings and chunkings. Not the properties themselves.

import fc from "fast-check";
import { AuthRequest, encodeAuthReply, encodeAuthRequest } from "../../src/protocol/auth.ts";
import {
  AUTH_FIELD_BYTES_MAX,
  Command,
  DOMAIN_BYTES_MAX,
  METHODS_MAX,
  PORT_MAX,
} from "../../src/protocol/constants.ts";
import {
  encodeGreeting,
  encodeMethodSelection,
  type Greeting,
} from "../../src/protocol/greeting.ts";
import { formatIPv4, formatIPv6 } from "../../src/protocol/ip.ts";
import {
  addressFromHost,
  encodeReply,
  encodeRequest,
  type SocksAddress,
  type SocksReply,
  type SocksRequest,
} from "../../src/protocol/request.ts";
import { concat } from "../support/bytes.ts";

/** A message as the encoders built it, and what decoding it must give back. */
export interface Valid<T> {
  wire: Uint8Array;
  message: T;
}

export const byte = fc.integer({ min: 0, max: 0xff });

/**
 * `minLength..maxLength` bytes. fast-check's default size keeps arrays short, so two more branches
 * reach the whole range and the bound itself: a decoder's edge cases sit at 255, not at 5.
 */
export function fieldBytes(minLength: number, maxLength: number): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ minLength, maxLength }),
    fc.uint8Array({ minLength, maxLength, size: "max" }),
    fc.uint8Array({ minLength: maxLength, maxLength }),
  );
}

// Code points by UTF-8 length, NUL and lone surrogates left out: the encoders refuse NUL in a
// domain, and a lone surrogate has no UTF-8 form (TextEncoder would send U+FFFD instead).
const codePoint = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0x21, max: 0x7e }) }, // printable ASCII: most names
  fc.integer({ min: 0x01, max: 0x7f }),
  fc.integer({ min: 0x80, max: 0x7ff }),
  fc.integer({ min: 0x800, max: 0xffff }).filter((c) => c < 0xd800 || c > 0xdfff),
  fc.integer({ min: 0x10000, max: 0x10ffff }),
  fc.constantFrom(0xfeff, 0xfffd), // BOM (kept, not stripped) and the replacement character
);

const utf8Length = (c: number) => (c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4);

/** Text of 1..`maxBytes` UTF-8 bytes without NUL: a domain or a username the encoders accept. */
export function fieldText(maxBytes: number): fc.Arbitrary<string> {
  return fc
    .oneof(
      fc.array(codePoint, { minLength: 1, maxLength: maxBytes }),
      fc.array(codePoint, { minLength: 1, maxLength: maxBytes, size: "max" }),
    )
    .map((points) => {
      // Keep the longest prefix that fits: four-byte code points would otherwise overflow.
      let bytes = 0;
      let end = 0;
      while (end < points.length && bytes + utf8Length(points[end]) <= maxBytes) {
        bytes += utf8Length(points[end]);
        end++;
      }
      return String.fromCodePoint(...points.slice(0, end));
    });
}

const ipv4 = fc
  .uint8Array({ minLength: 4, maxLength: 4 })
  .map((bytes): SocksAddress => ({ type: "ipv4", host: formatIPv4(bytes) }));

// Groups drawn from {0, ffff, any} so that "::" runs and the mapped form (::ffff:a.b.c.d) occur.
const ipv6Group = fc.oneof(
  fc.constant(0),
  fc.constant(0xffff),
  fc.integer({ min: 0, max: 0xffff }),
);
const ipv6 = fc.array(ipv6Group, { minLength: 8, maxLength: 8 }).map((groups): SocksAddress => {
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    bytes[i * 2] = group >> 8;
    bytes[i * 2 + 1] = group & 0xff;
  });
  return { type: "ipv6", host: formatIPv6(bytes) };
});

const domain = fieldText(DOMAIN_BYTES_MAX).map((host): SocksAddress => ({ type: "domain", host }));

export const address: fc.Arbitrary<SocksAddress> = fc.oneof(ipv4, ipv6, domain);
export const port = fc.integer({ min: 0, max: PORT_MAX });

export const request: fc.Arbitrary<SocksRequest> = fc.record({
  command: fc.constantFrom(Command.CONNECT, Command.BIND, Command.UDP_ASSOCIATE),
  address,
  port,
});

// The decoder's own UTF-8 reading (lossy, BOM kept): the oracle for usernames sent as raw bytes.
const lossyUtf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

export const validGreeting: fc.Arbitrary<Valid<Greeting>> = fieldBytes(1, METHODS_MAX).map(
  (methods) => ({ wire: encodeGreeting(methods), message: { methods: Array.from(methods) } }),
);

export const validMethodSelection: fc.Arbitrary<Valid<{ method: number }>> = byte.map((method) => ({
  wire: encodeMethodSelection(method),
  message: { method },
}));

export const validAuthRequest: fc.Arbitrary<Valid<AuthRequest>> = fc.oneof(
  // A username as text: the decoder gives the same string back.
  fc
    .record({ username: fieldText(AUTH_FIELD_BYTES_MAX), password: fieldBytes(0, 255) })
    .map(({ username, password }) => ({
      wire: encodeAuthRequest(username, password),
      message: new AuthRequest(username, password),
    })),
  // A username as raw bytes, often not UTF-8: the decoder replaces what is invalid with U+FFFD.
  fc
    .record({ username: fieldBytes(1, AUTH_FIELD_BYTES_MAX), password: fieldBytes(0, 255) })
    .map(({ username, password }) => ({
      wire: encodeAuthRequest(username, password),
      message: new AuthRequest(lossyUtf8.decode(username), password),
    })),
);

export const validAuthReply: fc.Arbitrary<Valid<{ status: number }>> = byte.map((status) => ({
  wire: encodeAuthReply(status),
  message: { status },
}));

export const validRequest: fc.Arbitrary<Valid<SocksRequest>> = request.map((message) => ({
  wire: encodeRequest(message),
  message,
}));

export const validReply: fc.Arbitrary<Valid<SocksReply>> = fc
  .record({ reply: byte, bound: fc.option(fc.record({ address, port })) })
  .map(({ reply, bound }): Valid<SocksReply> => {
    if (bound === null) {
      // A failure reply: 0.0.0.0:0.
      return {
        wire: encodeReply(reply),
        message: { reply, address: { type: "ipv4", host: "0.0.0.0" }, port: 0 },
      };
    }
    const { host } = bound.address;
    // encodeReply reads the host as addressFromHost does: a domain that spells an IP is sent as one.
    return {
      wire: encodeReply(reply, { host, port: bound.port }),
      message: { reply, address: addressFromHost(host), port: bound.port },
    };
  });

/** One edit of a byte string. Positions are taken modulo the length at the time of the edit. */
export type Mutation =
  | { op: "set"; at: number; value: number }
  | { op: "flip"; at: number; bit: number }
  | { op: "insert"; at: number; value: number }
  | { op: "delete"; at: number }
  | { op: "truncate"; at: number }
  | { op: "append"; bytes: Uint8Array };

const at = fc.nat();
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant("set" as const), at, value: byte }) },
  fc.record({ op: fc.constant("flip" as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant("insert" as const), at, value: byte }),
  fc.record({ op: fc.constant("delete" as const), at }),
  fc.record({ op: fc.constant("truncate" as const), at }),
  fc.record({
    op: fc.constant("append" as const),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
);

/** Up to four edits; none at all is valid too, so the unmutated message stays in the mix. */
export const mutations = fc.array(mutation, { maxLength: 4 });

export function mutate(input: Uint8Array, edits: readonly Mutation[]): Uint8Array {
  let bytes = Array.from(input);
  for (const edit of edits) {
    switch (edit.op) {
      case "set":
        if (bytes.length > 0) bytes[edit.at % bytes.length] = edit.value;
        break;
      case "flip":
        if (bytes.length > 0) bytes[edit.at % bytes.length] ^= 1 << edit.bit;
        break;
      case "insert":
        bytes.splice(edit.at % (bytes.length + 1), 0, edit.value);
        break;
      case "delete":
        if (bytes.length > 0) bytes.splice(edit.at % bytes.length, 1);
        break;
      case "truncate":
        bytes = bytes.slice(0, edit.at % (bytes.length + 1));
        break;
      case "append":
        bytes.push(...edit.bytes);
        break;
    }
  }
  return Uint8Array.from(bytes);
}

/** A valid message, mutated, with up to 16 bytes of whatever follows it (pipelined data). */
export function mutated(valid: fc.Arbitrary<Valid<unknown>>): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(valid, mutations, fc.uint8Array({ maxLength: 16 }))
    .map(([{ wire }, edits, tail]) => mutate(concat(wire, tail), edits));
}

/**
 * Random bytes up to `maxLength`; with `header`, each leading byte is often made one of its valid
 * values, so that random input gets past the version and type checks to the later fields.
 */
export function randomBytes(
  maxLength: number,
  header: readonly (readonly number[])[] = [],
): fc.Arbitrary<Uint8Array> {
  const headerPicks = fc.tuple(
    ...header.map((values) => fc.option(fc.constantFrom(...values), { freq: 2 })),
  );
  return fc.tuple(fc.uint8Array({ maxLength, size: "max" }), headerPicks).map(([bytes, picks]) => {
    const out = bytes.slice();
    picks.forEach((pick, i) => {
      if (pick !== null && i < out.length) out[i] = pick;
    });
    return out;
  });
}

/**
 * Where to cut a byte string into reads: sorted positions taken modulo (length + 1), or one byte
 * per read. Empty reads can result; the drivers skip them, as a socket never delivers one.
 */
export type Chunking = number[] | "bytewise";

export const chunking: fc.Arbitrary<Chunking> = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.nat(), { maxLength: 12 }) },
  fc.constant("bytewise" as const),
);

export function chunk(input: Uint8Array, chunking: Chunking): Uint8Array[] {
  if (chunking === "bytewise") return Array.from(input, (_, i) => input.subarray(i, i + 1));
  const cuts = chunking.map((cut) => cut % (input.length + 1)).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    chunks.push(input.subarray(from, cut));
    from = cut;
  }
  return chunks;
}
