// The upstream pool across 2 real Workers under concurrent CONNECTs, at a small size for CI: no
// upstream connection handed out twice, max_total_idle and max_idle_per_dest held at every sample
// of the shared memory, the ledger balanced once settled and after shutdown. The full size runs
// from `bun run stress:upstream` (500 CONNECTs, 250 at a time).

import { afterAll, expect, test } from "bun:test";
import { cleanup } from "../support/cleanup.ts";
import { runUpstreamStress } from "./stress.ts";

afterAll(cleanup);

const OPTIONS = {
  connections: 160,
  concurrency: 40,
  destinations: 4,
  maxIdlePerDest: 4,
  maxTotalIdle: 8, // below 4 × 4: the global limit and eviction are exercised too
};

test("2 Workers, 160 CONNECTs 40 at a time: exactly-once hand-out, limits held, counters balance", async () => {
  const result = await runUpstreamStress(OPTIONS);
  expect(result.failures).toEqual([]);
  expect(result.duplicates).toBe(0);
  expect(result.samples).toBeGreaterThan(0);
  expect(result.maxReserved).toBeLessThanOrEqual(OPTIONS.maxTotalIdle);
  expect(result.maxIdlePlusPending).toBeLessThanOrEqual(OPTIONS.maxTotalIdle);
  expect(result.maxReservedPerDest).toBeLessThanOrEqual(OPTIONS.maxIdlePerDest);
  expect(result.unbalanced).toEqual([]);
  // The pool did its job: some CONNECTs were served warm, and every lookup was counted.
  expect(result.settled.pool_hits).toBeGreaterThan(0);
  expect(result.settled.pool_hits + result.settled.pool_misses).toBe(OPTIONS.connections);
  expect(result.stopped).toMatchObject({
    total_idle: 0,
    pending_creates: 0,
    connections_in_use: 0,
  });
}, 60_000);
