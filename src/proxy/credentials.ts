// The login check the front protocols are given (SOCKS5's RFC 1929, HTTP's Proxy-Authorization):
// the configured users, with plain passwords compared in constant time or hashed ones (argon2id,
// bcrypt) verified by Bun.password off the event loop. Not the handshake and not logging: a
// password never leaves this module.
//
// A hash costs tens of milliseconds of CPU to check, on purpose, so logins cannot open a CPU
// denial of service:
// - a successful check is remembered for LIMITS.login_cache_ms (keyed by the user and a SHA-256 of
//   the password, never the password itself), so a client that reconnects often pays once;
// - at most LIMITS.login_checks_in_flight_max hash checks run at once per Worker; past that a
//   login is answered "busy" (01 01 or 503, logged as outcome=limit), not queued without bound;
// - failed logins still count toward clients.auth_failures_max, which blocks a guessing client.

import { createHash, timingSafeEqual } from "node:crypto";
import { LIMITS } from "../limits.ts";
import type { LoginVerdict, PasswordCheck } from "../protocol/index.ts";

export interface UserEntry {
  username: string;
  password?: string;
  password_hash?: string;
}

const encoder = new TextEncoder();

/** Reduces a password to a fixed-size digest for the cache; the cache never holds the password. */
function digest(username: string, password: Uint8Array): string {
  return createHash("sha256").update(username).update("\0").update(password).digest("base64");
}

/** A check over the configured users, built once per server. `now` is for tests. */
export function passwordCheck(
  users: readonly UserEntry[],
  now: () => number = performance.now,
): PasswordCheck {
  const plain = new Map<string, Uint8Array>();
  const hashed = new Map<string, string>();
  for (const user of users) {
    if (user.password_hash !== undefined) hashed.set(user.username, user.password_hash);
    else if (user.password !== undefined) plain.set(user.username, encoder.encode(user.password));
  }
  /** digest → when the successful check expires. */
  const verified = new Map<string, number>();
  let inFlight = 0;

  function remember(key: string): void {
    if (verified.size >= LIMITS.login_cache_entries_max) verified.clear(); // rare; bounded memory
    verified.set(key, now() + LIMITS.login_cache_ms);
  }

  return (username, given): LoginVerdict | Promise<LoginVerdict> => {
    const expected = plain.get(username);
    if (expected !== undefined) {
      // Constant-time in the password bytes, so a wrong guess learns nothing from the timing.
      const matches = expected.length === given.length && timingSafeEqual(expected, given);
      return matches ? "ok" : "wrong-password";
    }
    const hash = hashed.get(username);
    if (hash === undefined) return "unknown-user";
    const key = digest(username, given);
    const until = verified.get(key);
    if (until !== undefined && until > now()) return "ok";
    if (inFlight >= LIMITS.login_checks_in_flight_max) return "busy";
    inFlight++;
    // Bun.password takes a string or a buffer; the bytes are passed as they came.
    return Bun.password.verify(given, hash).then(
      (ok): LoginVerdict => {
        inFlight--;
        if (!ok) return "wrong-password";
        remember(key);
        return "ok";
      },
      (error: unknown) => {
        inFlight--;
        throw error; // a malformed hash passed the config check: a bug, logged by the caller
      },
    );
  };
}

/** A hash of `password` for a users entry or users_file line (argon2id, Bun's default cost). */
export function hashPassword(password: string): Promise<string> {
  return Bun.password.hash(password, { algorithm: "argon2id" });
}
