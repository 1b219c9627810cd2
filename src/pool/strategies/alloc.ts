// Strategy `alloc`, the baseline: no pooling. Every acquire allocates a fresh buffer on the JS heap and
// every release drops it for the GC; only an atomic budget shared by all threads bounds the total.
// Not shared memory: a slot index names a buffer of this thread only, so a slot acquired here must be
// released here (the other strategies allow a hand-off between threads).
//
// Concurrency note: the budget is one Int32 counted in slots (bytes = count × slot_bytes, which keeps
// it far below 2^31 for any allowed pool). Atomics.add reserves first and backs out when over the
// bound, so the count can overshoot by at most one per racing thread, never the buffers handed out.

import { SlabPool, type SlabPoolInit } from "../slab-pool.ts";
import { EXHAUSTED, PoolError } from "../types.ts";

export const ALLOC_BUDGET_BYTES = 128; // one cache line for the counter

export class AllocPool extends SlabPool {
  private readonly budget: Int32Array;
  private readonly buffers: (Uint8Array | undefined)[] = [];
  private readonly freeIds: number[] = [];

  constructor(init: SlabPoolInit, budget: SharedArrayBuffer) {
    super(init);
    this.budget = new Int32Array(budget, 0, 1);
  }

  protected take(): number {
    if (Atomics.add(this.budget, 0, 1) >= this.slots) {
      Atomics.sub(this.budget, 0, 1); // over the bound: give the reservation back
      return EXHAUSTED;
    }
    const id = this.freeIds.length > 0 ? this.freeIds.pop()! : this.buffers.length;
    this.buffers[id] = new Uint8Array(this.slotBytes);
    return id;
  }

  protected give(slot: number): void {
    // The buffer table already says whether this thread holds the slot, so even unchecked mode
    // refuses a release that would drive the shared budget below what is really held.
    if (this.buffers[slot] === undefined) {
      const released = slot < this.buffers.length;
      throw new PoolError(
        released ? "POOL_DOUBLE_RELEASE" : "POOL_NOT_HELD",
        released
          ? `alloc slot ${slot} released twice (it is no longer held on this thread)`
          : `alloc slot ${slot} released but never acquired on this thread`,
      );
    }
    this.buffers[slot] = undefined;
    this.freeIds.push(slot);
    Atomics.sub(this.budget, 0, 1);
  }

  protected sharedFree(): number {
    return this.slots - Atomics.load(this.budget, 0);
  }

  override view(slot: number): Uint8Array {
    const buffer = this.buffers[slot];
    if (buffer !== undefined) return buffer;
    throw new PoolError("POOL_NOT_HELD", `alloc slot ${slot} is not held on this thread`);
  }
}
