// The free list of the `mutex` and `spinlock` strategies: a LIFO stack of slot indices in shared
// memory, guarded by a lock word. Not a lock: mutex.ts and spinlock.ts supply lock()/unlock().
//
//   word 0 lock │ word 1 magic │ … pad to 128 B │ word 32 top │ … pad to 256 B │ word 64.. stack[slots]
//
// Concurrency note. Every read and write of `top` and the stack happens between lock() and unlock(),
// whose Atomics operations order them (JS memory model: data-race-free accesses get happens-before),
// so plain reads and writes are enough inside. The lock word sits on its own line, apart from `top`.
// The stack has room for exactly `slots` indices: a give that finds it full (only a double release
// can) throws POOL_FREE_LIST_FULL after unlocking instead of writing past the end, where a later take
// would read a value no one wrote.
// Holder entries (slab-pool.ts) are written inside the lock, next to the stack write: a taker marks
// the slot as its Worker's, a giver clears it, and the lock orders the two.

import { CACHE_LINE_BYTES } from "../freelist/layout.ts";
import { freeListFull } from "../freelist/ring.ts";
import { HOLDER_NONE, SlabPool, type SlabPoolInit } from "../slab-pool.ts";
import { EXHAUSTED, PoolError } from "../types.ts";

export const LOCK_WORD = 0;
const MAGIC_WORD = 1;
const TOP_WORD = CACHE_LINE_BYTES / 4;
const STACK_WORD = (2 * CACHE_LINE_BYTES) / 4;
const STACK_MAGIC = 0x5350_5331; // "SPS1"

export interface Lock {
  lock(): void;
  unlock(): void;
}

export function lockedStackBytes(slots: number): number {
  return (STACK_WORD + slots) * 4;
}

/** Writes a full stack of 0..slots-1 into `memory`, lowest index on top. */
export function initLockedStack(memory: SharedArrayBuffer, slots: number): void {
  const words = new Int32Array(memory);
  words[LOCK_WORD] = 0;
  words[MAGIC_WORD] = STACK_MAGIC;
  words[TOP_WORD] = slots;
  for (let i = 0; i < slots; i++) words[STACK_WORD + i] = slots - 1 - i;
}

export function lockedStackWords(memory: SharedArrayBuffer): Int32Array {
  const words = new Int32Array(memory);
  if (words[MAGIC_WORD] !== STACK_MAGIC) {
    throw new PoolError("POOL_MEMORY", "not an initialised locked stack (bad magic)");
  }
  return words;
}

export class LockedStackPool extends SlabPool {
  private readonly words: Int32Array;
  private readonly guard: Lock;

  constructor(init: SlabPoolInit, words: Int32Array, guard: Lock) {
    super(init);
    this.words = words;
    this.guard = guard;
  }

  protected take(): number {
    const words = this.words;
    this.guard.lock();
    const top = words[TOP_WORD]!;
    let slot = EXHAUSTED;
    if (top > 0) {
      slot = words[STACK_WORD + top - 1]!;
      words[TOP_WORD] = top - 1;
      this.holders[slot] = this.holder;
    }
    this.guard.unlock();
    return slot;
  }

  protected give(slot: number): void {
    const words = this.words;
    this.guard.lock();
    const top = words[TOP_WORD]!;
    if (top >= this.slots) {
      this.guard.unlock();
      throw freeListFull(slot);
    }
    this.holders[slot] = HOLDER_NONE;
    words[STACK_WORD + top] = slot;
    words[TOP_WORD] = top + 1;
    this.guard.unlock();
  }

  protected sharedFree(): number {
    return Atomics.load(this.words, TOP_WORD);
  }

  // One lock hold per batch, not per index.
  protected override takeMany(out: Uint32Array, count: number): number {
    const words = this.words;
    this.guard.lock();
    const top = words[TOP_WORD]!;
    const n = Math.min(count, top);
    const holders = this.holders;
    for (let i = 0; i < n; i++) {
      const slot = words[STACK_WORD + top - 1 - i]!;
      out[i] = slot;
      holders[slot] = this.holder;
    }
    words[TOP_WORD] = top - n;
    this.guard.unlock();
    return n;
  }

  protected override giveMany(slots: Uint32Array, count: number): void {
    const words = this.words;
    this.guard.lock();
    const top = words[TOP_WORD]!;
    const n = Math.min(count, this.slots - top); // what fits; less than count only after a double release
    const holders = this.holders;
    for (let i = 0; i < n; i++) {
      const slot = slots[i]!;
      holders[slot] = HOLDER_NONE;
      words[STACK_WORD + top + i] = slot;
    }
    words[TOP_WORD] = top + n;
    this.guard.unlock();
    if (n < count) throw freeListFull(slots[n]!);
  }
}
