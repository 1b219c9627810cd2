// Strategy `alloc`, the baseline: no pooling. Every acquire allocates a fresh buffer on the JS heap and
// every release drops it for the GC; only an atomic budget shared by all threads bounds the total.
// Not shared memory: a slot index names a buffer of this thread only, so a slot acquired here must be
// released here (the other strategies allow a hand-off between threads).
//
// Budget memory (PoolMemory.control), one 128-byte line per Int32 so no two writers share a line:
//
//   line 0       total: slots held by every thread, counted in slots (bytes = count × slot_bytes)
//   line 1 + m   slots held by the threads whose holder mark is m (slab-pool.ts holderMark): line 1
//                for threads attached without a Worker index, line 2 + w for Worker w
//
// The per-holder words let the supervisor give a crashed Worker's share back (reclaimAllocBudget).
//
// Concurrency note: Atomics.add on the total reserves first and backs out when over the bound, so
// the count can overshoot by at most one per racing thread, never the buffers handed out. A Worker's
// own word has one writer, the Worker itself, so it is a plain add; the supervisor exchanges it to 0
// only after that Worker has exited. Threads without a Worker index share line 1 and may lose updates
// to it; it is never reclaimed, so that costs nothing. Acquire adds to the total before the own
// word, release subtracts from the own word before the total: a Worker that dies between the two
// leaks one slot of budget; the other order could return a slot that is still counted, admitting one
// too many.

import { LIMITS } from "../../limits.ts";
import { CACHE_LINE_BYTES } from "../freelist/layout.ts";
import { SlabPool, type SlabPoolInit } from "../slab-pool.ts";
import { EXHAUSTED, PoolError } from "../types.ts";

const LINE_WORDS = CACHE_LINE_BYTES / 4;
const TOTAL_WORD = 0;

/** The total's line, then one line per holder mark: 0 (no Worker) and 1..workers_max. */
export const ALLOC_BUDGET_BYTES = CACHE_LINE_BYTES * (2 + LIMITS.workers_max);

function holderWord(holder: number): number {
  return (1 + holder) * LINE_WORDS;
}

/** Returns the budget the holder `holder` still counted (a dead Worker's share) and zeroes it.
 *  Main thread, after that Worker exited. Returns how many slots of budget came back. */
export function reclaimAllocBudget(budget: SharedArrayBuffer, holder: number): number {
  const words = new Int32Array(budget);
  const held = Atomics.exchange(words, holderWord(holder), 0);
  if (held !== 0) Atomics.sub(words, TOTAL_WORD, held);
  return held;
}

export class AllocPool extends SlabPool {
  private readonly budget: Int32Array;
  private readonly own: number;
  private readonly buffers: (Uint8Array | undefined)[] = [];
  private readonly freeIds: number[] = [];

  constructor(init: SlabPoolInit, budget: SharedArrayBuffer) {
    super(init);
    this.budget = new Int32Array(budget);
    this.own = holderWord(init.holder);
  }

  protected take(): number {
    const budget = this.budget;
    if (Atomics.add(budget, TOTAL_WORD, 1) >= this.slots) {
      Atomics.sub(budget, TOTAL_WORD, 1); // over the bound: give the reservation back
      return EXHAUSTED;
    }
    budget[this.own] = budget[this.own]! + 1;
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
    const budget = this.budget;
    budget[this.own] = budget[this.own]! - 1;
    Atomics.sub(budget, TOTAL_WORD, 1);
  }

  protected sharedFree(): number {
    return this.slots - Atomics.load(this.budget, TOTAL_WORD);
  }

  override view(slot: number): Uint8Array {
    const buffer = this.buffers[slot];
    if (buffer !== undefined) return buffer;
    throw new PoolError("POOL_NOT_HELD", `alloc slot ${slot} is not held on this thread`);
  }
}
