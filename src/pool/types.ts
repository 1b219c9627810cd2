// The BufferPool interface every strategy implements, its stats, and its errors.
// Not an implementation: one file per strategy is in strategies/ (see index.ts for the map).

import type { StrategyName } from "./strategies/names.ts";

/** What `acquire()` returns when no slot is free. Never thrown: exhaustion is a normal state. */
export const EXHAUSTED = -1;

/** Which code serves the shared free list: the Zig library, TypeScript Atomics, or the JS heap. */
export type PoolBackend = "native" | "typescript" | "heap";

export interface PoolStats {
  strategy: StrategyName;
  backend: PoolBackend;
  slots: number;
  slot_bytes: number;
  /** Acquires that returned a slot, on this thread. */
  acquired: number;
  /** Releases, on this thread. */
  released: number;
  /** Acquires that found the pool exhausted, on this thread. */
  exhausted: number;
  /** Slots this thread holds now (acquired - released). Negative only after a cross-thread hand-off. */
  in_use: number;
  /** Slots no caller holds, pool-wide: the shared free list plus this thread's local cache. Exact when
   *  no other thread is mid-operation; a snapshot otherwise. */
  free: number;
  /** Slots parked in this thread's local cache (`local` strategy; 0 for the others). */
  local_cached: number;
  /** Refills of this thread's local cache from the shared list (`local` strategy; 0 for the others). */
  local_refills: number;
  /** Whether release() checks slot ownership (checked mode). */
  checked: boolean;
}

export interface BufferPool {
  readonly strategy: StrategyName;
  readonly backend: PoolBackend;
  readonly slots: number;
  readonly slotBytes: number;
  /** A free slot's index, or EXHAUSTED. Allocates nothing (except in the `alloc` baseline). */
  acquire(): number;
  /** Gives a slot back. A bad index always throws; a slot not held throws in checked mode. */
  release(slot: number): void;
  /** Acquires up to `count` slots into `out[0..]`; returns how many it got (0 when exhausted). */
  acquireMany(out: Uint32Array, count: number): number;
  /** Releases `slots[0..count)`. */
  releaseMany(slots: Uint32Array, count: number): void;
  /** The slot's bytes: a cached view of the shared slab, valid while the slot is held. */
  view(slot: number): Uint8Array;
  stats(): PoolStats;
  /** Returns anything cached on this thread to the shared pool. The pool stays usable. */
  flush(): void;
}

export type PoolErrorCode =
  | "POOL_SLOT_RANGE"
  | "POOL_NOT_HELD"
  | "POOL_DOUBLE_RELEASE"
  | "POOL_ALREADY_HELD"
  | "POOL_FREE_LIST_FULL"
  | "POOL_CONFIG"
  | "POOL_MEMORY";

/** A bug in the caller (bad index, double release) or a bad pool configuration. Not exhaustion. */
export class PoolError extends Error {
  readonly code: PoolErrorCode;
  constructor(code: PoolErrorCode, message: string) {
    super(message);
    this.name = "PoolError";
    this.code = code;
  }
}
