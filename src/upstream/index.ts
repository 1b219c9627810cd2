// The upstream warm-connection pool's front door: what the proxy, the supervisor and the admin API
// import. Not an implementation; see pool.ts (one Worker's pool), memory.ts (what Workers share)
// and owner.ts (who an upstream socket reports to).

export {
  createUpstreamPoolMemory,
  LEDGER_FIELDS,
  readUpstreamPoolLedger,
  reclaimUpstreamPool,
  type UpstreamPoolLedger,
  upstreamPoolMemoryBytes,
} from "./memory.ts";
export { type UpstreamOwner, upstreamEvents } from "./owner.ts";
export {
  type Handoff,
  UpstreamPool,
  type UpstreamPoolOptions,
  type UpstreamPoolSettings,
} from "./pool.ts";
export { mergeDestinations, readUpstreamPoolCounts } from "./stats.ts";
