// The RFC 1929 password check the SOCKS5 front protocol is given: users from config, passwords
// compared in constant time. Not the handshake (src/protocol/socks-handshake.ts) and not logging:
// a password never leaves this module.

import { timingSafeEqual } from "node:crypto";
import type { PasswordCheck } from "../protocol/index.ts";

const encoder = new TextEncoder();

/** A check over the configured users, built once per server. */
export function passwordCheck(
  users: readonly { username: string; password: string }[],
): PasswordCheck {
  const passwords = new Map(users.map((user) => [user.username, encoder.encode(user.password)]));
  return (username, given) => {
    const expected = passwords.get(username);
    if (expected === undefined) return "unknown-user";
    // Constant-time in the password bytes, so a wrong guess learns nothing from the timing.
    const matches = expected.length === given.length && timingSafeEqual(expected, given);
    return matches ? "ok" : "wrong-password";
  };
}
