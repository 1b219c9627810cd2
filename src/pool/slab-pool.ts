// What every strategy shares: the slab and its per-thread view cache, this thread's counters, the
// checked-mode ownership flags, and the holder array that says which Worker holds each slot. Not a
// strategy: subclasses supply take()/give() over their free list and keep the holder array.
//
// The holder array (PoolMemory.holders; every strategy but `alloc`): one Int32 per slot, slot i at
// byte 4·i, no header. 0 (HOLDER_NONE) means the slot is in the shared free list, or held by a thread
// attached without a Worker index (the main thread, tests, benchmarks); w + 1 means Worker w holds it
// (holderMark). A strategy writes the entry where a slot leaves or enters the shared free list: on
// every acquire and release for `queue`, `queue-ts`, `mutex` and `spinlock`, and only on refill and
// flush for `local`, whose cached slots count as held by their Worker. After a Worker dies, the
// supervisor returns every slot marked with its number (index.ts reclaimWorker).
//
// Concurrency note.
// - The counters are plain per-thread numbers (no atomics on the hot path); `free` reads the shared
//   free list, so it is a snapshot while other threads work. Ownership flags (checked mode) live in
//   shared memory and change only by Atomics.exchange, so a slot's state is never torn.
// - Holder entries are plain stores. A slot's entry is written only by the thread that has just taken
//   it from the free list or is about to give it back, and the free list's own atomics order those
//   two (the giver's store happens before its push, which happens before the next taker's pop), so
//   no two threads ever race on one entry; the supervisor reads them only after the Worker has exited.
// - Order: the entry is written after the pop and cleared before the push. A Worker that dies in
//   between (a terminate() between two statements; an uncaught error cannot land there) loses the
//   slots of that one operation, at most one batch (B for `local`, the caller's count for
//   acquireMany): they are neither free nor marked, so they stay out of use until the process
//   restarts. The other order could hand a slot out twice; losing a few is the bounded, safe failure.
// - A slot handed from one thread to another keeps its first holder's mark (the pool allows it; the
//   proxy never does: a connection's slots stay in its Worker). Reclaiming after the first holder's
//   crash would free a slot the second thread still uses, so cross-Worker hand-offs and reclamation
//   must not be combined.

import type { StrategyName } from "./strategies/names.ts";
import {
  type BufferPool,
  EXHAUSTED,
  type PoolBackend,
  PoolError,
  type PoolStats,
} from "./types.ts";

/** A holder entry for a slot no Worker holds (or held by a thread attached without a Worker index). */
export const HOLDER_NONE = 0;

/** The holder entry that marks a slot as held by Worker `worker` (0-based). */
export function holderMark(worker: number): number {
  return worker + 1;
}

/** Checked-mode ownership states of one slot. */
export const OWNER_NEVER = 0; // never acquired since the pool was made
export const OWNER_HELD = 1;
export const OWNER_RELEASED = 2;

export interface SlabPoolInit {
  strategy: StrategyName;
  backend: PoolBackend;
  slots: number;
  slotBytes: number;
  /** The shared slab (`slots × slotBytes`); null for the `alloc` baseline, which has none. */
  slab: SharedArrayBuffer | null;
  /** One byte per slot when checked mode is on. */
  owners: Uint8Array | null;
  /** The shared holder array (one Int32 per slot); empty for `alloc`, which keeps per-Worker counts. */
  holders: Int32Array;
  /** What this thread writes into a holder entry: holderMark(worker), or HOLDER_NONE. */
  holder: number;
}

export abstract class SlabPool implements BufferPool {
  readonly strategy: StrategyName;
  readonly backend: PoolBackend;
  readonly slots: number;
  readonly slotBytes: number;
  /** Strategies record here which Worker holds each slot (see the file header). */
  protected readonly holders: Int32Array;
  protected readonly holder: number;
  private readonly slab: SharedArrayBuffer | null;
  private readonly owners: Uint8Array | null;
  private readonly views: (Uint8Array | undefined)[];
  private acquiredCount = 0;
  private releasedCount = 0;
  private exhaustedCount = 0;

  constructor(init: SlabPoolInit) {
    this.strategy = init.strategy;
    this.backend = init.backend;
    this.slots = init.slots;
    this.slotBytes = init.slotBytes;
    this.slab = init.slab;
    this.owners = init.owners;
    this.holders = init.holders;
    this.holder = init.holder;
    this.views = [];
  }

  /** A free index from the shared free list, or EXHAUSTED. */
  protected abstract take(): number;
  /** Returns an index to the shared free list. Throws POOL_FREE_LIST_FULL when the list is already
   *  full, which only a double release can cause; never fails otherwise. */
  protected abstract give(slot: number): void;
  /** Slots in the shared free list now. */
  protected abstract sharedFree(): number;

  protected takeMany(out: Uint32Array, count: number): number {
    let n = 0;
    while (n < count) {
      const slot = this.take();
      if (slot === EXHAUSTED) break;
      out[n++] = slot;
    }
    return n;
  }

  protected giveMany(slots: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) this.give(slots[i]!);
  }

  protected localCached(): number {
    return 0;
  }

  protected localRefills(): number {
    return 0;
  }

  acquire(): number {
    const slot = this.take();
    if (slot === EXHAUSTED) {
      this.exhaustedCount++;
      return EXHAUSTED;
    }
    this.acquiredCount++;
    if (this.owners !== null) this.markHeld(slot);
    return slot;
  }

  release(slot: number): void {
    this.checkRange(slot);
    if (this.owners !== null) this.markReleased(slot);
    this.releasedCount++;
    this.give(slot);
  }

  acquireMany(out: Uint32Array, count: number): number {
    const n = this.takeMany(out, count);
    if (n < count) this.exhaustedCount++;
    this.acquiredCount += n;
    if (this.owners !== null) for (let i = 0; i < n; i++) this.markHeld(out[i]!);
    return n;
  }

  releaseMany(slots: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) {
      try {
        this.checkRange(slots[i]!);
        if (this.owners !== null) this.markReleased(slots[i]!);
      } catch (error) {
        // The ones before the bad index are marked released already: give them back rather than
        // leak them, then report the bad one.
        this.releasedCount += i;
        this.giveMany(slots, i);
        throw error;
      }
    }
    this.releasedCount += count;
    this.giveMany(slots, count);
  }

  view(slot: number): Uint8Array {
    const cached = this.views[slot];
    if (cached !== undefined) return cached;
    this.checkRange(slot);
    const view = new Uint8Array(this.slab!, slot * this.slotBytes, this.slotBytes);
    this.views[slot] = view;
    return view;
  }

  stats(): PoolStats {
    return {
      strategy: this.strategy,
      backend: this.backend,
      slots: this.slots,
      slot_bytes: this.slotBytes,
      acquired: this.acquiredCount,
      released: this.releasedCount,
      exhausted: this.exhaustedCount,
      in_use: this.acquiredCount - this.releasedCount,
      free: this.sharedFree() + this.localCached(),
      local_cached: this.localCached(),
      local_refills: this.localRefills(),
      checked: this.owners !== null,
    };
  }

  flush(): void {}

  private checkRange(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) {
      throw new PoolError(
        "POOL_SLOT_RANGE",
        `slot ${slot} is not a slot of this pool (expected an integer 0..${this.slots - 1})`,
      );
    }
  }

  private markHeld(slot: number): void {
    const previous = Atomics.exchange(this.owners!, slot, OWNER_HELD);
    if (previous === OWNER_HELD) {
      // The free list handed out a slot someone holds: the pool itself is broken. Crash loudly.
      throw new PoolError(
        "POOL_ALREADY_HELD",
        `${this.strategy} pool handed out slot ${slot}, which is already held (free list corrupted)`,
      );
    }
  }

  private markReleased(slot: number): void {
    const previous = Atomics.exchange(this.owners!, slot, OWNER_RELEASED);
    if (previous === OWNER_HELD) return;
    // Undo our write so the report stays true for the next look, then report.
    Atomics.store(this.owners!, slot, previous);
    if (previous === OWNER_RELEASED) {
      throw new PoolError(
        "POOL_DOUBLE_RELEASE",
        `slot ${slot} released twice (it is already back in the ${this.strategy} pool)`,
      );
    }
    throw new PoolError("POOL_NOT_HELD", `slot ${slot} released but never acquired`);
  }
}
