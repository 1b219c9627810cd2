// Start-up check of the open-file limit against server.connections_max. Bun retries an accept that
// fails with EMFILE at once and forever, reporting nothing: at the descriptor limit every Worker
// spins at 100 % of a core. There is no hook to pause accepting, so sockpool never lets it come to
// that: connections_max is lowered at start to what the limit can hold (two descriptors per
// connection plus a reserve), with a warning naming the fix; past it a client is accepted and
// closed at once (admission), which needs one descriptor for an instant, inside the reserve.

import { readdirSync, readFileSync } from "node:fs";
import { LIMITS } from "./limits.ts";

/** The soft RLIMIT_NOFILE in the text of /proc/self/limits (Infinity for "unlimited"), or null. */
export function parseOpenFileLimit(limitsText: string): number | null {
  const match = limitsText.match(/^Max open files\s+(\d+|unlimited)\s/m);
  if (!match) return null;
  return match[1] === "unlimited" ? Number.POSITIVE_INFINITY : Number(match[1]);
}

/** The soft RLIMIT_NOFILE, read once when this module loads: reading it needs a descriptor, and
 *  the moment a failing dial asks for it is when none is left. Null where it cannot be read. */
const FILE_LIMIT_AT_START: number | null = (() => {
  try {
    return parseOpenFileLimit(readFileSync("/proc/self/limits", "utf8"));
  } catch {
    return null;
  }
})();

/** This process's soft open-file limit, as read at start; null where it cannot be read. */
export function openFileLimit(): number | null {
  return FILE_LIMIT_AT_START;
}

/** The open connections the descriptor limit can hold (at least 1); Infinity when unknown. */
export function connectionsForFileLimit(limit: number | null): number {
  if (limit === null || limit === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY;
  return Math.max(1, Math.floor((limit - LIMITS.fds_reserved) / LIMITS.fds_per_connection));
}

/** When connections_max cannot fit the descriptor limit: what it is lowered to, and the warning
 *  with the fix. Null when it fits. */
export function fitToFileLimit(
  connectionsMax: number,
  limit: number | null,
): { connectionsMax: number; warning: string } | null {
  const fits = connectionsForFileLimit(limit);
  if (connectionsMax <= fits) return null;
  const needed = connectionsMax * LIMITS.fds_per_connection + LIMITS.fds_reserved;
  return {
    connectionsMax: fits,
    warning:
      `server.connections_max = ${connectionsMax} needs about ${needed} file descriptors, but the limit is ${limit}: ` +
      `lowered to ${fits} so that accepting never runs out of descriptors; ` +
      `raise the limit (ulimit -n ${needed}, or LimitNOFILE=${needed} under systemd) or lower connections_max`,
  };
}

const EXHAUSTED_CHECK_MS = 100;
let checkedAt = Number.NEGATIVE_INFINITY;
let exhausted = false;

/**
 * Whether this process has (nearly) run out of descriptors. Bun 1.4.5 reports a connect that
 * failed with EMFILE as ECONNREFUSED, so a refused dial asks this to tell the two apart. Counting
 * /proc/self/fd costs up to a few ms with thousands open, so the answer is reused for 100 ms:
 * a storm of refused dials costs one count per 100 ms. `count` and `limit` are for tests.
 */
export function descriptorsExhausted(
  count: () => number = () => readdirSync("/proc/self/fd").length,
  limit: number | null = FILE_LIMIT_AT_START,
  now: number = performance.now(),
): boolean {
  if (limit === null || limit === Number.POSITIVE_INFINITY) return false;
  if (now - checkedAt < EXHAUSTED_CHECK_MS) return exhausted;
  checkedAt = now;
  try {
    exhausted = count() >= limit - 1; // a dial needs one more: none (or one, read by readdir) left
  } catch (error) {
    // Listing /proc/self/fd needs a descriptor itself: failing for lack of one is the answer.
    const code = (error as { code?: string }).code;
    if (code !== "EMFILE" && code !== "ENFILE") throw error;
    exhausted = true;
  }
  return exhausted;
}
