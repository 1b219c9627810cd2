// The decoders' shared result type and their error. No I/O: the caller acts on the result.

import { handshakeFailure } from "./failures.ts";

/** Stable error codes; switch on these, never on message text. */
export type ProtocolErrorCode =
  | "SOCKS_VERSION" // VER is not 0x05
  | "SOCKS_NO_METHODS" // NMETHODS is 0
  | "SOCKS_COMMAND" // CMD is not 0x01, 0x02 or 0x03
  | "SOCKS_ADDRESS_TYPE" // ATYP is not 0x01, 0x03 or 0x04
  | "SOCKS_DOMAIN_EMPTY" // domain length byte is 0
  | "SOCKS_DOMAIN_NUL" // domain contains a 0x00 byte
  | "AUTH_VERSION" // RFC 1929 VER is not 0x01
  | "AUTH_EMPTY_USERNAME"; // RFC 1929 ULEN is 0

/**
 * A malformed or unsupported message from the peer. Bad input is a value, not a crash: decoders
 * return it inside `{ kind: "error" }` and never throw.
 *
 * `reply` is the byte to send before closing, read from the one failure table (failures.ts), for
 * the encoder of the phase that failed: `encodeMethodSelection` (greeting), `encodeAuthReply`
 * (RFC 1929 status) or `encodeReply` (request). `null` means send nothing and close: the peer does
 * not speak our protocol (wrong version byte), so any answer would be noise to it.
 *
 * Messages never contain a password.
 */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  readonly code: ProtocolErrorCode;

  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.code = code;
  }

  get reply(): number | null {
    return handshakeFailure(this.code).reply;
  }
}

/**
 * What every decoder returns.
 * - `message`: a complete message; it used the first `bytes` bytes of the input. The caller keeps
 *   the rest: a client may pipeline the next message, or early data, behind this one.
 * - `need-more`: the input is a valid prefix. At least `needed` more bytes are required before a
 *   message can be returned. This is a lower bound, not an exact count; calling again sooner is
 *   always safe, and an error may be detected before `needed` bytes arrive.
 * - `error`: the input can never become a valid message.
 */
export type Decoded<T> =
  | { kind: "message"; message: T; bytes: number }
  | { kind: "need-more"; needed: number }
  | { kind: "error"; error: ProtocolError };

/** A byte as the messages show it: `0x04`. */
export function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

export function decoded<T>(message: T, bytes: number): Decoded<T> {
  return { kind: "message", message, bytes };
}

export function needMore<T>(needed: number): Decoded<T> {
  return { kind: "need-more", needed };
}

export function failed<T>(error: ProtocolError): Decoded<T> {
  return { kind: "error", error };
}

// Encoders take values from our own code, so a bad argument is a bug: they throw RangeError.
export function assertByte(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new RangeError(`${what} must be a byte 0x00..0xff, got ${value}`);
  }
}

export function assertPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new RangeError(`port must be an integer 0..65535, got ${port}`);
  }
}

/** The VER check shared by the greeting, request and reply decoders. */
export function socksVersionError(found: number): ProtocolError {
  return new ProtocolError(
    "SOCKS_VERSION",
    `unsupported SOCKS version ${hex(found)} (expected 0x05)${versionHint(found)}`,
  );
}

// A wrong first byte is usually a misconfigured client; say which kind when it is obvious.
function versionHint(found: number): string {
  if (found === 0x04) return "; the client speaks SOCKS4, configure it for SOCKS5";
  // C(ONNECT) G(ET) H(EAD) P(OST|UT|ATCH) D(ELETE) O(PTIONS): the first letter of an HTTP method.
  if ("CGHPDO".includes(String.fromCharCode(found))) {
    return "; this looks like HTTP, configure the client for a SOCKS5 proxy, not an HTTP proxy";
  }
  return "";
}
