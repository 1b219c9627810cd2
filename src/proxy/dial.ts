// Reaching the upstream: resolve a name asynchronously (bounded by dns_timeout_ms), then try every
// address in the resolver's order until one connects. Not a timeout for connect itself: the owning
// connection's deadline covers that, because a pending Bun.connect cannot be cancelled.

import type { Socket, SocketHandler } from "bun";
import { parseIPv4, parseIPv6 } from "../protocol/index.ts";

/** A failure to reach the upstream, with the error code replyForConnectError() maps to a reply. */
export class DialError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "DialError";
    this.code = code;
  }
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "EUNKNOWN";
}

/** The addresses to try for `host`: itself when it is an IP literal, else what DNS says. */
export async function resolveHost(host: string, timeoutMs: number): Promise<string[]> {
  if (parseIPv4(host) !== null || parseIPv6(host) !== null) return [host];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DialError("DNS_ETIMEOUT", `resolving ${host} took over ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    const records = await Promise.race([Bun.dns.lookup(host, {}), timeout]);
    const addresses = [...new Set(records.map((record) => record.address))];
    if (addresses.length === 0) throw new DialError("ENOTFOUND", `${host} has no addresses`);
    return addresses;
  } catch (error) {
    if (error instanceof DialError) throw error;
    // Bun reports DNS_ENOTFOUND for NXDOMAIN; the reply mapping knows both spellings.
    throw new DialError(errorCode(error), `cannot resolve ${host}: ${(error as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/** A connected upstream and the address it was connected to (for the connection log). */
export interface Connected<Data> {
  socket: Socket<Data>;
  address: string;
}

/**
 * Connects to the first address that accepts. `abandoned()` is checked after every await: when the
 * caller has given up (timeout, client gone), a socket that connects late is closed at once.
 */
export async function connectAny<Data>(
  addresses: readonly string[],
  port: number,
  data: Data,
  handlers: SocketHandler<Data>,
  abandoned: () => boolean,
): Promise<Connected<Data> | null> {
  let last: unknown = new DialError("ENOTFOUND", "no addresses");
  for (const hostname of addresses) {
    if (abandoned()) return null;
    try {
      const socket = await Bun.connect<Data>({
        hostname,
        port,
        data,
        allowHalfOpen: true, // a FIN is passed on, not treated as the end of the connection
        socket: handlers,
      });
      if (abandoned()) {
        socket.end();
        return null;
      }
      return { socket, address: hostname }; // known here: no getpeername for the log line
    } catch (error) {
      last = error;
    }
  }
  throw new DialError(errorCode(last), (last as Error).message);
}
