// The admin API against the real program: a spawned sockpool with 2 Workers, real SOCKS5 and forward
// traffic through it, then every endpoint and every field name, the counters summed across the
// Workers checked exactly against the traffic sent and the connection log lines, /metrics through
// promtool and our own parser, and the HTTP rules (404, 405, content types). The token, readiness,
// crash and limit events have their own proxies in lifecycle.test.ts.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type {
  BufferPoolResponse,
  ConnectionsResponse,
  StatusResponse,
  TelemetryResponse,
  UpstreamPoolResponse,
} from "../../src/admin/types.ts";
import { LATENCY_BUCKETS_S } from "../../src/stats/counters.ts";
import { cleanup } from "../support/cleanup.ts";
import type { Conn } from "../support/conn.ts";
import { type SpawnedProxy, spawnProxy } from "../support/proxy-process.ts";
import { connectTcp } from "../support/sockets.ts";
import { SocksReplyError, socksConnect } from "../support/socks-client.ts";
import { requireTool } from "../support/spawn.ts";
import { startEcho, type Target } from "../support/targets.ts";
import { type Family, getJson, getText, keys, parseExposition, sampleValue } from "./support.ts";

const SOCKS_ECHOES = 12;
const FORWARD_ECHOES = 6;
/** Payload sizes: different per connection, so a miscounted one changes the sum. */
const payload = (i: number) => "x".repeat(100 + 37 * i);

let echo: Target;
let proxy: SpawnedProxy;
let sentBytes = 0;

async function echoOver(conn: Conn, message: string): Promise<void> {
  await conn.write(message);
  expect(new TextDecoder().decode(await conn.read(message.length))).toBe(message);
}

beforeAll(async () => {
  echo = startEcho();
  proxy = await spawnProxy([
    "--socks",
    "127.0.0.1:0",
    "--forward",
    `127.0.0.1:0=127.0.0.1:${echo.port}`,
    "--workers",
    "2",
  ]);
  for (let i = 0; i < SOCKS_ECHOES; i++) {
    const { conn } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
    await echoOver(conn, payload(i));
    sentBytes += payload(i).length;
    conn.end();
  }
  for (let i = 0; i < FORWARD_ECHOES; i++) {
    const conn = await connectTcp("127.0.0.1", proxy.forwardPorts[0]!);
    await echoOver(conn, payload(100 + i));
    sentBytes += payload(100 + i).length;
    conn.end();
  }
  // One refused CONNECT (nothing listens on port 1): reply 05.
  await expect(socksConnect(proxy.socksPort, "127.0.0.1", 1)).rejects.toBeInstanceOf(
    SocksReplyError,
  );
}, 60_000);

afterAll(async () => {
  await proxy?.stop();
  await cleanup();
});

const TOTAL = SOCKS_ECHOES + FORWARD_ECHOES + 1;

/** The status once every connection has closed and been counted (closing is asynchronous, so
 *  the counters are polled, not read once). */
async function status(): Promise<StatusResponse> {
  let last: StatusResponse | null = null;
  const started = performance.now();
  while (performance.now() - started < 10_000) {
    last = await getJson<StatusResponse>(proxy.admin, "/api/status");
    if (last.connections_open === 0 && last.connections_total === TOTAL) return last;
    await Bun.sleep(20);
  }
  throw new Error(`connections never settled: ${JSON.stringify(last)}`);
}

describe("GET /api/status", () => {
  test("every field, and counters summed over 2 Workers exactly match the traffic and the logs", async () => {
    const body = await status();
    expect(keys(body)).toEqual(
      [
        "version",
        "bun",
        "started_at_ms",
        "uptime_s",
        "ready",
        "listeners",
        "connections_open",
        "connections_total",
        "connections_rejected",
        "bytes_up",
        "bytes_down",
        "outcomes",
        "workers",
      ].sort(),
    );
    expect(body.bun).toBe(Bun.version);
    expect(body.ready).toBe(true);
    expect(body.started_at_ms).toBeLessThanOrEqual(Date.now());
    expect(body.listeners).toEqual([
      { kind: "socks", address: `127.0.0.1:${proxy.socksPort}` },
      {
        kind: "forward",
        address: `127.0.0.1:${proxy.forwardPorts[0]}`,
        target: `127.0.0.1:${echo.port}`,
      },
    ]);
    // Exact: every payload went up once and came back once; the refused one carried nothing.
    expect(body.bytes_up).toBe(sentBytes);
    expect(body.bytes_down).toBe(sentBytes);
    expect(body.connections_rejected).toBe(0);
    // The same numbers as the connection log lines, outcome by outcome.
    const lines = proxy.logs.filter((record) => record.msg === "connection");
    expect(lines).toHaveLength(TOTAL);
    const fromLogs: Record<string, number> = {};
    for (const line of lines)
      fromLogs[String(line.outcome)] = (fromLogs[String(line.outcome)] ?? 0) + 1;
    const counted = Object.fromEntries(Object.entries(body.outcomes).filter(([, n]) => n > 0));
    expect(counted).toEqual(fromLogs);
    expect(body.outcomes.refused).toBe(1);
    expect(lines.reduce((sum, line) => sum + Number(line.bytes_up), 0)).toBe(body.bytes_up);
    // Per Worker: two of them, and their shares add up to the totals.
    expect(body.workers.map((worker) => worker.worker)).toEqual([0, 1]);
    for (const worker of body.workers) {
      expect(keys(worker)).toEqual(
        [
          "worker",
          "up",
          "restarts",
          "connections_open",
          "connections_total",
          "bytes_up",
          "bytes_down",
        ].sort(),
      );
      expect(worker).toMatchObject({ up: true, restarts: 0, connections_open: 0 });
    }
    const sum = (pick: (w: StatusResponse["workers"][number]) => number) =>
      body.workers.reduce((total, worker) => total + pick(worker), 0);
    expect(sum((w) => w.connections_total)).toBe(TOTAL);
    expect(sum((w) => w.bytes_up)).toBe(sentBytes);
    expect(sum((w) => w.bytes_down)).toBe(sentBytes);
  });
});

describe("GET /metrics", () => {
  let families: Map<string, Family>;
  let text: string;
  beforeAll(async () => {
    await status();
    const response = await fetch(`http://${proxy.admin}/metrics`);
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    text = await response.text();
    families = parseExposition(text);
  });

  test("passes promtool check metrics", async () => {
    const promtool = requireTool("promtool");
    const child = Bun.spawn([promtool, "check", "metrics"], {
      stdin: new Blob([text]),
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  test("names: sockpool_ prefix, HELP and TYPE on each, base units, _total on counters", () => {
    expect(families.size).toBeGreaterThan(30);
    for (const family of families.values()) {
      expect(family.name).toStartWith("sockpool_");
      expect(family.help.length).toBeGreaterThan(10);
      expect(["counter", "gauge", "histogram"]).toContain(family.type);
      if (family.type === "counter") expect(family.name).toEndWith("_total");
      if (family.type === "histogram") expect(family.name).toEndWith("_seconds");
      expect(family.name).not.toMatch(/_(ms|milliseconds|kb|mib|bits)(_|$)/);
    }
    for (const required of [
      "sockpool_connections_open",
      "sockpool_connections_total",
      "sockpool_connections_closed_total",
      "sockpool_connections_closed_by_reply_total",
      "sockpool_relayed_bytes_total",
      "sockpool_handshake_duration_seconds",
      "sockpool_upstream_connect_duration_seconds",
      "sockpool_upstream_pool_idle_connections",
      "sockpool_upstream_pool_hits_total",
      "sockpool_upstream_pool_destination_hits_total",
      "sockpool_buffer_pool_slots",
      "sockpool_buffer_pool_acquired_total",
      "sockpool_worker_up",
      "sockpool_process_start_time_seconds",
      "sockpool_build_info",
    ]) {
      expect(families.has(required)).toBe(true);
    }
    expect(sampleValue(families, "sockpool_build_info", { bun: Bun.version })).toBe(1);
  });

  test("counters summed over 2 Workers are exact", () => {
    const value = (family: string, labels: Record<string, string> = {}, name?: string) =>
      sampleValue(families, family, labels, name);
    expect(value("sockpool_connections_total", { kind: "socks" })).toBe(SOCKS_ECHOES + 1);
    expect(value("sockpool_connections_total", { kind: "forward" })).toBe(FORWARD_ECHOES);
    expect(value("sockpool_connections_open", { kind: "socks" })).toBe(0);
    expect(value("sockpool_relayed_bytes_total", { direction: "up" })).toBe(sentBytes);
    expect(value("sockpool_relayed_bytes_total", { direction: "down" })).toBe(sentBytes);
    expect(value("sockpool_connections_closed_total", { outcome: "refused" })).toBe(1);
    expect(value("sockpool_connections_closed_by_reply_total", { reply: "00" })).toBe(SOCKS_ECHOES);
    expect(value("sockpool_connections_closed_by_reply_total", { reply: "05" })).toBe(1);
    expect(value("sockpool_connections_closed_by_reply_total", { reply: "none" })).toBe(
      FORWARD_ECHOES,
    );
    // Every SOCKS client finished a handshake; every dial but the refused one connected.
    const handshake = "sockpool_handshake_duration_seconds";
    expect(value(handshake, {}, `${handshake}_count`)).toBe(SOCKS_ECHOES + 1);
    const connect = "sockpool_upstream_connect_duration_seconds";
    expect(value(connect, {}, `${connect}_count`)).toBe(SOCKS_ECHOES + FORWARD_ECHOES);
    expect(value(connect, {}, `${connect}_sum`)).toBeGreaterThan(0);
    expect(value("sockpool_worker_up", { worker: "0" })).toBe(1);
    expect(value("sockpool_worker_up", { worker: "1" })).toBe(1);
    expect(value("sockpool_worker_responding", { worker: "1" })).toBe(1);
    expect(value("sockpool_upstream_pool_enabled")).toBe(0);
  });

  test("histograms: a bucket per bound, cumulative, +Inf equal to _count", () => {
    for (const name of [
      "sockpool_handshake_duration_seconds",
      "sockpool_upstream_connect_duration_seconds",
    ]) {
      const buckets = families.get(name)!.samples.filter((s) => s.name === `${name}_bucket`);
      expect(buckets.map((s) => s.labels.le)).toEqual([...LATENCY_BUCKETS_S.map(String), "+Inf"]);
      for (let i = 1; i < buckets.length; i++)
        expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
      expect(buckets.at(-1)!.value).toBe(sampleValue(families, name, {}, `${name}_count`));
    }
  });
});

describe("GET /api/connections", () => {
  test("lists open connections with every field, oldest first, bounded and paginated", async () => {
    const held: { conn: Conn; message: string }[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const { conn } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
        const message = payload(200 + i);
        await echoOver(conn, message);
        held.push({ conn, message });
        await Bun.sleep(5); // not readiness: keeps the three ages apart by whole milliseconds
      }
      const page = await getJson<ConnectionsResponse>(proxy.admin, "/api/connections");
      expect(keys(page)).toEqual(["connections", "limit", "offset", "total"]);
      expect(page).toMatchObject({ total: 3, offset: 0, limit: 100 });
      expect(page.connections.map((c) => c.client)).toEqual(
        held.map(({ conn }) => `127.0.0.1:${conn.localPort}`),
      );
      for (const [i, connection] of page.connections.entries()) {
        expect(keys(connection)).toEqual(
          [
            "worker",
            "kind",
            "listener",
            "client",
            "target",
            "phase",
            "bytes_up",
            "bytes_down",
            "age_ms",
            "pooled",
          ].sort(),
        );
        expect(connection).toMatchObject({
          kind: "socks",
          listener: `127.0.0.1:${proxy.socksPort}`,
          target: `127.0.0.1:${echo.port}`,
          phase: "relay",
          bytes_up: held[i]!.message.length,
          bytes_down: held[i]!.message.length,
          pooled: false,
        });
        expect([0, 1]).toContain(connection.worker);
      }
      const ages = page.connections.map((c) => c.age_ms);
      expect([...ages].sort((a, b) => b - a)).toEqual(ages);

      const first = await getJson<ConnectionsResponse>(proxy.admin, "/api/connections?limit=2");
      const second = await getJson<ConnectionsResponse>(
        proxy.admin,
        "/api/connections?offset=2&limit=2",
      );
      expect(first).toMatchObject({ total: 3, offset: 0, limit: 2 });
      expect(second).toMatchObject({ total: 3, offset: 2, limit: 2 });
      expect([...first.connections, ...second.connections].map((c) => c.client)).toEqual(
        page.connections.map((c) => c.client),
      );
      for (const bad of ["limit=0", "limit=1001", "offset=-1", "limit=ten"]) {
        const response = await fetch(`http://${proxy.admin}/api/connections?${bad}`);
        expect(response.status).toBe(400);
        expect((await response.text()).trim().split("\n")).toHaveLength(1);
      }
    } finally {
      for (const { conn } of held) conn.end();
    }
  });
});

describe("GET /api/buffers/stats and /api/pool/stats", () => {
  test("the buffer pool: every field, per Worker, slots adding up", async () => {
    const body = await getJson<BufferPoolResponse>(proxy.admin, "/api/buffers/stats");
    expect(keys(body)).toEqual(
      [
        "strategy",
        "backend",
        "slot_bytes",
        "slots_total",
        "slots_free",
        "slots_held",
        "acquired",
        "released",
        "exhausted",
        "local_hits",
        "local_refills",
        "relay_bytes_held",
        "per_worker",
      ].sort(),
    );
    expect(body).toMatchObject({ strategy: "local", slot_bytes: 16_384, slots_total: 4096 });
    expect(["native", "typescript"]).toContain(body.backend);
    expect(body.slots_free + body.slots_held).toBe(body.slots_total);
    expect(body.per_worker.map((entry) => entry.worker)).toEqual([0, 1]);
    for (const entry of body.per_worker) {
      expect(keys(entry)).toEqual(
        [
          "worker",
          "acquired",
          "released",
          "exhausted",
          "held",
          "local_cached",
          "local_hits",
          "local_refills",
          "relay_bytes_held",
        ].sort(),
      );
      expect(entry.local_hits + entry.local_refills).toBe(entry.acquired);
    }
    expect(body.acquired).toBe(body.per_worker.reduce((sum, entry) => sum + entry.acquired, 0));
  });

  test("the upstream pool, off: enabled false, zeros, the configured limits", async () => {
    const body = await getJson<UpstreamPoolResponse>(proxy.admin, "/api/pool/stats");
    expect(body).toEqual({
      enabled: false,
      max_idle_per_dest: 4,
      max_total_idle: 100,
      idle_timeout_secs: 90,
      connect_timeout_ms: 5000,
      total_idle: 0,
      destinations: 0,
      total_created: 0,
      total_reused: 0,
      pool_hits: 0,
      pool_misses: 0,
      dropped_full: 0,
      expired: 0,
      evicted: 0,
      connections_in_use: 0,
      pending_creates: 0,
      per_destination: [],
      per_worker: [],
    });
  });
});

describe("HTTP", () => {
  test("the status page, health, events; 404 and 405 with a one-line body", async () => {
    const page = await fetch(`http://${proxy.admin}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await page.text()).toContain("<title>sockpool status</title>");
    expect((await getText(proxy.admin, "/healthz")).trim()).toBe("ok");
    expect((await getText(proxy.admin, "/readyz")).trim()).toBe("ready");
    const events = await getJson<TelemetryResponse>(proxy.admin, "/api/telemetry/events");
    expect(keys(events)).toEqual(["dropped", "events", "next_id"]);
    expect(events).toEqual({ next_id: 1, dropped: 0, events: [] });
    expect((await fetch(`http://${proxy.admin}/api/telemetry/events?since=x`)).status).toBe(400);

    const missing = await fetch(`http://${proxy.admin}/api/nothing`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe("not found: /api/nothing\n");
    const post = await fetch(`http://${proxy.admin}/metrics`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    expect(await post.text()).toBe("method not allowed: POST (use GET)\n");
  });
});
