// One Worker of the cross-thread exactly-once stress (see stress.ts): acquires and releases slots in
// random batches and checks ownership against an oracle of owner flags in shared memory, and that
// the pool's holder entry of every slot it acquires names this Worker (the entries reclamation uses).

import { attachPool, EXHAUSTED, type PoolMemory } from "../../src/pool/index.ts";
import { Prng } from "../support/prng.ts";

export interface StressJob {
  memory: PoolMemory;
  /** One Int32 owner flag per slot (per worker and slot for `alloc`, whose slots are per-thread). */
  oracle: SharedArrayBuffer;
  worker: number;
  pairs: number;
  seed: number;
}

export interface StressReport {
  worker: number;
  pairs: number;
  violations: number;
  exhausted: number;
  firstViolation: string;
}

declare const self: Worker;

function run(job: StressJob): StressReport {
  const pool = attachPool(job.memory, { worker: job.worker });
  const oracle = new Int32Array(job.oracle);
  const holders = job.memory.holders ? new Int32Array(job.memory.holders) : null;
  const mark = job.worker + 1; // holderMark
  const base = job.memory.strategy === "alloc" ? job.worker * job.memory.slots : 0;
  const random = new Prng(job.seed);
  const held = new Uint32Array(16);
  const batch = new Uint32Array(16);
  const marker = (job.worker + 1) & 0xff;
  let pairs = 0;
  let violations = 0;
  let exhausted = 0;
  let firstViolation = "";
  const violation = (what: string): void => {
    if (violations++ === 0) firstViolation = what;
  };

  while (pairs < job.pairs) {
    // 1. Acquire a random batch of 1..16, one by one or in one acquireMany.
    const want = 1 + random.int(16);
    let count = 0;
    if (random.int(2) === 1) {
      count = pool.acquireMany(batch, want);
      held.set(batch.subarray(0, count));
    } else {
      while (count < want) {
        const slot = pool.acquire();
        if (slot === EXHAUSTED) break;
        held[count++] = slot;
      }
    }
    if (count < want) exhausted++;
    // 2. Claim each slot in the oracle (0 → 1) and stamp its bytes.
    for (let i = 0; i < count; i++) {
      const slot = held[i]!;
      const previous = Atomics.exchange(oracle, base + slot, 1);
      if (previous !== 0)
        violation(`worker ${job.worker} acquired slot ${slot} whose owner flag was ${previous}`);
      const holder = holders === null ? mark : Atomics.load(holders, slot);
      if (holder !== mark)
        violation(`worker ${job.worker} acquired slot ${slot} whose holder entry is ${holder}`);
      const view = pool.view(slot);
      view[0] = marker;
      view[view.length - 1] = marker;
    }
    // 3. Release in random order, checking the stamp survived (no one else wrote our slot) and the flag.
    for (let i = count - 1; i > 0; i--) {
      const j = random.int(i + 1);
      const tmp = held[i]!;
      held[i] = held[j]!;
      held[j] = tmp;
    }
    for (let i = 0; i < count; i++) {
      const slot = held[i]!;
      const view = pool.view(slot);
      if (view[0] !== marker || view[view.length - 1] !== marker) {
        violation(`worker ${job.worker} found slot ${slot} overwritten while it held it`);
      }
      const previous = Atomics.exchange(oracle, base + slot, 0);
      if (previous !== 1)
        violation(`worker ${job.worker} released slot ${slot} whose owner flag was ${previous}`);
    }
    if (random.int(2) === 1) {
      pool.releaseMany(held, count);
    } else {
      for (let i = 0; i < count; i++) pool.release(held[i]!);
    }
    pairs += count;
  }
  pool.flush();
  return { worker: job.worker, pairs, violations, exhausted, firstViolation };
}

self.onmessage = (event: MessageEvent<StressJob>) => {
  self.postMessage(run(event.data));
};
