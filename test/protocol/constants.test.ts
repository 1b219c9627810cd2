import { describe, expect, test } from "bun:test";
import {
  AddressType,
  AUTH_REQUEST_BYTES_MAX,
  Command,
  GREETING_BYTES_MAX,
  HANDSHAKE_BYTES_MAX,
  Method,
  REPLY_BYTES_MAX,
  REQUEST_BYTES_MAX,
  Reply,
} from "../../src/protocol/constants.ts";

describe("wire constants", () => {
  test("message size limits follow from the field widths", () => {
    expect(GREETING_BYTES_MAX).toBe(257);
    expect(AUTH_REQUEST_BYTES_MAX).toBe(513);
    expect(REQUEST_BYTES_MAX).toBe(262);
    expect(REPLY_BYTES_MAX).toBe(262);
    expect(HANDSHAKE_BYTES_MAX).toBe(
      GREETING_BYTES_MAX + AUTH_REQUEST_BYTES_MAX + REQUEST_BYTES_MAX,
    );
    expect(HANDSHAKE_BYTES_MAX).toBe(1032);
  });

  test("byte values match RFC 1928 and the failure table", () => {
    expect(Method).toEqual({ NO_AUTH: 0, GSSAPI: 1, USERNAME_PASSWORD: 2, NO_ACCEPTABLE: 0xff });
    expect(Command).toEqual({ CONNECT: 1, BIND: 2, UDP_ASSOCIATE: 3 });
    expect(AddressType).toEqual({ IPV4: 1, DOMAIN: 3, IPV6: 4 });
    expect(Object.values(Reply)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Reply.NOT_ALLOWED).toBe(0x02);
    expect(Reply.TTL_EXPIRED).toBe(0x06);
  });
});
