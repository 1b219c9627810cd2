// The SOCKS5 UDP request header (RFC 1928 §7), which prefixes every datagram between a client and
// the UDP relay, both ways. Pure: a whole datagram in, its destination and payload offset out.
// Not the association (who may send, for how long) nor the relay's sockets.
//
//   +----+------+------+----------+----------+----------+
//   |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
//   +----+------+------+----------+----------+----------+
//   | 2  |  1   |  1   | Variable |    2     | Variable |
//
// The address part is the request's (request.ts), at the same offsets. A datagram is whole, so a
// header cut short is malformed, never "need more". FRAG ≠ 0 is a fragment: the RFC lets a server
// that does not reassemble drop it, which sockpool does (the caller counts it).

import type { SocksAddress } from "./request.ts";
import { addressFromHost, decodeAddressAndPort, encodeFrame } from "./request.ts";

export interface UdpHeader {
  frag: number;
  address: SocksAddress;
  port: number;
  /** Where the payload starts in the datagram. */
  dataOffset: number;
}

export type UdpDecoded =
  | { kind: "datagram"; header: UdpHeader }
  | { kind: "invalid"; reason: "truncated" | "address_type" | "domain" };

/** Reads the header of one datagram from a client. */
export function decodeUdpHeader(datagram: Uint8Array): UdpDecoded {
  const decoded = decodeAddressAndPort(datagram);
  switch (decoded.kind) {
    case "need-more":
      return { kind: "invalid", reason: "truncated" };
    case "error":
      return {
        kind: "invalid",
        reason: decoded.error.code === "SOCKS_ADDRESS_TYPE" ? "address_type" : "domain",
      };
    case "message":
      return {
        kind: "datagram",
        header: {
          frag: datagram[2]!,
          address: decoded.message.address,
          port: decoded.message.port,
          dataOffset: decoded.bytes,
        },
      };
  }
}

/** The header for a datagram from `host:port` (an IP literal or a domain) back to the client. */
export function encodeUdpHeader(host: string, port: number): Uint8Array {
  const frame = encodeFrame(0, addressFromHost(host), port);
  frame[0] = 0; // RSV
  frame[1] = 0; // RSV
  frame[2] = 0; // FRAG: sockpool never fragments
  return frame;
}
