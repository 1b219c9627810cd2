// Start-up check that no other process already serves one of our listen addresses. Every Worker
// binds with SO_REUSEPORT so they can share the ports, and the kernel would let a second sockpool
// (or anything else with SO_REUSEPORT) bind the same port silently and take part of its clients:
// a password-protected port could then answer some clients without auth. A plain bind (no
// SO_REUSEPORT) fails with EADDRINUSE against any listener, which is the check. Not a lock: a
// process that binds after this check is not seen.

import type { TCPSocketListener } from "bun";
import { formatHostPort, parseHostPort } from "./protocol/host-port.ts";

export class AddressInUseError extends Error {
  override readonly name = "AddressInUseError";
}

/** Throws AddressInUseError naming the fix when an address (HOST:PORT, port 0 skipped) is served. */
export function assertAddressesFree(addresses: readonly string[]): void {
  for (const address of addresses) {
    const parsed = parseHostPort(address);
    if (parsed === null || parsed.port === 0) continue;
    let probe: TCPSocketListener | null = null;
    try {
      probe = Bun.listen({ hostname: parsed.host, port: parsed.port, socket: { data() {} } });
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== "EADDRINUSE") throw error;
      throw new AddressInUseError(
        `${formatHostPort(parsed.host, parsed.port)} is already in use by another process; ` +
          "stop it, listen elsewhere, or set server.share_port = true (--share-port) to share the " +
          "port with it on purpose",
      );
    } finally {
      probe?.stop(true);
    }
  }
}
