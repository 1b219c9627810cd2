// The one mapping from an upstream connect failure to a SOCKS5 reply byte (DESIGN.md,
// "SOCKS5 reply codes"). Pure: it reads an error code string; it never sees the socket.
//
// What Bun 1.4.5 reports (measured on Linux, Bun.connect and node:net alike):
// - refused (127.0.0.1:1):               code "ECONNREFUSED", errno -111, "Failed to connect"
// - name not found (nonexistent.invalid): code "ENOTFOUND", errno 4, "getaddrinfo ENOTFOUND …"
//   Bun.dns.lookup instead rejects with     code "DNS_ENOTFOUND" (a DNSException).
// - kernel ENETUNREACH (224.0.0.1, seen with strace) and EHOSTUNREACH (2001:db8::1, seen as
//   SO_ERROR with strace) both arrive as "ECONNREFUSED". So under Bun 1.4.5 those clients get 05,
//   not 03/04. The table still maps the true codes, for runtimes that pass them through.
// - link-local IPv6 without a scope (fe80::1):  code "EINVAL" → 01.
// - a hostname containing NUL:                   code "ERR_INVALID_ARG_TYPE" → 01 (the request
//   decoder already refuses such names).
// - Bun.connect has no connect timeout of its own. The proxy's connect timer must report
//   "ETIMEDOUT", the code the kernel uses when its SYN retries run out.

import { Reply } from "./constants.ts";

const replyByCode: ReadonlyMap<string, number> = new Map([
  // 05 connection refused
  ["ECONNREFUSED", Reply.CONNECTION_REFUSED],
  // 06 connect timeout
  ["ETIMEDOUT", Reply.TTL_EXPIRED],
  ["ERR_SOCKET_CONNECTION_TIMEOUT", Reply.TTL_EXPIRED], // node:net's name for its own timer
  // 04 host unreachable
  ["EHOSTUNREACH", Reply.HOST_UNREACHABLE],
  ["EHOSTDOWN", Reply.HOST_UNREACHABLE],
  // 04 name not found: the resolver answered that the name has no address.
  ["ENOTFOUND", Reply.HOST_UNREACHABLE], // Bun.connect, node:net
  ["DNS_ENOTFOUND", Reply.HOST_UNREACHABLE], // Bun.dns.lookup
  ["ENODATA", Reply.HOST_UNREACHABLE],
  ["DNS_ENODATA", Reply.HOST_UNREACHABLE],
  ["EAI_NONAME", Reply.HOST_UNREACHABLE],
  ["DNS_ENONAME", Reply.HOST_UNREACHABLE],
  ["EAI_NODATA", Reply.HOST_UNREACHABLE],
  // 03 network unreachable
  ["ENETUNREACH", Reply.NETWORK_UNREACHABLE],
  ["ENETDOWN", Reply.NETWORK_UNREACHABLE],
]);

/**
 * The REP byte for a failed upstream connect, from the error's `code`.
 *
 * Deliberate choices, where DESIGN.md leaves room:
 * - EAI_AGAIN, DNS_ETIMEOUT, DNS_ESERVFAIL → 01, not 04. The resolver failed, not the name: 04
 *   would tell the client the destination does not exist when it may well exist.
 * - EACCES, EPERM → 01, not 02. 02 is kept for sockpool's own ruleset (which sends it without
 *   calling this), so a client that sees 02 knows exactly who refused. A kernel EACCES/EPERM
 *   (a local firewall, a broadcast address) is "anything else".
 * - undefined or an unknown code → 01.
 */
export function replyForConnectError(code: string | undefined): number {
  if (code === undefined) return Reply.GENERAL_FAILURE;
  return replyByCode.get(code) ?? Reply.GENERAL_FAILURE;
}
