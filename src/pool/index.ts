// The pool's front door: validates options, allocates the shared memory once (main thread), and
// attaches a strategy to it on any thread. Not a strategy: those are one file each in strategies/.
//
//   main thread:  createPoolMemory(options) ──▶ PoolMemory (SharedArrayBuffers + plain fields)
//                        │ postMessage (structured clone shares the SABs)
//   every thread: attachPool(memory) ──▶ BufferPool with this thread's views, counters and caches
//   main thread, after Worker w died:  reclaimWorker(memory, w) ──▶ its slots back in the free list

import { LIMITS } from "../limits.ts";
import type { Logger } from "../log.ts";
import { queueBytes } from "./freelist/layout.ts";
import { loadNative, NativeRing, nativeInitRing } from "./freelist/native.ts";
import { initRing, isPowerOfTwo, type SlotQueue, TsRing } from "./freelist/ring.ts";
import {
  HOLDER_NONE,
  holderMark,
  OWNER_RELEASED,
  type SlabPool,
  type SlabPoolInit,
} from "./slab-pool.ts";
import { ALLOC_BUDGET_BYTES, AllocPool, reclaimAllocBudget } from "./strategies/alloc.ts";
import { LocalPool } from "./strategies/local.ts";
import {
  initLockedStack,
  LockedStackPool,
  lockedStackBytes,
  lockedStackWords,
} from "./strategies/locked-stack.ts";
import { FutexMutex } from "./strategies/mutex.ts";
import { isStrategyName, STRATEGY_NAMES, type StrategyName } from "./strategies/names.ts";
import { QueuePool } from "./strategies/queue.ts";
import { SpinLock } from "./strategies/spinlock.ts";
import { type BufferPool, type PoolBackend, PoolError } from "./types.ts";

export * from "./strategies/names.ts";
export * from "./types.ts";

// Bounds come from src/limits.ts, which also asserts that the free-list ring can hold every pool
// allowed here. createPool accepts smaller pools than the config does (tests and benchmarks).
const SLOTS_MIN = LIMITS.pool_api_slots_min;
const SLOTS_MAX = LIMITS.pool_slots_max;
const SLOT_BYTES_MIN = LIMITS.pool_api_slot_bytes_min;
const SLOT_BYTES_MAX = LIMITS.slot_bytes_max;
const SLAB_BYTES_MAX = LIMITS.slab_bytes_max;

export interface PoolOptions {
  strategy: StrategyName;
  /** A power of two. */
  slots: number;
  slot_bytes: number;
  /** Track slot ownership so a double or foreign release throws (costs one atomic per operation). */
  checked?: boolean;
  /** B for the `local` strategy: refill and flush size; the cache holds up to 2·B. */
  local_batch?: number;
}

/** Everything a thread needs to attach to the pool; safe to postMessage to a Worker. */
export interface PoolMemory {
  strategy: StrategyName;
  backend: PoolBackend;
  slots: number;
  slot_bytes: number;
  local_batch: number;
  slab: SharedArrayBuffer | null;
  control: SharedArrayBuffer;
  owners: SharedArrayBuffer | null;
  /** Which Worker holds each slot: one Int32 per slot (slab-pool.ts). null for `alloc`, whose
   *  per-Worker counts live in `control`. */
  holders: SharedArrayBuffer | null;
}

export const LOCAL_BATCH_DEFAULT = 32;

export interface PoolLogging {
  log?: Pick<Logger, "warn">;
}

export interface PoolAttachOptions extends PoolLogging {
  /** The Worker this thread is, so the supervisor can reclaim what it held if it crashes. Absent on
   *  the main thread, in tests and in benchmarks: their slots are never reclaimed. */
  worker?: number;
}

/** Throws a PoolError naming every problem with the options. Config validation catches these first. */
export function validatePoolOptions(options: PoolOptions): void {
  const problems: string[] = [];
  const { strategy, slots, slot_bytes: slotBytes } = options;
  const batch = options.local_batch ?? LOCAL_BATCH_DEFAULT;
  if (!isStrategyName(strategy)) {
    problems.push(
      `strategy: expected one of ${STRATEGY_NAMES.join(", ")}, got ${JSON.stringify(strategy)}`,
    );
  }
  if (!isPowerOfTwo(slots) || slots < SLOTS_MIN || slots > SLOTS_MAX) {
    problems.push(`slots: expected a power of two from ${SLOTS_MIN} to ${SLOTS_MAX}, got ${slots}`);
  }
  if (!Number.isInteger(slotBytes) || slotBytes < SLOT_BYTES_MIN || slotBytes > SLOT_BYTES_MAX) {
    problems.push(
      `slot_bytes: expected an integer from ${SLOT_BYTES_MIN} to ${SLOT_BYTES_MAX}, got ${slotBytes}`,
    );
  }
  if (slots * slotBytes > SLAB_BYTES_MAX) {
    problems.push(
      `slots × slot_bytes: expected at most ${SLAB_BYTES_MAX} bytes, got ${slots * slotBytes}`,
    );
  }
  if (strategy === "local" && (!Number.isInteger(batch) || batch < 1 || 2 * batch > slots)) {
    problems.push(
      `local_batch: expected an integer from 1 to slots / 2 (${slots / 2}), got ${batch}`,
    );
  }
  if (problems.length > 0)
    throw new PoolError("POOL_CONFIG", `invalid pool options: ${problems.join("; ")}`);
}

function usesQueue(strategy: StrategyName): boolean {
  return strategy === "queue" || strategy === "queue-ts" || strategy === "local";
}

/** Which backend serves this strategy on this machine; warns once when native was wanted and is absent. */
function chooseBackend(strategy: StrategyName, logging: PoolLogging): PoolBackend {
  if (strategy === "alloc") return "heap";
  if (strategy !== "queue" && strategy !== "local") return "typescript";
  const native = loadNative();
  if (native.ok) return "native";
  logging.log?.warn(
    `native queue unavailable, pool strategy "${strategy}" uses the TypeScript queue`,
    {
      reason: native.reason,
    },
  );
  return "typescript";
}

/** Allocates and initialises the slab and free list. Call once, on the main thread. */
export function createPoolMemory(options: PoolOptions, logging: PoolLogging = {}): PoolMemory {
  validatePoolOptions(options);
  const { strategy, slots } = options;
  const backend = chooseBackend(strategy, logging);
  let control: SharedArrayBuffer;
  if (strategy === "alloc") {
    control = new SharedArrayBuffer(ALLOC_BUDGET_BYTES);
  } else if (usesQueue(strategy)) {
    control = new SharedArrayBuffer(queueBytes(slots));
    if (backend === "native") {
      nativeInitRing(control, slots, slots);
    } else {
      initRing(control, slots);
      const ring = new TsRing(control);
      for (let slot = 0; slot < slots; slot++) ring.push(slot);
    }
  } else {
    control = new SharedArrayBuffer(lockedStackBytes(slots));
    initLockedStack(control, slots);
  }
  return {
    strategy,
    backend,
    slots,
    slot_bytes: options.slot_bytes,
    local_batch: options.local_batch ?? LOCAL_BATCH_DEFAULT,
    slab: strategy === "alloc" ? null : new SharedArrayBuffer(slots * options.slot_bytes),
    control,
    owners: options.checked ? new SharedArrayBuffer(slots) : null,
    holders: strategy === "alloc" ? null : new SharedArrayBuffer(slots * 4),
  };
}

function attachQueue(
  memory: PoolMemory,
  logging: PoolLogging,
): { queue: SlotQueue; backend: PoolBackend } {
  if (memory.backend === "native") {
    const native = loadNative();
    if (native.ok) return { queue: new NativeRing(memory.control), backend: "native" };
    // The main thread loaded it but this thread cannot: serve the same memory from TypeScript.
    logging.log?.warn("native queue unavailable on this thread, using the TypeScript queue", {
      reason: native.reason,
    });
  }
  return { queue: new TsRing(memory.control), backend: "typescript" };
}

function baseInit(memory: PoolMemory, holder: number): SlabPoolInit {
  return {
    strategy: memory.strategy,
    backend: memory.backend,
    slots: memory.slots,
    slotBytes: memory.slot_bytes,
    slab: memory.slab,
    owners: null,
    holders: memory.holders ? new Int32Array(memory.holders) : new Int32Array(0),
    holder,
  };
}

/** This thread's handle on the pool in `memory`. Cheap; call once per thread. */
export function attachPool(memory: PoolMemory, options: PoolAttachOptions = {}): BufferPool {
  const { strategy } = memory;
  const init = baseInit(
    memory,
    options.worker === undefined ? HOLDER_NONE : holderMark(options.worker),
  );
  switch (strategy) {
    case "alloc":
      // Buffers are per-thread, so ownership is too.
      init.owners = memory.owners ? new Uint8Array(memory.slots) : null;
      return new AllocPool(init, memory.control);
    case "queue":
    case "queue-ts":
    case "local": {
      init.owners = memory.owners ? new Uint8Array(memory.owners) : null;
      const { queue, backend } = attachQueue(memory, options);
      init.backend = backend;
      return strategy === "local"
        ? new LocalPool(init, queue, memory.local_batch)
        : new QueuePool(init, queue);
    }
    case "mutex":
    case "spinlock": {
      init.owners = memory.owners ? new Uint8Array(memory.owners) : null;
      const words = lockedStackWords(memory.control);
      const guard = strategy === "mutex" ? new FutexMutex(words) : new SpinLock(words);
      return new LockedStackPool(init, words, guard);
    }
  }
}

/** The shared free list alone, with no cache and no checks: what reclaimWorker gives slots back to. */
function sharedFreeList(memory: PoolMemory): SlabPool {
  const init = baseInit(memory, HOLDER_NONE);
  if (memory.strategy === "mutex" || memory.strategy === "spinlock") {
    const words = lockedStackWords(memory.control);
    const guard = memory.strategy === "mutex" ? new FutexMutex(words) : new SpinLock(words);
    return new LockedStackPool(init, words, guard);
  }
  const { queue, backend } = attachQueue(memory, {});
  init.backend = backend;
  return new QueuePool(init, queue);
}

/**
 * Gives back what Worker `worker` held when it died: every slot whose holder entry names it,
 * including a `local` cache, or for `alloc` its share of the budget. Each slot comes back exactly
 * once: its entry is cleared (compare-and-swap) before it is pushed, and a second call finds
 * nothing. Call on the main thread after the Worker has exited and before another Worker takes its
 * index. In checked mode the slots are marked released, so the next acquire does not mistake them
 * for held ones. Returns how many slots came back.
 */
export function reclaimWorker(memory: PoolMemory, worker: number): number {
  const mark = holderMark(worker);
  if (memory.holders === null) return reclaimAllocBudget(memory.control, mark);
  const holders = new Int32Array(memory.holders);
  const owners = memory.owners ? new Uint8Array(memory.owners) : null;
  const found = new Uint32Array(memory.slots);
  let count = 0;
  for (let slot = 0; slot < memory.slots; slot++) {
    if (holders[slot] !== mark) continue;
    if (Atomics.compareExchange(holders, slot, mark, HOLDER_NONE) !== mark) continue;
    if (owners !== null) Atomics.store(owners, slot, OWNER_RELEASED);
    found[count++] = slot;
  }
  if (count > 0) sharedFreeList(memory).releaseMany(found, count);
  return count;
}

/** createPoolMemory + attachPool, for single-threaded use (tests, benchmarks). */
export function createPool(options: PoolOptions, logging: PoolLogging = {}): BufferPool {
  return attachPool(createPoolMemory(options, logging), logging);
}
