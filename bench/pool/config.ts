// Every size and name the pool microbenchmarks use, in one place: the default run and the smoke run
// (BENCH_SMOKE=1, seconds, inside the test suite). Not a harness: see main.ts for the order.

import { LOCAL_BATCH_DEFAULT, STRATEGY_NAMES, type StrategyName } from "../../src/pool/index.ts";

/** Slots and slot size of every pool under test: the proxy's defaults (README "Config file"). */
export const SLOTS = 4096;
export const SLOT_BYTES = 16384;
export const LOCAL_BATCH = LOCAL_BATCH_DEFAULT;
/** Slots per acquireMany/releaseMany call in the batched case. */
export const MANY_COUNT = 32;
/** Every figure is also given as a ratio to this strategy. */
export const BASELINE_STRATEGY: StrategyName = "mutex";
/** Cells of the SPSC ring that carries slot indices from the hand-off producer to its consumer. */
export const HANDOFF_RING_CELLS = 1024;
/** The hand-off producer publishes its ring head every this many indices (and whenever it must wait). */
export const HANDOFF_PUBLISH_EVERY = 16;
/** Column width of benchmark names, the same in every process so their output lines up. */
export const NAME_COLUMN = 52;
/** A round during which other processes kept more than this many cores busy is re-run (see cpu-load.ts). */
export const OTHER_CORES_MAX = 0.25;
/** Pairs a Worker runs between two looks at the stop flag. */
export const WORKER_CHUNK_PAIRS = 256;

if (HANDOFF_RING_CELLS + 2 * 2 * LOCAL_BATCH >= SLOTS) {
  throw new Error("assert: the hand-off ring and two local caches cannot hold every slot");
}
if (HANDOFF_PUBLISH_EVERY >= HANDOFF_RING_CELLS) {
  throw new Error("assert: the hand-off producer publishes before the ring is full");
}

/** Single-thread baselines (run in their own process, like each strategy). */
export const SINGLE_BASELINES = ["js-array", "ffi-noop", "ffi-noop-x2", "ring-native", "ring-ts"];
/** Worker baselines: the same per-pair loop with no shared state at all (the scaling ceiling). */
export const WORKER_BASELINES = ["js-array", "ffi-noop"] as const;
/** Hand-off baseline: the SPSC ring alone, carrying counters instead of slots. */
export const HANDOFF_BASELINE = "ring-only";

export type WorkerSubject = StrategyName | (typeof WORKER_BASELINES)[number];
export type HandoffSubject = Exclude<StrategyName, "alloc"> | typeof HANDOFF_BASELINE;

export const WORKER_SUBJECTS: readonly WorkerSubject[] = [...STRATEGY_NAMES, ...WORKER_BASELINES];

export interface BenchSizes {
  smoke: boolean;
  workerCounts: number[];
  /** Measured rounds per Worker configuration; the figure is their median. */
  rounds: number;
  /** Rounds re-run at most, per configuration, when other processes used the machine during one. */
  extraRoundsMax: number;
  /** One unrecorded round first, so every Worker's loop is compiled before the clock runs. */
  warmupMs: number;
  roundMs: number;
  /** Pairs per Worker and round at most (the smoke run stops on this, the full run on roundMs). */
  pairsMax: number;
  /** Smoke: plain-loop iterations per single-thread case instead of mitata. */
  smokeIterations: number;
}

export function benchSizes(smoke: boolean): BenchSizes {
  return smoke
    ? {
        smoke,
        workerCounts: [1, 2],
        rounds: 1,
        extraRoundsMax: 0,
        warmupMs: 2000, // caps the warm-up round, which stops on pairsMax long before
        roundMs: 2000,
        pairsMax: 4096,
        smokeIterations: 2000,
      }
    : {
        smoke,
        workerCounts: [1, 2, 4, 8],
        rounds: 5,
        extraRoundsMax: 3,
        warmupMs: 300,
        roundMs: 400,
        pairsMax: Number.MAX_SAFE_INTEGER,
        smokeIterations: 0,
      };
}
