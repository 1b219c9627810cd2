import { describe, expect, test } from "bun:test";
import { replyForConnectError } from "../../src/protocol/connect-error.ts";

describe("replyForConnectError (DESIGN.md reply table)", () => {
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
    // 01 anything else, including the deliberate choices documented in connect-error.ts
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
