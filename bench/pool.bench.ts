// Single-thread acquire+release pair per pool strategy, beside its baselines: a plain JS array free
// list and an empty bun:ffi call. `bun run bench:pool`. BENCH_SMOKE=1 runs every case a few thousand
// times and mitata on one cheap case, so the test suite keeps the bench from rotting.
// Not the cross-Worker benchmark (that is issue 4's).

import { bench, do_not_optimize, run, summary } from "mitata";
import { createPool, STRATEGY_NAMES } from "../src/pool/index.ts";
import { nativeNoop } from "../src/pool/native.ts";

const SLOTS = 4096;
const SLOT_BYTES = 16384;
const SMOKE_ITERATIONS = 2000;
const smoke = process.env.BENCH_SMOKE === "1";

let checksum = 0; // printed, so no loop body can be optimised away

interface Case {
  name: string;
  fn: () => void;
  /** Measure heap bytes per op with a GC before each sample (mitata `.gc("inner")`). */
  allocates: boolean;
}

const cases: Case[] = STRATEGY_NAMES.map((strategy) => {
  const pool = createPool({ strategy, slots: SLOTS, slot_bytes: SLOT_BYTES, local_batch: 32 });
  return {
    name: `${strategy} acquire+release`,
    allocates: true,
    fn: () => {
      const slot = pool.acquire();
      pool.release(slot);
      checksum += slot;
    },
  };
});

const freeList: number[] = Array.from({ length: SLOTS }, (_, i) => i);
cases.push({
  name: "baseline: JS array free list pop+push",
  allocates: false,
  fn: () => {
    const slot = freeList.pop()!;
    freeList.push(slot);
    checksum += slot;
  },
});

const noop = nativeNoop();
cases.push({
  name: "baseline: empty bun:ffi call",
  allocates: false,
  fn: () => do_not_optimize(noop()),
});

if (smoke) {
  for (const { name, fn } of cases) {
    for (let i = 0; i < SMOKE_ITERATIONS; i++) fn();
    console.log(`smoke ok: ${name}`);
  }
}

summary(() => {
  for (const { name, fn, allocates } of cases) {
    const b = bench(name, fn);
    if (allocates) b.gc("inner");
  }
});

await run(smoke ? { throw: true, filter: /empty bun:ffi/, format: "quiet" } : { throw: true });
console.log(`checksum ${checksum}`);
