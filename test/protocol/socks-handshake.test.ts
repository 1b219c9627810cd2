// The SOCKS5 front protocol as a pure state object: exact byte vectors, no sockets.

import { describe, expect, test } from "bun:test";
import type { FrontStep } from "../../src/protocol/front.ts";
import { type LoginVerdict, Socks5Handshake } from "../../src/protocol/socks-handshake.ts";
import { concat, fromHex, toHex } from "../support/bytes.ts";

const GREETING_NO_AUTH = fromHex("05 01 00");
const GREETING_PASSWORD = fromHex("05 01 02");
const LOGIN_ALICE = fromHex("01 05 616c696365 06 733363726574"); // alice / s3cret
const CONNECT_IPV4 = fromHex("05 01 00 01 7f000001 1f90"); // 127.0.0.1:8080
const CONNECT_DOMAIN = fromHex("05 01 00 03 0b 6578616d706c652e636f6d 0050"); // example.com:80

const alice = (username: string, password: Uint8Array): LoginVerdict => {
  if (username !== "alice") return "unknown-user";
  return new TextDecoder().decode(password) === "s3cret" ? "ok" : "wrong-password";
};

/** Feeds `input` to the end, the way the pipeline does: each step consumes its message. */
function run(handshake: Socks5Handshake, input: Uint8Array): FrontStep[] {
  const steps: FrontStep[] = [];
  let rest = input;
  for (;;) {
    const step = handshake.feed(rest);
    steps.push(step);
    if (step.kind !== "reply") return steps;
    rest = rest.subarray(step.consumed);
  }
}

function view(step: FrontStep): unknown {
  switch (step.kind) {
    case "need-more":
      return "need-more";
    case "reply":
      return { reply: toHex(step.bytes), consumed: step.consumed };
    case "dial":
      return { dial: step.request, consumed: step.consumed };
    case "refuse":
      return { refuse: step.code, reply: step.reply === null ? null : toHex(step.reply) };
    case "login":
      return { login: step.consumed };
    case "associate":
      return { associate: step.client, user: step.user, consumed: step.consumed };
  }
}

describe("Socks5Handshake", () => {
  test("no auth: greeting → 05 00, request → dial", () => {
    const steps = run(new Socks5Handshake(null), concat(GREETING_NO_AUTH, CONNECT_IPV4));
    expect(steps.map(view)).toEqual([
      { reply: "05 00", consumed: 3 },
      { dial: { host: "127.0.0.1", port: 8080 }, consumed: 10 },
    ]);
  });

  test("password: greeting → 05 02, login → 01 00, request → dial to a domain", () => {
    const steps = run(
      new Socks5Handshake(alice),
      concat(GREETING_PASSWORD, LOGIN_ALICE, CONNECT_DOMAIN),
    );
    expect(steps.map(view)).toEqual([
      { reply: "05 02", consumed: 3 },
      { reply: "01 00", consumed: LOGIN_ALICE.length },
      { dial: { host: "example.com", port: 80 }, consumed: CONNECT_DOMAIN.length },
    ]);
  });

  test("bytes after the request are not consumed: they are early data", () => {
    const handshake = new Socks5Handshake(null);
    handshake.feed(GREETING_NO_AUTH);
    const step = handshake.feed(concat(CONNECT_IPV4, fromHex("47 45 54")));
    expect(view(step)).toEqual({ dial: { host: "127.0.0.1", port: 8080 }, consumed: 10 });
  });

  test("a prefix of any message is need-more, at every split point", () => {
    const whole = concat(GREETING_PASSWORD, LOGIN_ALICE, CONNECT_DOMAIN);
    const expected = run(new Socks5Handshake(alice), whole).map(view);
    // Re-feed growing prefixes, as the pipeline does with a message held in a slot.
    const handshake = new Socks5Handshake(alice);
    const steps: FrontStep[] = [];
    let start = 0;
    for (let end = 1; end <= whole.length; end++) {
      const step = handshake.feed(whole.subarray(start, end));
      if (step.kind === "need-more") continue;
      steps.push(step);
      if (step.kind !== "reply") break;
      start += step.consumed;
    }
    expect(steps.map(view)).toEqual(expected);
  });

  test("no acceptable method → 05 FF, refused as NO_ACCEPTABLE_METHOD", () => {
    expect(run(new Socks5Handshake(alice), GREETING_NO_AUTH).map(view)).toEqual([
      { refuse: "NO_ACCEPTABLE_METHOD", reply: "05 ff" },
    ]);
  });

  test("a wrong password → 01 01 with the username, never the password", () => {
    const steps = run(
      new Socks5Handshake(alice),
      concat(GREETING_PASSWORD, fromHex("01 05 616c696365 05 7772306e67")),
    );
    const last = steps.at(-1)!;
    expect(view(last)).toEqual({ refuse: "AUTH_FAILED", reply: "01 01" });
    expect(last.kind === "refuse" && last.username).toBe("alice");
    expect(JSON.stringify(last)).not.toContain("wr0ng");
  });

  test("an unknown user is refused without its name: a wrong ULEN would put the password in it", () => {
    // ULEN 0x0c where the client meant 0x05: UNAME = "alice" 06 "s3cret", and the password is
    // whatever follows. Before, the refusal carried that name and the log printed the password.
    const misframed = fromHex("01 0c 616c696365 06 733363726574 01 78");
    const steps = run(new Socks5Handshake(alice), concat(GREETING_PASSWORD, misframed));
    const last = steps.at(-1)!;
    expect(view(last)).toEqual({ refuse: "AUTH_FAILED", reply: "01 01" });
    expect(last.kind === "refuse" && last.username).toBeUndefined();
    expect(JSON.stringify(last)).not.toContain("s3cret");
  });

  test("UDP ASSOCIATE when served: an associate step with the declared address, and the user", () => {
    const request = fromHex("05 03 00 01 00000000 1f91"); // 0.0.0.0:8081
    const open = run(new Socks5Handshake(null, { udp: true }), concat(GREETING_NO_AUTH, request));
    expect(view(open.at(-1)!)).toEqual({
      associate: { host: "0.0.0.0", port: 8081 },
      user: undefined,
      consumed: 10,
    });
    const authed = run(
      new Socks5Handshake(alice, { udp: true }),
      concat(GREETING_PASSWORD, LOGIN_ALICE, request),
    );
    expect(view(authed.at(-1)!)).toEqual({
      associate: { host: "0.0.0.0", port: 8081 },
      user: "alice",
      consumed: 10,
    });
  });

  test.each([
    ["BIND", "05 02 00 01 7f000001 0050", "COMMAND_NOT_SUPPORTED", "05 07 00 01 00000000 0000"],
    [
      "UDP ASSOCIATE (not served: udp.enabled is off)",
      "05 03 00 01 7f000001 0050",
      "COMMAND_NOT_SUPPORTED",
      "05 07 00 01 00000000 0000",
    ],
    ["unknown command", "05 09 00 01 7f000001 0050", "SOCKS_COMMAND", "05 07 00 01 00000000 0000"],
    [
      "address type 02",
      "05 01 00 02 7f000001 0050",
      "SOCKS_ADDRESS_TYPE",
      "05 08 00 01 00000000 0000",
    ],
    ["empty domain", "05 01 00 03 00 0050", "SOCKS_DOMAIN_EMPTY", "05 01 00 01 00000000 0000"],
    ["version 04", "04 01 00 01 7f000001 0050", "SOCKS_VERSION", null],
  ])("request: %s → %s", (_, request, code, reply) => {
    const steps = run(new Socks5Handshake(null), concat(GREETING_NO_AUTH, fromHex(request)));
    expect(view(steps.at(-1)!)).toEqual({
      refuse: code,
      reply: reply === null ? null : toHex(fromHex(reply)),
    });
  });

  test("greeting errors are framed as a method selection, auth errors as an RFC 1929 status", () => {
    expect(run(new Socks5Handshake(null), fromHex("05 00")).map(view)).toEqual([
      { refuse: "SOCKS_NO_METHODS", reply: "05 ff" },
    ]);
    expect(run(new Socks5Handshake(null), fromHex("04 01 00")).map(view)).toEqual([
      { refuse: "SOCKS_VERSION", reply: null },
    ]);
    const emptyUser = run(new Socks5Handshake(alice), concat(GREETING_PASSWORD, fromHex("01 00")));
    expect(view(emptyUser.at(-1)!)).toEqual({ refuse: "AUTH_EMPTY_USERNAME", reply: "01 01" });
    const badVersion = run(new Socks5Handshake(alice), concat(GREETING_PASSWORD, fromHex("05 01")));
    expect(view(badVersion.at(-1)!)).toEqual({ refuse: "AUTH_VERSION", reply: null });
  });

  test("a decoder error carries the decoder's ProtocolError", () => {
    const step = new Socks5Handshake(null).feed(fromHex("04 01 00"));
    expect(step.kind === "refuse" && step.error?.message).toContain("SOCKS4");
  });

  test("answers to the dial: success carries the bound address, failure the reply byte", () => {
    const handshake = new Socks5Handshake(null);
    expect(toHex(handshake.succeeded({ host: "127.0.0.1", port: 40000 }))).toBe(
      "05 00 00 01 7f 00 00 01 9c 40",
    );
    expect(toHex(handshake.dialFailed({ reply: 0x05, outcome: "refused" }))).toBe(
      "05 05 00 01 00 00 00 00 00 00",
    );
  });

  test("feeding after the handshake ended is a bug, and says so", () => {
    const handshake = new Socks5Handshake(null);
    run(handshake, concat(GREETING_NO_AUTH, CONNECT_IPV4));
    expect(() => handshake.feed(CONNECT_IPV4)).toThrow("after the request was read");
  });
});

describe("Socks5Handshake with a check that runs asynchronously (a hashed password)", () => {
  const later = (verdict: LoginVerdict) => () => Promise.resolve(verdict);

  test("login step, then loginResult: 01 00 and the request as usual", async () => {
    const handshake = new Socks5Handshake(later("ok"));
    expect(view(handshake.feed(GREETING_PASSWORD))).toEqual({ reply: "05 02", consumed: 3 });
    const step = handshake.feed(concat(LOGIN_ALICE, CONNECT_IPV4));
    expect(step.kind === "login" && step.consumed).toBe(LOGIN_ALICE.length);
    const verdict = step.kind === "login" ? await step.verdict : "unknown-user";
    expect(view(handshake.loginResult(verdict))).toEqual({ reply: "01 00", consumed: 0 });
    expect(handshake.feed(CONNECT_IPV4)).toMatchObject({ kind: "dial", user: "alice" });
  });

  test.each([
    ["wrong-password", "AUTH_FAILED", "alice"],
    ["unknown-user", "AUTH_FAILED", undefined],
    ["busy", "AUTH_BUSY", undefined],
  ] as const)("a %s verdict refuses with %s, 01 01", async (verdict, code, username) => {
    const handshake = new Socks5Handshake(later(verdict));
    handshake.feed(GREETING_PASSWORD);
    const step = handshake.feed(LOGIN_ALICE);
    expect(step.kind).toBe("login");
    const refusal = handshake.loginResult(verdict);
    expect(view(refusal)).toEqual({ refuse: code, reply: "01 01" });
    expect(refusal.kind === "refuse" && refusal.username).toBe(username);
  });

  test("loginResult without a login step is a bug, not a silent success", () => {
    expect(() => new Socks5Handshake(later("ok")).loginResult("ok")).toThrow("assert");
  });
});
