// The PROXY protocol header (HAProxy's specification, versions 1 and 2): the line or block a load
// balancer puts in front of a connection to say who the client really is. Pure: bytes in, a parsed
// header or a verdict out; encoders for tests and for a future "send it upstream". Not the decision
// whether to expect one (the listener's config), nor whom to trust (src/policy).
//
// Version 1 is one text line, at most 107 bytes with its CRLF:
//   "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"      (also TCP6, and "PROXY UNKNOWN…\r\n")
// Version 2 is a 16-byte binary head, then `length` bytes of addresses and optional TLVs:
//   0      12-byte signature  0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A
//   12     version (high nibble, 2) | command (low: 0 LOCAL, 1 PROXY)
//   13     family (high: 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) | transport (low: 0, 1 STREAM, 2 DGRAM)
//   14     length of the rest, big-endian u16
//   16     INET: src 4, dst 4, src port 2, dst port 2 │ INET6: 16, 16, 2, 2 │ UNIX: 108, 108
//   …      TLVs (skipped)
// LOCAL (a health check from the balancer itself), UNKNOWN, UNSPEC and UNIX carry no client address
// worth using: the header is consumed and the connection's own addresses stand.

import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "./ip.ts";

export const PROXY_V1_BYTES_MAX = 107;
/** Our bound on a whole v2 header: 536 bytes (a 576-byte minimum datagram less 40 bytes of IP and
 *  TCP headers) is what a header sent in the connection's first segment can always occupy. Longer
 *  ones come only with many TLVs, which sockpool does not read. */
export const PROXY_V2_BYTES_MAX = 536;
export const PROXY_V2_SIGNATURE = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);
const V2_HEAD_BYTES = 16;
const V1_PREFIX = new TextEncoder().encode("PROXY ");

export interface ProxyAddress {
  host: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /** Absent for LOCAL, UNKNOWN, UNSPEC and UNIX: keep the connection's own addresses. */
  source?: ProxyAddress;
  destination?: ProxyAddress;
}

export type ProxyHeaderStep =
  | { kind: "need-more" }
  | { kind: "header"; header: ProxyHeader; consumed: number }
  | { kind: "invalid"; reason: string };

const NEED_MORE: ProxyHeaderStep = { kind: "need-more" };

function invalid(reason: string): ProxyHeaderStep {
  return { kind: "invalid", reason };
}

/** True while `bytes` is still a prefix of `of` (or starts with all of it). */
function startsLike(bytes: Uint8Array, of: Uint8Array): boolean {
  const length = Math.min(bytes.length, of.length);
  for (let i = 0; i < length; i++) if (bytes[i] !== of[i]) return false;
  return true;
}

/** Reads a PROXY header from the start of a connection's first bytes. `need-more` until the
 *  header is whole; `invalid` as soon as the bytes cannot be one (the caller closes). */
export function parseProxyHeader(bytes: Uint8Array): ProxyHeaderStep {
  if (bytes.length === 0) return NEED_MORE;
  if (startsLike(bytes, PROXY_V2_SIGNATURE)) {
    return bytes.length < V2_HEAD_BYTES ? NEED_MORE : parseV2(bytes);
  }
  if (startsLike(bytes, V1_PREFIX)) {
    return bytes.length < V1_PREFIX.length ? NEED_MORE : parseV1(bytes);
  }
  return invalid("not a PROXY protocol header");
}

// ── version 1 ──────────────────────────────────────────────────────────────────────────────────

const PORT_TEXT = /^(?:0|[1-9][0-9]{0,4})$/; // decimal, no leading zeros

function parseV1(bytes: Uint8Array): ProxyHeaderStep {
  const scan = Math.min(bytes.length, PROXY_V1_BYTES_MAX);
  let end = -1;
  for (let i = V1_PREFIX.length; i < scan; i++) {
    if (bytes[i] === 0x0d) {
      end = i;
      break;
    }
    if (bytes[i]! < 0x20 || bytes[i]! > 0x7e) return invalid("v1: a byte outside printable ASCII");
  }
  if (end < 0) {
    return bytes.length >= PROXY_V1_BYTES_MAX
      ? invalid(`v1: no CRLF within ${PROXY_V1_BYTES_MAX} bytes`)
      : NEED_MORE;
  }
  if (end + 1 >= bytes.length) return NEED_MORE; // the LF may come in the next read
  if (bytes[end + 1] !== 0x0a) return invalid("v1: CR not followed by LF");
  const consumed = end + 2;
  const line = new TextDecoder().decode(bytes.subarray(V1_PREFIX.length, end));
  const fields = line.split(" ");
  if (fields[0] === "UNKNOWN") return { kind: "header", header: { version: 1 }, consumed };
  if (fields.length !== 5) return invalid("v1: expected PROXY TCP4|TCP6 SRC DST SRCPORT DSTPORT");
  const [family, sourceHost, destinationHost, sourcePort, destinationPort] = fields as [
    string,
    string,
    string,
    string,
    string,
  ];
  const parseHost = family === "TCP4" ? parseIPv4 : family === "TCP6" ? parseIPv6 : null;
  if (parseHost === null) return invalid(`v1: unknown protocol ${JSON.stringify(family)}`);
  const source = v1Address(parseHost, sourceHost, sourcePort);
  const destination = v1Address(parseHost, destinationHost, destinationPort);
  if (source === null || destination === null) {
    return invalid(`v1: bad ${family} address or port`);
  }
  return { kind: "header", header: { version: 1, source, destination }, consumed };
}

function v1Address(
  parse: (text: string) => Uint8Array | null,
  host: string,
  port: string,
): ProxyAddress | null {
  const bytes = parse(host);
  if (bytes === null || !PORT_TEXT.test(port) || Number(port) > 65_535) return null;
  // Re-formatted, so "::FFFF:1.2.3.4" and "::ffff:102:304" name one client alike in logs and limits.
  return { host: bytes.length === 4 ? formatIPv4(bytes) : formatIPv6(bytes), port: Number(port) };
}

// ── version 2 ──────────────────────────────────────────────────────────────────────────────────

const COMMAND_LOCAL = 0x0;
const COMMAND_PROXY = 0x1;
const FAMILY_INET = 0x1;
const FAMILY_INET6 = 0x2;
/** Address bytes by family: UNSPEC, INET, INET6, UNIX. */
const ADDRESS_BYTES: readonly number[] = [0, 12, 36, 216];

function parseV2(bytes: Uint8Array): ProxyHeaderStep {
  const versionCommand = bytes[12]!;
  if (versionCommand >> 4 !== 2) return invalid(`v2: version ${versionCommand >> 4}, expected 2`);
  const command = versionCommand & 0x0f;
  if (command !== COMMAND_LOCAL && command !== COMMAND_PROXY) {
    return invalid(`v2: unknown command ${command}`);
  }
  const family = bytes[13]! >> 4;
  const transport = bytes[13]! & 0x0f;
  const addressBytes = ADDRESS_BYTES[family];
  if (addressBytes === undefined || transport > 2) {
    return invalid(`v2: unknown family/transport 0x${bytes[13]!.toString(16).padStart(2, "0")}`);
  }
  const length = (bytes[14]! << 8) | bytes[15]!;
  const consumed = V2_HEAD_BYTES + length;
  if (consumed > PROXY_V2_BYTES_MAX) {
    return invalid(`v2: header of ${consumed} bytes, over our bound of ${PROXY_V2_BYTES_MAX}`);
  }
  if (command === COMMAND_PROXY && length < addressBytes) {
    return invalid(`v2: ${length} bytes cannot hold the addresses (${addressBytes})`);
  }
  if (bytes.length < consumed) return NEED_MORE;
  // LOCAL: the balancer speaking for itself (a health check). UNSPEC/UNIX: no IP client to name.
  const stream = transport === 1;
  if (command === COMMAND_LOCAL || !stream || (family !== FAMILY_INET && family !== FAMILY_INET6)) {
    return { kind: "header", header: { version: 2 }, consumed };
  }
  const ipBytes = family === FAMILY_INET ? 4 : 16;
  const format = family === FAMILY_INET ? formatIPv4 : formatIPv6;
  const ips = bytes.subarray(V2_HEAD_BYTES);
  const ports = V2_HEAD_BYTES + 2 * ipBytes;
  const source = {
    host: format(ips.subarray(0, ipBytes)),
    port: (bytes[ports]! << 8) | bytes[ports + 1]!,
  };
  const destination = {
    host: format(ips.subarray(ipBytes, 2 * ipBytes)),
    port: (bytes[ports + 2]! << 8) | bytes[ports + 3]!,
  };
  return { kind: "header", header: { version: 2, source, destination }, consumed };
}

// ── encoders ───────────────────────────────────────────────────────────────────────────────────

/** "PROXY TCP4|TCP6 …\r\n" for two addresses of one family. */
export function encodeProxyV1(source: ProxyAddress, destination: ProxyAddress): Uint8Array {
  const family = parseIPv4(source.host) !== null ? "TCP4" : "TCP6";
  const line = `PROXY ${family} ${source.host} ${destination.host} ${source.port} ${destination.port}\r\n`;
  return new TextEncoder().encode(line);
}

/** A v2 PROXY header over TCP for two addresses of one family, or LOCAL when none are given. */
export function encodeProxyV2(source?: ProxyAddress, destination?: ProxyAddress): Uint8Array {
  if (source === undefined || destination === undefined) {
    const local = new Uint8Array(V2_HEAD_BYTES);
    local.set(PROXY_V2_SIGNATURE);
    local[12] = 0x20;
    return local;
  }
  const source4 = parseIPv4(source.host);
  const sourceIp = source4 ?? parseIPv6(source.host);
  const destinationIp = source4 ? parseIPv4(destination.host) : parseIPv6(destination.host);
  if (sourceIp === null || destinationIp === null) {
    throw new Error("encodeProxyV2: two IP addresses of one family");
  }
  const length = 2 * sourceIp.length + 4;
  const header = new Uint8Array(V2_HEAD_BYTES + length);
  const view = new DataView(header.buffer);
  header.set(PROXY_V2_SIGNATURE);
  header[12] = 0x21; // version 2, PROXY
  header[13] = source4 ? 0x11 : 0x21; // INET or INET6, STREAM
  view.setUint16(14, length);
  header.set(sourceIp, V2_HEAD_BYTES);
  header.set(destinationIp, V2_HEAD_BYTES + sourceIp.length);
  view.setUint16(V2_HEAD_BYTES + 2 * sourceIp.length, source.port);
  view.setUint16(V2_HEAD_BYTES + 2 * sourceIp.length + 2, destination.port);
  return header;
}
