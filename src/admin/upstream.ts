// GET /api/pool/stats from its two sources: the upstream pool's counts in shared memory (one block
// per Worker, summed here) and the per-destination lists the Workers send in their snapshots. The
// one place that knows how the upstream pool is read: a pool that is off (or absent) answers
// enabled=false with zeros and the configured limits. Not the pool itself (src/upstream/).

import type { Config } from "../config/schema.ts";
import type {
  UpstreamDestinationStats,
  UpstreamPoolCounts,
  UpstreamPoolResponse,
} from "./types.ts";

/** Reads each Worker's upstream-pool counts, or null when there is no pool memory (pool off). */
export type UpstreamPoolReader = () => UpstreamPoolCounts[] | null;

/** The reader for a process whose upstream pool is off: there is no pool memory to read. */
export const UPSTREAM_POOL_OFF: UpstreamPoolReader = () => null;

/** Destinations /metrics names one by one; the rest are summed under destination="other". */
export const METRIC_DESTINATIONS_MAX = 20;

const COUNT_KEYS: readonly (keyof UpstreamPoolCounts)[] = [
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
];

const DESTINATION_KEYS = [
  "hits",
  "misses",
  "created",
  "reused",
  "evicted",
  "expired",
  "dropped",
  "in_use",
  "idle",
  "refill_failures",
] as const;

export function zeroCounts(): UpstreamPoolCounts {
  const counts = {} as UpstreamPoolCounts;
  for (const key of COUNT_KEYS) counts[key] = 0;
  return counts;
}

/** One destination's numbers summed over the Workers that have it (each Worker has its own pool). */
export function mergeDestinations(
  perWorker: readonly (readonly UpstreamDestinationStats[])[],
): UpstreamDestinationStats[] {
  const merged = new Map<string, UpstreamDestinationStats>();
  for (const list of perWorker) {
    for (const entry of list) {
      const into = merged.get(entry.destination);
      if (into === undefined) {
        merged.set(entry.destination, { ...entry });
        continue;
      }
      for (const key of DESTINATION_KEYS) into[key] += entry[key];
      into.backoff_until_ms = Math.max(into.backoff_until_ms, entry.backoff_until_ms);
    }
  }
  return [...merged.values()].sort(
    (left, right) => right.hits + right.misses - (left.hits + left.misses),
  );
}

/** The response: the seed's fields summed over Workers, the config's limits, and both lists. */
export function upstreamPoolResponse(
  config: Config,
  perWorker: UpstreamPoolCounts[] | null,
  destinations: readonly (readonly UpstreamDestinationStats[])[],
): UpstreamPoolResponse {
  const pool = config.server.pool;
  const total = zeroCounts();
  for (const counts of perWorker ?? []) for (const key of COUNT_KEYS) total[key] += counts[key];
  return {
    enabled: pool.enabled && perWorker !== null,
    max_idle_per_dest: pool.max_idle_per_dest,
    max_total_idle: pool.max_total_idle,
    idle_timeout_secs: pool.idle_timeout_secs,
    connect_timeout_ms: pool.connect_timeout_ms,
    ...total,
    per_destination: mergeDestinations(destinations),
    per_worker: (perWorker ?? []).map((counts, worker) => ({ worker, ...counts })),
  };
}

/** The top destinations by traffic (hits + misses), then the rest summed as "other". */
export function topDestinations(
  destinations: readonly UpstreamDestinationStats[],
  max = METRIC_DESTINATIONS_MAX,
): UpstreamDestinationStats[] {
  if (destinations.length <= max) return [...destinations];
  const other: UpstreamDestinationStats = {
    destination: "other",
    hits: 0,
    misses: 0,
    created: 0,
    reused: 0,
    evicted: 0,
    expired: 0,
    dropped: 0,
    in_use: 0,
    idle: 0,
    refill_failures: 0,
    backoff_until_ms: 0,
  };
  for (const entry of destinations.slice(max)) {
    for (const key of DESTINATION_KEYS) other[key] += entry[key];
  }
  return [...destinations.slice(0, max), other];
}
