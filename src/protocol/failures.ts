// The one mapping from every way a connection can fail before it relays (a malformed or refused
// handshake, a name that does not resolve, an upstream that refuses or times out, a limit) to the
// SOCKS5 reply byte that answers it and the outcome its log line names. Pure data and lookups: no
// I/O, and no framing (the front protocol puts the byte in the message of the step that failed).
//
// Reply codes (RFC 1928 names them but does not say which error maps to which; this is our choice):
//   02 ruleset deny · 03 network unreachable · 04 host unreachable or name not found
//   05 connection refused · 06 connect timeout · 07 command not supported
//   08 address type not supported · 01 anything else
//
// What Bun 1.4.5 reports for a failed upstream connect (measured on Linux, Bun.connect and
// node:net alike):
// - refused (127.0.0.1:1):               code "ECONNREFUSED", errno -111, "Failed to connect"
// - name not found (nonexistent.invalid): code "ENOTFOUND", errno 4, "getaddrinfo ENOTFOUND …"
//   Bun.dns.lookup instead rejects with     code "DNS_ENOTFOUND" (a DNSException).
// - kernel ENETUNREACH (224.0.0.1, seen with strace) and EHOSTUNREACH (2001:db8::1, seen as
//   SO_ERROR with strace) both arrive as "ECONNREFUSED". So under Bun 1.4.5 those clients get 05,
//   not 03/04. The table still maps the true codes, for runtimes that pass them through.
// - link-local IPv6 without a scope (fe80::1):  code "EINVAL" → 01.
// - a hostname containing NUL:                   code "ERR_INVALID_ARG_TYPE" → 01 (the request
//   decoder already refuses such names).
// - out of descriptors (EMFILE): Bun.connect reports it as "ECONNREFUSED" too; the proxy tells the
//   two apart by its own descriptor count (src/fd-limit.ts) and reports "EMFILE" → 01.
// - Bun.connect has no connect timeout of its own. The proxy's connect timer reports "ETIMEDOUT",
//   the code the kernel uses when its SYN retries run out.
//
// Deliberate choices where the RFC leaves room:
// - EAI_AGAIN, DNS_ETIMEOUT, DNS_ESERVFAIL → 01, not 04. The resolver failed, not the name: 04
//   would tell the client the destination does not exist when it may well exist.
// - EACCES, EPERM → 01, not 02. 02 is kept for sockpool's own ruleset, so a client that sees 02
//   knows exactly who refused. A kernel EACCES/EPERM (a local firewall, a broadcast address) is
//   "anything else".
// - An unknown code → 01 and outcome "error".

import { AuthStatus, Method, Reply } from "./constants.ts";
import type { ProtocolErrorCode } from "./errors.ts";

/** How a connection ended, as its log line says it. */
export type Outcome =
  | "ok"
  | "aborted"
  | "refused"
  | "timeout"
  | "unreachable"
  | "auth_failed"
  | "bad_request"
  | "unsupported"
  | "handshake_timeout"
  | "idle_timeout"
  | "fin_timeout"
  | "error"
  | "denied"
  | "reset"
  | "shutdown"
  | "limit";

/** What answers a failure: the reply byte (null: send nothing) and the log outcome. */
export interface Failure {
  readonly reply: number | null;
  readonly outcome: Outcome;
}

/** Failures the handshake, the access rules or the proxy itself decides, beside the decoders'
 *  ProtocolErrorCodes. */
export type HandshakeFailureCode =
  | "NO_ACCEPTABLE_METHOD" // no offered method is acceptable: 05 FF
  | "AUTH_FAILED" // wrong username or password: 01 01
  | "AUTH_BUSY" // too many password checks in flight to start one more: 01 01, logged as a limit
  | "COMMAND_NOT_SUPPORTED" // a well-formed BIND or UDP ASSOCIATE: 07
  | "ACCESS_DENIED" // an access rule (or a built-in denial) refused the destination: 02
  | "CLIENT_ABORTED" // the client closed or sent FIN before the handshake finished
  | "HANDSHAKE_TIMEOUT" // the client stayed silent past handshake_timeout_ms
  | "POOL_EXHAUSTED" // no pool slot for a split handshake message, or past the handshakes' share
  | "HTTP_MALFORMED" // an HTTP request head that cannot be read (the HTTP front answers 400/431)
  | "ASSOCIATIONS_MAX"; // a UDP ASSOCIATE past udp.associations_max: 01, logged as a limit

const GENERAL: Failure = { reply: Reply.GENERAL_FAILURE, outcome: "error" };
const REFUSED: Failure = { reply: Reply.CONNECTION_REFUSED, outcome: "refused" };
const TIMEOUT: Failure = { reply: Reply.TTL_EXPIRED, outcome: "timeout" };
const HOST: Failure = { reply: Reply.HOST_UNREACHABLE, outcome: "unreachable" };
const NETWORK: Failure = { reply: Reply.NETWORK_UNREACHABLE, outcome: "unreachable" };
const OUT_OF_DESCRIPTORS: Failure = { reply: Reply.GENERAL_FAILURE, outcome: "limit" };

/** The decoders' errors. `reply` null: the peer does not speak the protocol, any answer is noise. */
const protocolFailures: Readonly<Record<ProtocolErrorCode, Failure>> = {
  SOCKS_VERSION: { reply: null, outcome: "bad_request" },
  SOCKS_NO_METHODS: { reply: Method.NO_ACCEPTABLE, outcome: "bad_request" }, // 05 FF
  SOCKS_COMMAND: { reply: Reply.COMMAND_NOT_SUPPORTED, outcome: "unsupported" },
  SOCKS_ADDRESS_TYPE: { reply: Reply.ADDRESS_TYPE_NOT_SUPPORTED, outcome: "unsupported" },
  SOCKS_DOMAIN_EMPTY: { reply: Reply.GENERAL_FAILURE, outcome: "bad_request" },
  SOCKS_DOMAIN_NUL: { reply: Reply.GENERAL_FAILURE, outcome: "bad_request" },
  AUTH_VERSION: { reply: null, outcome: "bad_request" },
  AUTH_EMPTY_USERNAME: { reply: AuthStatus.FAILURE, outcome: "bad_request" }, // 01 01
};

const handshakeFailures: Readonly<Record<HandshakeFailureCode, Failure>> = {
  NO_ACCEPTABLE_METHOD: { reply: Method.NO_ACCEPTABLE, outcome: "auth_failed" },
  AUTH_FAILED: { reply: AuthStatus.FAILURE, outcome: "auth_failed" },
  AUTH_BUSY: { reply: AuthStatus.FAILURE, outcome: "limit" },
  COMMAND_NOT_SUPPORTED: { reply: Reply.COMMAND_NOT_SUPPORTED, outcome: "unsupported" },
  ACCESS_DENIED: { reply: Reply.NOT_ALLOWED, outcome: "denied" },
  CLIENT_ABORTED: { reply: null, outcome: "aborted" },
  HANDSHAKE_TIMEOUT: { reply: null, outcome: "handshake_timeout" },
  POOL_EXHAUSTED: { reply: null, outcome: "limit" },
  // No SOCKS byte: the HTTP front frames its own status line (http-connect.ts).
  HTTP_MALFORMED: { reply: null, outcome: "bad_request" },
  ASSOCIATIONS_MAX: { reply: Reply.GENERAL_FAILURE, outcome: "limit" },
};

/** Reaching the upstream, by the error code Bun, the resolver or our own connect timer gives. */
const dialFailures: ReadonlyMap<string, Failure> = new Map([
  ["ECONNREFUSED", REFUSED],
  ["ETIMEDOUT", TIMEOUT],
  ["ERR_SOCKET_CONNECTION_TIMEOUT", TIMEOUT], // node:net's name for its own timer
  ["EHOSTUNREACH", HOST],
  ["EHOSTDOWN", HOST],
  // name not found: the resolver answered that the name has no address
  ["ENOTFOUND", HOST], // Bun.connect, node:net
  ["DNS_ENOTFOUND", HOST], // Bun.dns.lookup
  ["ENODATA", HOST],
  ["DNS_ENODATA", HOST],
  ["EAI_NONAME", HOST],
  ["DNS_ENONAME", HOST],
  ["EAI_NODATA", HOST],
  ["ENETUNREACH", NETWORK],
  ["ENETDOWN", NETWORK],
  // the proxy itself is out of descriptors: not the destination's fault, so 01, logged as a limit
  ["EMFILE", OUT_OF_DESCRIPTORS],
  ["ENFILE", OUT_OF_DESCRIPTORS],
]);

/** A failed dial, by its error code (unknown or undefined → 01, outcome "error"). */
export function dialFailure(code: string | undefined): Failure {
  return (code === undefined ? undefined : dialFailures.get(code)) ?? GENERAL;
}

/** A refused handshake, by the decoder's or the handshake's own code. */
export function handshakeFailure(code: ProtocolErrorCode | HandshakeFailureCode): Failure {
  return Object.hasOwn(protocolFailures, code)
    ? protocolFailures[code as ProtocolErrorCode]
    : handshakeFailures[code as HandshakeFailureCode];
}

/** The REP byte for a failed upstream connect, from the error's `code`. */
export function replyForConnectError(code: string | undefined): number {
  return dialFailure(code).reply ?? Reply.GENERAL_FAILURE;
}
