// One contract, every strategy: acquire/release, exhaustion, checked-mode misuse, view isolation and
// exact stats. A strategy that needs an exception here is wrong, not the contract.

import { describe, expect, test } from "bun:test";
import {
  type BufferPool,
  createPool,
  EXHAUSTED,
  type PoolBackend,
  type PoolError,
  STRATEGY_NAMES,
  type StrategyName,
} from "../../src/pool/index.ts";

const SLOTS = 16;
const SLOT_BYTES = 64;
const LOCAL_BATCH = 4;

function makePool(strategy: StrategyName, checked = false): BufferPool {
  return createPool({
    strategy,
    slots: SLOTS,
    slot_bytes: SLOT_BYTES,
    checked,
    local_batch: LOCAL_BATCH,
  });
}

function acquireAll(pool: BufferPool): number[] {
  const held: number[] = [];
  for (let slot = pool.acquire(); slot !== EXHAUSTED; slot = pool.acquire()) held.push(slot);
  return held;
}

function poolErrorCode(action: () => void): string {
  try {
    action();
  } catch (error) {
    return (error as PoolError).code;
  }
  return "no error";
}

/** Acquires until exhausted, with a cap, so a corrupted free list that hands out garbage forever
 *  fails the test instead of hanging it. */
function acquireAllCapped(pool: BufferPool): unknown[] {
  const got: unknown[] = [];
  for (let slot = pool.acquire(); slot !== EXHAUSTED && got.length <= 2 * SLOTS; ) {
    got.push(slot);
    slot = pool.acquire();
  }
  return got;
}

/** After misuse the pool may have lost track of a slot, but it must still hand out only real ones,
 *  each at most once, and never count more free than it has. */
function expectOnlyRealSlots(pool: BufferPool): void {
  expect(pool.stats().free).toBeLessThanOrEqual(SLOTS);
  const got = acquireAllCapped(pool);
  const bad = got.filter(
    (slot) => !Number.isInteger(slot) || (slot as number) < 0 || (slot as number) >= SLOTS,
  );
  expect({ bad, count: got.length <= SLOTS, distinct: new Set(got).size === got.length }).toEqual({
    bad: [],
    count: true,
    distinct: true,
  });
}

/** How long a misuse may take to be reported: the bounded waits are about 100 ms (native) and
 *  about 1 s (TypeScript) for a peer stuck mid-operation; a truly full list is reported at once. */
const MISUSE_MS_MAX = 2_000;

/** Runs `misuse` and returns its PoolError code, and how long it took to be reported. */
function misuseOutcome(misuse: () => void): { code: string; fast: boolean } {
  const started = performance.now();
  let code = "no error";
  try {
    misuse();
  } catch (error) {
    code = (error as PoolError).code ?? `not a PoolError: ${String(error)}`;
  }
  return { code, fast: performance.now() - started < MISUSE_MS_MAX };
}

/** Without checked mode only the free list's size can catch a release of a slot that is already
 *  free; `alloc` keeps a per-thread buffer table, which tells it exactly. */
const OVERFILL: Record<StrategyName, { twice: string; never: string }> = {
  queue: { twice: "POOL_FREE_LIST_FULL", never: "POOL_FREE_LIST_FULL" },
  "queue-ts": { twice: "POOL_FREE_LIST_FULL", never: "POOL_FREE_LIST_FULL" },
  mutex: { twice: "POOL_FREE_LIST_FULL", never: "POOL_FREE_LIST_FULL" },
  spinlock: { twice: "POOL_FREE_LIST_FULL", never: "POOL_FREE_LIST_FULL" },
  local: { twice: "POOL_FREE_LIST_FULL", never: "POOL_FREE_LIST_FULL" },
  alloc: { twice: "POOL_DOUBLE_RELEASE", never: "POOL_NOT_HELD" },
};

const EXPECTED_BACKEND: Record<StrategyName, PoolBackend> = {
  queue: "native",
  "queue-ts": "typescript",
  mutex: "typescript",
  spinlock: "typescript",
  local: "native",
  alloc: "heap",
};

describe.each(STRATEGY_NAMES)("pool strategy %s", (strategy) => {
  test("hands out every slot exactly once, then reports exhaustion without throwing", () => {
    const pool = makePool(strategy);
    const held = acquireAll(pool);
    expect(held.length).toBe(SLOTS);
    expect(new Set(held).size).toBe(SLOTS);
    for (const slot of held) {
      expect(Number.isInteger(slot)).toBe(true);
      expect(slot).toBeGreaterThanOrEqual(0);
      expect(slot).toBeLessThan(SLOTS);
    }
    expect(pool.acquire()).toBe(EXHAUSTED);
    expect(pool.acquire()).toBe(EXHAUSTED);
  });

  test("released slots come back, and the pool refills completely", () => {
    const pool = makePool(strategy);
    const first = acquireAll(pool);
    pool.release(first[3]!);
    const again = pool.acquire();
    expect(again).not.toBe(EXHAUSTED);
    expect(first.filter((slot) => slot !== first[3]).includes(again)).toBe(false);
    for (const slot of first) if (slot !== first[3]) pool.release(slot);
    pool.release(again);
    expect(acquireAll(pool).length).toBe(SLOTS);
  });

  test("stats are exact", () => {
    const pool = makePool(strategy);
    const base = { strategy, slots: SLOTS, slot_bytes: SLOT_BYTES, checked: false };
    expect(pool.stats()).toMatchObject({
      ...base,
      acquired: 0,
      released: 0,
      exhausted: 0,
      in_use: 0,
      free: SLOTS,
    });
    const held = [pool.acquire(), pool.acquire(), pool.acquire()];
    expect(pool.stats()).toMatchObject({ acquired: 3, released: 0, in_use: 3, free: SLOTS - 3 });
    pool.release(held[1]!);
    expect(pool.stats()).toMatchObject({ acquired: 3, released: 1, in_use: 2, free: SLOTS - 2 });
    const rest = acquireAll(pool);
    expect(rest.length).toBe(SLOTS - 2);
    expect(pool.stats()).toMatchObject({
      acquired: SLOTS + 1,
      exhausted: 1,
      in_use: SLOTS,
      free: 0,
    });
    // Strict on purpose: with the library built (setup does it), `queue` and `local` must be native.
    expect(pool.stats().backend).toBe(EXPECTED_BACKEND[strategy]);
  });

  test("acquireMany and releaseMany move batches and count exhaustion once", () => {
    const pool = makePool(strategy);
    const out = new Uint32Array(SLOTS + 4);
    expect(pool.acquireMany(out, 5)).toBe(5);
    expect(new Set(out.subarray(0, 5)).size).toBe(5);
    const got = pool.acquireMany(out.subarray(5), SLOTS);
    expect(got).toBe(SLOTS - 5);
    expect(new Set(out.subarray(0, SLOTS)).size).toBe(SLOTS);
    expect(pool.stats()).toMatchObject({ acquired: SLOTS, exhausted: 1, in_use: SLOTS, free: 0 });
    pool.releaseMany(out, SLOTS);
    expect(pool.stats()).toMatchObject({ released: SLOTS, in_use: 0, free: SLOTS });
    expect(acquireAll(pool).length).toBe(SLOTS);
  });

  test("views are slot-sized, cached, and never overlap", () => {
    const pool = makePool(strategy);
    const held = acquireAll(pool);
    for (const slot of held) {
      const view = pool.view(slot);
      expect(view.byteLength).toBe(SLOT_BYTES);
      expect(pool.view(slot)).toBe(view); // cached: no allocation per call
      view.fill(slot + 1);
    }
    for (const slot of held) {
      const view = pool.view(slot);
      expect(view.every((byte) => byte === slot + 1)).toBe(true);
    }
  });

  test("a release outside the pool always throws POOL_SLOT_RANGE", () => {
    const pool = makePool(strategy);
    expect(poolErrorCode(() => pool.release(SLOTS))).toBe("POOL_SLOT_RANGE");
    expect(poolErrorCode(() => pool.release(-1))).toBe("POOL_SLOT_RANGE");
    expect(poolErrorCode(() => pool.release(1.5))).toBe("POOL_SLOT_RANGE");
    expect(pool.stats().released).toBe(0);
  });

  test("checked mode reports a double release and a release of a slot never acquired", () => {
    const pool = makePool(strategy, true);
    expect(pool.stats().checked).toBe(true);
    const slot = pool.acquire();
    pool.release(slot);
    let message = "";
    try {
      pool.release(slot);
    } catch (error) {
      message = (error as Error).message;
      expect((error as PoolError).code).toBe("POOL_DOUBLE_RELEASE");
    }
    expect(message).toContain(`slot ${slot} released twice`);
    const held = acquireAll(pool);
    expect(held.length).toBe(SLOTS); // the rejected release left the free list intact
    pool.release(held[0]!);
    const fresh = makePool(strategy, true);
    expect(poolErrorCode(() => fresh.release(7))).toBe("POOL_NOT_HELD");
    expect(fresh.stats()).toMatchObject({ released: 0, free: SLOTS });
  });

  // Misuse without checked mode. The pool cannot tell which release was wrong, but the free list
  // holds exactly `slots` indices: a release that overfills it must end in a typed error (from the
  // release or from the flush that hands a cache back), at once, not a hang, and must not write past
  // the end of the free list.
  test("unchecked: a double release into a full free list is a typed error, not a hang or a bad slot", () => {
    const pool = makePool(strategy);
    const held = acquireAll(pool);
    for (const slot of held) pool.release(slot);
    const outcome = misuseOutcome(() => {
      pool.release(held[0]!);
      pool.flush();
    });
    expect(outcome).toEqual({ code: OVERFILL[strategy].twice, fast: true });
    expectOnlyRealSlots(pool);
  });

  test("unchecked: releasing more than was acquired, one at a time or in a batch, is a typed error", () => {
    const single = makePool(strategy);
    expect(
      misuseOutcome(() => {
        single.release(7);
        single.flush();
      }),
    ).toEqual({ code: OVERFILL[strategy].never, fast: true });
    expectOnlyRealSlots(single);

    const batch = makePool(strategy);
    expect(
      misuseOutcome(() => {
        batch.releaseMany(Uint32Array.of(0, 1, 2, 3), 4);
        batch.flush();
      }),
    ).toEqual({ code: OVERFILL[strategy].never, fast: true });
    expectOnlyRealSlots(batch);

    // A batch with more slots than this caller holds, on a pool that is partly in use.
    const partly = makePool(strategy);
    const out = new Uint32Array(SLOTS);
    expect(partly.acquireMany(out, 3)).toBe(3);
    const extra = strategy === "alloc" ? 3 : (out[0]! + 1) % SLOTS; // an index not held here
    out.set([out[0]!, out[1]!, out[2]!, extra, extra]);
    expect(
      misuseOutcome(() => {
        partly.releaseMany(out, 5);
        partly.flush();
      }),
    ).toEqual({ code: OVERFILL[strategy].never, fast: true });
    expectOnlyRealSlots(partly);
  });

  test("checked mode rejects a batch that releases a slot twice and returns the rest", () => {
    const pool = makePool(strategy, true);
    const out = new Uint32Array(4);
    expect(pool.acquireMany(out, 4)).toBe(4);
    const batch = Uint32Array.of(out[0]!, out[1]!, out[0]!);
    expect(poolErrorCode(() => pool.releaseMany(batch, 3))).toBe("POOL_DOUBLE_RELEASE");
    pool.releaseMany(out.subarray(2), 2);
    pool.flush();
    expect(pool.stats()).toMatchObject({ in_use: 0, free: SLOTS });
    expect(acquireAll(pool).length).toBe(SLOTS);
  });

  test("flush keeps every slot accounted for", () => {
    const pool = makePool(strategy);
    const held = acquireAll(pool);
    for (const slot of held) pool.release(slot);
    pool.flush();
    expect(pool.stats()).toMatchObject({ local_cached: 0, free: SLOTS, in_use: 0 });
    expect(acquireAll(pool).length).toBe(SLOTS);
  });
});
