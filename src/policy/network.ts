// IP networks written as CIDR ("10.0.0.0/8", "fe80::/10", or one address) and the test of an
// address against one. Not name resolution and not the rules (access.ts): this only compares bytes.
//
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is compared as the IPv4 address it carries, both
// as a network and as an address, so a client cannot slip past an IPv4 rule by writing it in IPv6.

import { type IPLiteral, parseIPLiteral } from "../protocol/ip.ts";

export interface Network {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  /** Leading bits that must match: 0..32 or 0..128. */
  readonly prefix: number;
}

/** The address a literal stands for: an IPv4-mapped IPv6 address becomes its IPv4 address. */
export function canonicalAddress(literal: IPLiteral): { family: 4 | 6; bytes: Uint8Array } {
  const bytes = literal.bytes;
  if (literal.family === 6 && isIPv4Mapped(bytes)) return { family: 4, bytes: bytes.subarray(12) };
  return { family: literal.family, bytes };
}

function isIPv4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** "10.0.0.0/8", "2001:db8::/32" or a single address; null when it is none of these. Host bits
 *  past the prefix are ignored ("10.1.2.3/8" is 10.0.0.0/8), as routers read it. */
export function parseNetwork(text: string): Network | null {
  const slash = text.indexOf("/");
  const literal = parseIPLiteral(slash === -1 ? text : text.slice(0, slash));
  if (literal === null || (literal.family === 6 && literal.zone !== undefined)) return null;
  const bitsMax = literal.family === 4 ? 32 : 128;
  let prefix = bitsMax;
  if (slash !== -1) {
    const digits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(digits)) return null;
    prefix = Number(digits);
    if (prefix > bitsMax) return null;
  }
  if (literal.family === 6 && isIPv4Mapped(literal.bytes) && prefix >= 96) {
    return { family: 4, bytes: literal.bytes.slice(12), prefix: prefix - 96 };
  }
  return { family: literal.family, bytes: literal.bytes.slice(), prefix };
}

/** Whether `address` (already canonical) lies in `network`. */
export function inNetwork(
  network: Network,
  address: { family: 4 | 6; bytes: Uint8Array },
): boolean {
  if (network.family !== address.family) return false;
  const whole = network.prefix >> 3;
  for (let i = 0; i < whole; i++) if (network.bytes[i] !== address.bytes[i]) return false;
  const rest = network.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (network.bytes[whole] & mask) === (address.bytes[whole] & mask);
}

/** Whether the address a socket reports (text: "127.0.0.1", "::ffff:10.0.0.1"; undefined when Bun
 *  gave none) lies in any of `networks`. An absent or unparsable address is in none: whoever asks
 *  "is this peer trusted" fails closed. */
export function addressInNetworks(
  networks: readonly Network[],
  address: string | undefined,
): boolean {
  if (address === undefined) return false;
  const literal = parseIPLiteral(address);
  if (literal === null) return false;
  const canonical = canonicalAddress(literal);
  return networks.some((network) => inNetwork(network, canonical));
}
