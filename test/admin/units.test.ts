// The admin API's parts on their own: the telemetry ring and the producer's rate limit, the shared
// counters' layout and crash reclaim, the exposition writer's escaping, the bearer check, the
// upstream-pool adapter, and a snapshot round with a Worker that never answers.

import { describe, expect, test } from "bun:test";
import { Exposition, escapeLabelValue } from "../../src/admin/exposition.ts";
import { adminHandler, bearerCheck, SILENT_WORKERS_HEADER } from "../../src/admin/server.ts";
import { RateLimitedTelemetry, TelemetryRing } from "../../src/admin/telemetry.ts";
import type { TelemetryInput, UpstreamDestinationStats } from "../../src/admin/types.ts";
import { topDestinations, UPSTREAM_POOL_OFF } from "../../src/admin/upstream.ts";
import { mergeDestinations } from "../../src/upstream/stats.ts";
import type { ProxySnapshot } from "../../src/proxy/server.ts";
import { DEFAULT_CONFIG } from "../../src/config/schema.ts";
import { createLogger } from "../../src/log.ts";
import { createPool, createPoolMemory } from "../../src/pool/index.ts";
import {
  BLOCK_WORDS,
  createCounterMemory,
  FIELD,
  readCounters,
  reclaimCounters,
  WorkerCounters,
} from "../../src/stats/counters.ts";
import { Supervisor } from "../../src/supervisor.ts";
import { parseExposition } from "./support.ts";

const EVENT: TelemetryInput = { kind: "buffer_pool_exhausted", level: "warn", message: "dry" };

describe("TelemetryRing", () => {
  test("ids from 1, ?since returns later ones, the oldest drop out and are counted", () => {
    let now = 1_000;
    const ring = new TelemetryRing(3, () => now++);
    for (let i = 0; i < 5; i++) ring.push({ ...EVENT, message: `m${i}` }, i % 2);
    const all = ring.since(0);
    expect(all.next_id).toBe(6);
    expect(all.dropped).toBe(2);
    expect(all.events.map((event) => event.id)).toEqual([3, 4, 5]);
    expect(all.events[0]).toEqual({
      id: 3,
      time_ms: 1_002,
      worker: 0,
      kind: "buffer_pool_exhausted",
      level: "warn",
      message: "m2",
    });
    expect(ring.since(4).events.map((event) => event.id)).toEqual([5]);
    expect(ring.since(5).events).toEqual([]);
    expect(ring.since(99).events).toEqual([]);
    expect(ring.since(1).events.map((event) => event.id)).toEqual([3, 4, 5]); // 2 already dropped
  });
});

describe("RateLimitedTelemetry", () => {
  test("the first per kind (and destination) per window passes; the rest are counted into the next", () => {
    const sent: TelemetryInput[] = [];
    let now = 0;
    const telemetry = new RateLimitedTelemetry(
      (event) => sent.push(event),
      () => now,
      1_000,
    );
    for (let i = 0; i < 10; i++) telemetry.emit(EVENT);
    telemetry.emit({ ...EVENT, kind: "connections_max_reached" });
    const dest = (destination: string): TelemetryInput => ({
      kind: "upstream_pool_refill_failed",
      level: "warn",
      message: "refill failed",
      fields: { destination },
    });
    telemetry.emit(dest("a:1"));
    telemetry.emit(dest("b:1"));
    telemetry.emit(dest("a:1"));
    expect(sent.map((event) => event.kind)).toEqual([
      "buffer_pool_exhausted",
      "connections_max_reached",
      "upstream_pool_refill_failed",
      "upstream_pool_refill_failed",
    ]);
    now = 1_000;
    telemetry.emit(EVENT);
    expect(sent.at(-1)).toEqual({ ...EVENT, fields: { suppressed: 9 } });
  });

  test("a send that throws (a closed channel) is swallowed: telemetry never fails its caller", () => {
    const telemetry = new RateLimitedTelemetry(() => {
      throw new Error("closed");
    });
    expect(() => telemetry.emit(EVENT)).not.toThrow();
  });
});

describe("shared counters", () => {
  test("blocks are whole cache lines and fields do not overlap", () => {
    expect((BLOCK_WORDS * 8) % 128).toBe(0);
    const offsets = Object.values(FIELD).sort((a, b) => a - b);
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(offsets.at(-1)!).toBeLessThan(BLOCK_WORDS);
  });

  test("two Workers' blocks sum exactly; a crashed Worker's open connections are closed", () => {
    const memory = createCounterMemory(2);
    const [first, second] = [new WorkerCounters(memory, 0), new WorkerCounters(memory, 1)];
    const socks = first.kind("socks");
    const forward = second.kind("forward");
    for (let i = 0; i < 3; i++) first.opened(socks);
    first.closed(socks, "ok", { reply: 0 });
    first.closed(socks, "refused", { reply: 5 });
    first.opened(first.kind("http"));
    first.closed(first.kind("http"), "denied", { status: 403 }); // no SOCKS reply: "none"
    second.opened(forward);
    second.opened(forward);
    second.closed(forward, "reset", undefined);
    first.words[FIELD.bytes_up]! += 1000;
    second.words[FIELD.bytes_up]! += 24;
    first.handshakeSeconds(0.0004); // first bucket
    first.handshakeSeconds(0.003);
    second.handshakeSeconds(60); // past the last bound: +Inf only
    second.refused("connections_max");
    const { total, perWorker } = readCounters(memory);
    expect(total.opened).toEqual({ socks: 3, forward: 2, http: 1 });
    expect(total.open).toEqual({ socks: 1, forward: 1, http: 0 });
    expect(total.bytes_up).toBe(1024);
    expect(total.outcomes).toMatchObject({ ok: 1, refused: 1, reset: 1, worker_crashed: 0 });
    expect(total.replies).toMatchObject({ "00": 1, "05": 1, none: 2 });
    expect(total.http_status).toMatchObject({ "403": 1, "200": 0, other: 0 });
    expect(total.refused.connections_max).toBe(1);
    expect(total.handshake.count).toBe(3);
    expect(total.handshake.sum).toBeCloseTo(60.0034, 6);
    expect(total.handshake.cumulative[0]).toBe(1);
    expect(total.handshake.cumulative.at(-2)).toBe(2);
    expect(total.handshake.cumulative.at(-1)).toBe(3);
    expect(perWorker[1]!.open).toEqual({ socks: 0, forward: 1, http: 0 });

    expect(reclaimCounters(memory, 1)).toBe(1);
    const after = readCounters(memory).total;
    expect(after.open).toEqual({ socks: 1, forward: 0, http: 0 });
    expect(after.outcomes.worker_crashed).toBe(1);
    expect(reclaimCounters(memory, 1)).toBe(0); // idempotent
  });

  test("a Worker index beyond the memory is refused with the fix", () => {
    expect(() => new WorkerCounters(createCounterMemory(1), 1)).toThrow(
      "allocate createCounterMemory(workers)",
    );
  });
});

describe("exposition", () => {
  test("label values escape backslash, double quote and newline, and parse back", () => {
    const tricky = 'a"b\\c\nd';
    expect(escapeLabelValue(tricky)).toBe('a\\"b\\\\c\\nd');
    const text = new Exposition()
      .family("sockpool_test_total", "counter", "A test\\family\nwith a newline.")
      .sample(3, { destination: tricky })
      .text();
    expect(text).toContain("# HELP sockpool_test_total A test\\\\family\\nwith a newline.\n");
    const families = parseExposition(text);
    expect(families.get("sockpool_test_total")!.samples[0]!.labels.destination).toBe(tricky);
  });

  test("a family declared twice or a bad name is a bug, thrown", () => {
    const out = new Exposition().family("sockpool_x", "gauge", "x");
    expect(() => out.family("sockpool_x", "gauge", "x")).toThrow("declared twice");
    expect(() => new Exposition().family("sockpool-x", "gauge", "x")).toThrow("bad metric name");
  });
});

describe("bearerCheck", () => {
  const request = (authorization?: string) =>
    new Request("http://127.0.0.1/", {
      headers: authorization === undefined ? {} : { authorization },
    });

  test("no token configured: everything passes; with one, only the exact Bearer token", () => {
    expect(bearerCheck(undefined)(request())).toBe(true);
    const check = bearerCheck("0123456789abcdef");
    expect(check(request("Bearer 0123456789abcdef"))).toBe(true);
    expect(check(request("bearer 0123456789abcdef"))).toBe(true); // the scheme is case-insensitive
    for (const wrong of [
      undefined,
      "",
      "Bearer",
      "Bearer 0123456789abcdeg",
      "Bearer 0123456789abcde",
      "Bearer 0123456789abcdef0",
      "Basic 0123456789abcdef",
      "0123456789abcdef",
    ]) {
      expect(check(request(wrong))).toBe(false);
    }
  });
});

describe("the upstream-pool adapter", () => {
  const entry = (destination: string, hits: number): UpstreamDestinationStats => ({
    destination,
    hits,
    misses: 1,
    created: 1,
    reused: hits,
    evicted: 0,
    expired: 0,
    dropped: 0,
    in_use: 0,
    idle: 1,
    refill_failures: 0,
    backoff_until_ms: 0,
  });

  test("per-destination stats merge across Workers, busiest first; the tail becomes 'other'", () => {
    const merged = mergeDestinations([
      [entry("a:1", 5), entry("b:1", 1)],
      [entry("a:1", 2), entry("c:1", 9)],
    ]);
    expect(topDestinations(merged).map((e) => [e.destination, e.hits, e.idle])).toEqual([
      ["c:1", 9, 1],
      ["a:1", 7, 2],
      ["b:1", 1, 1],
    ]);
    const top = topDestinations(merged, 1);
    expect(top.map((e) => [e.destination, e.hits, e.misses])).toEqual([
      ["c:1", 9, 1],
      ["other", 8, 3],
    ]);
  });
});

describe("Supervisor.snapshot", () => {
  test("a Worker that never answers is reported (null) after the timeout, not waited on", async () => {
    const log = createLogger({ level: "error", format: "json", write: () => {} });
    const memory = createPoolMemory({ strategy: "queue-ts", slots: 16, slot_bytes: 1024 });
    const worker = new URL("./fixtures/silent-worker.ts", import.meta.url).href;
    const supervisor = new Supervisor(DEFAULT_CONFIG, memory, 2, log, worker);
    await supervisor.start();
    try {
      expect(supervisor.ready()).toBe(true);
      const answers = await supervisor.snapshot(10, 200); // resolves: the test's timeout bounds it
      expect(answers[0]).toMatchObject({ connections_open: 0, connections: [] });
      expect(answers[1]).toBeNull();
    } finally {
      await supervisor.stop(100);
    }
    expect(supervisor.ready()).toBe(false);
  }, 10_000);
});

describe("a Worker that does not answer, over HTTP", () => {
  test("its numbers are left out and the response names it in a header", async () => {
    const pool = createPool({ strategy: "queue-ts", slots: 16, slot_bytes: 1024 });
    const answer: ProxySnapshot = {
      connections_open: 0,
      backlog_bytes: 0,
      pool: pool.stats(),
      connections: [],
      upstream_destinations: [],
    };
    const handle = adminHandler(
      {
        config: DEFAULT_CONFIG,
        version: "0.0.0",
        startedAtMs: Date.now(),
        workers: {
          counters: createCounterMemory(2),
          ready: () => true,
          workerStates: () => [
            { worker: 0, up: true, restarts: 0 },
            { worker: 1, up: true, restarts: 0 },
          ],
          snapshot: async () => [answer, null],
        },
        telemetry: new TelemetryRing(),
        listeners: () => [],
        bufferPool: {
          strategy: "queue-ts",
          backend: () => "typescript",
          slots: 16,
          slot_bytes: 1024,
        },
        upstreamPool: UPSTREAM_POOL_OFF,
        stopping: () => false,
      },
      createLogger({ level: "error", format: "json", write: () => {} }),
    );
    const response = await handle(new Request("http://127.0.0.1/api/buffers/stats"));
    expect(response.headers.get(SILENT_WORKERS_HEADER)).toBe("1");
    const body = (await response.json()) as {
      per_worker: { worker: number }[];
      slots_free: number;
    };
    expect(body.per_worker.map((entry) => entry.worker)).toEqual([0]);
    expect(body.slots_free).toBe(16);
    const metrics = await (await handle(new Request("http://127.0.0.1/metrics"))).text();
    expect(metrics).toContain('sockpool_worker_responding{worker="1"} 0');
    expect(metrics).toContain('sockpool_worker_responding{worker="0"} 1');
  });
});

describe("/metrics and a Worker with nothing to say", () => {
  /** An admin handler over Workers in the given states, none of which answers; and its warnings. */
  function handlerFor(states: { worker: number; up: boolean; restarts: number }[]) {
    const warnings: string[] = [];
    const handle = adminHandler(
      {
        config: DEFAULT_CONFIG,
        version: "0.0.0",
        startedAtMs: Date.now(),
        workers: {
          counters: createCounterMemory(states.length),
          ready: () => states.every((state) => state.up),
          workerStates: () => states,
          snapshot: async () => states.map(() => null),
        },
        telemetry: new TelemetryRing(),
        listeners: () => [],
        bufferPool: {
          strategy: "queue-ts",
          backend: () => "typescript",
          slots: 16,
          slot_bytes: 1024,
        },
        upstreamPool: UPSTREAM_POOL_OFF,
        stopping: () => false,
      },
      createLogger({
        level: "info",
        format: "json",
        write: (line) => {
          if (line.includes('"warn"')) warnings.push(line);
        },
      }),
    );
    return { handle, warnings };
  }

  test("a scrape while a Worker starts (not listening yet) is no warning; a silent listening one is", async () => {
    // Prometheus scrapes every few seconds; an instance (re)starting under it is routine.
    const starting = handlerFor([{ worker: 0, up: false, restarts: 0 }]);
    expect((await starting.handle(new Request("http://127.0.0.1/metrics"))).status).toBe(200);
    expect(starting.warnings).toEqual([]);
    const stuck = handlerFor([{ worker: 0, up: true, restarts: 0 }]);
    expect((await stuck.handle(new Request("http://127.0.0.1/metrics"))).status).toBe(200);
    expect(stuck.warnings).toHaveLength(1);
    expect(stuck.warnings[0]).toContain('"workers":"0"');
  });
});
