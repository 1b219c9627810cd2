// reclaimWorker: what a Worker held (by its holder marks, or its `alloc` budget) goes back to the
// shared pool exactly once, and nothing another Worker holds moves. Single-threaded stand-ins for
// Workers (attachPool with a Worker index); test/supervisor-reclaim.test.ts does it with real ones.

import { describe, expect, test } from "bun:test";
import {
  attachPool,
  createPoolMemory,
  EXHAUSTED,
  reclaimWorker,
  STRATEGY_NAMES,
} from "../../src/pool/index.ts";

const SLOTS = 32;
const LOCAL_BATCH = 4;

describe.each(STRATEGY_NAMES)("pool strategy %s", (strategy) => {
  test("returns exactly the dead Worker's slots, once, and leaves the others' alone", () => {
    const memory = createPoolMemory({
      strategy,
      slots: SLOTS,
      slot_bytes: 64,
      local_batch: LOCAL_BATCH,
      checked: true,
    });
    const dead = attachPool(memory, { worker: 0 });
    const alive = attachPool(memory, { worker: 1 });
    const observer = attachPool(memory);
    // The dead one holds three slots, one by a batch, and leaves a warm `local` cache behind.
    const held = [dead.acquire(), dead.acquire()];
    const batch = new Uint32Array(2 * LOCAL_BATCH);
    expect(dead.acquireMany(batch, 1)).toBe(1);
    const burst = new Uint32Array(2 * LOCAL_BATCH);
    dead.releaseMany(burst, dead.acquireMany(burst, burst.length));
    const aliveHeld = [alive.acquire(), alive.acquire()];
    expect([...held, ...aliveHeld].includes(EXHAUSTED)).toBe(false);
    const aliveShare = 2 + alive.stats().local_cached;
    const deadShare = SLOTS - aliveShare - observer.stats().free;
    expect(deadShare).toBe(3 + dead.stats().local_cached);
    if (strategy === "local") expect(dead.stats().local_cached).toBeGreaterThan(0);

    expect(reclaimWorker(memory, 0)).toBe(deadShare);
    expect(observer.stats().free).toBe(SLOTS - aliveShare);
    expect(reclaimWorker(memory, 0)).toBe(0); // exactly once
    expect(reclaimWorker(memory, 2)).toBe(0); // a Worker that held nothing

    // Everything but the live Worker's two slots can be taken, none looks held (checked mode).
    const all = new Uint32Array(SLOTS);
    const got = observer.acquireMany(all, SLOTS);
    expect(got).toBe(SLOTS - aliveShare);
    if (strategy !== "alloc") {
      const taken = new Set(all.subarray(0, got));
      expect(aliveHeld.some((slot) => taken.has(slot))).toBe(false);
    }
    observer.releaseMany(all, got);
    for (const slot of aliveHeld) alive.release(slot);
    alive.flush();
    observer.flush();
    expect(observer.stats().free).toBe(SLOTS);
  });
});
