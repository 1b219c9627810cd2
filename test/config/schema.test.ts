import { describe, expect, test } from "bun:test";
import { ConfigError, formatIssue } from "../../src/config/errors.ts";
import {
  DEFAULT_CONFIG,
  parseConfig,
  validateConfig,
  workerCount,
} from "../../src/config/schema.ts";
import { LIMITS } from "../../src/limits.ts";
import { STRATEGY_NAMES } from "../../src/pool/strategies/names.ts";

/** The problem lines for a raw config, or [] when it is valid. */
function problems(input: unknown): string[] {
  const result = validateConfig(input);
  return result.success ? [] : result.issues.map((issue) => formatIssue(issue));
}

describe("defaults", () => {
  test("an empty file gives every documented default", () => {
    expect(DEFAULT_CONFIG).toEqual({
      server: {
        workers: 0,
        share_port: false,
        connections_max: 10_000,
        shutdown_timeout_ms: 10_000,
        drain_delay_ms: 0,
        trusted_proxies: [],
        // [server.pool], RustSocks' defaults
        pool: {
          enabled: false,
          max_idle_per_dest: 4,
          max_total_idle: 100,
          idle_timeout_secs: 90,
          connect_timeout_ms: 5_000,
        },
      },
      socks: {
        enabled: true,
        listen: "127.0.0.1:1080",
        auth: "none",
        protocol: "socks5",
        allow_open_proxy: false,
        users: [],
        proxy_protocol: false,
        handshake_timeout_ms: 10_000,
      },
      upstream: { connect_timeout_ms: 10_000, dns_timeout_ms: 5_000 },
      forward: [],
      http: [],
      udp: {
        enabled: false,
        idle_timeout_ms: 60_000,
        destinations_max: 64,
        datagrams_per_second: 0,
        associations_max: 1_000,
      },
      relay: { idle_timeout_ms: 300_000, fin_timeout_ms: 30_000, backlog_bytes_max: 262_144 },
      pool: {
        strategy: "local",
        slots: 4096,
        slot_bytes: 16_384,
        checked: false,
        handshake_share_percent: 25,
        local_batch: 32,
      },
      clients: {
        connections_max: 0,
        new_per_second: 0,
        auth_failures_max: 10,
        auth_block_ms: 60_000,
      },
      access: { default: "allow", rules: [] },
      admin: { listen: "127.0.0.1:9090" },
      log: { level: "info", format: "text" },
    });
  });

  test("the defaults validate as a complete config", () => {
    expect(problems(DEFAULT_CONFIG)).toEqual([]);
  });

  test("DEFAULT_CONFIG is frozen all the way down", () => {
    expect(Object.isFrozen(DEFAULT_CONFIG)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CONFIG.pool)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CONFIG.socks.users)).toBe(true);
  });

  test("each parse gets its own lists, not a shared default", () => {
    const first = parseConfig({});
    const second = parseConfig({});
    first.forward.push({ listen: "127.0.0.1:0", target: "example.com:80" });
    expect(second.forward).toEqual([]);
  });
});

describe("every problem is listed at once", () => {
  test("three bad fields give exactly three lines, in schema order", () => {
    expect(
      problems({
        server: { workers: 300 },
        pool: { slots: 1000 },
        log: { level: "verbose" },
      }),
    ).toEqual([
      "server.workers: expected 0 (one per CPU) or an integer between 1 and 256, got 300",
      "pool.slots: expected a power of two between 16 and 1048576, got 1000",
      'log.level: expected one of "debug", "info", "warn", "error", got "verbose"',
    ]);
  });

  test("a wrong type is one line, not one per failed rule", () => {
    expect(problems({ pool: { slots: "4096" } })).toEqual([
      'pool.slots: expected a power of two between 16 and 1048576, got "4096"',
    ]);
  });

  test("parseConfig throws a ConfigError carrying every line and the stable code", () => {
    let caught: unknown;
    try {
      parseConfig({ server: { connections_max: 0 }, socks: { auth: "gssapi" } });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.problems).toEqual([
      "server.connections_max: expected an integer between 1 and 1000000, got 0",
      'socks.auth: expected one of "none", "password", got "gssapi"',
    ]);
  });
});

describe("pool limits", () => {
  test("slots must be a power of two in range", () => {
    for (const slots of [16, 4096]) {
      expect(problems({ pool: { slots, local_batch: 8 } })).toEqual([]);
    }
    // The most slots, with slot_bytes small enough that the slab stays within 4 GiB.
    expect(problems({ pool: { slots: 1 << 20, slot_bytes: 4096, local_batch: 8 } })).toEqual([]);
    for (const slots of [0, 8, 1000, 4095, 1 << 21, 4096.5, -4096]) {
      expect(problems({ pool: { slots } })).toEqual([
        `pool.slots: expected a power of two between 16 and 1048576, got ${slots}`,
      ]);
    }
  });

  test("slot_bytes must be a multiple of 1024 in range", () => {
    expect(problems({ pool: { slot_bytes: 2048 } })).toEqual([]);
    for (const slotBytes of [512, 1500, 2 << 20]) {
      expect(problems({ pool: { slot_bytes: slotBytes, slots: 1 << 20 } })).toEqual([
        `pool.slot_bytes: expected a multiple of 1024 between 1024 and 1048576, got ${slotBytes}`,
      ]);
    }
  });

  test("every strategy name from src/pool is accepted, and nothing else", () => {
    for (const strategy of STRATEGY_NAMES) {
      expect(parseConfig({ pool: { strategy } }).pool.strategy).toBe(strategy);
    }
    expect(problems({ pool: { strategy: "magic" } })).toEqual([
      'pool.strategy: expected one of "queue", "queue-ts", "mutex", "spinlock", "local", "alloc", got "magic"',
    ]);
  });

  test("backlog_bytes_max must hold at least one slot and at most the whole pool", () => {
    expect(problems({ relay: { backlog_bytes_max: 16_384 } })).toEqual([]);
    expect(problems({ relay: { backlog_bytes_max: 4096 } })).toEqual([
      "relay.backlog_bytes_max: expected between pool.slot_bytes (16384) and pool.slots × pool.slot_bytes (67108864), got 4096",
    ]);
    // The default 262144 is exactly 16 × 16384: the upper bound itself is allowed.
    expect(problems({ pool: { slots: 16, local_batch: 8 } })).toEqual([]);
    expect(
      problems({ pool: { slots: 16, local_batch: 8 }, relay: { backlog_bytes_max: 262_145 } }),
    ).toEqual([
      "relay.backlog_bytes_max: expected between pool.slot_bytes (16384) and pool.slots × pool.slot_bytes (262144), got 262145",
    ]);
  });

  test("2 × local_batch must fit in the pool", () => {
    expect(
      problems({ pool: { slots: 64, local_batch: 32 }, relay: { backlog_bytes_max: 16_384 } }),
    ).toEqual([]);
    expect(
      problems({ pool: { slots: 32, local_batch: 32 }, relay: { backlog_bytes_max: 16_384 } }),
    ).toEqual([
      "pool.local_batch: expected at most pool.slots / 2 (16; a Worker caches up to 2 × local_batch slots), got 32",
    ]);
  });

  test("a relationship is not checked while one of its fields is itself invalid", () => {
    // slots = 1000 would also break backlog and local_batch bounds; only the root cause is listed.
    expect(problems({ pool: { slots: 1000 }, relay: { backlog_bytes_max: 2 ** 30 } })).toEqual([
      "pool.slots: expected a power of two between 16 and 1048576, got 1000",
    ]);
  });
});

describe("unknown keys", () => {
  test("a near miss suggests the option, anything else lists the section's options", () => {
    expect(problems({ pool: { slotz: 4096, colour: "red" } })).toEqual([
      'pool.slotz: unknown option (did you mean "slots"?)',
      "pool.colour: unknown option (known options: strategy, slots, slot_bytes, checked, handshake_share_percent, local_batch)",
    ]);
  });

  test("an unknown section and an unknown key in a [[forward]] entry are both named", () => {
    expect(
      problems({
        proxy: {},
        forward: [{ listen: "127.0.0.1:0", target: "example.com:80", tagret: "x" }],
      }),
    ).toEqual([
      'forward[0].tagret: unknown option (did you mean "target"?)',
      "proxy: unknown option (known options: server, socks, upstream, forward, http, udp, relay, pool, clients, access, admin, log)",
    ]);
  });

  test("a section that is not a table says so", () => {
    expect(problems({ pool: [1, 2] })).toEqual(["pool: expected a table, got [1,2]"]);
    expect(problems({ log: "debug" })).toEqual(['log: expected a table, got "debug"']);
  });

  test("a [[forward]] entry without target is reported as missing", () => {
    expect(problems({ forward: [{ listen: "127.0.0.1:0" }] })).toEqual([
      "forward[0].target: required option missing",
    ]);
  });
});

describe("socks", () => {
  test("auth = password requires at least one user", () => {
    expect(problems({ socks: { auth: "password" } })).toEqual([
      'socks.users: expected at least one user when socks.auth = "password" (add [[socks.users]] or --socks-user USER:PASS), got []',
    ]);
  });

  test("users without auth = password are refused rather than silently ignored", () => {
    expect(problems({ socks: { users: [{ username: "alice", password: "pw" }] } })).toEqual([
      'socks.auth: expected "password" when socks.users is not empty and no [[http]] listener has auth = "password" (otherwise the users are ignored), got "none"',
    ]);
  });

  test("usernames are 1..255 bytes, counted in UTF-8", () => {
    const ok = { username: "é".repeat(127), password: "x" }; // 254 bytes
    const long = { username: "é".repeat(128), password: "x" }; // 256 bytes
    expect(problems({ socks: { auth: "password", users: [ok] } })).toEqual([]);
    const [line, ...rest] = problems({ socks: { auth: "password", users: [long] } });
    expect(rest).toEqual([]);
    // Long values are cut to 80 characters, on a character boundary.
    expect(line).toBe(`socks.users[0].username: expected 1..255 bytes, got "${"é".repeat(78)}…`);
  });

  test("a username may appear only once", () => {
    const users = [
      { username: "alice", password: "one" },
      { username: "bob", password: "two" },
      { username: "alice", password: "three" },
    ];
    expect(problems({ socks: { auth: "password", users } })).toEqual([
      'socks.users[2].username: expected a username not already used by socks.users[0], got "alice"',
    ]);
  });

  test("timeouts are bounded and handshake_timeout_ms may not be 0", () => {
    expect(problems({ socks: { handshake_timeout_ms: 0, dns_timeout_ms: 86_400_001 } })).toEqual([
      "socks.handshake_timeout_ms: expected milliseconds between 1 and 86400000, got 0",
      "socks.dns_timeout_ms: expected milliseconds between 1 and 86400000, got 86400001",
    ]);
    expect(parseConfig({ relay: { idle_timeout_ms: 0 } }).relay.idle_timeout_ms).toBe(0);
  });
});

describe("listeners", () => {
  test("something must listen", () => {
    expect(problems({ socks: { enabled: false } })).toEqual([
      "forward: expected at least one [[forward]] or [[http]] entry when socks.enabled = false (nothing would listen), got []",
    ]);
    const forwardOnly = {
      socks: { enabled: false },
      forward: [{ listen: "127.0.0.1:0", target: "db:5432" }],
    };
    expect(problems(forwardOnly)).toEqual([]);
  });

  test("a listen address may be used once, wildcards included; port 0 never clashes", () => {
    expect(
      problems({
        forward: [
          { listen: "127.0.0.1:1080", target: "a:1" },
          { listen: "0.0.0.0:9000", target: "b:1" },
          { listen: "127.0.0.1:9000", target: "c:1" },
          { listen: "[::1]:0", target: "d:1" },
          { listen: "[::1]:0", target: "e:1" },
        ],
      }),
    ).toEqual([
      'forward[0].listen: expected an address not already used by socks.listen, got "127.0.0.1:1080"',
      'forward[2].listen: expected an address not already used by forward[1].listen, got "127.0.0.1:9000"',
    ]);
  });

  test("[[http]] listeners: auth defaults to socks.auth; an http listener alone is enough", () => {
    const users = [{ username: "alice", password: "s3cret" }];
    const config = parseConfig({
      socks: { auth: "password", users },
      http: [{ listen: "127.0.0.1:3128" }, { listen: "127.0.0.1:3129", auth: "none" }],
    });
    expect(config.http).toEqual([
      { listen: "127.0.0.1:3128", auth: "password" },
      { listen: "127.0.0.1:3129", auth: "none" },
    ]);
    expect(problems({ socks: { enabled: false }, http: [{ listen: "127.0.0.1:0" }] })).toEqual([]);
  });

  test("[[http]]: no auth beyond loopback needs allow_open_proxy; password needs users; one address each", () => {
    expect(
      problems({
        http: [
          { listen: "0.0.0.0:3128" },
          { listen: "127.0.0.1:3129", auth: "password" },
          { listen: "127.0.0.1:1080" },
        ],
      }),
    ).toEqual([
      'http[2].listen: expected an address not already used by socks.listen, got "127.0.0.1:1080"',
      'http[0].listen: expected a loopback address while this listener has no auth: anyone who can reach it could use it as an open proxy; set auth = "password" (with [[socks.users]]), listen on 127.0.0.1 or [::1], or set socks.allow_open_proxy = true (--allow-open-proxy) if that is what you want, got "0.0.0.0:3128"',
      'http[1].auth: expected users when auth = "password": HTTP listeners check the SOCKS users (add [[socks.users]] or --socks-user USER:PASS), got "password"',
    ]);
    const open = { socks: { allow_open_proxy: true }, http: [{ listen: "0.0.0.0:3128" }] };
    expect(problems(open)).toEqual([]);
  });

  test("a disabled socks listener does not hold its address", () => {
    const input = {
      socks: { enabled: false },
      forward: [{ listen: "127.0.0.1:1080", target: "a:1" }],
    };
    expect(problems(input)).toEqual([]);
  });

  test("a forward target needs a real port; a listener may use port 0", () => {
    expect(problems({ forward: [{ listen: "127.0.0.1:0", target: "example.com:0" }] })).toEqual([
      'forward[0].target: expected HOST:PORT to connect to, port 1..65535 (IPv6 as "[::1]:80"), got "example.com:0"',
    ]);
  });
});

describe("workerCount", () => {
  test("0 means one per CPU, capped; any other value is used as is", () => {
    expect(workerCount({ ...DEFAULT_CONFIG.server, workers: 0 }, 6)).toBe(6);
    expect(workerCount({ ...DEFAULT_CONFIG.server, workers: 0 }, 1000)).toBe(LIMITS.workers_max);
    expect(workerCount({ ...DEFAULT_CONFIG.server, workers: 0 }, 0)).toBe(1);
    expect(workerCount({ ...DEFAULT_CONFIG.server, workers: 3 }, 6)).toBe(3);
  });
});

describe("[access] rules", () => {
  test("a full rule validates", () => {
    const rule = {
      name: "office",
      action: "allow",
      clients: ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"],
      users: ["alice"],
      destinations: ["203.0.113.0/24"],
      domains: ["example.com", "*.example.org"],
      ports: [443, "8000-8999"],
      listeners: ["127.0.0.1:1080"],
    };
    expect(problems({ access: { default: "deny", rules: [rule] } })).toEqual([]);
  });

  test("every bad entry is named with its path and what would fit", () => {
    const rules = [
      {
        action: "permit",
        clients: ["10.0.0.0/33"],
        domains: ["-bad-.example"],
        ports: [0, "9-8", "http"],
        colour: "red",
      },
    ];
    expect(problems({ access: { default: "maybe", rules } })).toEqual([
      'access.default: expected one of "allow", "deny", got "maybe"',
      'access.rules[0].action: expected one of "allow", "deny", got "permit"',
      'access.rules[0].clients[0]: expected an IP address or network like "10.0.0.0/8" or "fe80::/10", got "10.0.0.0/33"',
      'access.rules[0].domains[0]: expected a domain like "example.com" or "*.example.com", got "-bad-.example"',
      'access.rules[0].ports[0]: expected a port 1..65535 or a range like "8000-8999", got 0',
      'access.rules[0].ports[1]: expected a port 1..65535 or a range like "8000-8999", got "9-8"',
      'access.rules[0].ports[2]: expected a port 1..65535 or a range like "8000-8999", got "http"',
      "access.rules[0].colour: unknown option (known options: name, action, clients, users, destinations, domains, ports, listeners)",
    ]);
  });
});
