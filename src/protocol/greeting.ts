// RFC 1928 §3 method negotiation: the client's greeting and the server's method selection.
// Pure: bytes in, result out. Which methods are configured is the caller's business.

import { METHOD_SELECTION_BYTES, METHODS_MAX, Method, SOCKS_VERSION } from "./constants.ts";
import {
  assertByte,
  type Decoded,
  decoded,
  failed,
  needMore,
  ProtocolError,
  socksVersionError,
} from "./errors.ts";

export interface Greeting {
  /** METHOD bytes in the order offered; a copy, not a view of the input. */
  methods: number[];
}

// Client → server:
//   +----+----------+----------+
//   |VER | NMETHODS | METHODS  |
//   +----+----------+----------+
//   | 1  |    1     | 1 to 255 |
//   +----+----------+----------+
export function decodeGreeting(input: Uint8Array): Decoded<Greeting> {
  if (input.length < 1) return needMore(3); // VER NMETHODS and one METHOD
  if (input[0] !== SOCKS_VERSION) return failed(socksVersionError(input[0]));
  if (input.length < 2) return needMore(2);
  const methodCount = input[1];
  if (methodCount === 0) {
    // The client offered nothing, so nothing is acceptable: answer 05 FF and close.
    return failed(
      new ProtocolError(
        "SOCKS_NO_METHODS",
        "greeting offers no authentication methods (NMETHODS 0x00, expected 0x01..0xff)",
      ),
    );
  }
  const bytes = 2 + methodCount; // ≤ GREETING_BYTES_MAX (257): NMETHODS is one byte
  if (input.length < bytes) return needMore(bytes - input.length);
  return decoded({ methods: Array.from(input.subarray(2, bytes)) }, bytes);
}

// Server → client:
//   +----+--------+
//   |VER | METHOD |
//   +----+--------+
//   | 1  |   1    |
//   +----+--------+
export function encodeMethodSelection(method: number): Uint8Array {
  assertByte("method", method);
  return Uint8Array.of(SOCKS_VERSION, method);
}

/**
 * The method to answer with, or `Method.NO_ACCEPTABLE` (0xFF).
 * Only the configured method is acceptable: with auth required, 0x02; without, 0x00. A client
 * that offers only 0x02 to a server without users gets 0xFF: we have no credentials to check, and
 * accepting any would pretend to a security that is not there.
 */
export function chooseMethod(
  offered: ArrayLike<number>,
  options: { authRequired: boolean },
): number {
  const wanted = options.authRequired ? Method.USERNAME_PASSWORD : Method.NO_AUTH;
  for (let i = 0; i < offered.length; i++) {
    if (offered[i] === wanted) return wanted;
  }
  return Method.NO_ACCEPTABLE;
}

/** Client side, for tests and health checks: `05 NMETHODS METHODS…`. */
export function encodeGreeting(methods: ArrayLike<number>): Uint8Array {
  if (methods.length < 1 || methods.length > METHODS_MAX) {
    throw new RangeError(`a greeting offers 1..${METHODS_MAX} methods, got ${methods.length}`);
  }
  const bytes = new Uint8Array(2 + methods.length);
  bytes[0] = SOCKS_VERSION;
  bytes[1] = methods.length;
  for (let i = 0; i < methods.length; i++) {
    assertByte("method", methods[i]);
    bytes[2 + i] = methods[i];
  }
  return bytes;
}

/** Client side: the server's `05 METHOD`. Any METHOD byte is returned; 0xFF means refused. */
export function decodeMethodSelection(input: Uint8Array): Decoded<{ method: number }> {
  if (input.length < 1) return needMore(METHOD_SELECTION_BYTES);
  if (input[0] !== SOCKS_VERSION) return failed(socksVersionError(input[0]));
  if (input.length < METHOD_SELECTION_BYTES) return needMore(1);
  return decoded({ method: input[1] }, METHOD_SELECTION_BYTES);
}
