// The upstream pool's shared memory: the one truth every Worker's pool (pool.ts) reserves against,
// so max_idle_per_dest and max_total_idle hold for the process, not per Worker, and the counters
// the admin API sums. The supervisor allocates it once (createUpstreamPoolMemory) and passes it in
// each Worker's start message. Not the sockets: those cannot cross threads, so each Worker keeps its
// own idle connections and only their reservations and counts live here.
//
// Layout (one SharedArrayBuffer; Int32 words unless stated):
//
//   header line      lock, lock holder (Worker + 1), reserved (idle + pending, all Workers: what
//                    max_total_idle bounds), live table entries (destinations holding a reservation),
//                    workers, table capacity, record count, free-record stack top
//   per-Worker line  doorbell (Atomics.notify wakes its pool), eviction requests, waiting-for-room
//   per-Worker block LEDGER_FIELDS as Float64 (plain stores, one writer: that Worker; the supervisor
//                    writes a dead Worker's only after it has exited), then its oldest idle time
//   table            capacity × (count, hash1, hash2): reservations per destination, all Workers,
//                    open addressing with linear probing and backward-shift deletion (no tombstones)
//   records          max_total_idle × (Worker + 1, hash1, hash2): who holds each reservation, so a
//                    crashed Worker's can be given back; a free stack of record indices after them
//
// A destination is keyed by two independent 32-bit hashes of "host:port" as the client asked it. Two
// keys colliding in both (about 2^-64 per pair) would share one per-destination count: the limits
// would then be stricter for them, never looser.
//
// Concurrency note. Every table, record and reserved-count change happens under one futex lock
// (FutexMutex, as src/proxy/clients.ts uses); the critical sections are a hash probe and a few
// stores with nothing that can throw. The holder word lets the supervisor take the lock from a
// Worker that died inside one (it then logs it; the counts may be off by that one operation). The
// ledger is read without the lock: a reader may see one Worker's fields from slightly different
// moments, never a torn number on the 64-bit machines Bun runs on. Sizes are O(max_total_idle),
// whatever the number of Workers.
// Long on purpose: the layout, the lock and every operation that touches the shared words sit in
// one file, so the concurrency argument can be checked in one read.

import type { UpstreamPoolCounts } from "../admin/types.ts";
import { CACHE_LINE_BYTES } from "../pool/freelist/layout.ts";
import { FutexMutex } from "../pool/strategies/mutex.ts";

/** The seed's eleven fields (UpstreamPoolCounts), in its order. */
export const SEED_FIELDS = [
  "total_idle",
  "destinations",
  "total_created",
  "total_reused",
  "pool_hits",
  "pool_misses",
  "dropped_full",
  "expired",
  "evicted",
  "connections_in_use",
  "pending_creates",
] as const satisfies readonly (keyof UpstreamPoolCounts)[];

/** The seed's fields, then the closings that make the accounting exact (see pool.ts). */
export const LEDGER_FIELDS = [
  ...SEED_FIELDS,
  "closed_by_upstream",
  "closed_banner",
  "closed_shutdown",
  "closed_crashed",
  "finished",
  "refill_failures",
  "refill_denied",
] as const;

export type LedgerField = (typeof LEDGER_FIELDS)[number];
export type UpstreamPoolLedger = Record<LedgerField, number>;

/** Index of each ledger field in a Worker's Float64 block. */
export const FIELD = Object.fromEntries(LEDGER_FIELDS.map((name, index) => [name, index])) as {
  readonly [K in LedgerField]: number;
};
const OLDEST_FIELD = LEDGER_FIELDS.length; // the Worker's oldest idle connection, epoch ms
const BLOCK_DOUBLES = 32;

const LINE_WORDS = CACHE_LINE_BYTES / 4;
const LOCK = 0;
const HOLDER = 1;
const RESERVED = 2;
const LIVE = 3;
const WORKERS = 4;
const CAPACITY = 5;
const RECORDS = 6;
const FREE_TOP = 7;
const DOORBELL = 0;
const REQUESTS = 1;
const WAITING = 2;
/** The holder word's value while the main thread (the supervisor) holds the lock. */
const MAIN_HOLDER = 0x7fff_ffff;

/** What reserve() returns when a limit refuses (a record index otherwise). */
export const DEST_FULL = -1;
export const GLOBAL_FULL = -2;

function capacityFor(recordsMax: number): number {
  let capacity = 16;
  while (capacity < 2 * recordsMax) capacity *= 2; // at most half full: probes always end
  return capacity;
}

interface Layout {
  workers: number;
  capacity: number;
  records: number;
  countersAt: number; // bytes
  tableAt: number;
  recordsAt: number;
  freeAt: number;
  bytes: number;
}

function layout(workers: number, recordsMax: number): Layout {
  const capacity = capacityFor(recordsMax);
  const countersAt = CACHE_LINE_BYTES * (1 + workers);
  const tableAt = countersAt + workers * BLOCK_DOUBLES * 8;
  const recordsAt = tableAt + capacity * 12;
  const freeAt = recordsAt + recordsMax * 12;
  return {
    workers,
    capacity,
    records: recordsMax,
    countersAt,
    tableAt,
    recordsAt,
    freeAt,
    bytes: freeAt + recordsMax * 4,
  };
}

/** Bytes of shared memory for `workers` Workers and a pool of `maxTotalIdle` connections. */
export function upstreamPoolMemoryBytes(workers: number, maxTotalIdle: number): number {
  return layout(workers, maxTotalIdle).bytes;
}

/** The shared memory, initialised (main thread, once). */
export function createUpstreamPoolMemory(workers: number, maxTotalIdle: number): SharedArrayBuffer {
  if (!(workers >= 1 && maxTotalIdle >= 1)) {
    throw new RangeError(`upstream pool memory: ${workers} workers, ${maxTotalIdle} connections`);
  }
  const shape = layout(workers, maxTotalIdle);
  const memory = new SharedArrayBuffer(shape.bytes);
  const words = new Int32Array(memory);
  words[WORKERS] = workers;
  words[CAPACITY] = shape.capacity;
  words[RECORDS] = maxTotalIdle;
  const free = new Int32Array(memory, shape.freeAt, maxTotalIdle);
  for (let i = 0; i < maxTotalIdle; i++) free[i] = maxTotalIdle - 1 - i;
  words[FREE_TOP] = maxTotalIdle;
  const counters = new Float64Array(memory, shape.countersAt, workers * BLOCK_DOUBLES);
  for (let w = 0; w < workers; w++) counters[w * BLOCK_DOUBLES + OLDEST_FIELD] = Infinity;
  return memory;
}

function layoutOf(memory: SharedArrayBuffer): Layout {
  const words = new Int32Array(memory, 0, LINE_WORDS);
  const shape = layout(words[WORKERS], words[RECORDS]);
  if (shape.bytes !== memory.byteLength || shape.capacity !== words[CAPACITY]) {
    throw new Error(
      `assert: upstream pool memory of ${memory.byteLength} bytes matches its header`,
    );
  }
  return shape;
}

/** Two independent 32-bit hashes of a key (FNV-1a, and FNV-1a from another basis, mixed). */
export function keyHashes(key: string): [number, number] {
  let first = 0x811c9dc5;
  let second = 0x9747b28c;
  for (let i = 0; i < key.length; i++) {
    const unit = key.charCodeAt(i);
    first = Math.imul(first ^ unit, 0x01000193);
    second = Math.imul(second ^ unit, 0x5bd1e995);
    second ^= second >>> 15;
  }
  return [first | 0, second | 0];
}

/** One thread's view of the shared memory. Workers pass their index; the main thread passes −1. */
export class SharedPoolState {
  readonly workers: number;
  readonly recordsMax: number;
  private readonly words: Int32Array;
  private readonly table: Int32Array;
  private readonly records: Int32Array;
  private readonly free: Int32Array;
  private readonly counters: Float64Array;
  private readonly lock: FutexMutex;
  private readonly mask: number;
  private readonly holder: number;

  constructor(memory: SharedArrayBuffer, worker: number) {
    const shape = layoutOf(memory);
    if (worker >= shape.workers) {
      throw new RangeError(
        `upstream pool memory is for ${shape.workers} workers, too few for Worker ${worker}`,
      );
    }
    this.workers = shape.workers;
    this.recordsMax = shape.records;
    this.words = new Int32Array(memory, 0, shape.countersAt / 4);
    this.counters = new Float64Array(memory, shape.countersAt, shape.workers * BLOCK_DOUBLES);
    this.table = new Int32Array(memory, shape.tableAt, shape.capacity * 3);
    this.records = new Int32Array(memory, shape.recordsAt, shape.records * 3);
    this.free = new Int32Array(memory, shape.freeAt, shape.records);
    this.lock = new FutexMutex(this.words); // LOCK is word 0, as FutexMutex expects
    this.mask = shape.capacity - 1;
    this.holder = worker < 0 ? MAIN_HOLDER : worker + 1;
  }

  // ── reservations (under the lock) ──────────────────────────────────────────────────────────

  /** Reserves one connection for the destination `hashes` on behalf of this Worker: a record
   *  index, or DEST_FULL / GLOBAL_FULL when a limit refuses. Before connecting, so pending
   *  connects count against the limits and no race can exceed them. */
  reserve(hashes: readonly [number, number], perDestMax: number, totalMax: number): number {
    this.acquire();
    try {
      const words = this.words;
      const found = this.find(hashes[0], hashes[1]);
      if (found >= 0 && this.table[found * 3] >= perDestMax) return DEST_FULL;
      if (words[RESERVED] >= Math.min(totalMax, this.recordsMax) || words[FREE_TOP] === 0) {
        return GLOBAL_FULL;
      }
      const entry = found >= 0 ? found : this.insert(hashes[0], hashes[1]);
      this.table[entry * 3]++;
      words[RESERVED]++;
      const record = this.free[--words[FREE_TOP]];
      this.records[record * 3] = this.holder;
      this.records[record * 3 + 1] = hashes[0];
      this.records[record * 3 + 2] = hashes[1];
      return record;
    } finally {
      this.release();
    }
  }

  /** Gives back a reservation reserve() returned. */
  unreserve(record: number): void {
    this.acquire();
    try {
      this.drop(record);
    } finally {
      this.release();
    }
  }

  /** Reservations across every Worker (idle + pending). */
  reserved(): number {
    return Atomics.load(this.words, RESERVED);
  }

  /** Destinations holding at least one reservation, across every Worker. */
  liveDestinations(): number {
    return Atomics.load(this.words, LIVE);
  }

  /** Reservations for one destination across every Worker. */
  reservedFor(hashes: readonly [number, number]): number {
    this.acquire();
    try {
      const entry = this.find(hashes[0], hashes[1]);
      return entry < 0 ? 0 : this.table[entry * 3];
    } finally {
      this.release();
    }
  }

  /** Gives back every reservation of dead Worker `worker`; returns how many. Main thread, after
   *  the Worker has exited and before another takes its index. */
  reclaimWorker(worker: number): number {
    this.acquire(worker + 1);
    try {
      let reclaimed = 0;
      for (let record = 0; record < this.recordsMax; record++) {
        if (this.records[record * 3] !== worker + 1) continue;
        this.drop(record);
        reclaimed++;
      }
      return reclaimed;
    } finally {
      this.release();
    }
  }

  private drop(record: number): void {
    const at = record * 3;
    if (this.records[at] === 0) throw new Error(`assert: upstream pool record ${record} is held`);
    const entry = this.find(this.records[at + 1], this.records[at + 2]);
    if (entry < 0) throw new Error("assert: a held reservation has its table entry");
    this.records[at] = 0;
    this.free[this.words[FREE_TOP]++] = record;
    this.words[RESERVED]--;
    if (--this.table[entry * 3] === 0) this.remove(entry);
  }

  private find(first: number, second: number): number {
    const table = this.table;
    for (let index = first & this.mask; ; index = (index + 1) & this.mask) {
      if (table[index * 3] === 0) return -1;
      if (table[index * 3 + 1] === first && table[index * 3 + 2] === second) return index;
    }
  }

  private insert(first: number, second: number): number {
    let index = first & this.mask;
    while (this.table[index * 3] !== 0) index = (index + 1) & this.mask;
    this.table[index * 3 + 1] = first;
    this.table[index * 3 + 2] = second;
    this.words[LIVE]++;
    return index; // its count is raised by the caller, which makes it occupied
  }

  /** Backward-shift deletion: later entries of the probe run move up, so no tombstone is left. */
  private remove(entry: number): void {
    const table = this.table;
    const mask = this.mask;
    let hole = entry;
    for (let next = (hole + 1) & mask; table[next * 3] !== 0; next = (next + 1) & mask) {
      const home = table[next * 3 + 1] & mask;
      const stays = hole <= next ? hole < home && home <= next : hole < home || home <= next;
      if (stays) continue;
      table.copyWithin(hole * 3, next * 3, next * 3 + 3);
      hole = next;
    }
    table[hole * 3] = 0;
    this.words[LIVE]--;
  }

  /** Takes the lock. The main thread (reclaiming for `deadHolder`, a Worker that has exited) does
   *  not sleep on it unboundedly: it polls, and takes the lock over when the dead Worker holds it
   *  (it died inside a critical section and will never release it). */
  private acquire(deadHolder = 0): void {
    if (this.holder === MAIN_HOLDER) {
      while (Atomics.compareExchange(this.words, LOCK, 0, 1) !== 0) {
        if (deadHolder !== 0 && Atomics.load(this.words, HOLDER) === deadHolder) break;
        Atomics.wait(this.words, LOCK, Atomics.load(this.words, LOCK), 10);
      }
    } else {
      this.lock.lock();
    }
    Atomics.store(this.words, HOLDER, this.holder);
  }

  private release(): void {
    Atomics.store(this.words, HOLDER, 0);
    if (this.holder === MAIN_HOLDER) {
      // The main thread's polling acquire does not keep FutexMutex's waiter state: release fully
      // and wake every sleeper, which re-announces itself.
      Atomics.store(this.words, LOCK, 0);
      Atomics.notify(this.words, LOCK);
    } else {
      this.lock.unlock();
    }
  }

  // ── the doorbell: how one Worker asks another to evict ─────────────────────────────────────

  /** The word a Worker's pool waits on (Atomics.waitAsync). */
  doorbell(worker: number): { words: Int32Array; index: number } {
    return { words: this.words, index: (1 + worker) * LINE_WORDS + DOORBELL };
  }

  ring(worker: number): void {
    const { words, index } = this.doorbell(worker);
    Atomics.store(words, index, 1);
    Atomics.notify(words, index);
  }

  /** Asks Worker `owner` to evict one of its idle connections, and marks this Worker as waiting
   *  for the room (the owner rings it back). */
  requestEviction(owner: number, requester: number): void {
    Atomics.add(this.words, (1 + owner) * LINE_WORDS + REQUESTS, 1);
    Atomics.store(this.words, (1 + requester) * LINE_WORDS + WAITING, 1);
    this.ring(owner);
  }

  /** Eviction requests addressed to `worker` since it last looked (and clears them). */
  takeRequests(worker: number): number {
    return Atomics.exchange(this.words, (1 + worker) * LINE_WORDS + REQUESTS, 0);
  }

  /** Rings every Worker that waits for room (after an eviction made some). */
  ringWaiters(): void {
    for (let w = 0; w < this.workers; w++) {
      if (Atomics.exchange(this.words, (1 + w) * LINE_WORDS + WAITING, 0) === 1) this.ring(w);
    }
  }

  // ── the ledger ─────────────────────────────────────────────────────────────────────────────

  /** Worker `worker`'s ledger block: written only by that Worker (plain stores). */
  block(worker: number): Float64Array {
    return this.counters.subarray(worker * BLOCK_DOUBLES, (worker + 1) * BLOCK_DOUBLES);
  }

  /** The Worker whose oldest idle connection is the oldest anywhere, or −1 when none is idle. */
  oldestIdleWorker(): number {
    let oldest = -1;
    let at = Infinity;
    for (let w = 0; w < this.workers; w++) {
      const since = this.counters[w * BLOCK_DOUBLES + OLDEST_FIELD];
      if (since < at) {
        at = since;
        oldest = w;
      }
    }
    return oldest;
  }

  /** Publishes this Worker's oldest idle connection's creation time (Infinity: none). */
  publishOldest(worker: number, since: number): void {
    this.counters[worker * BLOCK_DOUBLES + OLDEST_FIELD] = since;
  }

  /** Zeroes what dead Worker `worker` had open (its gauges) and books those connections as
   *  closed by the crash, so the ledger still balances; clears its doorbell words. */
  settleDeadWorker(worker: number): void {
    const block = this.block(worker);
    block[FIELD.closed_crashed] += block[FIELD.total_idle];
    block[FIELD.finished] += block[FIELD.connections_in_use];
    block[FIELD.total_idle] = 0;
    block[FIELD.connections_in_use] = 0;
    block[FIELD.pending_creates] = 0;
    block[FIELD.destinations] = 0;
    block[OLDEST_FIELD] = Infinity;
    const line = (1 + worker) * LINE_WORDS;
    Atomics.store(this.words, line + REQUESTS, 0);
    Atomics.store(this.words, line + WAITING, 0);
  }
}

/** Gives back what dead Worker `worker` held in the upstream pool; returns its reservations (idle
 *  and pending connections, which died with it). Main thread, after the Worker exited. */
export function reclaimUpstreamPool(memory: SharedArrayBuffer, worker: number): number {
  const state = new SharedPoolState(memory, -1);
  const reclaimed = state.reclaimWorker(worker);
  state.settleDeadWorker(worker);
  return reclaimed;
}

function readBlock(block: Float64Array): UpstreamPoolLedger {
  return Object.fromEntries(
    LEDGER_FIELDS.map((name, index) => [name, block[index]]),
  ) as UpstreamPoolLedger;
}

/** Every Worker's full ledger and their sum (main thread, or tests). The sum's `destinations` is
 *  the shared table's count of destinations, so one held by two Workers counts once. */
export function readUpstreamPoolLedger(
  memory: SharedArrayBuffer,
  workers: number,
): { total: UpstreamPoolLedger; per_worker: (UpstreamPoolLedger & { worker: number })[] } {
  const state = new SharedPoolState(memory, -1);
  const count = Math.min(workers, state.workers);
  const per_worker = Array.from({ length: count }, (_, worker) => ({
    worker,
    ...readBlock(state.block(worker)),
  }));
  const total = readBlock(new Float64Array(BLOCK_DOUBLES));
  for (const worker of per_worker) for (const name of LEDGER_FIELDS) total[name] += worker[name];
  total.destinations = state.liveDestinations();
  return { total, per_worker };
}
