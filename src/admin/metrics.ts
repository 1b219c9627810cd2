// GET /metrics: which families sockpool exposes, with their HELP text, from the same reads as the
// JSON endpoints. Every name has the sockpool_ prefix and a base unit (_bytes, _seconds, _total for
// counters). Not the text format itself (exposition.ts).
//
// Counters from the shared memory (connections, bytes, latencies, refusals) only grow: a Worker
// restarted after a crash keeps adding to its block. The buffer pool's counts are each Worker's own
// (they come in its snapshot), so they restart from 0 with a restarted Worker; Prometheus' rate()
// treats that as a counter reset.
// A little over 300 lines: every family of /metrics is listed here, in exposition order.

import { LATENCY_BUCKETS_S, LISTENER_KINDS, readCounters } from "../stats/counters.ts";
import { Exposition } from "./exposition.ts";
import type { BufferWorkerStats, UpstreamDestinationStats } from "./types.ts";
import { topDestinations } from "./upstream.ts";
import {
  type AdminSources,
  buffersView,
  isReady,
  type Snapshots,
  statusView,
  upstreamView,
} from "./views.ts";

type UpstreamCounterKey =
  | "hits"
  | "misses"
  | "created"
  | "reused"
  | "evicted"
  | "expired"
  | "dropped";

/** The buffer pool's per-Worker families: name, type, help, and the field of BufferWorkerStats. */
const BUFFER_WORKER_FAMILIES: readonly (readonly [
  string,
  "counter" | "gauge",
  string,
  Exclude<keyof BufferWorkerStats, "worker">,
])[] = [
  [
    "sockpool_buffer_pool_acquired_total",
    "counter",
    "Slots handed out, per Worker (restarts from 0 with the Worker).",
    "acquired",
  ],
  ["sockpool_buffer_pool_released_total", "counter", "Slots given back, per Worker.", "released"],
  [
    "sockpool_buffer_pool_exhausted_total",
    "counter",
    "Acquires that found no free slot, per Worker.",
    "exhausted",
  ],
  ["sockpool_buffer_pool_held_slots", "gauge", "Slots the Worker's connections hold now.", "held"],
  [
    "sockpool_buffer_pool_local_cached_slots",
    "gauge",
    "Slots in the Worker's local cache (local strategy).",
    "local_cached",
  ],
  [
    "sockpool_buffer_pool_local_refills_total",
    "counter",
    "Refills of the Worker's local cache from the shared free list (local strategy).",
    "local_refills",
  ],
  [
    "sockpool_relay_backlog_bytes",
    "gauge",
    "Relay bytes held in buffer-pool slots now, waiting for a slow reader, per Worker.",
    "relay_bytes_held",
  ],
];

export function renderMetrics(sources: AdminSources, snapshots: Snapshots): string {
  const out = new Exposition();
  const { total, perWorker } = readCounters(sources.workers.counters);

  // ── process ──
  out
    .family(
      "sockpool_build_info",
      "gauge",
      "Always 1; the labels name the sockpool and Bun versions.",
    )
    .sample(1, { version: sources.version, bun: Bun.version });
  out
    .family(
      "sockpool_process_start_time_seconds",
      "gauge",
      "Start time of the process since the Unix epoch, in seconds.",
    )
    .sample(sources.startedAtMs / 1000);
  out
    .family(
      "sockpool_ready",
      "gauge",
      "1 when every Worker listens and no stop has begun (/readyz).",
    )
    .sample(isReady(sources) ? 1 : 0);
  const reloads = sources.reloads?.() ?? { ok: 0, rejected: 0 };
  out
    .family(
      "sockpool_reloads_total",
      "counter",
      "Configuration reloads (SIGHUP), by result: ok (applied) or rejected (invalid; the old one serves).",
    )
    .sample(reloads.ok, { result: "ok" })
    .sample(reloads.rejected, { result: "rejected" });

  // ── connections ──
  out.family(
    "sockpool_connections_open",
    "gauge",
    "Client connections open now, by listener kind.",
  );
  for (const kind of LISTENER_KINDS) out.sample(total.open[kind], { kind });
  out.family(
    "sockpool_connections_total",
    "counter",
    "Client connections accepted (past the limits at accept), by listener kind.",
  );
  for (const kind of LISTENER_KINDS) out.sample(total.opened[kind], { kind });
  out.family(
    "sockpool_connections_closed_total",
    "counter",
    "Client connections closed, by outcome (worker_crashed: open when their Worker died).",
  );
  for (const [outcome, count] of Object.entries(total.outcomes)) out.sample(count, { outcome });
  out.family(
    "sockpool_connections_closed_by_reply_total",
    "counter",
    'Client connections closed, by the SOCKS5 reply code they got (hex; "none": no reply sent).',
  );
  for (const [reply, count] of Object.entries(total.replies)) out.sample(count, { reply });
  out.family(
    "sockpool_http_responses_total",
    "counter",
    'HTTP CONNECT connections closed, by the status they got ("other": a status not listed).',
  );
  for (const [status, count] of Object.entries(total.http_status)) out.sample(count, { status });
  out.family(
    "sockpool_connections_rejected_total",
    "counter",
    "Clients refused at accept, by reason: connections_max or a per-client limit.",
  );
  for (const [reason, count] of Object.entries(total.refused)) out.sample(count, { reason });
  out.family(
    "sockpool_relayed_bytes_total",
    "counter",
    "Bytes read from one side to relay to the other (up: client to upstream, down: upstream to client).",
  );
  out.sample(total.bytes_up, { direction: "up" }).sample(total.bytes_down, { direction: "down" });
  out
    .family(
      "sockpool_handshake_duration_seconds",
      "histogram",
      "From accept to the end of the front protocol's handshake (SOCKS5, HTTP CONNECT), in seconds.",
    )
    .histogram(LATENCY_BUCKETS_S, total.handshake.cumulative, total.handshake.sum);
  out
    .family(
      "sockpool_upstream_connect_duration_seconds",
      "histogram",
      "From the start of the dial (access rules, DNS, connect) to a connected upstream, in seconds.",
    )
    .histogram(LATENCY_BUCKETS_S, total.connect.cumulative, total.connect.sum);

  // ── UDP ASSOCIATE ──
  out
    .family("sockpool_udp_associations_open", "gauge", "UDP associations open now.")
    .sample(total.udp.open);
  out
    .family("sockpool_udp_associations_total", "counter", "UDP associations opened.")
    .sample(total.udp.opened);
  out
    .family(
      "sockpool_udp_associations_refused_total",
      "counter",
      "UDP ASSOCIATE requests refused because udp.associations_max was reached.",
    )
    .sample(total.udp.refused);
  out.family(
    "sockpool_udp_datagrams_total",
    "counter",
    "Datagrams relayed (up: client to destination, down: destination to client).",
  );
  out
    .sample(total.udp.datagrams_up, { direction: "up" })
    .sample(total.udp.datagrams_down, { direction: "down" });
  out.family(
    "sockpool_udp_relayed_bytes_total",
    "counter",
    "Payload bytes of the datagrams relayed, without the SOCKS UDP header, by direction.",
  );
  out
    .sample(total.udp.bytes_up, { direction: "up" })
    .sample(total.udp.bytes_down, { direction: "down" });
  out.family("sockpool_udp_dropped_total", "counter", "Datagrams dropped, by reason.");
  for (const [reason, count] of Object.entries(total.udp_dropped)) out.sample(count, { reason });

  // ── Workers ──
  const status = statusView(sources);
  out.family("sockpool_worker_up", "gauge", "1 when the Worker is listening.");
  for (const worker of status.workers) out.sample(worker.up ? 1 : 0, { worker: worker.worker });
  out.family(
    "sockpool_worker_responding",
    "gauge",
    "1 when the Worker answered this scrape in time.",
  );
  snapshots.answers.forEach((answer, worker) => {
    out.sample(answer === null ? 0 : 1, { worker });
  });
  out.family("sockpool_worker_restarts_total", "counter", "Restarts of the Worker after a crash.");
  for (const worker of status.workers) out.sample(worker.restarts, { worker: worker.worker });
  out.family("sockpool_worker_connections_open", "gauge", "Client connections open on the Worker.");
  for (const worker of status.workers)
    out.sample(worker.connections_open, { worker: worker.worker });
  out.family(
    "sockpool_worker_relayed_bytes_total",
    "counter",
    "Bytes relayed by the Worker, by direction.",
  );
  perWorker.forEach((counters, worker) => {
    out.sample(counters.bytes_up, { worker, direction: "up" });
    out.sample(counters.bytes_down, { worker, direction: "down" });
  });

  // ── buffer pool ──
  const buffers = buffersView(sources, snapshots);
  out
    .family(
      "sockpool_buffer_pool_info",
      "gauge",
      "Always 1; the labels name the pool strategy and backend.",
    )
    .sample(1, { strategy: buffers.strategy, backend: buffers.backend });
  out
    .family("sockpool_buffer_pool_slot_size_bytes", "gauge", "Bytes per buffer-pool slot.")
    .sample(buffers.slot_bytes);
  out.family("sockpool_buffer_pool_slots", "gauge", "Buffer-pool slots, by state (free or held).");
  out.sample(buffers.slots_free, { state: "free" }).sample(buffers.slots_held, { state: "held" });
  for (const [name, type, help, key] of BUFFER_WORKER_FAMILIES) {
    out.family(name, type, help);
    for (const entry of buffers.per_worker) out.sample(entry[key], { worker: entry.worker });
  }

  // ── upstream pool ──
  const upstream = upstreamView(sources, snapshots);
  out
    .family("sockpool_upstream_pool_enabled", "gauge", "1 when the upstream warm pool is on.")
    .sample(upstream.enabled ? 1 : 0);
  out
    .family("sockpool_upstream_pool_idle_connections", "gauge", "Warm idle upstream connections.")
    .sample(upstream.total_idle);
  out
    .family("sockpool_upstream_pool_destinations", "gauge", "Destinations with a warm connection.")
    .sample(upstream.destinations);
  out
    .family(
      "sockpool_upstream_pool_in_use_connections",
      "gauge",
      "Connections that came from the pool and are relaying now.",
    )
    .sample(upstream.connections_in_use);
  out
    .family("sockpool_upstream_pool_pending_creates", "gauge", "Warm connects in progress.")
    .sample(upstream.pending_creates);
  const poolCounters: [string, number, string][] = [
    ["created", upstream.total_created, "Warm connections the pool opened."],
    ["reused", upstream.total_reused, "Warm connections handed to a client."],
    ["hits", upstream.pool_hits, "Dials served by a warm connection."],
    ["misses", upstream.pool_misses, "Dials that found no warm connection."],
    ["dropped_full", upstream.dropped_full, "Warm connections closed: max_idle_per_dest reached."],
    ["expired", upstream.expired, "Warm connections closed after idle_timeout_secs."],
    ["evicted", upstream.evicted, "Warm connections closed: max_total_idle reached."],
  ];
  for (const [name, value, help] of poolCounters) {
    out.family(`sockpool_upstream_pool_${name}_total`, "counter", help).sample(value);
  }
  const destinations = topDestinations(upstream.per_destination);
  const perDestination: [UpstreamCounterKey, string][] = [
    ["hits", "Dials served warm"],
    ["misses", "Dials with no warm connection"],
    ["created", "Warm connections opened"],
    ["reused", "Warm connections handed out"],
    ["evicted", "Warm connections evicted"],
    ["expired", "Warm connections expired"],
    ["dropped", "Warm connections dropped (per-destination cap)"],
  ];
  for (const [key, help] of perDestination) {
    out.family(
      `sockpool_upstream_pool_destination_${key}_total`,
      "counter",
      `${help}, per destination (the top ${destinations.length} by traffic; the rest as "other").`,
    );
    for (const entry of destinations) out.sample(entry[key], { destination: entry.destination });
  }
  const gauges: [keyof UpstreamDestinationStats & ("idle" | "in_use"), string][] = [
    ["idle", "Warm idle connections per destination."],
    ["in_use", "Pooled connections relaying now, per destination."],
  ];
  for (const [key, help] of gauges) {
    out.family(`sockpool_upstream_pool_destination_${key}_connections`, "gauge", help);
    for (const entry of destinations) out.sample(entry[key], { destination: entry.destination });
  }

  // ── telemetry ──
  out
    .family(
      "sockpool_telemetry_events_total",
      "counter",
      "Operational events recorded (/api/telemetry/events).",
    )
    .sample(sources.telemetry.total);
  return out.text();
}
