// Admission at accept: one place under server.connections_max, counted across every Worker in shared
// memory. The increment and its undo live here and nowhere else, so whatever throws while a
// connection is being opened, the count is restored. Not access control (rules about who may go
// where run between the front protocol and the dial, once there are any).
//
// Shared memory (the supervisor allocates openConnectionsBytes(workers)), one Int32 per 128-byte
// line so Workers do not false-share:
//
//   word 0             total: open connections across every Worker (what connections_max bounds)
//   word 32·(1 + w)    Worker w's own open connections, so the supervisor can subtract exactly a
//                      crashed Worker's share from the total (reclaimConnections)
//
// An Admission built without a Worker index (tests, a proxy run without a supervisor) counts only
// the total, and its memory may be a single word.
//
// Concurrency note: Atomics.add reserves first and backs out when over the bound, so under a race
// the total may read up to one per racing thread above connections_max for an instant; no more than
// connections_max connections are ever admitted. A Worker's own word has one writer while the Worker
// lives; the supervisor exchanges it to 0 only after the Worker has exited. Admit adds to the total
// before the own word and leave subtracts from the own word before the total, so a Worker that dies
// between the two leaks one place (the total stays one too high); it can never make the total lower
// than the connections really open.

import { CACHE_LINE_BYTES } from "../pool/freelist/layout.ts";

const TOTAL_WORD = 0;
const LINE_WORDS = CACHE_LINE_BYTES / 4;

function workerWord(worker: number): number {
  return (1 + worker) * LINE_WORDS;
}

/** Bytes of shared memory the open-connection counts of `workers` Workers need. */
export function openConnectionsBytes(workers: number): number {
  return (1 + workers) * CACHE_LINE_BYTES;
}

/** Open connections across every Worker. */
export function openConnectionsTotal(open: Int32Array): number {
  return Atomics.load(open, TOTAL_WORD);
}

/** Subtracts what Worker `worker` still counted from the total and zeroes its word; returns that
 *  count. Main thread only, after the Worker has exited and before another takes its index. */
export function reclaimConnections(open: Int32Array, worker: number): number {
  const held = Atomics.exchange(open, workerWord(worker), 0);
  if (held !== 0) Atomics.sub(open, TOTAL_WORD, held);
  return held;
}

export class Admission {
  /** Clients refused because connections_max was reached, on this thread. */
  refused = 0;
  private readonly open: Int32Array;
  private readonly max: number;
  /** This Worker's own word, or -1 when built without a Worker index. */
  private readonly own: number;

  constructor(open: Int32Array, connectionsMax: number, worker?: number) {
    this.open = open;
    this.max = connectionsMax;
    this.own = worker === undefined ? -1 : workerWord(worker);
    if (this.own >= open.length) {
      throw new RangeError(
        `open-connection memory has ${open.length} words, too few for Worker ${worker} (allocate openConnectionsBytes(workers))`,
      );
    }
  }

  /** Runs `create` holding one place and returns what it made, or null (nothing held) when
   *  connections_max is reached. If `create` throws, the place is returned and the error goes on. */
  admit<T>(create: () => T): T | null {
    if (Atomics.add(this.open, TOTAL_WORD, 1) >= this.max) {
      Atomics.sub(this.open, TOTAL_WORD, 1);
      this.refused++;
      return null;
    }
    if (this.own >= 0) Atomics.add(this.open, this.own, 1);
    try {
      return create();
    } catch (error) {
      this.leave();
      throw error;
    }
  }

  /** Returns the place of a connection admitted earlier. */
  leave(): void {
    if (this.own >= 0) Atomics.sub(this.open, this.own, 1);
    Atomics.sub(this.open, TOTAL_WORD, 1);
  }
}
