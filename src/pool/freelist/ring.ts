// The shared free list in TypeScript: a bounded MPMC queue of u32 slot indices over a SharedArrayBuffer,
// the same algorithm and byte layout as ffi/queue.zig (Vyukov's per-cell sequence queue), so either
// side can serve the same memory. Not the pool: strategies in ../strategies/ build on SlotQueue.
//
// Concurrency note.
// - Every JS Atomics operation is sequentially consistent, which is stronger than the acquire/release
//   pairs the Zig side uses; the plain read and write of a cell's value are ordered by the atomic
//   sequence load/store around them (JS memory model: data-race-free accesses get happens-before).
// - A producer between its position CAS and its sequence store makes its cell look not-yet-written.
//   pop() then checks enqueue_pos: equal to its own position means truly empty; otherwise it backs off
//   and retries, bounded by POP_RETRY_MAX so a thread killed mid-push cannot hang every consumer.
// - A consumer between its CAS and its store makes the ring look full to a producer. The ring holds
//   every slot, so a real "full" is impossible for a correct caller. push() tells the two apart as
//   ffi/queue.zig does: when dequeue_pos confirms every cell is taken the ring is truly full (a
//   double release) and push() throws POOL_FREE_LIST_FULL at once; otherwise it retries with
//   backoff, and after about a second throws the same error: a clear crash beats a Worker hung
//   forever in a retry loop. pushBatch() stops at the first value that throws; those before it stay.
// - ABA cannot occur: a cell's sequence advances by capacity per lap, and positions are compared as
//   signed 32-bit differences, exact while capacity <= 2^30 (QUEUE_CAPACITY_MAX is 2^28).

import { PoolError } from "../types.ts";
import { BACKOFF_ROUNDS_100MS, backoff } from "./backoff.ts";
import {
  CELL_BYTES,
  CELL_SEQUENCE_OFFSET,
  CELL_VALUE_OFFSET,
  CELLS_OFFSET,
  DEQUEUE_POS_OFFSET,
  ENQUEUE_POS_OFFSET,
  HEADER_CAPACITY_OFFSET,
  HEADER_MAGIC_OFFSET,
  HEADER_MASK_OFFSET,
  HEADER_VERSION_OFFSET,
  QUEUE_CAPACITY_MAX,
  QUEUE_CAPACITY_MIN,
  QUEUE_LAYOUT_VERSION,
  QUEUE_MAGIC,
  queueBytes,
} from "./layout.ts";

/** A batch of indices in memory native code can also reach (`address` is 0 for TypeScript queues). */
export interface BatchBuffer {
  readonly values: Uint32Array;
  readonly address: number;
}

/** The shared free list as the strategies see it; implemented by TsRing and NativeRing. */
export interface SlotQueue {
  readonly backend: "native" | "typescript";
  /** A value, or -1 when the queue is empty. */
  pop(): number;
  /** Never fails for a ring sized for every slot unless a slot is released twice: a truly full
   *  ring throws POOL_FREE_LIST_FULL, after a bounded wait at most. */
  push(value: number): void;
  /** Pops up to `max` values into `batch.values[offset..]`; returns how many. */
  popBatch(batch: BatchBuffer, offset: number, max: number): number;
  /** Pushes `batch.values[offset..offset+count)`, each bounded like push(). On a full ring it throws
   *  POOL_FREE_LIST_FULL naming the first value that did not fit; the values before it stay pushed. */
  pushBatch(batch: BatchBuffer, offset: number, count: number): void;
  /** Values in the queue now; a snapshot under concurrency. */
  length(): number;
  createBatch(size: number): BatchBuffer;
}

const W = 4; // bytes per Int32Array element
const MAGIC = HEADER_MAGIC_OFFSET / W;
const VERSION = HEADER_VERSION_OFFSET / W;
const CAPACITY = HEADER_CAPACITY_OFFSET / W;
const MASK = HEADER_MASK_OFFSET / W;
const ENQ = ENQUEUE_POS_OFFSET / W;
const DEQ = DEQUEUE_POS_OFFSET / W;
const CELLS = CELLS_OFFSET / W;
const CELL_SHIFT = Math.log2(CELL_BYTES / W); // cell index → word offset
const SEQ = CELL_SEQUENCE_OFFSET / W;
const VAL = CELL_VALUE_OFFSET / W;

/** How many backoff rounds pop() waits for a producer caught between its CAS and its store. */
const POP_RETRY_MAX = BACKOFF_ROUNDS_100MS;
/** How long push() waits (about 1 s) for a preempted consumer before deciding the ring is really
 *  full, which for a ring sized for every slot means a slot was released twice. */
const PUSH_RETRY_MAX = 10 * BACKOFF_ROUNDS_100MS;

const PUSHED = 0;
const FULL = 1;
const BUSY = 2;
type PushOnce = typeof PUSHED | typeof FULL | typeof BUSY;

/** The error for a push into a truly full free list: a bug in the caller, never load. */
export function freeListFull(slot: number): PoolError {
  return new PoolError(
    "POOL_FREE_LIST_FULL",
    `free list is full while releasing slot ${slot}: some slot was released twice (run with --pool-checked to find it)`,
  );
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** Writes an empty queue of `capacity` cells into `memory`. */
export function initRing(memory: SharedArrayBuffer, capacity: number): void {
  if (!isPowerOfTwo(capacity) || capacity < QUEUE_CAPACITY_MIN || capacity > QUEUE_CAPACITY_MAX) {
    throw new PoolError(
      "POOL_CONFIG",
      `queue capacity must be a power of two from ${QUEUE_CAPACITY_MIN} to ${QUEUE_CAPACITY_MAX}, got ${capacity}`,
    );
  }
  if (memory.byteLength < queueBytes(capacity)) {
    throw new PoolError(
      "POOL_MEMORY",
      `queue of ${capacity} cells needs ${queueBytes(capacity)} bytes, got ${memory.byteLength}`,
    );
  }
  const words = new Int32Array(memory);
  words[MAGIC] = QUEUE_MAGIC;
  words[VERSION] = QUEUE_LAYOUT_VERSION;
  words[CAPACITY] = capacity;
  words[MASK] = capacity - 1;
  words[ENQ] = 0;
  words[DEQ] = 0;
  for (let i = 0; i < capacity; i++) words[CELLS + (i << CELL_SHIFT) + SEQ] = i;
}

/** Checks that `memory` holds an initialised queue of this layout version; returns its capacity. */
export function ringCapacity(memory: SharedArrayBuffer): number {
  const words = new Int32Array(memory, 0, CELLS);
  if (words[MAGIC] !== QUEUE_MAGIC || words[VERSION] !== QUEUE_LAYOUT_VERSION) {
    const found = (words[MAGIC]! >>> 0).toString(16);
    throw new PoolError(
      "POOL_MEMORY",
      `not an initialised queue: magic 0x${found} version ${words[VERSION]} (expected 0x${QUEUE_MAGIC.toString(16)} version ${QUEUE_LAYOUT_VERSION})`,
    );
  }
  return words[CAPACITY]!;
}

export class TsRing implements SlotQueue {
  readonly backend = "typescript" as const;
  private readonly words: Int32Array;
  private readonly mask: number;

  constructor(memory: SharedArrayBuffer) {
    const capacity = ringCapacity(memory);
    this.words = new Int32Array(memory, 0, (queueBytes(capacity) / W) | 0);
    this.mask = capacity - 1;
  }

  pop(): number {
    const words = this.words;
    const mask = this.mask;
    let pos = Atomics.load(words, DEQ);
    for (let round = 0; ; ) {
      const cell = CELLS + ((pos & mask) << CELL_SHIFT);
      const seq = Atomics.load(words, cell + SEQ); // pairs with the producer's sequence store
      const dif = (seq - ((pos + 1) | 0)) | 0;
      if (dif === 0) {
        const seen = Atomics.compareExchange(words, DEQ, pos, (pos + 1) | 0); // claim the cell
        if (seen === pos) {
          const value = words[cell + VAL]!; // published by the producer before its sequence store
          Atomics.store(words, cell + SEQ, (pos + mask + 1) | 0); // hand the cell to the next lap's producer
          return value;
        }
        pos = seen;
      } else if (dif < 0) {
        if (Atomics.load(words, ENQ) === pos) return -1; // no producer has claimed this cell: empty
        if (round >= POP_RETRY_MAX) return -1;
        backoff(round++); // a producer holds the cell between its CAS and its store
        pos = Atomics.load(words, DEQ);
      } else {
        pos = Atomics.load(words, DEQ); // another consumer took this cell; catch up
      }
    }
  }

  /** One attempt: false when the ring looks full (only spuriously, for a ring sized for all slots). */
  tryPush(value: number): boolean {
    return this.pushOnce(value) === PUSHED;
  }

  /** One attempt: PUSHED, FULL (dequeue_pos confirms every cell is taken) or BUSY (a consumer holds
   *  the cell between its CAS and its sequence store: a spurious full). */
  private pushOnce(value: number): PushOnce {
    const words = this.words;
    const mask = this.mask;
    let pos = Atomics.load(words, ENQ);
    for (;;) {
      const cell = CELLS + ((pos & mask) << CELL_SHIFT);
      const seq = Atomics.load(words, cell + SEQ); // pairs with the consumer's sequence store
      const dif = (seq - pos) | 0;
      if (dif === 0) {
        const seen = Atomics.compareExchange(words, ENQ, pos, (pos + 1) | 0); // claim the cell
        if (seen === pos) {
          words[cell + VAL] = value;
          Atomics.store(words, cell + SEQ, (pos + 1) | 0); // publish the value to consumers
          return PUSHED;
        }
        pos = seen;
      } else if (dif < 0) {
        // dequeue_pos only grows, so a difference of a whole ring from our (possibly older) position
        // means every cell was taken when we read it: truly full, not a consumer mid-pop.
        const full = ((pos - Atomics.load(words, DEQ)) | 0) > mask;
        return full ? FULL : BUSY;
      } else {
        pos = Atomics.load(words, ENQ);
      }
    }
  }

  push(value: number): void {
    for (let round = 0; ; round++) {
      const result = this.pushOnce(value);
      if (result === PUSHED) return;
      if (result === FULL || round >= PUSH_RETRY_MAX) throw freeListFull(value);
      backoff(round);
    }
  }

  popBatch(batch: BatchBuffer, offset: number, max: number): number {
    const values = batch.values;
    let n = 0;
    while (n < max) {
      const value = this.pop();
      if (value < 0) break;
      values[offset + n++] = value;
    }
    return n;
  }

  pushBatch(batch: BatchBuffer, offset: number, count: number): void {
    const values = batch.values;
    for (let i = 0; i < count; i++) this.push(values[offset + i]!);
  }

  length(): number {
    const used = (Atomics.load(this.words, ENQ) - Atomics.load(this.words, DEQ)) | 0;
    return Math.min(Math.max(used, 0), this.mask + 1);
  }

  createBatch(size: number): BatchBuffer {
    return { values: new Uint32Array(new ArrayBuffer(size * 4)), address: 0 };
  }
}
