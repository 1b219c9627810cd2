// One process of the single-thread pool benchmarks: one strategy's (or the baselines') cases under
// mitata, written to a small JSON file for main.ts. Not meant to be run alone.
//
//   bun bench/pool/child-single.ts <strategy | baselines> <out.json> [--smoke] [--header]
//
// Why a process per strategy: every strategy shares SlabPool.acquire, whose this.take() call site
// turns polymorphic once a second strategy has run in the same JS VM; measured here, that made
// `mutex` 6× and `queue` 1.6× slower than in a process of its own. The proxy runs one strategy per
// process, so each one is measured alone.

import { memoryUsage } from "bun:jsc";
import { bench, do_not_optimize, group, measure, run } from "mitata";
import {
  type BufferPool,
  createPool,
  createPoolMemory,
  isStrategyName,
  type StrategyName,
} from "../../src/pool/index.ts";
import { NativeRing, nativeNoop } from "../../src/pool/freelist/native.ts";
import { TsRing } from "../../src/pool/freelist/ring.ts";
import {
  BASELINE_STRATEGY,
  benchSizes,
  LOCAL_BATCH,
  MANY_COUNT,
  NAME_COLUMN,
  SLOT_BYTES,
  SLOTS,
} from "./config.ts";
import type { SingleFigure, SingleResult } from "./protocol.ts";
import { allocsPerCall, type Case, loopFigure, mitataFigure } from "./single-figures.ts";

const [groupName, outPath, ...flags] = process.argv.slice(2);
if (!groupName || !outPath) {
  throw new Error(
    "usage: bun bench/pool/child-single.ts <strategy | baselines> <out.json> [--smoke]",
  );
}
const sizes = benchSizes(flags.includes("--smoke"));
const header = flags.includes("--header");

let checksum = 0; // written out, so no loop body can be optimised away
const pools: BufferPool[] = [];

function strategyCases(strategy: StrategyName): Case[] {
  const options = { strategy, slots: SLOTS, slot_bytes: SLOT_BYTES, local_batch: LOCAL_BATCH };
  const pool = createPool(options);
  pools.push(pool);
  const many = new Uint32Array(MANY_COUNT);
  const pair = (): void => {
    const slot = pool.acquire();
    pool.release(slot);
    checksum += slot;
  };
  const batch = (): void => {
    const count = pool.acquireMany(many, MANY_COUNT);
    pool.releaseMany(many, count);
    checksum += count + many[0]!;
  };
  // `alloc` allocates a slot_bytes buffer per acquire, and 16 KiB buffers set off a GC within a few
  // calls, which would scramble the live-object count. The count of objects does not depend on the
  // size, so the probe runs the same code on 64-byte slots, where the probe stays GC-free.
  let probePair: (() => void) | undefined;
  let probeBatch: (() => void) | undefined;
  if (strategy === "alloc") {
    const small = createPool({ ...options, slot_bytes: 64 });
    pools.push(small);
    probePair = () => {
      const slot = small.acquire();
      small.release(slot);
      checksum += slot;
    };
    probeBatch = () => {
      const count = small.acquireMany(many, MANY_COUNT);
      small.releaseMany(many, count);
      checksum += count;
    };
  }
  const vs = strategy === BASELINE_STRATEGY ? "the baseline" : `vs ${BASELINE_STRATEGY}`;
  return [
    ...ringCases(strategy),
    {
      key: strategy,
      measure: "single",
      name: `${strategy}: acquire+release (${vs})`,
      fn: pair,
      gcInner: true,
      probeFn: probePair,
    },
    {
      key: strategy,
      measure: "batched",
      name: `${strategy}: acquireMany+releaseMany ${MANY_COUNT} (${vs})`,
      fn: batch,
      gcInner: true,
      probeFn: probeBatch,
    },
  ];
}

/** `queue` and `queue-ts` also time their shared free list alone, in the same process, so the
 *  difference is the pool layer (range check, counters, strategy dispatch) and nothing else. */
function ringCases(strategy: StrategyName): Case[] {
  if (strategy !== "queue" && strategy !== "queue-ts") return [];
  const control = createPoolMemory({ strategy, slots: SLOTS, slot_bytes: 1 }).control;
  if (strategy === "queue") {
    const ring = new NativeRing(control);
    return [
      {
        key: "ring-native",
        measure: "single",
        name: "queue without the pool layer: Zig ring pop+push",
        gcInner: false,
        fn: () => {
          const slot = ring.pop();
          ring.push(slot);
          checksum += slot;
        },
      },
    ];
  }
  const ring = new TsRing(control);
  return [
    {
      key: "ring-ts",
      measure: "single",
      name: "queue-ts without the pool layer: TS ring pop+push",
      gcInner: false,
      fn: () => {
        const slot = ring.pop();
        ring.push(slot);
        checksum += slot;
      },
    },
  ];
}

function baselineCases(): Case[] {
  const freeList: number[] = Array.from({ length: SLOTS }, (_, i) => i);
  const many = new Uint32Array(MANY_COUNT);
  const noop = nativeNoop();
  return [
    {
      key: "js-array",
      measure: "single",
      name: "baseline: JS array free list pop+push",
      gcInner: true,
      fn: () => {
        const slot = freeList.pop()!;
        freeList.push(slot);
        checksum += slot;
      },
    },
    {
      key: "js-array",
      measure: "batched",
      name: `baseline: JS array free list ${MANY_COUNT} pops+pushes`,
      gcInner: true,
      fn: () => {
        for (let i = 0; i < MANY_COUNT; i++) many[i] = freeList.pop()!;
        for (let i = MANY_COUNT - 1; i >= 0; i--) freeList.push(many[i]!);
        checksum += many[0]!;
      },
    },
    {
      key: "ffi-noop",
      measure: "single",
      name: "baseline: empty bun:ffi call",
      gcInner: false,
      fn: () => do_not_optimize(noop()),
    },
    {
      key: "ffi-noop-x2",
      measure: "single",
      name: "baseline: two empty bun:ffi calls",
      gcInner: false,
      fn: () => {
        noop();
        do_not_optimize(noop());
      },
    },
  ];
}

let cases: Case[];
let title: string;
if (groupName === "baselines") {
  cases = baselineCases();
  title = "single thread: baselines (a plain JS array free list; the cost of crossing bun:ffi)";
} else if (isStrategyName(groupName)) {
  cases = strategyCases(groupName);
  title = `single thread: ${groupName} (baseline: ${BASELINE_STRATEGY}; floor: JS array free list)`;
} else {
  throw new Error(
    `unknown group ${JSON.stringify(groupName)} (expected a strategy or "baselines")`,
  );
}

const figures = new Map<string, SingleFigure>();
const caseId = (c: { key: string; measure: string }): string => `${c.key}/${c.measure}`;

if (sizes.smoke) {
  // A plain loop per case, then mitata's measure() briefly on the first case so the mitata path
  // stays exercised (run() would first spend ~3.6 s calibrating, too long for the test suite), and
  // the allocation probe, which is cheap and exact.
  for (const c of cases) figures.set(caseId(c), loopFigure(c, sizes.smokeIterations));
  const first = cases[0]!;
  const stats = await measure(first.fn, {
    min_cpu_time: 20e6,
    inner_gc: first.gcInner,
    heap: () => memoryUsage().current, // what mitata's bench() uses under Bun
  });
  figures.set(caseId(first), mitataFigure(first, stats));
  for (const c of cases.slice(1)) {
    if (c.gcInner) figures.get(caseId(c))!.allocs_per_op = allocsPerCall(c.probeFn ?? c.fn);
  }
} else {
  group(title, () => {
    for (const c of cases) {
      const b = bench(c.name, c.fn);
      if (c.gcInner) b.gc("inner");
    }
  });
  let printed = 0;
  const result = await run({
    throw: true,
    format: { mitata: { name: NAME_COLUMN } },
    // mitata opens with clk/cpu/runtime, a blank line, column titles and a rule: print those once.
    print: (line: string) => {
      if (header || printed++ >= 6) console.log(line);
    },
  });
  for (const trial of result.benchmarks) {
    const c = cases.find((x) => x.name === trial.alias);
    const stats = trial.runs[0]?.stats;
    if (!c || !stats) throw new Error(`mitata returned no stats for ${trial.alias}`);
    figures.set(caseId(c), mitataFigure(c, stats));
  }
}

// Every pool must be whole again, and no acquire may have found it empty.
for (const pool of pools) {
  const stats = pool.stats();
  if (stats.exhausted !== 0 || stats.in_use !== 0 || stats.free !== SLOTS) {
    throw new Error(
      `${pool.strategy}: expected a whole pool after the run, got exhausted=${stats.exhausted} in_use=${stats.in_use} free=${stats.free}`,
    );
  }
}

const out: SingleResult = { group: groupName, checksum, cases: [...figures.values()] };
await Bun.write(outPath, JSON.stringify(out));
