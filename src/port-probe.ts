// Start-up (and reload) check of the listen addresses, before any Worker binds them, and the one
// wording of a listen failure: the address, the port and what the system said, in words
// ("already in use", "not an address of this machine", "does not resolve").
//
// Every Worker binds with SO_REUSEPORT so they can share the ports, and the kernel would let a
// second sockpool (or anything else with SO_REUSEPORT) bind the same port silently and take part of
// its clients: a password-protected port could then answer some clients without auth. A plain bind
// (no SO_REUSEPORT) fails with EADDRINUSE against any listener, which is the check; with
// server.share_port the probe binds with SO_REUSEPORT and so checks only the address itself. Not a
// lock: a process that binds after this check is not seen.

import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { TCPSocketListener } from "bun";
import { formatHostPort, parseHostPort } from "./protocol/host-port.ts";

export class ListenAddressError extends Error {
  override readonly name = "ListenAddressError";
}

const WORDS: Record<string, string> = {
  EADDRINUSE: "already in use",
  EADDRNOTAVAIL: "not an address of this machine",
  EACCES: "permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE",
  ENOTFOUND: "the name does not resolve",
};

/** What went wrong, from a listen error's `code`, e.g. `EADDRINUSE (already in use)`. Bun sets
 *  no code for a name that does not resolve (and Bun.serve says EADDRINUSE for it): callers ask
 *  the resolver first (unresolvedName). */
export function listenFailureReason(error: unknown): string {
  const code = (error as { code?: string } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === undefined) return message;
  return `${code} (${WORDS[code] ?? message})`;
}

/** `WHAT HOST:PORT: REASON`, e.g. `socks listen 127.0.0.1:1080: EADDRINUSE (already in use)`. */
export function describeListenFailure(
  what: string,
  host: string,
  port: number,
  error: unknown,
): string {
  return `${what} ${formatHostPort(host, port)}: ${listenFailureReason(error)}`;
}

/** Null when `host` is an IP address or resolves; otherwise the failure, worded. */
export async function unresolvedName(what: string, host: string, port: number) {
  if (isIP(host) !== 0) return null;
  try {
    await lookup(host);
    return null;
  } catch (error) {
    const code = (error as { code?: string }).code;
    // getaddrinfo's "no such name" comes as ENOTFOUND (or EAI_AGAIN when no resolver answers).
    const worded = code === "ENOTFOUND" ? error : { code: "ENOTFOUND", message: String(error) };
    return describeListenFailure(what, host, port, worded);
  }
}

export interface ListenAddress {
  /** What it is for, as the message names it: "socks listen", "forward listen". */
  what: string;
  /** HOST:PORT as configured. */
  address: string;
}

/**
 * Throws ListenAddressError for the first address that cannot be listened on: a name that does not
 * resolve, an address not on this machine, or (unless `sharePort`) a port another process serves.
 * Port 0 is checked for the address only.
 */
export async function assertAddressesFree(
  addresses: readonly ListenAddress[],
  sharePort: boolean,
): Promise<void> {
  for (const { what, address } of addresses) {
    const parsed = parseHostPort(address);
    if (parsed === null) continue; // the config has already refused it
    const unresolved = await unresolvedName(what, parsed.host, parsed.port);
    if (unresolved !== null) throw new ListenAddressError(unresolved);
    let probe: TCPSocketListener | null = null;
    try {
      // bun-types 1.4.5 declares reusePort on connect options only; Bun.listen honours it.
      const options = {
        hostname: parsed.host,
        port: parsed.port,
        reusePort: sharePort || parsed.port === 0,
        socket: { data() {} },
      };
      probe = Bun.listen(options);
    } catch (error) {
      if ((error as { code?: string }).code === "EADDRINUSE") {
        throw new ListenAddressError(
          `${what} ${formatHostPort(parsed.host, parsed.port)} is already in use by another ` +
            "process (EADDRINUSE); stop it, listen elsewhere, or set server.share_port = true " +
            "(--share-port) to share the port with it on purpose",
        );
      }
      throw new ListenAddressError(describeListenFailure(what, parsed.host, parsed.port, error));
    } finally {
      probe?.stop(true);
    }
  }
}
