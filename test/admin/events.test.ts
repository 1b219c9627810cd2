// The buffer-pool exhaustion event, produced in a Worker's proxy (in-process here): two readers
// that stop reading while a target streams fill a 16-slot pool, and the sweeper, which notices the
// pool's exhausted count moving, reports it once through the telemetry the proxy was given.

import { afterAll, expect, test } from "bun:test";
import type { TelemetryInput } from "../../src/admin/types.ts";
import { parseConfig } from "../../src/config/schema.ts";
import { createPool } from "../../src/pool/index.ts";
import { startProxy } from "../../src/proxy/server.ts";
import { readCounters, WorkerCounters, createCounterMemory } from "../../src/stats/counters.ts";
import { cleanup } from "../support/cleanup.ts";
import { capturingLogger } from "../support/proxy.ts";
import { socksConnect } from "../support/socks-client.ts";
import { startBulk } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

test("a pool run dry by slow readers is reported once, as buffer_pool_exhausted", async () => {
  const config = parseConfig({
    socks: { listen: "127.0.0.1:0" },
    log: { level: "info", format: "json" },
  });
  // 16 slots of 1 KiB: one held read (tens of KiB) needs more than the whole pool, so the pool runs
  // dry however the reads happen to be split. (With 16 KiB slots the two backlogs could stop at
  // exactly 16 slots on a loaded machine, and nothing was ever refused.)
  const pool = createPool({ strategy: "queue-ts", slots: 16, slot_bytes: 1024 });
  const events: TelemetryInput[] = [];
  const counters = createCounterMemory(1);
  const { log } = capturingLogger("info");
  const proxy = await startProxy({
    config,
    pool,
    log,
    counters: new WorkerCounters(counters, 0),
    telemetry: { emit: (event) => events.push(event) },
  });
  const target = startBulk(16 * 1024 * 1024, 1);
  const port = proxy.listeners[0]!.port;
  const readers = [
    (await socksConnect(port, "127.0.0.1", target.port)).conn,
    (await socksConnect(port, "127.0.0.1", target.port)).conn,
  ];
  for (const reader of readers) reader.pause(); // the backlogs grow until the pool is dry
  try {
    await waitFor(
      () => events.some((event) => event.kind === "buffer_pool_exhausted"),
      () => `a buffer_pool_exhausted event; pool ${JSON.stringify(pool.stats())}`,
    );
    const exhausted = events.filter((e) => e.kind === "buffer_pool_exhausted");
    expect(exhausted).toHaveLength(1); // one per sweep at most, and the first per second
    const event = exhausted[0]!;
    expect(event).toMatchObject({ level: "warn", fields: { slots: 16 } });
    expect(Number(event.fields?.exhausted)).toBeGreaterThan(0);
    expect(pool.stats().exhausted).toBeGreaterThan(0);
    // The two connections are counted in this Worker's block, open, with bytes flowing down.
    const total = readCounters(counters).total;
    expect(total.open.socks).toBe(2);
    expect(total.bytes_down).toBeGreaterThan(16 * 1024);
  } finally {
    for (const reader of readers) reader.end();
    await proxy.close(0);
    target.close();
  }
}, 30_000);
