// The upstream pool inside the real proxy, in-process: SOCKS5 and forward flows with the pool on,
// a banner through a warm connection, the access rules on a hit, a failing forward target's
// events, the stats, shutdown, and the pool off doing nothing. Not the pool alone (pool.test.ts) nor
// several Workers (workers.test.ts).

import { afterAll, describe, expect, test } from "bun:test";
import type { TelemetryInput } from "../../src/admin/types.ts";
import { text } from "../support/bytes.ts";
import { cleanup } from "../support/cleanup.ts";
import { startTestProxy, type TestProxy } from "../support/proxy.ts";
import { connectTcp } from "../support/sockets.ts";
import { REPLY, SocksReplyError, socksConnect } from "../support/socks-client.ts";
import { refusedPort } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";
import { startTagTarget } from "./support.ts";

afterAll(cleanup);

const POOL = { idle_timeout_secs: 30, max_idle_per_dest: 2 };

function poolCounts(handle: TestProxy) {
  const counts = handle.proxy.stats().upstream_pool;
  if (counts === null) throw new Error("the upstream pool is off");
  return counts;
}

/** Through SOCKS5 to the tag target: the id of the upstream connection the proxy used. */
async function socksTag(
  handle: TestProxy,
  host: string,
  port: number,
  options: { auth?: { user: string; pass: string }; banner?: string } = {},
): Promise<number> {
  const { conn } = await socksConnect(handle.socksPort, host, port, options);
  try {
    if (options.banner) expect(text(await conn.read(options.banner.length))).toBe(options.banner);
    await conn.write("who?");
    const line = text(await conn.read(2));
    return Number(line.trim());
  } finally {
    conn.end();
  }
}

describe("SOCKS5 with the pool on", () => {
  test("the second CONNECT to a destination gets the connection warmed after the first", async () => {
    const target = startTagTarget();
    const handle = await startTestProxy({ upstreamPool: POOL });
    expect(await socksTag(handle, "127.0.0.1", target.port)).toBe(0); // a miss: its own dial
    await waitFor(() => poolCounts(handle).total_idle === 1, "a warm connection for the next");
    expect(target.conns.length).toBe(2);
    expect(await socksTag(handle, "127.0.0.1", target.port)).toBe(1); // the warm one
    await waitFor(() => target.conns.length === 3, "its replacement");
    expect(poolCounts(handle)).toMatchObject({ pool_hits: 1, pool_misses: 1, total_reused: 1 });
    // The log line says which connection came from the pool.
    const lines = () =>
      handle.connectionLogs().filter((line) => line.target === `127.0.0.1:${target.port}`);
    await waitFor(() => lines().length === 2, "both connection log lines");
    expect(lines().map((line) => line.pooled)).toEqual([undefined, true]);
    expect(handle.proxy.upstreamPool?.destinations()).toEqual([
      expect.objectContaining({ destination: `127.0.0.1:${target.port}`, hits: 1, misses: 1 }),
    ]);
    await handle.close();
    await waitFor(() => target.conns.every((conn) => conn.eof), "every connection closed");
    expect(poolCounts(handle)).toMatchObject({ total_idle: 0, connections_in_use: 0 });
    target.close();
  });

  test("a banner sent to the warm connection reaches the client once, before its data", async () => {
    const banner = "220 mail.example ESMTP\r\n";
    const target = startTagTarget(banner);
    const handle = await startTestProxy({ upstreamPool: POOL });
    expect(await socksTag(handle, "127.0.0.1", target.port, { banner })).toBe(0);
    await waitFor(() => poolCounts(handle).total_idle === 1, "a warm connection");
    await waitFor(() => target.conns[1]!.sentBytes === banner.length, "its banner sent");
    expect(await socksTag(handle, "127.0.0.1", target.port, { banner })).toBe(1);
    expect(poolCounts(handle).pool_hits).toBe(1);
    await handle.close();
    target.close();
  });

  test("the access rules judge a hit for the client in hand; a refused one leaves it pooled", async () => {
    const target = startTagTarget();
    const handle = await startTestProxy({
      upstreamPool: POOL,
      socks: {
        auth: "password",
        users: [
          { username: "alice", password: "alice-secret" },
          { username: "bob", password: "bob-secret" },
        ],
      },
      access: {
        rules: [
          {
            action: "deny",
            users: ["bob"],
            destinations: ["127.0.0.0/8", "::1"],
            ports: [target.port],
          },
        ],
      },
    });
    const alice = { user: "alice", pass: "alice-secret" };
    // "localhost": a name, so the verdict depends on the address and is asked of the pooled one.
    expect(await socksTag(handle, "localhost", target.port, { auth: alice })).toBe(0);
    await waitFor(() => poolCounts(handle).total_idle === 1, "a warm connection");
    const refused = await socksTag(handle, "localhost", target.port, {
      auth: { user: "bob", pass: "bob-secret" },
    }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(SocksReplyError);
    expect((refused as SocksReplyError).reply.code).toBe(REPLY.ruleset);
    expect(poolCounts(handle)).toMatchObject({ total_idle: 1, pool_hits: 0 });
    expect(await socksTag(handle, "localhost", target.port, { auth: alice })).toBe(1);
    expect(poolCounts(handle).pool_hits).toBe(1);
    await handle.close();
    target.close();
  });
});

describe("forward listeners with the pool on", () => {
  test("the target is warm from start-up; a client gets one of those connections", async () => {
    const target = startTagTarget();
    const handle = await startTestProxy({
      socks: { enabled: false },
      forward: [{ target: `127.0.0.1:${target.port}` }],
      upstreamPool: POOL,
    });
    await waitFor(() => poolCounts(handle).total_idle === 2, "max_idle_per_dest warm");
    expect(target.conns.length).toBe(2);
    const conn = await connectTcp("127.0.0.1", handle.forwardPorts[0]!);
    await conn.write("who?");
    expect(Number(text(await conn.read(2)).trim())).toBeLessThan(2); // one warmed at start-up
    conn.end();
    await waitFor(() => poolCounts(handle).total_idle === 2, "topped up again");
    expect(poolCounts(handle)).toMatchObject({ pool_hits: 1, total_created: 3 });
    await handle.close();
    target.close();
  });

  test("an unreachable target: refills back off and are reported once", async () => {
    const events: TelemetryInput[] = [];
    const handle = await startTestProxy({
      socks: { enabled: false },
      forward: [{ target: `127.0.0.1:${refusedPort()}` }],
      upstreamPool: POOL,
      telemetry: { emit: (event) => events.push(event) },
    });
    await waitFor(
      () => events.some((event) => event.kind === "upstream_pool_refill_failed"),
      "the refill failure event",
    );
    const conn = await connectTcp("127.0.0.1", handle.forwardPorts[0]!);
    await conn.waitEnd(); // the client's own dial fails too: closed with no data
    expect(events.filter((event) => event.kind === "upstream_pool_refill_failed")).toEqual([
      expect.objectContaining({
        level: "warn",
        fields: expect.objectContaining({ code: "ECONNREFUSED" }),
      }),
    ]);
    expect(poolCounts(handle)).toMatchObject({ total_idle: 0, total_created: 0, pool_misses: 1 });
    expect(handle.proxy.upstreamPool?.destinations()[0]?.backoff_until_ms).toBeGreaterThan(0);
    await handle.close();
  });
});

describe("the pool off (the default)", () => {
  test("no pool, no stats, one upstream connection per client and none ahead", async () => {
    const target = startTagTarget();
    const handle = await startTestProxy();
    expect(handle.proxy.upstreamPool).toBeNull();
    expect(handle.proxy.stats().upstream_pool).toBeNull();
    expect(await socksTag(handle, "127.0.0.1", target.port)).toBe(0);
    expect(await socksTag(handle, "127.0.0.1", target.port)).toBe(1);
    await handle.close();
    expect(target.conns.length).toBe(2);
    target.close();
  });
});
