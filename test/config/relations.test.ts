// Relationships between config fields: each is a config error naming the field and the fix, never
// a crash at start. Not the single-field ranges (schema.test.ts) nor the constants (limits.test.ts).

import { describe, expect, test } from "bun:test";
import { formatIssue, formatPath } from "../../src/config/errors.ts";
import { RELATIONS } from "../../src/config/relations.ts";
import { validateConfig } from "../../src/config/schema.ts";
import { LIMITS } from "../../src/limits.ts";
import { runBun } from "../support/spawn.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url);

function problems(input: unknown): string[] {
  const result = validateConfig(input);
  return result.success ? [] : result.issues.map((issue) => formatIssue(issue));
}

describe("the slab (pool.slots × pool.slot_bytes) fits in 4 GiB", () => {
  test("exactly 4 GiB is accepted, anything above is a config error", () => {
    const backlog = { backlog_bytes_max: 16_384 };
    expect(problems({ pool: { slots: 1 << 18, slot_bytes: 16_384 }, relay: backlog })).toEqual([]);
    expect(problems({ pool: { slots: 1 << 19, slot_bytes: 16_384 }, relay: backlog })).toEqual([
      `pool.slots: expected at most ${LIMITS.slab_bytes_max} / pool.slot_bytes (262144, so the slab fits in 4 GiB), got 524288`,
    ]);
  });

  test("a pool over 4 GiB exits 2 with the problem, not a crash at start", async () => {
    const { code, stderr } = await runBun(MAIN, [
      "--socks",
      "127.0.0.1:0",
      "--pool-slots",
      "1048576",
    ]);
    expect(code).toBe(2);
    expect(stderr).toContain(
      "--pool-slots: expected at most 4294967296 / pool.slot_bytes (262144, so the slab fits in 4 GiB), got 1048576",
    );
    expect(stderr).not.toContain("    at ");
  }, 30_000);
});

describe("every relationship between fields is a config error", () => {
  // One breaking input per relationship, keyed by the field it blames.
  const cases: Record<string, [input: unknown, problem: string]> = {
    "pool.slots": [
      { pool: { slots: 1 << 20, slot_bytes: 8192 } },
      "pool.slots: expected at most 4294967296 / pool.slot_bytes (524288, so the slab fits in 4 GiB), got 1048576",
    ],
    "relay.backlog_bytes_max": [
      { relay: { backlog_bytes_max: 4096 } },
      "relay.backlog_bytes_max: expected between pool.slot_bytes (16384) and pool.slots × pool.slot_bytes (67108864), got 4096",
    ],
    "pool.local_batch": [
      { pool: { slots: 32, local_batch: 32 }, relay: { backlog_bytes_max: 16_384 } },
      "pool.local_batch: expected at most pool.slots / 2 (16; a Worker caches up to 2 × local_batch slots), got 32",
    ],
    "socks.users": [
      { socks: { auth: "password" } },
      'socks.users: expected at least one user when socks.auth = "password" (add [[socks.users]] or --socks-user USER:PASS), got []',
    ],
    "socks.auth": [
      { socks: { users: [{ username: "a", password: "b" }] } },
      'socks.auth: expected "password" when socks.users is not empty and no [[http]] listener has auth = "password" (otherwise the users are ignored), got "none"',
    ],
    "socks.listen": [
      { socks: { listen: "0.0.0.0:1080" } },
      'socks.listen: expected a loopback address while socks.auth = "none": anyone who can reach this one could use it as an open proxy; require a password (socks.auth = "password" with [[socks.users]], or --socks-user), listen on 127.0.0.1 or [::1], or set socks.allow_open_proxy = true (--allow-open-proxy) if that is what you want, got "0.0.0.0:1080"',
    ],
    forward: [
      { socks: { enabled: false } },
      "forward: expected at least one [[forward]] or [[http]] entry when socks.enabled = false (nothing would listen), got []",
    ],
    "socks.connect_timeout_ms": [
      { socks: { connect_timeout_ms: 1 }, upstream: { connect_timeout_ms: 2 } },
      "socks.connect_timeout_ms: expected nothing here when upstream.connect_timeout_ms is set (this is its deprecated old name: delete it), got 1",
    ],
    "socks.dns_timeout_ms": [
      { socks: { dns_timeout_ms: 1 }, upstream: { dns_timeout_ms: 2 } },
      "socks.dns_timeout_ms: expected nothing here when upstream.dns_timeout_ms is set (this is its deprecated old name: delete it), got 1",
    ],
  };

  cases["server.pool.max_idle_per_dest"] = [
    { server: { pool: { max_idle_per_dest: 9, max_total_idle: 8 } } },
    "server.pool.max_idle_per_dest: expected at most server.pool.max_total_idle (8): one destination cannot hold more than the whole pool, got 9",
  ];
  cases["admin.listen"] = [
    { admin: { listen: "0.0.0.0:9090" } },
    'admin.listen: expected a loopback address unless admin.token is set: the admin API shows every connection and client address; set admin.token (16 or more characters; clients send it as "Authorization: Bearer TOKEN"), or listen on 127.0.0.1 or [::1], got "0.0.0.0:9090"',
  ];

  test("each relationship has a case here", () => {
    expect(RELATIONS.map((relation) => formatPath(relation.blame)).sort()).toEqual(
      Object.keys(cases).sort(),
    );
  });

  for (const [blame, [input, problem]] of Object.entries(cases)) {
    test(`${blame}: broken, it is exactly one problem naming the fix`, () => {
      expect(problems(input)).toEqual([problem]);
    });
  }

  test("a SOCKS5 listener beyond loopback is fine with a password, or when allowed on purpose", () => {
    const users = [{ username: "a", password: "b" }];
    expect(problems({ socks: { listen: "0.0.0.0:1080", auth: "password", users } })).toEqual([]);
    expect(problems({ socks: { listen: "[::]:1080", allow_open_proxy: true } })).toEqual([]);
    expect(problems({ socks: { listen: "localhost:1080" } })).toEqual([]);
    expect(problems({ socks: { listen: "127.9.9.9:1080" } })).toEqual([]);
    expect(problems({ socks: { listen: "[::1]:1080" } })).toEqual([]);
    expect(
      problems({
        socks: { enabled: false, listen: "0.0.0.0:1080" },
        forward: [{ listen: "0.0.0.0:80", target: "a:1" }],
      }),
    ).toEqual([]);
    expect(problems({ socks: { listen: "192.0.2.1:1080" } })).toHaveLength(1);
  });

  test("the descriptor limit is a start-up warning, not a config error", () => {
    expect(problems({ server: { connections_max: LIMITS.connections_max } })).toEqual([]);
  });
});

describe("[server.pool] and [admin]", () => {
  test("max_idle_per_dest may not exceed max_total_idle", () => {
    expect(problems({ server: { pool: { max_idle_per_dest: 8, max_total_idle: 8 } } })).toEqual([]);
    expect(problems({ server: { pool: { max_idle_per_dest: 9, max_total_idle: 8 } } })).toEqual([
      "server.pool.max_idle_per_dest: expected at most server.pool.max_total_idle (8): one destination cannot hold more than the whole pool, got 9",
    ]);
  });

  test("an admin API beyond loopback needs a token", () => {
    expect(problems({ admin: { listen: "127.0.0.1:0" } })).toEqual([]);
    expect(problems({ admin: { listen: "[::1]:9090" } })).toEqual([]);
    expect(problems({ admin: { listen: "off" } })).toEqual([]);
    expect(problems({ admin: { listen: "0.0.0.0:9090", token: "x".repeat(16) } })).toEqual([]);
    const [problem, ...rest] = problems({ admin: { listen: "0.0.0.0:9090" } });
    expect(rest).toEqual([]);
    expect(problem).toStartWith(
      "admin.listen: expected a loopback address unless admin.token is set",
    );
    expect(problem).toEndWith(', got "0.0.0.0:9090"');
  });

  test("a short or spaced token is refused", () => {
    expect(problems({ admin: { token: "short" } })).toEqual([
      // A token is a secret: even a bad one is not echoed.
      "admin.token: expected 16..256 printable ASCII characters, no spaces, got <redacted>",
    ]);
    expect(problems({ admin: { token: "a token with spaces" } })).toHaveLength(1);
  });

  test("the admin API may not share an address with a listener", () => {
    expect(problems({ socks: { listen: "127.0.0.1:9090" } })).toEqual([
      'admin.listen: expected an address not already used by socks.listen, got "127.0.0.1:9090"',
    ]);
  });
});

describe("a listener expecting PROXY headers needs server.trusted_proxies", () => {
  test("socks, a forward and an http listener each: named, with the fix; with a proxy listed, none", () => {
    const listeners = {
      socks: { proxy_protocol: true },
      forward: [{ listen: "127.0.0.1:8080", target: "127.0.0.1:80", proxy_protocol: true }],
      http: [{ listen: "127.0.0.1:3128", proxy_protocol: true }],
    };
    const found = problems(listeners);
    expect(found.map((problem) => problem.split(":")[0])).toEqual([
      "socks.proxy_protocol",
      "forward[0].proxy_protocol",
      "http[0].proxy_protocol",
    ]);
    expect(found[0]).toContain("server.trusted_proxies");
    expect(problems({ ...listeners, server: { trusted_proxies: ["10.0.0.0/8"] } })).toEqual([]);
    expect(problems({ server: { trusted_proxies: ["10.0.0.0/33"] } })[0]).toStartWith(
      "server.trusted_proxies[0]:",
    );
  });
});

test("users with socks.auth = none are fine when an [[http]] listener asks for a password", () => {
  const users = [{ username: "a", password: "b" }];
  expect(
    problems({
      socks: { auth: "none", users },
      http: [{ listen: "127.0.0.1:3128", auth: "password" }],
    }),
  ).toEqual([]);
});
