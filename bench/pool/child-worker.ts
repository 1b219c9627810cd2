// One benchmark Worker, started by threads.ts (never run on its own): runs one job (contention pairs,
// or one side of a hand-off) for every round the main thread opens, reports a count and a checksum
// per round, and on QUIT flushes and says "done". Not the timer: the main thread measures wall time.
//
// A fresh Worker per configuration keeps every hot call site monomorphic (one strategy per JS VM, as
// in the proxy). Concurrency note: GATE and STOP only grow, so a Worker that wakes late or looks
// late still sees the right round; ring cells are plain reads and writes ordered by the atomic HEAD
// store (producer) and HEAD load (consumer), and likewise TAIL in the other direction.

import { attachPool, EXHAUSTED } from "../../src/pool/index.ts";
import { nativeNoop } from "../../src/pool/freelist/native.ts";
import { HANDOFF_PUBLISH_EVERY, HANDOFF_RING_CELLS, SLOTS, WORKER_CHUNK_PAIRS } from "./config.ts";
import {
  CELLS_WORD,
  CLOSED_WORD,
  GATE_WORD,
  type HandoffJob,
  HEAD_WORD,
  type PairsJob,
  QUIT_WORD,
  type RoundReport,
  STOP_WORD,
  TAIL_WORD,
  type WorkerJob,
  type WorkerMessage,
} from "./protocol.ts";

declare const self: Worker;

const RING_MASK = HANDOFF_RING_CELLS - 1;
/** Polls of the ring before a waiting side parks: ~10–30 µs, longer than the other side needs to
 *  publish a batch, so with a core each neither parks; parking only helps a side that shares its core. */
const SPIN_POLLS = 10_000;
const PARK_MS = 0.02;
const parkWord = new Int32Array(new SharedArrayBuffer(4));

let checksum = 0;
let exhausted = 0;

function post(message: WorkerMessage): void {
  self.postMessage(message);
}

function report(round: number, pairs: number): RoundReport {
  return { type: "round", round, pairs, checksum, exhausted };
}

/** Blocks until the main thread opens `round` (the start gate every Worker waits on); false on QUIT. */
function waitForRound(control: Int32Array, round: number): boolean {
  for (let seen = Atomics.load(control, GATE_WORD); seen < round; ) {
    Atomics.wait(control, GATE_WORD, seen);
    seen = Atomics.load(control, GATE_WORD);
  }
  return Atomics.load(control, QUIT_WORD) === 0;
}

/** Waits for the other side of the ring: polls, then parks 20 µs at a time so a peer sharing the core can run. */
function pause(idle: number): void {
  if (idle < SPIN_POLLS) Atomics.load(parkWord, 0);
  else Atomics.wait(parkWord, 0, 0, PARK_MS);
}

interface PairsLoop {
  /** Runs `count` pairs; returns how many completed. */
  chunk(count: number): number;
  finish(): void;
}

function pairsLoop(job: PairsJob): PairsLoop {
  switch (job.subject) {
    case "js-array": {
      // Each Worker's own free list: nothing shared, the ceiling any shared pool could reach.
      const freeList: number[] = Array.from({ length: SLOTS }, (_, i) => i);
      return {
        chunk(count) {
          let sum = 0;
          for (let i = 0; i < count; i++) {
            const slot = freeList.pop()!;
            freeList.push(slot);
            sum += slot;
          }
          checksum += sum;
          return count;
        },
        finish() {},
      };
    }
    case "ffi-noop": {
      const noop = nativeNoop();
      return {
        chunk(count) {
          for (let i = 0; i < count; i++) noop();
          checksum += count;
          return count;
        },
        finish() {},
      };
    }
    default: {
      const pool = attachPool(job.memory!);
      return {
        chunk(count) {
          let sum = 0;
          let done = 0;
          for (let i = 0; i < count; i++) {
            const slot = pool.acquire();
            if (slot === EXHAUSTED) continue;
            pool.release(slot);
            sum += slot;
            done++;
          }
          checksum += sum;
          exhausted += count - done;
          return done;
        },
        finish: () => pool.flush(),
      };
    }
  }
}

/** The round protocol every Worker follows: "ready", then per round the gate, `body` (which returns
 *  the round's pair count) and a report; on QUIT `finish` and "done". */
function serveRounds(
  job: WorkerJob,
  finish: () => void,
  body: (round: number, control: Int32Array) => number,
): void {
  const control = new Int32Array(job.control);
  post({ type: "ready" });
  for (let round = 1; waitForRound(control, round); round++) {
    checksum = 0;
    exhausted = 0;
    post(report(round, body(round, control)));
  }
  finish(); // local caches back to the shared pool, so main can check that every slot is free
  post({ type: "done" });
}

function runPairs(job: PairsJob): void {
  const loop = pairsLoop(job);
  serveRounds(job, loop.finish, (round, control) => {
    let pairs = 0;
    while (Atomics.load(control, STOP_WORD) < round && pairs < job.pairsMax) {
      pairs += loop.chunk(WORKER_CHUNK_PAIRS);
    }
    return pairs;
  });
}

interface HandoffSide {
  /** Producer: a slot index (or a counter for the ring-only baseline), or EXHAUSTED. */
  take(sequence: number): number;
  /** Consumer: gives the index back. */
  give(slot: number): void;
  finish(): void;
}

function handoffSide(job: HandoffJob): HandoffSide {
  if (job.subject === "ring-only") {
    return { take: (sequence) => sequence & (SLOTS - 1), give() {}, finish() {} };
  }
  const pool = attachPool(job.memory!);
  return {
    take: () => pool.acquire(),
    give: (slot) => pool.release(slot),
    finish: () => pool.flush(),
  };
}

function runProducer(job: HandoffJob): void {
  const side = handoffSide(job);
  const ring = new Int32Array(job.ring);
  // Main resets HEAD and TAIL to 0 before opening each round.
  serveRounds(job, side.finish, (round, control) => {
    let head = 0;
    let tailSeen = 0;
    let idle = 0;
    for (;;) {
      if (head % WORKER_CHUNK_PAIRS === 0) {
        if (Atomics.load(control, STOP_WORD) >= round || head >= job.pairsMax) break;
      }
      if (head - tailSeen === HANDOFF_RING_CELLS) {
        tailSeen = Atomics.load(ring, TAIL_WORD);
        if (head - tailSeen === HANDOFF_RING_CELLS) {
          pause(idle++);
          continue;
        }
      }
      const slot = side.take(head);
      if (slot === EXHAUSTED) {
        exhausted++;
        Atomics.store(ring, HEAD_WORD, head); // let the consumer release what it has
        pause(idle++);
        continue;
      }
      idle = 0;
      ring[CELLS_WORD + (head & RING_MASK)] = slot;
      head++;
      checksum += slot;
      if (head % HANDOFF_PUBLISH_EVERY === 0) Atomics.store(ring, HEAD_WORD, head); // publishes the cells
    }
    Atomics.store(ring, HEAD_WORD, head);
    Atomics.store(ring, CLOSED_WORD, round);
    return head;
  });
}

function runConsumer(job: HandoffJob): void {
  const side = handoffSide(job);
  const ring = new Int32Array(job.ring);
  serveRounds(job, side.finish, (round) => {
    let tail = 0;
    let idle = 0;
    for (;;) {
      const head = Atomics.load(ring, HEAD_WORD); // pairs with the producer's HEAD store
      if (head === tail) {
        if (Atomics.load(ring, CLOSED_WORD) >= round && Atomics.load(ring, HEAD_WORD) === tail)
          break;
        pause(idle++);
        continue;
      }
      idle = 0;
      for (; tail < head; tail++) {
        const slot = ring[CELLS_WORD + (tail & RING_MASK)]!;
        side.give(slot);
        checksum += slot;
      }
      Atomics.store(ring, TAIL_WORD, tail); // hands the cells back to the producer
    }
    return tail;
  });
}

self.onmessage = (event: MessageEvent<WorkerJob>) => {
  const job = event.data;
  if (job.kind === "pairs") runPairs(job);
  else if (job.kind === "producer") runProducer(job);
  else runConsumer(job);
};
