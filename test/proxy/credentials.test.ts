// The login check: plain passwords compared at once, hashed ones verified by Bun.password off the
// event loop, a successful hash check remembered (and forgotten on time), and a bound on the hash
// checks in flight.

import { beforeAll, describe, expect, test } from "bun:test";
import { LIMITS } from "../../src/limits.ts";
import type { LoginVerdict } from "../../src/protocol/index.ts";
import { hashPassword, passwordCheck } from "../../src/proxy/credentials.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
let bobHash = "";

beforeAll(async () => {
  // bcrypt at its lowest cost keeps the suite fast; argon2id is checked once below.
  bobHash = await Bun.password.hash("hunter2", { algorithm: "bcrypt", cost: 4 });
});

describe("passwordCheck", () => {
  test("a plain password is checked at once, without a Promise", () => {
    const check = passwordCheck([{ username: "ann", password: "pw" }]);
    expect(check("ann", bytes("pw"))).toBe("ok");
    expect(check("ann", bytes("pW"))).toBe("wrong-password");
    expect(check("ann", bytes("pw "))).toBe("wrong-password");
    expect(check("nobody", bytes("pw"))).toBe("unknown-user");
  });

  test("a hashed password is verified asynchronously", async () => {
    const check = passwordCheck([{ username: "bob", password_hash: bobHash }]);
    const right = check("bob", bytes("hunter2"));
    expect(right).toBeInstanceOf(Promise);
    expect(await right).toBe("ok");
    expect(await check("bob", bytes("hunter3"))).toBe("wrong-password");
    expect(check("nobody", bytes("hunter2"))).toBe("unknown-user");
  });

  test("argon2id hashes from hashPassword() verify", async () => {
    const hash = await hashPassword("s3cret");
    expect(hash).toStartWith("$argon2id$");
    const check = passwordCheck([{ username: "cy", password_hash: hash }]);
    expect(await check("cy", bytes("s3cret"))).toBe("ok");
  });

  test("a success is remembered (answered at once) until login_cache_ms has passed", async () => {
    let now = 1_000;
    const check = passwordCheck([{ username: "bob", password_hash: bobHash }], () => now);
    expect(await check("bob", bytes("hunter2"))).toBe("ok");
    expect(check("bob", bytes("hunter2"))).toBe("ok"); // no Promise: from the cache
    // A wrong password is never answered from the cache.
    expect(check("bob", bytes("hunter3"))).toBeInstanceOf(Promise);
    now += LIMITS.login_cache_ms + 1;
    expect(check("bob", bytes("hunter2"))).toBeInstanceOf(Promise);
  });

  test(`at most ${LIMITS.login_checks_in_flight_max} hash checks at once; the next is "busy"`, async () => {
    const check = passwordCheck([{ username: "bob", password_hash: bobHash }]);
    const pending: (LoginVerdict | Promise<LoginVerdict>)[] = [];
    for (let i = 0; i < LIMITS.login_checks_in_flight_max; i++) {
      pending.push(check("bob", bytes(`wrong-${i}`)));
    }
    expect(check("bob", bytes("hunter2"))).toBe("busy");
    expect(await Promise.all(pending)).toEqual(
      Array(LIMITS.login_checks_in_flight_max).fill("wrong-password"),
    );
    expect(await check("bob", bytes("hunter2"))).toBe("ok"); // room again
  });
});
