// The pool's front door: validates options, allocates the shared memory once (main thread), and
// attaches a strategy to it on any thread. Not a strategy: those are one file each in strategies/.
//
//   main thread:  createPoolMemory(options) ──▶ PoolMemory (SharedArrayBuffers + plain fields)
//                        │ postMessage (structured clone shares the SABs)
//   every thread: attachPool(memory) ──▶ BufferPool with this thread's views, counters and caches

import { LIMITS } from "../limits.ts";
import type { Logger } from "../log.ts";
import { queueBytes } from "./freelist/layout.ts";
import { loadNative, NativeRing, nativeInitRing } from "./freelist/native.ts";
import { initRing, isPowerOfTwo, type SlotQueue, TsRing } from "./freelist/ring.ts";
import type { SlabPoolInit } from "./slab-pool.ts";
import { ALLOC_BUDGET_BYTES, AllocPool } from "./strategies/alloc.ts";
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
}

export const LOCAL_BATCH_DEFAULT = 32;

export interface PoolLogging {
  log?: Pick<Logger, "warn">;
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

/** This thread's handle on the pool in `memory`. Cheap; call once per thread. */
export function attachPool(memory: PoolMemory, logging: PoolLogging = {}): BufferPool {
  const { strategy } = memory;
  const init: SlabPoolInit = {
    strategy,
    backend: memory.backend,
    slots: memory.slots,
    slotBytes: memory.slot_bytes,
    slab: memory.slab,
    owners: null,
  };
  switch (strategy) {
    case "alloc":
      // Buffers are per-thread, so ownership is too.
      init.owners = memory.owners ? new Uint8Array(memory.slots) : null;
      return new AllocPool(init, memory.control);
    case "queue":
    case "queue-ts":
    case "local": {
      init.owners = memory.owners ? new Uint8Array(memory.owners) : null;
      const { queue, backend } = attachQueue(memory, logging);
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

/** createPoolMemory + attachPool, for single-threaded use (tests, benchmarks). */
export function createPool(options: PoolOptions, logging: PoolLogging = {}): BufferPool {
  return attachPool(createPoolMemory(options, logging), logging);
}
