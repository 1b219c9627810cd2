// The upstream pool's numbers as the admin API serves them: the seed's fields read from shared
// memory and summed over Workers, and per-destination lists merged across Workers. Pure reading;
// what each field means is defined where it is counted (pool.ts).

import type { UpstreamDestinationStats, UpstreamPoolCounts } from "../admin/types.ts";
import { readUpstreamPoolLedger, SEED_FIELDS, type UpstreamPoolLedger } from "./memory.ts";

function seedFields(ledger: UpstreamPoolLedger): UpstreamPoolCounts {
  const counts = {} as UpstreamPoolCounts;
  for (const name of SEED_FIELDS) counts[name] = ledger[name];
  return counts;
}

/** The seed's fields for the process and per Worker (main thread). `total.destinations` counts a
 *  destination held by several Workers once; the per-Worker ones count it in each. */
export function readUpstreamPoolCounts(
  memory: SharedArrayBuffer,
  workers: number,
): { total: UpstreamPoolCounts; per_worker: (UpstreamPoolCounts & { worker: number })[] } {
  const ledger = readUpstreamPoolLedger(memory, workers);
  return {
    total: seedFields(ledger.total),
    per_worker: ledger.per_worker.map((entry) => ({ worker: entry.worker, ...seedFields(entry) })),
  };
}

/** Sums per-destination lists from several Workers into one, by destination (sorted by it). The
 *  counts add; refill_failures and backoff_until_ms take the largest, since each Worker backs off
 *  on its own and the worst is what an operator needs to see. */
export function mergeDestinations(lists: UpstreamDestinationStats[][]): UpstreamDestinationStats[] {
  const merged = new Map<string, UpstreamDestinationStats>();
  for (const list of lists) {
    for (const entry of list) {
      const into = merged.get(entry.destination);
      if (into === undefined) {
        merged.set(entry.destination, { ...entry });
        continue;
      }
      into.hits += entry.hits;
      into.misses += entry.misses;
      into.created += entry.created;
      into.reused += entry.reused;
      into.evicted += entry.evicted;
      into.expired += entry.expired;
      into.dropped += entry.dropped;
      into.in_use += entry.in_use;
      into.idle += entry.idle;
      into.refill_failures = Math.max(into.refill_failures, entry.refill_failures);
      into.backoff_until_ms = Math.max(into.backoff_until_ms, entry.backoff_until_ms);
    }
  }
  return [...merged.values()].sort((a, b) =>
    a.destination < b.destination ? -1 : a.destination > b.destination ? 1 : 0,
  );
}
