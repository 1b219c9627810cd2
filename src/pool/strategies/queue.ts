// Strategies `queue` and `queue-ts`: every acquire pops and every release pushes on the shared
// lock-free queue. `queue` runs it in Zig through bun:ffi, `queue-ts` in TypeScript; the memory is
// the same. Not a cache: see local.ts for the strategy that batches over this queue.
//
// Each acquire marks the slot's holder entry after the pop and each release clears it before the
// push: one plain store per operation (slab-pool.ts says why plain, and what a crash in between
// costs).

import type { BatchBuffer, SlotQueue } from "../freelist/ring.ts";
import { HOLDER_NONE, SlabPool, type SlabPoolInit } from "../slab-pool.ts";

export class QueuePool extends SlabPool {
  private readonly queue: SlotQueue;
  private batch: BatchBuffer | null = null;

  constructor(init: SlabPoolInit, queue: SlotQueue) {
    super(init);
    this.queue = queue;
  }

  protected take(): number {
    const slot = this.queue.pop();
    if (slot >= 0) this.holders[slot] = this.holder;
    return slot;
  }

  protected give(slot: number): void {
    this.holders[slot] = HOLDER_NONE;
    this.queue.push(slot);
  }

  protected sharedFree(): number {
    return this.queue.length();
  }

  // Batches go through one native call rather than one per index.
  protected override takeMany(out: Uint32Array, count: number): number {
    const batch = this.batchOf(count);
    const n = this.queue.popBatch(batch, 0, count);
    const values = batch.values;
    const holders = this.holders;
    for (let i = 0; i < n; i++) {
      const slot = values[i]!; // a loop, not set(subarray()): no allocation
      out[i] = slot;
      holders[slot] = this.holder;
    }
    return n;
  }

  protected override giveMany(slots: Uint32Array, count: number): void {
    const batch = this.batchOf(count);
    const values = batch.values;
    const holders = this.holders;
    for (let i = 0; i < count; i++) {
      const slot = slots[i]!;
      values[i] = slot;
      holders[slot] = HOLDER_NONE;
    }
    this.queue.pushBatch(batch, 0, count);
  }

  private batchOf(count: number): BatchBuffer {
    if (this.batch === null || this.batch.values.length < count) {
      this.batch = this.queue.createBatch(Math.max(count, 64));
    }
    return this.batch;
  }
}
