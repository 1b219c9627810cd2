// HOST:PORT text ⇄ { host, port }: the one parser of listen and target addresses, used by the
// config, the proxy and the tests. Not a resolver: a name stays a name. IP literals are
// recognised by ip.ts's parseIPLiteral, the only IP validator.

import { HOST_NAME_BYTES_MAX, PORT_MAX } from "./constants.ts";
import { parseIPLiteral, parseIPv4 } from "./ip.ts";

export interface HostPort {
  /** A name, an IPv4 address, or an IPv6 address without its brackets (zone kept). */
  readonly host: string;
  readonly port: number;
}

// "[v6]:port" or "host:port". An unbracketed IPv6 address is refused: its last colon reads as the
// port separator. A name is letters, digits, '.', '-' and '_'; a zone ("%eth0") may follow v6.
const HOST_PORT_PATTERN = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/;
const HOST_NAME_PATTERN = /^[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$/;
const ZONE_PATTERN = /^[\w.-]+$/;

/** Parses "host:port" or "[v6]:port". Port 0 is accepted (listeners bind an ephemeral port). */
export function parseHostPort(text: string): HostPort | null {
  const match = HOST_PORT_PATTERN.exec(text);
  if (match === null) return null;
  const port = Number(match[3]);
  if (port > PORT_MAX) return null;
  const bracketed = match[1];
  if (bracketed !== undefined) {
    const ip = parseIPLiteral(bracketed);
    if (ip?.family !== 6 || (ip.zone !== undefined && !ZONE_PATTERN.test(ip.zone))) return null;
    return { host: bracketed, port };
  }
  const host = match[2]!;
  if (host.length > HOST_NAME_BYTES_MAX || !HOST_NAME_PATTERN.test(host)) return null;
  // All digits and dots: it must be a real dotted quad, not a name.
  if (/^[\d.]+$/.test(host) && parseIPv4(host) === null) return null;
  return { host, port };
}

/** The inverse of parseHostPort: "host:port", with an IPv6 address in brackets. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
