// GET /api/pool/stats from its two sources: the upstream pool's counts in shared memory (one block
// per Worker, summed here) and the per-destination lists the Workers send in their snapshots. The
// one place that knows how the upstream pool is read: a pool that is off (or absent) answers
// enabled=false with zeros and the configured limits. Not the pool itself (src/upstream/).

import type { Config } from "../config/schema.ts";
import { SEED_FIELDS } from "../upstream/memory.ts";
import { mergeDestinations, type readUpstreamPoolCounts } from "../upstream/stats.ts";
import type {
  UpstreamDestinationStats,
  UpstreamPoolCounts,
  UpstreamPoolResponse,
} from "./types.ts";

/** Reads the upstream pool's counts from shared memory (readUpstreamPoolCounts), or null when the
 *  pool is off. */
export type UpstreamPoolReader = () => ReturnType<typeof readUpstreamPoolCounts> | null;

/** The reader for a process whose upstream pool is off: there is no pool memory to read. */
export const UPSTREAM_POOL_OFF: UpstreamPoolReader = () => null;

/** Destinations /metrics names one by one; the rest are summed under destination="other". */
export const METRIC_DESTINATIONS_MAX = 20;

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
  for (const key of SEED_FIELDS) counts[key] = 0;
  return counts;
}

/** The response: the seed's fields summed over Workers, the config's limits, and both lists. */
export function upstreamPoolResponse(
  config: Config,
  counts: ReturnType<UpstreamPoolReader>,
  destinations: UpstreamDestinationStats[][],
): UpstreamPoolResponse {
  const pool = config.server.pool;
  return {
    enabled: pool.enabled && counts !== null,
    max_idle_per_dest: pool.max_idle_per_dest,
    max_total_idle: pool.max_total_idle,
    idle_timeout_secs: pool.idle_timeout_secs,
    connect_timeout_ms: pool.connect_timeout_ms,
    // The total comes from shared memory whole: a destination idle in two Workers counts once.
    ...(counts?.total ?? zeroCounts()),
    per_destination: byTraffic(mergeDestinations(destinations)),
    per_worker: counts?.per_worker ?? [],
  };
}

/** Busiest first (hits + misses), then by name. */
function byTraffic(destinations: UpstreamDestinationStats[]): UpstreamDestinationStats[] {
  return destinations.sort(
    (left, right) =>
      right.hits + right.misses - (left.hits + left.misses) ||
      (left.destination < right.destination ? -1 : 1),
  );
}

/** The top destinations by traffic (hits + misses), then the rest summed as "other". */
export function topDestinations(
  all: readonly UpstreamDestinationStats[],
  max = METRIC_DESTINATIONS_MAX,
): UpstreamDestinationStats[] {
  const destinations = byTraffic([...all]);
  if (destinations.length <= max) return destinations;
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
