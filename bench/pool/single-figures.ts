// Turns one single-thread case into a figure: a plain timed loop (smoke), mitata's statistics, and
// an exact count of JS objects allocated per call. Not the cases themselves: child-single.ts builds
// those, and keeps the checksum their loops add to, so every hot loop stays in that one module.

import { heapStats } from "bun:jsc";
import type { measure } from "mitata";
import type { SingleFigure } from "./protocol.ts";

export interface Case {
  key: string;
  measure: "single" | "batched";
  name: string;
  fn: () => void;
  /** Measures allocation: a full GC before every sample (costs time, so only where it matters). */
  gcInner: boolean;
  /** The same work for the allocation probe, if it differs from `fn` (see strategyCases in child-single.ts). */
  probeFn?: () => void;
}

export type MitataStats = Awaited<ReturnType<typeof measure>>;

function liveObjects(): number {
  const counts = heapStats().objectTypeCounts as Record<string, number>;
  let total = 0;
  for (const type in counts) total += counts[type]!;
  return total;
}

const PROBE_CALLS = 16;
const PROBE_REPEATS = 5;
const PROBE_ATTEMPTS = 5;

/** Objects allocated per call: live objects after PROBE_CALLS calls minus after none, each right
 *  after a full GC, so heapStats' own result objects cancel out. The idle count is taken before and
 *  after the busy one and must agree (early on, one-off objects are still being collected); null if
 *  it never settles, e.g. because a GC ran inside the probe. */
export function allocsPerCall(fn: () => void): number | null {
  const growth = (calls: number): number => {
    const out: number[] = [];
    for (let r = 0; r < PROBE_REPEATS; r++) {
      Bun.gc(true);
      const before = liveObjects();
      for (let i = 0; i < calls; i++) fn();
      out.push(liveObjects() - before);
    }
    return out.sort((x, y) => x - y)[PROBE_REPEATS >> 1]!;
  };
  for (let i = 0; i < 1000; i++) fn(); // compiled, and lazily built caches (views, batches) filled
  for (let attempt = 0; attempt < PROBE_ATTEMPTS; attempt++) {
    const idleBefore = growth(0);
    const busy = growth(PROBE_CALLS);
    if (growth(0) === idleBefore) return Math.max(0, (busy - idleBefore) / PROBE_CALLS);
  }
  return null;
}

export function loopFigure(c: Case, iterations: number): SingleFigure {
  for (let i = 0; i < iterations; i++) c.fn(); // warm
  const started = performance.now();
  for (let i = 0; i < iterations; i++) c.fn();
  const ns = ((performance.now() - started) * 1e6) / iterations;
  return {
    key: c.key,
    measure: c.measure,
    name: c.name,
    ns_per_op: Math.max(ns, 1e-3),
    p50_ns: null,
    p99_ns: null,
    heap_bytes_per_op: null,
    allocs_per_op: null,
    timer: "loop",
  };
}

export function mitataFigure(c: Case, stats: MitataStats): SingleFigure {
  const heap = c.gcInner && stats.heap ? stats.heap.avg : null;
  return {
    key: c.key,
    measure: c.measure,
    name: c.name,
    ns_per_op: stats.avg,
    p50_ns: stats.p50,
    p99_ns: stats.p99,
    heap_bytes_per_op: heap === null || Number.isNaN(heap) ? null : heap,
    allocs_per_op: c.gcInner ? allocsPerCall(c.probeFn ?? c.fn) : null,
    timer: "mitata",
  };
}
