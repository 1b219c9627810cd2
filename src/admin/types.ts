// The admin API's JSON shapes and the telemetry interface: the contract between the proxy's
// Workers (which produce the numbers), the admin server on the main thread (which sums and serves
// them) and the status page (which draws them). Types only; no code runs here.

/** Operational warnings, as GET /api/telemetry/events lists them. */
export type TelemetryKind =
  | "upstream_pool_dropped_full" // a destination's max_idle_per_dest was hit
  | "upstream_pool_evicted" // max_total_idle was hit: the oldest idle connection anywhere went
  | "upstream_pool_refill_failed" // a warm connect to a destination failed; it now backs off
  | "buffer_pool_exhausted" // an acquire found no free slot
  | "worker_crashed" // a Worker died; what it held was reclaimed
  | "worker_restarted"
  | "connections_max_reached" // a client was refused at accept
  | "proxy_header_refused" // proxy_protocol listener: an untrusted peer, or a bad or missing header
  | "config_reloaded" // SIGHUP: the new configuration applies to new connections
  | "config_rejected"; // SIGHUP: the new configuration was invalid; the old one keeps serving

export type TelemetryLevel = "info" | "warn" | "error";

/** What a producer (a Worker or the supervisor) reports; the admin server stamps id and time. */
export interface TelemetryInput {
  kind: TelemetryKind;
  level: TelemetryLevel;
  message: string;
  /** Plain, small fields: destination, worker, counts. */
  fields?: Record<string, string | number | boolean>;
}

/** One entry of the ring: ids increase by one from 1, so `?since=ID` returns the later ones. */
export interface TelemetryEvent extends TelemetryInput {
  id: number;
  /** Unix epoch milliseconds. */
  time_ms: number;
  worker?: number;
}

/** Where code that notices something operational reports it. Cheap and never throws; producers
 *  rate-limit themselves (the first of a kind per destination or per second, not every one). */
export interface Telemetry {
  emit(event: TelemetryInput): void;
}

export const NO_TELEMETRY: Telemetry = { emit() {} };

/** GET /api/telemetry/events[?since=ID] */
export interface TelemetryResponse {
  /** The id the next event will get; poll with ?since=<next_id - 1>. */
  next_id: number;
  /** Events dropped from the ring's far end since start (it holds the latest N). */
  dropped: number;
  events: TelemetryEvent[];
}

/** The seed's PoolStats fields, exactly; summed over Workers in the API. */
export interface UpstreamPoolCounts {
  total_idle: number;
  destinations: number;
  total_created: number;
  total_reused: number;
  pool_hits: number;
  pool_misses: number;
  dropped_full: number;
  expired: number;
  evicted: number;
  connections_in_use: number;
  pending_creates: number;
}

/** One destination, as the client asked for it ("host:port", a domain unresolved). */
export interface UpstreamDestinationStats {
  destination: string;
  hits: number;
  misses: number;
  created: number;
  reused: number;
  evicted: number;
  expired: number;
  dropped: number;
  in_use: number;
  idle: number;
  /** Warm connects that failed in a row; 0 when the last one succeeded. */
  refill_failures: number;
  /** Unix epoch ms until which refills of it are held back, or 0. */
  backoff_until_ms: number;
}

/** GET /api/pool/stats */
export interface UpstreamPoolResponse extends UpstreamPoolCounts {
  enabled: boolean;
  max_idle_per_dest: number;
  max_total_idle: number;
  idle_timeout_secs: number;
  connect_timeout_ms: number;
  per_destination: UpstreamDestinationStats[];
  per_worker: (UpstreamPoolCounts & { worker: number })[];
}

/** One Worker's share of the buffer pool. */
export interface BufferWorkerStats {
  worker: number;
  acquired: number;
  released: number;
  exhausted: number;
  /** Slots this Worker holds now. */
  held: number;
  /** `local` strategy: slots in this Worker's cache, acquires served from it, refills from the
   *  shared list. 0 for the other strategies. */
  local_cached: number;
  local_hits: number;
  local_refills: number;
  /** Relay backlog bytes this Worker's connections hold in slots. */
  relay_bytes_held: number;
}

/** GET /api/buffers/stats */
export interface BufferPoolResponse {
  strategy: string;
  /** "native" (the Zig library) or "typescript". */
  backend: string;
  slot_bytes: number;
  slots_total: number;
  slots_free: number;
  slots_held: number;
  acquired: number;
  released: number;
  exhausted: number;
  local_hits: number;
  local_refills: number;
  relay_bytes_held: number;
  per_worker: BufferWorkerStats[];
}

export type ConnectionPhase = "front" | "dial" | "relay";

/** One open connection. */
export interface ConnectionInfo {
  worker: number;
  /** "socks" or "forward" (more kinds later: "http"). */
  kind: string;
  listener: string;
  client: string;
  /** As the client asked ("host:port"); "" before the front protocol has read it. */
  target: string;
  user?: string;
  phase: ConnectionPhase;
  bytes_up: number;
  bytes_down: number;
  age_ms: number;
  /** True when the upstream came warm from the upstream pool. */
  pooled: boolean;
}

/** GET /api/connections[?offset=N&limit=M] (limit at most 1,000; oldest first). */
export interface ConnectionsResponse {
  total: number;
  offset: number;
  limit: number;
  connections: ConnectionInfo[];
}

/** One Worker, for the status page and /metrics. */
export interface WorkerInfo {
  worker: number;
  up: boolean;
  restarts: number;
  connections_open: number;
  connections_total: number;
  bytes_up: number;
  bytes_down: number;
}

/** GET /api/status: everything the status page draws that is not in the endpoints above. */
export interface StatusResponse {
  version: string;
  bun: string;
  started_at_ms: number;
  uptime_s: number;
  ready: boolean;
  listeners: { kind: string; address: string; target?: string }[];
  connections_open: number;
  connections_total: number;
  connections_rejected: number;
  bytes_up: number;
  bytes_down: number;
  /** Connections closed since start, by outcome (failures.ts's outcome names). */
  outcomes: Record<string, number>;
  workers: WorkerInfo[];
}
