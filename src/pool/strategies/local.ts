// Strategy `local`: a per-thread cache of up to 2·B slot indices in front of the shared queue
// (native when available), the magazine design of per-CPU allocators. A warm cache acquires and
// releases with no atomics and no FFI call; an empty cache refills B at a time, a full one flushes
// B at a time.
// Not fair across threads: up to 2·B slots can sit idle in one thread's cache while another thread
// finds the shared queue empty. flush() returns them (call it when a thread goes idle or exits).
//
// Holder entries (slab-pool.ts) change only at the shared-queue boundary: a refill marks the B slots
// it pops as this Worker's, a flush clears the ones it pushes. A slot in the cache and a slot handed
// out from it are both "held by this Worker", so a warm acquire or release writes no shared memory,
// and a crashed Worker's cache is reclaimed with the rest of its slots.

import type { BatchBuffer, SlotQueue } from "../freelist/ring.ts";
import { HOLDER_NONE, SlabPool, type SlabPoolInit } from "../slab-pool.ts";
import { EXHAUSTED } from "../types.ts";

export class LocalPool extends SlabPool {
  private readonly queue: SlotQueue;
  private readonly batchSize: number;
  private readonly cache: BatchBuffer;
  private readonly values: Uint32Array;
  private count = 0;
  /** Refills from the shared queue: one per empty cache, never per acquire (the admin API). */
  private refills = 0;

  constructor(init: SlabPoolInit, queue: SlotQueue, batchSize: number) {
    super(init);
    this.queue = queue;
    this.batchSize = batchSize;
    this.cache = queue.createBatch(2 * batchSize);
    this.values = this.cache.values;
  }

  protected take(): number {
    if (this.count === 0) {
      this.count = this.queue.popBatch(this.cache, 0, this.batchSize);
      if (this.count === 0) return EXHAUSTED;
      this.refills++;
      this.mark(0, this.count, this.holder);
    }
    return this.values[--this.count]!;
  }

  /** Writes `holder` into the entries of cache[from..to). */
  private mark(from: number, to: number, holder: number): void {
    const values = this.values;
    const holders = this.holders;
    for (let i = from; i < to; i++) holders[values[i]!] = holder;
  }

  protected give(slot: number): void {
    if (this.count === this.values.length) this.flushOlderHalf();
    this.values[this.count++] = slot;
  }

  /** The cache is full: hand the older half back so other threads can refill, keep the recent
   *  (warm) half. If the push throws (a full free list: a double release), the older half leaves
   *  the cache anyway, so no index stays both here and in the shared list. Out of give() so the
   *  hot path stays a compare and a store (the try/finally cost it ~0.6 ns per pair). */
  private flushOlderHalf(): void {
    try {
      this.mark(0, this.batchSize, HOLDER_NONE);
      this.queue.pushBatch(this.cache, 0, this.batchSize);
    } finally {
      this.values.copyWithin(0, this.batchSize, this.count);
      this.count -= this.batchSize;
    }
  }

  protected sharedFree(): number {
    return this.queue.length();
  }

  protected override localCached(): number {
    return this.count;
  }

  protected override localRefills(): number {
    return this.refills;
  }

  override flush(): void {
    const count = this.count;
    this.count = 0; // first: if the push throws, nothing it already pushed stays cached too
    this.mark(0, count, HOLDER_NONE);
    this.queue.pushBatch(this.cache, 0, count);
  }
}
