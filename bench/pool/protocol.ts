// What the benchmark's threads and processes exchange: the jobs and reports the main thread and its
// Workers post, the word offsets of the two small SharedArrayBuffers they coordinate through, and the
// JSON each single-thread process writes. Not code that runs: see threads.ts (main thread),
// child-worker.ts (Worker) and child-single.ts (single-thread process).
//
//   control (Int32Array):  word 0 GATE: the last round opened │ word 32 STOP: the last round stopped
//                          │ word 64 QUIT: 1 once no round will follow (the Workers flush and say "done")
//   ring    (Int32Array):  word 0 HEAD (producer) │ word 32 TAIL (consumer) │ word 64 CLOSED: the last
//                          round the producer finished │ word 96.. cells[HANDOFF_RING_CELLS]
//
// Words that different threads write sit 128 bytes apart (CACHE_LINE_BYTES in src/pool/freelist/layout.ts).

import type { PoolMemory } from "../../src/pool/index.ts";
import { CACHE_LINE_BYTES } from "../../src/pool/freelist/layout.ts";
import { HANDOFF_RING_CELLS, type HandoffSubject, type WorkerSubject } from "./config.ts";

const LINE_WORDS = CACHE_LINE_BYTES / 4;

export const GATE_WORD = 0;
export const STOP_WORD = LINE_WORDS;
export const QUIT_WORD = 2 * LINE_WORDS;
export const CONTROL_BYTES = 3 * CACHE_LINE_BYTES;

export const HEAD_WORD = 0;
export const TAIL_WORD = LINE_WORDS;
export const CLOSED_WORD = 2 * LINE_WORDS;
export const CELLS_WORD = 3 * LINE_WORDS;
export const RING_BYTES = (CELLS_WORD + HANDOFF_RING_CELLS) * 4;

interface JobBase {
  /** Pairs per round at most; a round also ends when STOP reaches it. */
  pairsMax: number;
  control: SharedArrayBuffer;
  /** The pool to attach; null for the baselines, which have none. */
  memory: PoolMemory | null;
}

/** Contention: acquire+release pairs in a loop, every Worker on the same pool. */
export interface PairsJob extends JobBase {
  kind: "pairs";
  subject: WorkerSubject;
}

/** Hand-off: the producer acquires and passes each index through the ring; the consumer releases. */
export interface HandoffJob extends JobBase {
  kind: "producer" | "consumer";
  subject: HandoffSubject;
  ring: SharedArrayBuffer;
}

export type WorkerJob = PairsJob | HandoffJob;

export interface RoundReport {
  type: "round";
  round: number;
  /** Pairs completed (producer: indices sent; consumer: indices released). */
  pairs: number;
  /** Sum of the slot indices this Worker handled in the round. */
  checksum: number;
  /** Acquires that found the pool empty (none expected: the pool is far larger than what is held). */
  exhausted: number;
}

/** "done" follows QUIT, after the Worker has returned anything it cached to the shared pool. */
export type WorkerMessage = { type: "ready" } | { type: "done" } | RoundReport;

/** What one case measured; `null` where the run did not measure it (smoke, or no GC per sample). */
export interface SingleFigure {
  key: string;
  measure: "single" | "batched";
  name: string;
  /** mitata's mean; p50 and p99 are of its samples (each the mean of a batch of calls). */
  ns_per_op: number;
  p50_ns: number | null;
  p99_ns: number | null;
  /** mitata's heap growth per call with a full GC before each sample (`.gc("inner")`). */
  heap_bytes_per_op: number | null;
  /** JS objects allocated per call: live-object count before and after a few calls, after a GC. */
  allocs_per_op: number | null;
  /** "mitata" or, in the smoke run, "loop" (a plain timed loop: a figure, not a measurement). */
  timer: "mitata" | "loop";
}

export interface SingleResult {
  group: string;
  checksum: number;
  cases: SingleFigure[];
}
