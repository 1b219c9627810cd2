import { describe, expect, test } from "bun:test";
import { ProtocolError } from "../../src/protocol/errors.ts";
import {
  dialFailure,
  handshakeFailure,
  replyForConnectError,
} from "../../src/protocol/failures.ts";

describe("replyForConnectError (the failure table)", () => {
  test.each([
    // 05 connection refused
    ["ECONNREFUSED", 0x05],
    // 06 connect timeout
    ["ETIMEDOUT", 0x06],
    ["ERR_SOCKET_CONNECTION_TIMEOUT", 0x06],
    // 04 host unreachable or name not found
    ["EHOSTUNREACH", 0x04],
    ["EHOSTDOWN", 0x04],
    ["ENOTFOUND", 0x04],
    ["DNS_ENOTFOUND", 0x04],
    ["ENODATA", 0x04],
    ["DNS_ENODATA", 0x04],
    ["EAI_NONAME", 0x04],
    ["DNS_ENONAME", 0x04],
    ["EAI_NODATA", 0x04],
    // 03 network unreachable
    ["ENETUNREACH", 0x03],
    ["ENETDOWN", 0x03],
    // 01 anything else, including the deliberate choices documented in failures.ts
    ["EAI_AGAIN", 0x01], // resolver failed, the name may exist
    ["DNS_ETIMEOUT", 0x01],
    ["DNS_ESERVFAIL", 0x01],
    ["EACCES", 0x01], // 02 is only for sockpool's own ruleset
    ["EPERM", 0x01],
    ["EINVAL", 0x01], // Bun: fe80::1 without a scope id
    ["ERR_INVALID_ARG_TYPE", 0x01], // Bun: hostname with NUL
    ["ECONNRESET", 0x01],
    ["econnrefused", 0x01], // codes are case-sensitive
    ["", 0x01],
    [undefined, 0x01],
  ])("%p → %i", (code, reply) => {
    expect(replyForConnectError(code)).toBe(reply);
  });

  test("never answers 00 (success), 02 (ruleset), 07 or 08 (request problems)", () => {
    const codes = ["ECONNREFUSED", "ETIMEDOUT", "ENOTFOUND", "ENETUNREACH", "EACCES", "EPERM", "x"];
    for (const code of codes)
      expect([0x00, 0x02, 0x07, 0x08]).not.toContain(replyForConnectError(code));
  });
});

describe("the failure table: reply byte and log outcome together", () => {
  test.each([
    ["ECONNREFUSED", 0x05, "refused"],
    ["ETIMEDOUT", 0x06, "timeout"],
    ["DNS_ENOTFOUND", 0x04, "unreachable"],
    ["ENETUNREACH", 0x03, "unreachable"],
    ["DNS_ETIMEOUT", 0x01, "error"],
    ["ECONNRESET", 0x01, "error"],
    ["EMFILE", 0x01, "limit"], // the proxy is out of descriptors, not the destination's fault
    ["ENFILE", 0x01, "limit"],
  ] as const)("dial %s → %i, %s", (code, reply, outcome) => {
    expect(dialFailure(code)).toEqual({ reply, outcome });
  });

  test.each([
    ["SOCKS_VERSION", null, "bad_request"],
    ["SOCKS_NO_METHODS", 0xff, "bad_request"],
    ["SOCKS_COMMAND", 0x07, "unsupported"],
    ["SOCKS_ADDRESS_TYPE", 0x08, "unsupported"],
    ["SOCKS_DOMAIN_EMPTY", 0x01, "bad_request"],
    ["SOCKS_DOMAIN_NUL", 0x01, "bad_request"],
    ["AUTH_VERSION", null, "bad_request"],
    ["AUTH_EMPTY_USERNAME", 0x01, "bad_request"],
    ["NO_ACCEPTABLE_METHOD", 0xff, "auth_failed"],
    ["AUTH_FAILED", 0x01, "auth_failed"],
    ["COMMAND_NOT_SUPPORTED", 0x07, "unsupported"],
    ["CLIENT_ABORTED", null, "aborted"],
    ["HANDSHAKE_TIMEOUT", null, "handshake_timeout"],
    ["POOL_EXHAUSTED", null, "limit"],
  ] as const)("handshake %s → %p, %s", (code, reply, outcome) => {
    expect(handshakeFailure(code)).toEqual({ reply, outcome });
  });

  test("a decoder's ProtocolError reads its reply from the same table", () => {
    const error = new ProtocolError("SOCKS_ADDRESS_TYPE", "unsupported address type 0x02");
    expect(error.reply).toBe(handshakeFailure("SOCKS_ADDRESS_TYPE").reply);
  });
});
