// Cross-Worker exactly-once stress for one pool strategy: W Workers hammer one shared pool, each slot's
// owner flag is swapped 0→1 on acquire and 1→0 on release, and any other value is a violation. At the
// end every slot must be free exactly once, with no holder entry left set (each Worker flushed). Used
// by the test suite (small) and `bun run stress` (10^8).

import { parseArgs } from "node:util";
import {
  attachPool,
  createPoolMemory,
  EXHAUSTED,
  STRATEGY_NAMES,
  type StrategyName,
} from "../../src/pool/index.ts";
import type { StressJob, StressReport } from "./stress-worker.ts";

export interface StressOptions {
  strategy: StrategyName;
  workers: number;
  /** acquire+release pairs per worker */
  pairs: number;
  slots: number;
  seed: number;
}

export interface StressResult {
  reports: StressReport[];
  violations: number;
  /** Distinct slots the main thread could acquire afterwards: must equal `slots`. */
  freeAtEnd: number;
  duplicateAtEnd: number;
  seconds: number;
}

function runWorker(job: StressJob): Promise<StressReport> {
  const worker = new Worker(new URL("./stress-worker.ts", import.meta.url).href);
  return new Promise<StressReport>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<StressReport>) => {
      resolve(event.data);
      worker.terminate();
    };
    worker.onerror = (event) => {
      reject(new Error(`stress worker ${job.worker} failed: ${event.message}`));
      worker.terminate();
    };
    worker.postMessage(job);
  });
}

export async function runStress(options: StressOptions): Promise<StressResult> {
  const memory = createPoolMemory({
    strategy: options.strategy,
    slots: options.slots,
    slot_bytes: 64,
    local_batch: 4,
  });
  const flags = options.strategy === "alloc" ? options.workers * options.slots : options.slots;
  const oracle = new SharedArrayBuffer(flags * 4);
  const started = performance.now();
  const reports = await Promise.all(
    Array.from({ length: options.workers }, (_, worker) =>
      runWorker({
        memory,
        oracle,
        worker,
        pairs: options.pairs,
        seed: (options.seed + worker * 7919) >>> 0,
      }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  // Every Worker released and flushed everything: no slot may still be marked as held.
  const marked = memory.holders ? new Int32Array(memory.holders).filter((h) => h !== 0).length : 0;
  // Every slot must be free exactly once: drain the pool from this thread and count.
  const pool = attachPool(memory);
  const seen = new Uint8Array(options.slots);
  let freeAtEnd = 0;
  let duplicateAtEnd = 0;
  for (let slot = pool.acquire(); slot !== EXHAUSTED; slot = pool.acquire()) {
    if (seen[slot]++) duplicateAtEnd++;
    else freeAtEnd++;
  }
  const flagsLeft = new Int32Array(oracle).reduce((sum, flag) => sum + flag, 0);
  const violations =
    reports.reduce((sum, report) => sum + report.violations, 0) + flagsLeft + marked;
  return { reports, violations, freeAtEnd, duplicateAtEnd, seconds };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      ops: { type: "string", default: "25000000" },
      workers: { type: "string", default: "4" },
      slots: { type: "string", default: "256" },
      strategy: { type: "string", multiple: true },
      seed: { type: "string" },
    },
  });
  const seed = values.seed ? Number(values.seed) : (Math.random() * 2 ** 32) >>> 0;
  const strategies = (values.strategy ?? [...STRATEGY_NAMES]) as StrategyName[];
  const workers = Number(values.workers);
  const pairs = Number(values.ops);
  console.log(`stress: ${workers} workers × ${pairs} acquire+release pairs, seed ${seed}`);
  let failed = false;
  for (const strategy of strategies) {
    const result = await runStress({ strategy, workers, pairs, slots: Number(values.slots), seed });
    const ok =
      result.violations === 0 &&
      result.freeAtEnd === Number(values.slots) &&
      result.duplicateAtEnd === 0;
    failed ||= !ok;
    const rate = (workers * pairs) / result.seconds / 1e6;
    console.log(
      `${strategy.padEnd(9)} ${ok ? "ok  " : "FAIL"} violations=${result.violations} free_at_end=${result.freeAtEnd} ` +
        `duplicates=${result.duplicateAtEnd} ${result.seconds.toFixed(1)} s ${rate.toFixed(2)} M pairs/s` +
        (result.violations
          ? ` first: ${result.reports.find((r) => r.firstViolation)?.firstViolation}`
          : ""),
    );
  }
  process.exit(failed ? 1 : 0);
}
