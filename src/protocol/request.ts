// RFC 1928 §4–§6: the client's request and the server's reply, which share one layout.
// Pure: it parses the destination but never resolves, filters or connects to it.

import {
  AddressType,
  Command,
  type CommandByte,
  DOMAIN_BYTES_MAX,
  IPV4_BYTES,
  IPV6_BYTES,
  PORT_BYTES,
  REQUEST_HEADER_BYTES,
  RESERVED,
  SOCKS_VERSION,
} from "./constants.ts";
import {
  assertByte,
  assertPort,
  type Decoded,
  decoded,
  failed,
  hex,
  needMore,
  ProtocolError,
  socksVersionError,
} from "./errors.ts";
import { formatIPv4, formatIPv6, parseIPLiteral, parseIPv4, parseIPv6 } from "./ip.ts";

/**
 * A destination or bound address. `host` is dotted IPv4, canonical IPv6 (RFC 5952, see ip.ts) or
 * the domain name as sent (UTF-8; invalid sequences become U+FFFD and then fail to resolve).
 */
export interface SocksAddress {
  type: "ipv4" | "ipv6" | "domain";
  host: string;
}

export interface SocksRequest {
  command: CommandByte;
  address: SocksAddress;
  port: number;
}

export interface SocksReply {
  reply: number;
  address: SocksAddress;
  port: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }); // keep a leading BOM
const utf8Encoder = new TextEncoder();

/** The smallest request or reply: header 4 + LEN 1 + a one-byte domain + port 2 = 8. */
const FRAME_BYTES_MIN = REQUEST_HEADER_BYTES + 1 + 1 + PORT_BYTES;

// Client → server:
//   +----+-----+-------+------+----------+----------+
//   |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
//   +----+-----+-------+------+----------+----------+
//   | 1  |  1  | X'00' |  1   | Variable |    2     |
//   +----+-----+-------+------+----------+----------+
// DST.ADDR is 4 bytes (ATYP 01), 16 bytes (ATYP 04) or one length byte then the name (ATYP 03).
//
// - CONNECT, BIND and UDP ASSOCIATE are all returned as messages: which ones are served is the
//   caller's decision (it answers 07 to the ones it does not serve). Any other CMD is an error
//   with reply 07, reported as soon as the CMD byte arrives.
// - RSV is not checked (lenient, after Postel): no client puts meaning in it and rejecting it
//   would only break odd clients. So there is no "SOCKS_RESERVED" error.
// - An unknown ATYP is an error with reply 08. The address length is then unknown, so the rest of
//   the stream cannot be framed and the caller must close after replying.
// - A zero-length domain, or one containing 0x00, is a malformed address: reply 01 (general
//   failure; failures.ts sends 04 only for a name that was looked up and not found). A NUL byte
//   would be cut off by the C resolver ("allowed.example\0.evil" vs. a ruleset that sees the
//   whole string), and Bun.connect rejects it anyway.
export function decodeRequest(input: Uint8Array): Decoded<SocksRequest> {
  if (input.length < 1) return needMore(FRAME_BYTES_MIN);
  if (input[0] !== SOCKS_VERSION) return failed(socksVersionError(input[0]));
  if (input.length < 2) return needMore(FRAME_BYTES_MIN - input.length);
  const command = input[1];
  if (!isCommand(command)) {
    return failed(
      new ProtocolError(
        "SOCKS_COMMAND",
        `unsupported command ${hex(command)} (expected 0x01 CONNECT, 0x02 BIND or 0x03 UDP ASSOCIATE)`,
      ),
    );
  }
  const tail = decodeAddressAndPort(input);
  if (tail.kind !== "message") return tail;
  return decoded({ command, ...tail.message }, tail.bytes);
}

// Server → client, the same layout:
//   +----+-----+-------+------+----------+----------+
//   |VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
//   +----+-----+-------+------+----------+----------+
//   | 1  |  1  | X'00' |  1   | Variable |    2     |
//   +----+-----+-------+------+----------+----------+
/**
 * `bound` is normally the upstream socket's local address (an IPv4 or IPv6 literal; an IPv6 zone
 * "%eth0" is dropped). Failure replies leave it out and send 0.0.0.0:0. A host that is not an IP
 * literal is sent as a domain (ATYP 03), which the RFC allows.
 * Throws RangeError for a bad reply byte, port or host: those come from our code, not the peer.
 */
export function encodeReply(reply: number, bound?: { host: string; port: number }): Uint8Array {
  assertByte("reply", reply);
  const address = bound === undefined ? ANY_IPV4 : addressFromHost(bound.host);
  return encodeFrame(reply, address, bound?.port ?? 0);
}

const ANY_IPV4: SocksAddress = { type: "ipv4", host: "0.0.0.0" };

/** Client side, for tests and health checks: the exact inverse of decodeRequest (RSV 00). */
export function encodeRequest(request: SocksRequest): Uint8Array {
  return encodeFrame(request.command, request.address, request.port);
}

/** Client side: the server's reply. Any REP byte is returned; 0x00 is success. */
export function decodeReply(input: Uint8Array): Decoded<SocksReply> {
  if (input.length < 1) return needMore(FRAME_BYTES_MIN);
  if (input[0] !== SOCKS_VERSION) return failed(socksVersionError(input[0]));
  const tail = decodeAddressAndPort(input);
  if (tail.kind !== "message") return tail;
  return decoded({ reply: input[1], ...tail.message }, tail.bytes);
}

/**
 * The address for a host string: an IPv4 literal, an IPv6 literal (canonicalised, zone dropped),
 * or else a domain name. Throws RangeError for a domain that cannot be encoded (empty, over 255
 * bytes, or containing NUL).
 */
export function addressFromHost(host: string): SocksAddress {
  const ip = parseIPLiteral(host);
  if (ip?.family === 4) return { type: "ipv4", host };
  if (ip?.family === 6) return { type: "ipv6", host: formatIPv6(ip.bytes) };
  domainBytes(host); // validates
  return { type: "domain", host };
}

function isCommand(byte: number): byte is CommandByte {
  return byte === Command.CONNECT || byte === Command.BIND || byte === Command.UDP_ASSOCIATE;
}

// Bytes 3.. of a request, a reply or a UDP datagram's header (udp.ts): ATYP, address, port.
// `bytes` is where the address ends.
export function decodeAddressAndPort(
  input: Uint8Array,
): Decoded<{ address: SocksAddress; port: number }> {
  if (input.length < REQUEST_HEADER_BYTES) return needMore(FRAME_BYTES_MIN - input.length);
  const addressType = input[3];
  let addressAt = REQUEST_HEADER_BYTES;
  let addressBytes: number;
  switch (addressType) {
    case AddressType.IPV4:
      addressBytes = IPV4_BYTES;
      break;
    case AddressType.IPV6:
      addressBytes = IPV6_BYTES;
      break;
    case AddressType.DOMAIN: {
      if (input.length < addressAt + 1) return needMore(FRAME_BYTES_MIN - input.length);
      addressBytes = input[addressAt];
      if (addressBytes === 0) {
        return failed(
          new ProtocolError(
            "SOCKS_DOMAIN_EMPTY",
            "domain name is empty (length 0x00, expected 0x01..0xff)",
          ),
        );
      }
      addressAt += 1;
      break;
    }
    default:
      return failed(
        new ProtocolError(
          "SOCKS_ADDRESS_TYPE",
          `unsupported address type ${hex(addressType)} (expected 0x01 IPv4, 0x03 domain or 0x04 IPv6)`,
        ),
      );
  }
  const portAt = addressAt + addressBytes;
  const bytes = portAt + PORT_BYTES; // ≤ REQUEST_BYTES_MAX (262): LEN is one byte
  if (addressType === AddressType.DOMAIN) {
    // Look at the part of the name already here: a NUL in it can never become valid, so it is an
    // error now, not "need more" (which would hold the client until the handshake timeout).
    const nul = input.subarray(addressAt, Math.min(portAt, input.length)).indexOf(0);
    if (nul !== -1) {
      return failed(
        new ProtocolError(
          "SOCKS_DOMAIN_NUL",
          `domain name contains a 0x00 byte at offset ${nul} (expected a name without NUL)`,
        ),
      );
    }
  }
  if (input.length < bytes) return needMore(bytes - input.length);

  const raw = input.subarray(addressAt, portAt);
  let address: SocksAddress;
  if (addressType === AddressType.IPV4) {
    address = { type: "ipv4", host: formatIPv4(raw) };
  } else if (addressType === AddressType.IPV6) {
    address = { type: "ipv6", host: formatIPv6(raw) };
  } else {
    address = { type: "domain", host: utf8.decode(raw) };
  }
  const port = (input[portAt] << 8) | input[portAt + 1];
  return decoded({ address, port }, bytes);
}

// VER second RSV ATYP ADDR PORT, where `second` is CMD or REP. (udp.ts rewrites the first three.)
export function encodeFrame(second: number, address: SocksAddress, port: number): Uint8Array {
  assertByte("command or reply", second);
  assertPort(port);
  let addressType: number;
  let body: Uint8Array;
  switch (address.type) {
    case "ipv4": {
      const bytes = parseIPv4(address.host);
      if (bytes === null)
        throw new RangeError(`not an IPv4 literal: ${JSON.stringify(address.host)}`);
      addressType = AddressType.IPV4;
      body = bytes;
      break;
    }
    case "ipv6": {
      const bytes = parseIPv6(address.host);
      if (bytes === null)
        throw new RangeError(`not an IPv6 literal: ${JSON.stringify(address.host)}`);
      addressType = AddressType.IPV6;
      body = bytes;
      break;
    }
    case "domain": {
      const name = domainBytes(address.host);
      addressType = AddressType.DOMAIN;
      body = new Uint8Array(1 + name.length);
      body[0] = name.length;
      body.set(name, 1);
      break;
    }
  }
  const frame = new Uint8Array(REQUEST_HEADER_BYTES + body.length + PORT_BYTES);
  frame[0] = SOCKS_VERSION;
  frame[1] = second;
  frame[2] = RESERVED;
  frame[3] = addressType;
  frame.set(body, REQUEST_HEADER_BYTES);
  frame[frame.length - 2] = port >> 8;
  frame[frame.length - 1] = port & 0xff;
  return frame;
}

// The encoders refuse what decodeRequest refuses.
function domainBytes(host: string): Uint8Array {
  const name = utf8Encoder.encode(host);
  if (name.length < 1 || name.length > DOMAIN_BYTES_MAX || name.includes(0)) {
    throw new RangeError(
      `domain must be 1..255 bytes of UTF-8 without NUL, got ${name.length} bytes: ${JSON.stringify(host.slice(0, 64))}`,
    );
  }
  return name;
}
