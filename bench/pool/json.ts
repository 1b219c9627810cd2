// pool.json: the figures the pool microbenchmarks measured, rounded to what they can support, with
// their ratios to the baseline and the targets. Not the printed summary: report.ts renders that.

import {
  BASELINE_STRATEGY,
  HANDOFF_RING_CELLS,
  LOCAL_BATCH,
  MANY_COUNT,
  SLOT_BYTES,
  SLOTS,
} from "./config.ts";
import type { SingleFigure } from "./protocol.ts";
import { type BenchResults, NOT_APPLICABLE, round, targets } from "./report.ts";
import type { ThroughputFigure } from "./threads.ts";

/** Three significant digits: the JSON keeps what the measurement can support, and stays small. */
function sig(value: number): number {
  return value === 0 || !Number.isFinite(value) ? value : Number(value.toPrecision(3));
}

function singleJson(f: SingleFigure, base: SingleFigure | undefined): object {
  return {
    name: f.name,
    ns_per_op: sig(f.ns_per_op),
    p50_ns: f.p50_ns === null ? null : sig(f.p50_ns),
    p99_ns: f.p99_ns === null ? null : sig(f.p99_ns),
    heap_bytes_per_op: f.heap_bytes_per_op === null ? null : sig(f.heap_bytes_per_op),
    allocs_per_op: f.allocs_per_op === null ? null : round(f.allocs_per_op, 2),
    vs_mutex: base ? sig(base.ns_per_op / f.ns_per_op) : null,
    timer: f.timer,
  };
}

function rateJson(f: ThroughputFigure, base: ThroughputFigure | undefined): object {
  return {
    ops_per_s: sig(f.ops_per_s),
    min_ops_per_s: sig(f.min_ops_per_s),
    max_ops_per_s: sig(f.max_ops_per_s),
    fairness: round(f.fairness, 2),
    own_cores: round(f.own_cores, 2),
    other_cores: f.other_cores === null ? null : round(f.other_cores, 2),
    rounds_rerun: f.rounds_rerun,
    noisy: f.noisy,
    vs_mutex: base ? sig(f.ops_per_s / base.ops_per_s) : null,
  };
}

function mapValues<T, U>(
  record: Record<string, T>,
  fn: (value: T, key: string) => U,
): Record<string, U> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, fn(v, k)]));
}

export function resultsJson(r: BenchResults): object {
  const handoffBase = r.handoff[BASELINE_STRATEGY];
  return {
    schema: "sockpool-bench-pool/1",
    date: r.date,
    smoke: r.smoke,
    command: "bun run bench",
    machine: r.machine,
    config: {
      slots: SLOTS,
      slot_bytes: SLOT_BYTES,
      local_batch: LOCAL_BATCH,
      many_count: MANY_COUNT,
      handoff_ring_cells: HANDOFF_RING_CELLS,
      worker_counts: r.sizes.workerCounts,
      rounds: r.sizes.rounds,
      round_ms: r.sizes.roundMs,
      warmup_ms: r.sizes.warmupMs,
    },
    baseline: BASELINE_STRATEGY,
    units: {
      ns_per_op:
        "mean ns per call: one acquire+release pair (single), or one acquireMany+releaseMany of many_count slots (batched)",
      ops_per_s:
        "acquire+release pairs per second, summed over Workers, median round; vs_mutex >1 is faster",
    },
    single: mapValues(r.single, (f) => singleJson(f, r.single[BASELINE_STRATEGY])),
    batched: mapValues(r.batched, (f) => singleJson(f, r.batched[BASELINE_STRATEGY])),
    workers: mapValues(r.workers, (byCount) =>
      Object.fromEntries(
        Object.entries(byCount).map(([n, f]) => [
          n,
          rateJson(f, r.workers[BASELINE_STRATEGY]?.[Number(n)]),
        ]),
      ),
    ),
    handoff: mapValues(r.handoff, (f) =>
      f === NOT_APPLICABLE
        ? NOT_APPLICABLE
        : rateJson(f, handoffBase === NOT_APPLICABLE ? undefined : handoffBase),
    ),
    single_other_cores: mapValues(r.single_other_cores, (v) => (v === null ? null : round(v, 2))),
    targets: targets(r),
    checksum: r.checksum,
  };
}
