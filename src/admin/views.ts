// What the admin API reads, and the JSON each endpoint answers, built from it: the shared counters
// (summed here, when read), the supervisor's view of its Workers, the Workers' snapshots and the
// telemetry ring. Not HTTP (server.ts) and not the exposition (metrics.ts).

import type { Config } from "../config/schema.ts";
import { formatHostPort } from "../protocol/host-port.ts";
import type { ListenerInfo, ProxySnapshot } from "../proxy/server.ts";
import { readCounters, type CounterTotals } from "../stats/counters.ts";
import type { TelemetryRing } from "./telemetry.ts";
import type {
  BufferPoolResponse,
  BufferWorkerStats,
  ConnectionInfo,
  ConnectionsResponse,
  StatusResponse,
  UpstreamPoolResponse,
  WorkerInfo,
} from "./types.ts";
import { type UpstreamPoolReader, upstreamPoolResponse } from "./upstream.ts";

/** How long the admin API waits for a Worker's snapshot before reporting it silent. */
export const SNAPSHOT_TIMEOUT_MS = 500;
/** GET /api/connections: the most one page lists, and the default. */
export const CONNECTIONS_LIMIT_MAX = 1_000;
export const CONNECTIONS_LIMIT_DEFAULT = 100;

/** The supervisor as the admin API sees it (src/supervisor.ts implements it). */
export interface WorkerSource {
  readonly counters: SharedArrayBuffer;
  ready(): boolean;
  workerStates(): { worker: number; up: boolean; restarts: number }[];
  snapshot(connections: number, timeoutMs: number): Promise<(ProxySnapshot | null)[]>;
}

export interface AdminSources {
  config: Config;
  version: string;
  startedAtMs: number;
  workers: WorkerSource;
  telemetry: TelemetryRing;
  /** The listeners the Workers bound (empty until they have). */
  listeners(): readonly ListenerInfo[];
  /** The buffer pool as configured, and its shared free list's length read from the main thread. */
  bufferPool: { strategy: string; backend: () => string; slots: number; slot_bytes: number };
  upstreamPool: UpstreamPoolReader;
  /** True once a stop has begun (SIGTERM/SIGINT): /readyz fails from then on. */
  stopping(): boolean;
  /** Reloads (SIGHUP) applied and rejected since start; none when absent. */
  reloads?: () => { ok: number; rejected: number };
}

/** A snapshot round: the answers and the Workers that did not answer in time. */
export interface Snapshots {
  answers: (ProxySnapshot | null)[];
  silent: number[];
}

export async function takeSnapshots(sources: AdminSources, connections = 0): Promise<Snapshots> {
  const answers = await sources.workers.snapshot(connections, SNAPSHOT_TIMEOUT_MS);
  const silent = answers.flatMap((answer, worker) => (answer === null ? [worker] : []));
  return { answers, silent };
}

export function isReady(sources: AdminSources): boolean {
  return !sources.stopping() && sources.workers.ready();
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

function workerInfo(
  states: ReturnType<WorkerSource["workerStates"]>,
  perWorker: CounterTotals[],
): WorkerInfo[] {
  return states.map((state) => {
    const counters = perWorker[state.worker]!;
    return {
      worker: state.worker,
      up: state.up,
      restarts: state.restarts,
      connections_open: sum(Object.values(counters.open)),
      connections_total: sum(Object.values(counters.opened)),
      bytes_up: counters.bytes_up,
      bytes_down: counters.bytes_down,
    };
  });
}

/** GET /api/status: from the counters and the supervisor alone (no Worker round trip). */
export function statusView(sources: AdminSources, nowMs = Date.now()): StatusResponse {
  const { total, perWorker } = readCounters(sources.workers.counters);
  return {
    version: sources.version,
    bun: Bun.version,
    started_at_ms: sources.startedAtMs,
    uptime_s: Math.round((nowMs - sources.startedAtMs) / 1000),
    ready: isReady(sources),
    listeners: sources.listeners().map((listener) => ({
      kind: listener.kind,
      address: formatHostPort(listener.host, listener.port),
      ...(listener.target === undefined ? {} : { target: listener.target }),
    })),
    connections_open: sum(Object.values(total.open)),
    connections_total: sum(Object.values(total.opened)),
    connections_rejected: sum(Object.values(total.refused)),
    bytes_up: total.bytes_up,
    bytes_down: total.bytes_down,
    outcomes: { ...total.outcomes },
    workers: workerInfo(sources.workers.workerStates(), perWorker),
  };
}

/** GET /api/buffers/stats: the pool's shape, and each answering Worker's own counts. Slots free =
 *  the shared free list + every Worker's local cache; held = the rest. */
export function buffersView(sources: AdminSources, snapshots: Snapshots): BufferPoolResponse {
  const pool = sources.bufferPool;
  const perWorker: BufferWorkerStats[] = [];
  let sharedFree: number | null = null;
  for (const [worker, answer] of snapshots.answers.entries()) {
    if (answer === null) continue;
    const stats = answer.pool;
    // Each Worker's `free` is the shared list plus its own cache: the shared part is the same for all.
    sharedFree ??= stats.free - stats.local_cached;
    const local = stats.strategy === "local";
    perWorker.push({
      worker,
      acquired: stats.acquired,
      released: stats.released,
      exhausted: stats.exhausted,
      held: stats.in_use,
      local_cached: stats.local_cached,
      local_hits: local ? stats.acquired - stats.local_refills : 0,
      local_refills: stats.local_refills,
      relay_bytes_held: answer.backlog_bytes,
    });
  }
  const free = (sharedFree ?? pool.slots) + sum(perWorker.map((entry) => entry.local_cached));
  return {
    strategy: pool.strategy,
    backend: pool.backend(),
    slot_bytes: pool.slot_bytes,
    slots_total: pool.slots,
    slots_free: Math.min(pool.slots, free),
    slots_held: Math.max(0, pool.slots - free),
    acquired: sum(perWorker.map((entry) => entry.acquired)),
    released: sum(perWorker.map((entry) => entry.released)),
    exhausted: sum(perWorker.map((entry) => entry.exhausted)),
    local_hits: sum(perWorker.map((entry) => entry.local_hits)),
    local_refills: sum(perWorker.map((entry) => entry.local_refills)),
    relay_bytes_held: sum(perWorker.map((entry) => entry.relay_bytes_held)),
    per_worker: perWorker,
  };
}

/** GET /api/connections: every Worker's oldest `offset + limit`, merged oldest first, one page. */
export function connectionsView(
  snapshots: Snapshots,
  offset: number,
  limit: number,
): ConnectionsResponse {
  const all: ConnectionInfo[] = [];
  let total = 0;
  for (const answer of snapshots.answers) {
    if (answer === null) continue;
    total += answer.connections_open;
    all.push(...answer.connections);
  }
  all.sort((left, right) => right.age_ms - left.age_ms);
  return { total, offset, limit, connections: all.slice(offset, offset + limit) };
}

/** GET /api/pool/stats. */
export function upstreamView(sources: AdminSources, snapshots: Snapshots): UpstreamPoolResponse {
  return upstreamPoolResponse(
    sources.config,
    sources.upstreamPool(),
    snapshots.answers.map((answer) => answer?.upstream_destinations ?? []),
  );
}
