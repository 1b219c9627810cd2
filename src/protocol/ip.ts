// Pure IP literal parsers and formatters: text ⇄ network-order bytes.
// Not a resolver and not a validator of host names: anything that is not a literal returns null.

import { IPV4_BYTES, IPV6_BYTES } from "./constants.ts";

/** Longest IPv6 text we accept: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" is 45 chars. */
const IPV6_TEXT_CHARS_MAX = 45;
const IPV6_GROUPS = 8;

// One decimal octet, 0..255 checked separately. Leading zeros are refused: inet_aton would read
// "010" as octal 8, so such text means different addresses to different parsers.
const OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const GROUP = /^[0-9a-fA-F]{1,4}$/;

/** "192.0.2.1" → 4 bytes; null unless exactly four decimal octets 0..255 without leading zeros. */
export function parseIPv4(text: string): Uint8Array | null {
  if (text.length > 15) return null; // "255.255.255.255"
  const parts = text.split(".");
  if (parts.length !== IPV4_BYTES) return null;
  const bytes = new Uint8Array(IPV4_BYTES);
  for (let i = 0; i < IPV4_BYTES; i++) {
    const part = parts[i];
    if (!OCTET.test(part)) return null;
    const value = Number(part);
    if (value > 255) return null;
    bytes[i] = value;
  }
  return bytes;
}

/**
 * IPv6 text (RFC 4291 §2.2) → 16 bytes, or null.
 * Accepts "::" for one or more zero groups (once), hex in either case, and a dotted IPv4 tail
 * ("::ffff:192.0.2.1", "64:ff9b::192.0.2.1"). Refuses zone ids ("fe80::1%eth0"), brackets and
 * whitespace: strip those first.
 */
export function parseIPv6(text: string): Uint8Array | null {
  if (text.length < 2 || text.length > IPV6_TEXT_CHARS_MAX) return null;
  const gap = text.indexOf("::");
  if (gap !== -1 && text.indexOf("::", gap + 1) !== -1) return null; // "1::2::3", ":::"
  const headText = gap === -1 ? text : text.slice(0, gap);
  const tailText = gap === -1 ? "" : text.slice(gap + 2);
  // With a gap, a dotted tail can only follow it ("1.2.3.4::" is invalid).
  const head = parseGroups(headText, gap === -1);
  const tail = parseGroups(tailText, true);
  if (head === null || tail === null) return null;
  const explicit = head.length + tail.length;
  if (gap === -1 ? explicit !== IPV6_GROUPS : explicit > IPV6_GROUPS - 1) return null;

  const bytes = new Uint8Array(IPV6_BYTES);
  // Head groups from the left, tail groups from the right; the gap between stays zero.
  for (let i = 0; i < head.length; i++) writeGroup(bytes, i, head[i]);
  const tailStart = IPV6_GROUPS - tail.length;
  for (let i = 0; i < tail.length; i++) writeGroup(bytes, tailStart + i, tail[i]);
  return bytes;
}

// "a:b:c" → [0xa, 0xb, 0xc]; "" → []; a final dotted quad becomes two groups.
function parseGroups(text: string, dottedTailAllowed: boolean): number[] | null {
  if (text === "") return [];
  const parts = text.split(":");
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (i === parts.length - 1 && dottedTailAllowed && part.includes(".")) {
      const ipv4 = parseIPv4(part);
      if (ipv4 === null) return null;
      groups.push((ipv4[0] << 8) | ipv4[1], (ipv4[2] << 8) | ipv4[3]);
    } else {
      if (!GROUP.test(part)) return null; // also refuses "" from a stray single colon
      groups.push(Number.parseInt(part, 16));
    }
  }
  return groups;
}

function writeGroup(bytes: Uint8Array, index: number, group: number): void {
  bytes[index * 2] = group >> 8;
  bytes[index * 2 + 1] = group & 0xff;
}

/** An IP literal as written in a host field. `zone` is the text after '%' of a scoped IPv6. */
export type IPLiteral =
  | { readonly family: 4; readonly bytes: Uint8Array }
  | { readonly family: 6; readonly bytes: Uint8Array; readonly zone: string | undefined };

/**
 * IPv4, or IPv6 with an optional zone ("fe80::1%eth0"), → its bytes; null for anything else (a
 * name). The one test of "is this an IP address" used by the codec, the config and the tests.
 */
export function parseIPLiteral(text: string): IPLiteral | null {
  const ipv4 = parseIPv4(text);
  if (ipv4 !== null) return { family: 4, bytes: ipv4 };
  const percent = text.indexOf("%");
  const ipv6 = parseIPv6(percent === -1 ? text : text.slice(0, percent));
  if (ipv6 === null) return null;
  return { family: 6, bytes: ipv6, zone: percent === -1 ? undefined : text.slice(percent + 1) };
}

/** 4 bytes → "192.0.2.1". */
export function formatIPv4(bytes: Uint8Array): string {
  if (bytes.length !== IPV4_BYTES) throw new RangeError(`IPv4 needs 4 bytes, got ${bytes.length}`);
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/**
 * 16 bytes → canonical text (RFC 5952 §4): lowercase hex, no leading zeros, the longest run of two
 * or more zero groups written "::" (the first run on a tie), a lone zero group written "0".
 * IPv4-mapped addresses (::ffff:0:0/96) keep their dotted tail, as RFC 5952 §5 recommends:
 * "::ffff:192.0.2.1". Other embeddings (NAT64, the deprecated "IPv4-compatible") are plain hex.
 */
export function formatIPv6(bytes: Uint8Array): string {
  if (bytes.length !== IPV6_BYTES) throw new RangeError(`IPv6 needs 16 bytes, got ${bytes.length}`);
  const groups: number[] = [];
  for (let i = 0; i < IPV6_GROUPS; i++) groups.push((bytes[i * 2] << 8) | bytes[i * 2 + 1]);

  const mapped = groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
  if (mapped) return `::ffff:${formatIPv4(bytes.subarray(12, 16))}`;

  // Longest run of zero groups; a strict ">" keeps the first run on a tie.
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < IPV6_GROUPS; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < IPV6_GROUPS && groups[end] === 0) end++;
    if (end - i > bestLength) {
      bestStart = i;
      bestLength = end - i;
    }
    i = end;
  }
  const text = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((group) => group.toString(16))
      .join(":");
  if (bestLength < 2) return text(0, IPV6_GROUPS);
  return `${text(0, bestStart)}::${text(bestStart + bestLength, IPV6_GROUPS)}`;
}
