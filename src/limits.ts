// Every bound of the system, with its unit last, and the relationships between them asserted at
// load. Not validation of input (src/config derives its accepted ranges from these and reports bad
// values as config errors) and not the descriptor-limit check at start-up (fd-limit.ts).
//
// Wire-format facts (message sizes, field widths) are defined by src/protocol and imported here;
// the ring's capacity by the pool's layout. Every other module takes its bounds from this one.

import { assert } from "./assert.ts";
import { QUEUE_CAPACITY_MAX, QUEUE_CAPACITY_MIN } from "./pool/freelist/layout.ts";
import { isPowerOfTwo } from "./pool/freelist/ring.ts";
import {
  AUTH_FIELD_BYTES_MAX,
  AUTH_REQUEST_BYTES_MAX,
  GREETING_BYTES_MAX,
  HANDSHAKE_BYTES_MAX,
  HOST_NAME_BYTES_MAX,
  PORT_MAX,
  REQUEST_BYTES_MAX,
} from "./protocol/constants.ts";

/** setTimeout's ceiling: a longer delay fires at once. */
const SET_TIMEOUT_MS_MAX = 2 ** 31 - 1;

/** One timeout's accepted range in the config; `min` 0 means the option can be switched off. */
export interface TimeoutRange {
  readonly min_ms: 0 | 1;
  readonly max_ms: number;
}

const TIMEOUT_MS_MAX = 86_400_000; // one day; well under setTimeout's ceiling
const POOL_SLOTS_MAX = 1 << 20;
const SLOT_BYTES_MIN = 1024;
const SLOT_BYTES_MAX = 1 << 20;

export const LIMITS = {
  // ── server ──
  workers_max: 256,
  connections_min: 1,
  connections_max: 1_000_000,
  /** File descriptors one proxied connection uses: the client socket and the upstream socket. */
  fds_per_connection: 2,
  /** Descriptors kept for listeners, the runtime, Workers and DNS. */
  fds_reserved: 64,

  // ── addresses and credentials ──
  port_max: PORT_MAX,
  host_bytes_max: HOST_NAME_BYTES_MAX,
  credential_bytes_min: 1,
  credential_bytes_max: AUTH_FIELD_BYTES_MAX, // RFC 1929: ULEN and PLEN are one byte each

  // ── handshake ──
  /** Most bytes a client can send before the relay starts (greeting + auth + request). */
  handshake_bytes_max: HANDSHAKE_BYTES_MAX,
  /** The longest single handshake message (the RFC 1929 auth request); one slot must hold it. */
  handshake_message_bytes_max: Math.max(
    GREETING_BYTES_MAX,
    AUTH_REQUEST_BYTES_MAX,
    REQUEST_BYTES_MAX,
  ),
  // ── UDP ASSOCIATE ──
  /** Associations open at once, all Workers together (each holds one UDP socket). */
  udp_associations_max: 100_000,
  /** Destinations one association may send to. */
  udp_destinations_max: 65_536,
  /** Datagrams per second one association may send (udp.datagrams_per_second; 0 = no limit). */
  udp_datagrams_per_second_max: 1_000_000,
  /** Datagrams one association may hold in pool slots while they wait (a name being resolved, a
   *  socket buffer full); more are dropped. */
  udp_held_datagrams_max: 64,

  /** Most bytes of an HTTP CONNECT request head; also capped at slot_bytes, since a head split
   *  across reads waits in one pool slot (431 beyond it). */
  http_head_bytes_max: 8192,

  // ── pool, as the config accepts it ──
  pool_slots_min: 16,
  pool_slots_max: POOL_SLOTS_MAX,
  slot_bytes_min: SLOT_BYTES_MIN,
  slot_bytes_max: SLOT_BYTES_MAX,
  slot_bytes_align: 1024,
  /** Largest slab (slots × slot_bytes): a SharedArrayBuffer must stay addressable. */
  slab_bytes_max: 2 ** 32,
  local_batch_min: 1,
  local_batch_max: 1024,
  /** Share of the pool that clients still in their handshake may hold (split messages). */
  handshake_share_percent_min: 1,
  handshake_share_percent_max: 100,

  // ── pool, as createPool accepts it (tests and benchmarks use pools too small for the config) ──
  pool_api_slots_min: 2,
  pool_api_slot_bytes_min: 1,

  // ── relay ──
  /** Smallest per-direction backlog bound: one slot's worth. */
  backlog_bytes_min: SLOT_BYTES_MIN,
  /** Largest per-direction backlog bound: the largest slab the config accepts. */
  backlog_bytes_max: 2 ** 32,

  // ── logins with hashed passwords (src/proxy/credentials.ts) ──
  /** A successful hash check is remembered this long, so a reconnecting client pays once. */
  login_cache_ms: 300_000,
  login_cache_entries_max: 10_000,
  /** Hash checks one Worker runs at once; past it a login is answered "busy". */
  login_checks_in_flight_max: 8,

  // ── per client IP (0 switches a limit off) ──
  client_new_per_second_max: 1_000_000,
  auth_failures_max: 1_000,

  // ── upstream warm-connection pool ([server.pool]) ──
  /** Idle upstream connections the pool may hold, all Workers together: each is a descriptor. */
  upstream_idle_max: 65_536,
  /** idle_timeout_secs' ceiling: a pooled connection older than a day is not warm. */
  upstream_idle_timeout_secs_max: 86_400,
  /** Destinations one Worker's pool remembers (asked for recently, holding nothing): at least
   *  this many, or this many per max_total_idle, so a client naming endless destinations cannot
   *  grow it without bound. */
  upstream_keys_min: 1_024,
  upstream_keys_per_idle: 4,
  /** A destination whose warm connects fail backs off from the first delay, doubling to the last. */
  upstream_backoff_ms_min: 250,
  upstream_backoff_ms_max: 30_000,

  // ── admin API ──
  /** A bearer token shorter than this is guessable; longer is a config mistake. */
  admin_token_bytes_min: 16,
  admin_token_bytes_max: 256,

  // ── timeouts ──
  timeout_ms_max: TIMEOUT_MS_MAX,
  timeouts: {
    /** clients.auth_block_ms. */
    auth_block: { min_ms: 1, max_ms: TIMEOUT_MS_MAX },
    /** server.shutdown_timeout_ms; 0 closes connections at once. */
    shutdown: { min_ms: 0, max_ms: TIMEOUT_MS_MAX },
    /** server.drain_delay_ms; 0 closes the listeners at once. */
    drain_delay: { min_ms: 0, max_ms: TIMEOUT_MS_MAX },
    /** socks.handshake_timeout_ms. */
    handshake: { min_ms: 1, max_ms: TIMEOUT_MS_MAX },
    /** upstream.connect_timeout_ms. */
    connect: { min_ms: 1, max_ms: TIMEOUT_MS_MAX },
    /** upstream.dns_timeout_ms. */
    dns: { min_ms: 1, max_ms: TIMEOUT_MS_MAX },
    /** relay.idle_timeout_ms; 0 disables. */
    idle: { min_ms: 0, max_ms: TIMEOUT_MS_MAX },
    /** relay.fin_timeout_ms. */
    fin: { min_ms: 1, max_ms: TIMEOUT_MS_MAX },
    /** udp.idle_timeout_ms: an association with no datagram this long is closed. */
    udp_idle: { min_ms: 1, max_ms: TIMEOUT_MS_MAX },
  } satisfies Record<string, TimeoutRange>,

  /** The deadline sweeper's period is a quarter of the shortest timeout, clamped to this range:
   *  often enough to honour a short timeout closely, rarely enough to cost nothing when idle. */
  sweep_ms_min: 25,
  sweep_ms_max: 1_000,

  // ── supervisor ──
  restart_delay_ms_min: 100,
  restart_delay_ms_max: 10_000,
  /** A Worker that stayed up this long is healthy again: its restart delay starts over. */
  restart_healthy_ms: 30_000,
  /** A repeat of SIGTERM/SIGINT this soon is the same signal delivered twice (the terminal's process
   *  group and `bun run`, which forwards it), not an operator's second one. */
  signal_repeat_ms: 250,
  /** How long past shutdown_timeout_ms a Worker may take to report before it is terminated. */
  stop_margin_ms: 2_000,
} as const;

// ── Relationships between constants, checked once at load ─────────────────────────────────────
// Relationships that depend on the config (backlog vs. slots, slab size, local_batch vs. slots)
// are config errors instead: see src/config/relations.ts.

const L = LIMITS;

/** Every relationship between the constants above, by name; each is asserted below. */
export const LIMIT_INVARIANTS: readonly (readonly [name: string, holds: boolean])[] = [
  [
    "slot_bytes_min holds a whole handshake message",
    L.slot_bytes_min >= L.handshake_message_bytes_max,
  ],
  [
    "slot_bytes_min and slot_bytes_max are multiples of slot_bytes_align",
    L.slot_bytes_min % L.slot_bytes_align === 0 && L.slot_bytes_max % L.slot_bytes_align === 0,
  ],
  [
    "pool_slots_min and pool_slots_max are powers of two",
    isPowerOfTwo(L.pool_slots_min) && isPowerOfTwo(L.pool_slots_max),
  ],
  [
    "the queue's capacity range covers the pool's slot range",
    QUEUE_CAPACITY_MIN <= L.pool_api_slots_min && QUEUE_CAPACITY_MAX >= L.pool_slots_max,
  ],
  [
    "every pool the config accepts, createPool accepts",
    L.pool_api_slots_min <= L.pool_slots_min && L.pool_api_slot_bytes_min <= L.slot_bytes_min,
  ],
  [
    "the smallest pool the config accepts fits in slab_bytes_max",
    L.pool_slots_min * L.slot_bytes_min <= L.slab_bytes_max,
  ],
  [
    "the backlog range spans one smallest slot to the largest slab",
    L.backlog_bytes_min <= L.slot_bytes_min && L.backlog_bytes_max >= L.slab_bytes_max,
  ],
  [
    "a local cache (2 × local_batch) fits in the pool",
    2 * L.local_batch_min <= L.pool_slots_min && 2 * L.local_batch_max <= L.pool_slots_max,
  ],
  [
    "every timeout fits setTimeout",
    L.timeout_ms_max <= SET_TIMEOUT_MS_MAX &&
      Object.values(L.timeouts).every((range) => range.max_ms <= SET_TIMEOUT_MS_MAX),
  ],
  [
    "an idle upstream connection fits under the descriptor budget of the largest config",
    L.upstream_idle_max <= L.connections_max * L.fds_per_connection,
  ],
  [
    "upstream idle_timeout_secs fits the timeout ceiling",
    L.upstream_idle_timeout_secs_max * 1000 <= L.timeout_ms_max,
  ],
  [
    "the upstream pool's refill backoff range is ordered and fits setTimeout",
    0 < L.upstream_backoff_ms_min &&
      L.upstream_backoff_ms_min <= L.upstream_backoff_ms_max &&
      L.upstream_backoff_ms_max <= SET_TIMEOUT_MS_MAX,
  ],
  [
    "the sweep range is ordered and below every timeout's ceiling",
    0 < L.sweep_ms_min && L.sweep_ms_min <= L.sweep_ms_max && L.sweep_ms_max <= L.timeout_ms_max,
  ],
  [
    "a Worker's restart backoff is shorter than the time that makes it healthy again",
    L.restart_delay_ms_min <= L.restart_delay_ms_max &&
      L.restart_delay_ms_max < L.restart_healthy_ms,
  ],
];

for (const [name, holds] of LIMIT_INVARIANTS) assert(holds, name);
