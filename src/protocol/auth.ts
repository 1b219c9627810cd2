// RFC 1929 username/password subnegotiation: the client's credentials and the server's status.
// Pure: it decodes credentials but never checks them, and never puts a password in a message.

import {
  AUTH_FIELD_BYTES_MAX,
  AUTH_REPLY_BYTES,
  AUTH_VERSION,
  SOCKS_VERSION,
} from "./constants.ts";
import {
  assertByte,
  type Decoded,
  decoded,
  failed,
  hex,
  needMore,
  ProtocolError,
} from "./errors.ts";

const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const inspectCustom = Symbol.for("nodejs.util.inspect.custom");

/**
 * Decoded credentials. The password stays raw bytes: compare bytes (in constant time), not
 * strings, because lossy UTF-8 decoding maps different invalid byte strings to the same text.
 * Logging this object (console.log, Bun.inspect, JSON.stringify) shows the password as
 * "[redacted]".
 */
export class AuthRequest {
  /** UNAME decoded as UTF-8; invalid sequences become U+FFFD. For lookup and logs. */
  readonly username: string;
  /** PASSWD exactly as sent, 0..255 bytes. A copy, not a view of the input. */
  readonly password: Uint8Array;

  constructor(username: string, password: Uint8Array) {
    this.username = username;
    this.password = password;
  }

  toJSON(): { username: string; password: string } {
    return { username: this.username, password: "[redacted]" };
  }

  [inspectCustom](): string {
    return `AuthRequest { username: ${JSON.stringify(this.username)}, password: [redacted] }`;
  }
}

// Client → server:
//   +----+------+----------+------+----------+
//   |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
//   +----+------+----------+------+----------+
//   | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
//   +----+------+----------+------+----------+
// ULEN 0 is refused (AUTH_EMPTY_USERNAME): there is no user to look up. PLEN 0 is accepted,
// though the RFC says 1..255: curl sends it for "socks5://user@host", and the credential check,
// not the codec, decides whether an empty password is right.
export function decodeAuthRequest(input: Uint8Array): Decoded<AuthRequest> {
  if (input.length < 1) return needMore(4); // VER ULEN UNAME(1) PLEN
  if (input[0] !== AUTH_VERSION) {
    return failed(
      new ProtocolError(
        "AUTH_VERSION",
        `unsupported username/password auth version ${hex(input[0])} (expected 0x01)${
          input[0] === SOCKS_VERSION
            ? "; the client sent a SOCKS5 message where RFC 1929 credentials were expected"
            : ""
        }`,
      ),
    );
  }
  if (input.length < 2) return needMore(3);
  const usernameBytes = input[1];
  if (usernameBytes === 0) {
    return failed(
      new ProtocolError(
        "AUTH_EMPTY_USERNAME",
        "username/password auth with an empty username (ULEN 0x00, expected 0x01..0xff)",
      ),
    );
  }
  const passwordLengthAt = 2 + usernameBytes;
  if (input.length <= passwordLengthAt) return needMore(passwordLengthAt + 1 - input.length);
  const passwordAt = passwordLengthAt + 1;
  const bytes = passwordAt + input[passwordLengthAt]; // ≤ AUTH_REQUEST_BYTES_MAX (513)
  if (input.length < bytes) return needMore(bytes - input.length);
  const username = utf8.decode(input.subarray(2, passwordLengthAt));
  return decoded(new AuthRequest(username, input.slice(passwordAt, bytes)), bytes);
}

// Server → client:
//   +----+--------+
//   |VER | STATUS |
//   +----+--------+
//   | 1  |   1    |
//   +----+--------+
// VER is 0x01, not 0x05. STATUS 0x00 is success; after any other status the server closes.
export function encodeAuthReply(status: number): Uint8Array {
  assertByte("status", status);
  return Uint8Array.of(AUTH_VERSION, status);
}

/** Client side, for tests and health checks. Strings are sent as UTF-8. */
export function encodeAuthRequest(
  username: string | Uint8Array,
  password: string | Uint8Array,
): Uint8Array {
  const user = typeof username === "string" ? new TextEncoder().encode(username) : username;
  const pass = typeof password === "string" ? new TextEncoder().encode(password) : password;
  if (user.length < 1 || user.length > AUTH_FIELD_BYTES_MAX) {
    throw new RangeError(`username must be 1..255 bytes, got ${user.length}`);
  }
  if (pass.length > AUTH_FIELD_BYTES_MAX) {
    throw new RangeError(`password must be 0..255 bytes, got ${pass.length}`); // length only
  }
  const bytes = new Uint8Array(3 + user.length + pass.length);
  bytes[0] = AUTH_VERSION;
  bytes[1] = user.length;
  bytes.set(user, 2);
  bytes[2 + user.length] = pass.length;
  bytes.set(pass, 3 + user.length);
  return bytes;
}

/** Client side: the server's `01 STATUS`. */
export function decodeAuthReply(input: Uint8Array): Decoded<{ status: number }> {
  if (input.length < 1) return needMore(AUTH_REPLY_BYTES);
  if (input[0] !== AUTH_VERSION) {
    return failed(
      new ProtocolError(
        "AUTH_VERSION",
        `unsupported username/password auth version ${hex(input[0])} (expected 0x01)`,
      ),
    );
  }
  if (input.length < AUTH_REPLY_BYTES) return needMore(1);
  return decoded({ status: input[1] }, AUTH_REPLY_BYTES);
}
