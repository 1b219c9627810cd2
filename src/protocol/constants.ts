// SOCKS5 (RFC 1928) and username/password (RFC 1929) wire constants, all in one place.
// Values and sizes only: the codecs that use them live in greeting.ts, auth.ts and request.ts.

/** VER of every RFC 1928 message, in both directions. */
export const SOCKS_VERSION = 0x05;

/**
 * VER of the RFC 1929 username/password subnegotiation, in both directions.
 * Its replies start with 01, not 05.
 */
export const AUTH_VERSION = 0x01;

/** RSV of requests and replies. We send 0x00 and accept any value (see request.ts). */
export const RESERVED = 0x00;

/** METHOD bytes of the greeting (RFC 1928 §3). */
export const Method = {
  NO_AUTH: 0x00,
  GSSAPI: 0x01, // named for logs only; never chosen
  USERNAME_PASSWORD: 0x02, // RFC 1929
  NO_ACCEPTABLE: 0xff, // server answers 05 FF, then closes
} as const;

/** CMD of a request (RFC 1928 §4). */
export const Command = {
  CONNECT: 0x01,
  BIND: 0x02,
  UDP_ASSOCIATE: 0x03,
} as const;
export type CommandByte = (typeof Command)[keyof typeof Command];

/** ATYP of a request or reply (RFC 1928 §5). 0x02 is unassigned. */
export const AddressType = {
  IPV4: 0x01,
  DOMAIN: 0x03,
  IPV6: 0x04,
} as const;

/** REP of a reply (RFC 1928 §6). Which failure maps to which code: the one table in failures.ts. */
export const Reply = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01, // anything not listed below, including malformed requests
  NOT_ALLOWED: 0x02, // "connection not allowed by ruleset": only our own ruleset sends it
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04, // also: name not found
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06, // the RFC's name; we send it for a connect timeout
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

/** STATUS of the RFC 1929 reply. The RFC says any non-zero status is a failure. */
export const AuthStatus = {
  SUCCESS: 0x00,
  FAILURE: 0x01,
} as const;

// Field sizes.
export const IPV4_BYTES = 4;
export const IPV6_BYTES = 16;
export const PORT_BYTES = 2; // big-endian (network order)
/** Largest port: PORT_BYTES unsigned. */
export const PORT_MAX = 0xffff;
/** Longest DNS name in dotted form (RFC 1035: 255 octets on the wire). */
export const HOST_NAME_BYTES_MAX = 253;
export const DOMAIN_BYTES_MAX = 255; // one length byte
export const METHODS_MAX = 255; // one NMETHODS byte
export const AUTH_FIELD_BYTES_MAX = 255; // one ULEN / PLEN byte

// Message sizes. Every decoder stops at its message's end and never reads further.
/** VER CMD RSV ATYP = 4; the address starts after these. */
export const REQUEST_HEADER_BYTES = 4;
/** VER 1 + NMETHODS 1 + METHODS ≤ 255 = 257. */
export const GREETING_BYTES_MAX = 2 + METHODS_MAX;
/** VER 1 + ULEN 1 + UNAME ≤ 255 + PLEN 1 + PASSWD ≤ 255 = 513. */
export const AUTH_REQUEST_BYTES_MAX = 3 + AUTH_FIELD_BYTES_MAX + AUTH_FIELD_BYTES_MAX;
/** VER CMD RSV ATYP 4 + LEN 1 + DOMAIN ≤ 255 + PORT 2 = 262 (a domain is the longest address). */
export const REQUEST_BYTES_MAX = REQUEST_HEADER_BYTES + 1 + DOMAIN_BYTES_MAX + PORT_BYTES;
/** Same layout as a request: VER REP RSV ATYP + address + port, at most 262. */
export const REPLY_BYTES_MAX = REQUEST_BYTES_MAX;
/** VER 1 + METHOD 1 = 2. */
export const METHOD_SELECTION_BYTES = 2;
/** VER 1 + STATUS 1 = 2. */
export const AUTH_REPLY_BYTES = 2;

/**
 * Most bytes a client can send before the relay starts: greeting + auth + request
 * = 257 + 513 + 262 = 1032. The proxy bounds its handshake buffer with this.
 */
export const HANDSHAKE_BYTES_MAX = GREETING_BYTES_MAX + AUTH_REQUEST_BYTES_MAX + REQUEST_BYTES_MAX;
