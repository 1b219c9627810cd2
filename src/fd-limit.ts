// Start-up check of the open-file limit against server.connections_max. Not enforcement: Bun retries
// accepts that fail with EMFILE on its own (the kernel queues the connection meanwhile) and reports
// nothing, so the useful thing is to warn before it happens, with the fix.

import { LIMITS } from "./limits.ts";

/** The soft RLIMIT_NOFILE from /proc/self/limits, or null where it cannot be read. */
export async function openFileLimit(limitsText?: string): Promise<number | null> {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = await Bun.file("/proc/self/limits").text();
    } catch {
      return null;
    }
  }
  const match = text.match(/^Max open files\s+(\d+|unlimited)\s/m);
  if (!match) return null;
  return match[1] === "unlimited" ? Number.POSITIVE_INFINITY : Number(match[1]);
}

/** A warning when connections_max cannot be reached under the descriptor limit; null when fine. */
export function fileLimitWarning(connectionsMax: number, limit: number | null): string | null {
  if (limit === null) return null;
  const needed = connectionsMax * LIMITS.fds_per_connection + LIMITS.fds_reserved;
  if (needed <= limit) return null;
  return (
    `server.connections_max = ${connectionsMax} needs about ${needed} file descriptors, but the limit is ${limit}; ` +
    `raise it (ulimit -n ${needed}, or LimitNOFILE=${needed} under systemd) or lower connections_max`
  );
}
