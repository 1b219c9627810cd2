// One Worker's upstream warm-connection pool: connections opened ahead of demand and never used,
// waiting to be handed to a client that asks for their destination. Not a pool of used streams: a
// byte stream that carried data belongs to its session (TLS, HTTP, SSH state), so a connection is
// handed out once and never comes back. Not the limits' truth either: the reservations and counters
// every Worker shares live in memory.ts; this file holds the sockets, which cannot cross threads.
//
//   take(key)     LIFO: the freshest valid idle connection (not closed, no FIN or reset seen, not
//                 expired), re-pointed to the Connection (socket.data) with any banner bytes it
//                 received while idle; its replacement starts at once, reusing its reservation.
//                 A miss marks the key as asked; once that client's own dial has succeeded,
//                 dialed() starts one warm connection for it, so a repeated destination hits.
//   pin(target)   a forward listener's target: kept warm from start-up, up to this Worker's share
//                 of max_idle_per_dest, and topped up on every tick.
//   refill        reserve in shared memory first (DEST_FULL: counted dropped_full; GLOBAL_FULL:
//                 evict the oldest idle connection anywhere, here at once or by asking its Worker),
//                 resolve, check each address with the client-agnostic access rules, connect within
//                 connect_timeout_ms. A failure backs the destination off (exponential, bounded).
//   tick          expires idle connections past idle_timeout_secs, retries wanted refills, forgets
//                 destinations nobody asked for within idle_timeout_secs, serves eviction requests.
//
// The ledger (per Worker, in shared memory; counters only grow, gauges are "now"):
//   total_created  = total_reused + total_idle + expired + evicted + closed_by_upstream
//                    + closed_banner + closed_shutdown + closed_crashed
//   total_reused   = pool_hits = connections_in_use + finished
// where total_created counts warm connects that succeeded (a connect that lands after its attempt
// was abandoned, by shutdown or connect_timeout_ms, is closed at once and not counted);
// pending_creates counts connects in flight; dropped_full counts refills the destination's
// max_idle_per_dest refused (nothing was opened); refill_failures and refill_denied count refills
// that failed (refused, timed out, unresolvable) or that the access rules refused.
//
// Each idle connection holds at most one buffer-pool slot, for bytes the upstream sent while idle
// (a banner); more than a slot, or no free slot, closes it (closed_banner) rather than allocate.
// Long (about 800 lines) on purpose: take, refill, backoff, eviction, banners and the ledger all
// move the same per-destination state, and their invariants are read together; what stands apart
// (shared memory, the handler table, the stats reader) is already in memory.ts, owner.ts, stats.ts.

import type { Socket } from "bun";
import {
  NO_TELEMETRY,
  type Telemetry,
  type TelemetryInput,
  type UpstreamDestinationStats,
  type UpstreamPoolCounts,
} from "../admin/types.ts";
import { LIMITS } from "../limits.ts";
import type { Logger } from "../log.ts";
import { type BufferPool, EXHAUSTED } from "../pool/index.ts";
import { formatHostPort } from "../protocol/host-port.ts";
import { isSocketError, logUnexpected } from "../proxy/connection.ts";
import { connectAny, DialError, resolveHost } from "../proxy/dial.ts";
import {
  DEST_FULL,
  FIELD,
  GLOBAL_FULL,
  keyHashes,
  LEDGER_FIELDS,
  type LedgerField,
  SharedPoolState,
  type UpstreamPoolLedger,
} from "./memory.ts";
import { type UpstreamOwner, upstreamEvents } from "./owner.ts";

/** [server.pool], as the config has it. */
export interface UpstreamPoolSettings {
  readonly max_idle_per_dest: number;
  readonly max_total_idle: number;
  readonly idle_timeout_secs: number;
  readonly connect_timeout_ms: number;
}

export interface UpstreamPoolOptions {
  readonly settings: UpstreamPoolSettings;
  /** upstream.dns_timeout_ms: the pool resolves names as a client's dial does. */
  readonly dnsTimeoutMs: number;
  readonly buffers: BufferPool;
  readonly log: Logger;
  /** The shared memory (createUpstreamPoolMemory) and this Worker's index in it. */
  readonly memory: SharedArrayBuffer;
  readonly worker: number;
  /** The access rules' client-agnostic verdict on one resolved address of a destination. */
  readonly allowConnect: (host: string, port: number, address: string) => boolean;
  readonly telemetry?: Telemetry;
  /** Epoch milliseconds; tests drive it. Shared across Workers (the oldest idle is compared). */
  readonly now?: () => number;
  /** False: no timer and no doorbell listener; the caller drives tick() and service(). */
  readonly timers?: boolean;
}

/** A pooled connection handed to its Connection. */
export interface Handoff {
  readonly socket: Socket<UpstreamOwner>;
  /** What the upstream sent while idle, to be delivered to the client first; null when nothing. */
  readonly banner: Uint8Array | null;
  /** The address it was connected to, for the connection log. */
  readonly address: string;
}

type State = "connecting" | "idle" | "taken" | "closed";
type Closing = "expired" | "evicted" | "closed_by_upstream" | "closed_banner" | "closed_shutdown";

class Destination {
  readonly key: string;
  readonly host: string;
  readonly port: number;
  readonly hashes: [number, number];
  pinned = false;
  lastUsed = Number.NEGATIVE_INFINITY;
  oldest: Pooled | null = null; // this destination's idle list, oldest → freshest
  freshest: Pooled | null = null;
  idle = 0;
  pending = 0;
  inUse = 0;
  /** Refills wanted and not started yet (backoff, or waiting for room). */
  want = 0;
  hits = 0;
  misses = 0;
  created = 0;
  reused = 0;
  evicted = 0;
  expired = 0;
  dropped = 0;
  failures = 0;
  backoffUntil = 0;
  lastDroppedEvent = Number.NEGATIVE_INFINITY;
  lastEvictedEvent = Number.NEGATIVE_INFINITY;

  constructor(key: string, host: string, port: number) {
    this.key = key;
    this.host = host;
    this.port = port;
    this.hashes = keyHashes(key);
  }
}

/** One warm connection, and while it waits the owner of its socket's events. */
class Pooled implements UpstreamOwner {
  state: State = "connecting";
  socket: Socket<UpstreamOwner> | null = null;
  address = "";
  createdAt = 0;
  bannerSlot = -1;
  bannerBytes = 0;
  /** Why it must close once its connect completes (an event that came while connecting). */
  doomed: Closing | null = null;
  // Intrusive lists: the destination's (LIFO take) and the Worker's (oldest first: expiry, eviction).
  older: Pooled | null = null;
  newer: Pooled | null = null;
  olderAll: Pooled | null = null;
  newerAll: Pooled | null = null;
  readonly pool: UpstreamPool;
  readonly dest: Destination;
  readonly record: number;

  constructor(pool: UpstreamPool, dest: Destination, record: number) {
    this.pool = pool;
    this.dest = dest;
    this.record = record;
  }

  onUpstreamData(_upstream: Socket<UpstreamOwner>, chunk: Uint8Array): void {
    this.pool.idleData(this, chunk);
  }
  onUpstreamDrain(): void {}
  onUpstreamEnd(): void {
    this.pool.idleLost(this, null);
  }
  onUpstreamClosed(): void {
    this.pool.idleLost(this, null);
  }
  failed(error: Error): void {
    this.pool.idleLost(this, error);
  }
}

const EVENT_INTERVAL_MS = 1_000; // dropped_full / evicted events: the first per destination per second

export class UpstreamPool {
  private readonly settings: UpstreamPoolSettings;
  private readonly idleMs: number;
  private readonly tickMs: number;
  private readonly pinTarget: number;
  private readonly keysMax: number;
  private readonly dnsTimeoutMs: number;
  private readonly buffers: BufferPool;
  private readonly log: Logger;
  private readonly telemetry: Telemetry;
  private readonly allowConnect: UpstreamPoolOptions["allowConnect"];
  private readonly now: () => number;
  private readonly shared: SharedPoolState;
  private readonly worker: number;
  private readonly block: Float64Array;
  private readonly dests = new Map<string, Destination>(); // least recently asked first
  private readonly wanting = new Set<Destination>();
  private readonly pinned: Destination[] = [];
  private readonly attempts = new Set<Pooled>();
  private oldestAll: Pooled | null = null;
  private newestAll: Pooled | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private listening = false;
  private closed = false;

  constructor(options: UpstreamPoolOptions) {
    const { settings } = options;
    this.settings = settings;
    this.idleMs = settings.idle_timeout_secs * 1000;
    this.tickMs = Math.min(
      LIMITS.sweep_ms_max,
      Math.max(LIMITS.sweep_ms_min, Math.floor(this.idleMs / 8)),
    );
    this.dnsTimeoutMs = options.dnsTimeoutMs;
    this.buffers = options.buffers;
    this.log = options.log;
    this.telemetry = options.telemetry ?? NO_TELEMETRY;
    this.allowConnect = options.allowConnect;
    this.now = options.now ?? Date.now;
    this.worker = options.worker;
    this.shared = new SharedPoolState(options.memory, options.worker);
    this.block = this.shared.block(options.worker);
    // A forward target is kept warm by every Worker: each keeps its share of the one limit, the
    // shares summing to max_idle_per_dest exactly (so no Worker's top-up finds it full).
    const workers = this.shared.workers;
    this.pinTarget =
      Math.floor(settings.max_idle_per_dest / workers) +
      (options.worker < settings.max_idle_per_dest % workers ? 1 : 0);
    this.keysMax = Math.max(
      LIMITS.upstream_keys_min,
      LIMITS.upstream_keys_per_idle * settings.max_total_idle,
    );
    // A Worker restarted under the same index continues its ledger (counters stay monotonic);
    // the supervisor has zeroed the dead one's gauges.
    this.shared.publishOldest(this.worker, Number.POSITIVE_INFINITY);
    if (options.timers ?? true) {
      this.timer = setInterval(() => this.guard("tick", () => this.tick()), this.tickMs);
      this.listening = true;
      this.listen();
    }
  }

  // ── the dial stage's calls ─────────────────────────────────────────────────────────────────

  /**
   * The freshest valid idle connection to `key`, handed to `owner`, or null (a miss, counted).
   * `allowed`: when the access verdict depends on the address, whether the client may reach the
   * pooled connection's address; a refusal is a miss (the client's own dial then judges every
   * address) and the connection stays.
   */
  take(
    key: string,
    host: string,
    port: number,
    allowed: ((address: string) => boolean) | null,
    owner: UpstreamOwner,
  ): Handoff | null {
    const now = this.now();
    const dest = this.touch(key, host, port, now);
    let conn = dest.freshest;
    if (conn !== null && now - conn.createdAt >= this.idleMs) {
      // The freshest has expired, so every older one has: the sweep had not come round yet.
      while (dest.oldest !== null) this.closeIdle(dest.oldest, "expired");
      conn = null;
    }
    if (conn === null || (allowed !== null && !allowed(conn.address))) {
      dest.misses++;
      this.add(FIELD.pool_misses, 1);
      return null;
    }
    this.unlink(conn);
    conn.state = "taken";
    dest.hits++;
    dest.reused++;
    dest.inUse++;
    this.add(FIELD.pool_hits, 1);
    this.add(FIELD.total_reused, 1);
    this.add(FIELD.connections_in_use, 1);
    this.changeIdle(dest, -1);
    // Its replacement reuses its reservation, so it holds under the limits with no lock taken.
    if (!this.closed && now >= dest.backoffUntil) {
      this.connect(dest, conn.record);
    } else {
      this.shared.unreserve(conn.record);
      if (!this.closed) this.want(dest, 1, false);
    }
    const socket = conn.socket!;
    socket.data = owner; // from here every event of this socket reaches the Connection
    let banner: Uint8Array | null = null;
    if (conn.bannerSlot >= 0) {
      // A copy: the relay may hold what it cannot write yet, and the slot goes back now.
      banner = this.buffers.view(conn.bannerSlot).slice(0, conn.bannerBytes);
      this.releaseBanner(conn);
    }
    return { socket, banner, address: conn.address };
  }

  /** A miss whose client has connected on its own: one warm connection for the next asker. */
  dialed(key: string, host: string, port: number): void {
    if (this.closed) return;
    // touch() again: a slow dial may outlast idle_timeout_secs, and the key be forgotten meanwhile.
    this.want(this.touch(key, host, port, this.now()), 1);
  }

  /** A connection take() handed out has closed. */
  finished(key: string): void {
    this.add(FIELD.connections_in_use, -1);
    this.add(FIELD.finished, 1);
    const dest = this.dests.get(key);
    if (dest !== undefined) dest.inUse--;
  }

  /** Keeps `host:port` (a forward listener's target) warm from now on. */
  pin(host: string, port: number): void {
    const key = formatHostPort(host, port);
    const dest = this.touch(key, host, port, this.now());
    if (dest.pinned) return;
    dest.pinned = true;
    this.pinned.push(dest);
    this.wanting.delete(dest);
    this.fill(dest, this.now());
  }

  // ── stats ──────────────────────────────────────────────────────────────────────────────────

  /** This Worker's seed fields. */
  counts(): UpstreamPoolCounts {
    const block = this.block;
    return {
      total_idle: block[FIELD.total_idle],
      destinations: block[FIELD.destinations],
      total_created: block[FIELD.total_created],
      total_reused: block[FIELD.total_reused],
      pool_hits: block[FIELD.pool_hits],
      pool_misses: block[FIELD.pool_misses],
      dropped_full: block[FIELD.dropped_full],
      expired: block[FIELD.expired],
      evicted: block[FIELD.evicted],
      connections_in_use: block[FIELD.connections_in_use],
      pending_creates: block[FIELD.pending_creates],
    };
  }

  /** This Worker's whole ledger (the seed's fields and the closings that balance them). */
  ledger(): UpstreamPoolLedger {
    return Object.fromEntries(
      LEDGER_FIELDS.map((name) => [name, this.block[FIELD[name]]]),
    ) as UpstreamPoolLedger;
  }

  /** Per destination, for the destinations this Worker tracks now (asked for within
   *  idle_timeout_secs, pinned, or holding connections). */
  destinations(): UpstreamDestinationStats[] {
    const now = this.now();
    return [...this.dests.values()].map((dest) => ({
      destination: dest.key,
      hits: dest.hits,
      misses: dest.misses,
      created: dest.created,
      reused: dest.reused,
      evicted: dest.evicted,
      expired: dest.expired,
      dropped: dest.dropped,
      in_use: dest.inUse,
      idle: dest.idle,
      refill_failures: dest.failures,
      backoff_until_ms: dest.backoffUntil > now ? dest.backoffUntil : 0,
    }));
  }

  /** Banner bytes idle connections hold in buffer-pool slots now (at most one slot each). */
  bannerBytes(): number {
    let bytes = 0;
    for (let conn = this.oldestAll; conn !== null; conn = conn.newerAll) bytes += conn.bannerBytes;
    return bytes;
  }

  // ── housekeeping ───────────────────────────────────────────────────────────────────────────

  /** The pool's periodic work; the timer calls it, tests may call it with their clock. */
  tick(): void {
    if (this.closed) return;
    const now = this.now();
    while (this.oldestAll !== null && now - this.oldestAll.createdAt >= this.idleMs) {
      this.closeIdle(this.oldestAll, "expired");
    }
    this.service();
    for (const dest of this.pinned) this.fill(dest, now);
    this.forget(now);
  }

  /** Serves eviction requests from other Workers and retries the refills waiting for room. */
  service(): void {
    if (this.closed) return;
    const requests = this.shared.takeRequests(this.worker);
    let evicted = 0;
    const totalMax = this.settings.max_total_idle;
    while (evicted < requests && this.oldestAll !== null && this.shared.reserved() >= totalMax) {
      this.closeIdle(this.oldestAll, "evicted");
      evicted++;
    }
    if (evicted > 0) this.shared.ringWaiters();
    const now = this.now();
    for (const dest of [...this.wanting]) {
      if (!dest.pinned && now - dest.lastUsed >= this.idleMs) {
        dest.want = 0; // nobody asked within idle_timeout_secs: let it drain away
        this.wanting.delete(dest);
      } else {
        this.fill(dest, now);
      }
    }
  }

  /** Closes every idle connection, abandons pending connects, stops the timer. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    while (this.oldestAll !== null) this.closeIdle(this.oldestAll, "closed_shutdown");
    for (const attempt of this.attempts) this.abandon(attempt);
    this.attempts.clear();
    this.wanting.clear();
    this.shared.publishOldest(this.worker, Number.POSITIVE_INFINITY);
    if (this.listening) this.shared.ring(this.worker); // ends the doorbell listener
  }

  // ── refills ────────────────────────────────────────────────────────────────────────────────

  /** Asks for `more` refills of `dest`. What this Worker cannot hold (the destination is at
   *  max_idle_per_dest here already) is dropped and counted, unless `counted` is false (a retry). */
  private want(dest: Destination, more: number, counted = true): void {
    const room = this.settings.max_idle_per_dest - dest.idle - dest.pending - dest.want;
    const accepted = Math.max(0, Math.min(more, room));
    if (counted && accepted < more) this.dropped(dest, more - accepted);
    dest.want += accepted;
    this.fill(dest, this.now());
  }

  /** Starts the refills `dest` wants, then a pinned target's top-up, as far as backoff and the
   *  limits allow. During a failure streak one connect at a time probes the destination. */
  private fill(dest: Destination, now: number): void {
    if (this.closed) return;
    const ready = () => now >= dest.backoffUntil && (dest.failures === 0 || dest.pending === 0);
    while (dest.want > 0 && ready()) {
      const record = this.reserve(dest, true);
      if (record < 0) break;
      dest.want--;
      this.connect(dest, record);
    }
    while (dest.pinned && dest.idle + dest.pending < this.pinTarget && ready()) {
      const record = this.reserve(dest, false);
      if (record < 0) break;
      this.connect(dest, record);
    }
    if (dest.want > 0) this.wanting.add(dest);
    else this.wanting.delete(dest);
  }

  /** One reservation for `dest`, making room at the global limit by evicting the oldest idle
   *  connection anywhere; negative when none can be had now. At the destination's limit (across
   *  Workers) what it wanted is dropped, and counted when `counted`. */
  private reserve(dest: Destination, counted: boolean): number {
    const { max_idle_per_dest, max_total_idle } = this.settings;
    let record = this.shared.reserve(dest.hashes, max_idle_per_dest, max_total_idle);
    if (record === GLOBAL_FULL) {
      const owner = this.shared.oldestIdleWorker();
      if (owner === this.worker && this.oldestAll !== null) {
        this.closeIdle(this.oldestAll, "evicted");
        record = this.shared.reserve(dest.hashes, max_idle_per_dest, max_total_idle);
      } else if (owner >= 0) {
        // Its sockets live in that Worker: it evicts when its doorbell wakes it (or on its next
        // tick) and rings this one back, which retries then (service()).
        this.shared.requestEviction(owner, this.worker);
      }
    }
    if (record === DEST_FULL) {
      if (counted && dest.want > 0) this.dropped(dest, dest.want);
      dest.want = 0;
    }
    return record;
  }

  /** Refills of `dest` refused by max_idle_per_dest: counted, and reported once a second. */
  private dropped(dest: Destination, count: number): void {
    dest.dropped += count;
    this.add(FIELD.dropped_full, count);
    const max_idle_per_dest = this.settings.max_idle_per_dest;
    this.rateLimited(dest, "lastDroppedEvent", {
      kind: "upstream_pool_dropped_full",
      level: "info", // normal under a burst of misses; a steady stream says raise the limit
      message: `upstream pool: ${dest.key} is at max_idle_per_dest (${max_idle_per_dest})`,
      fields: { destination: dest.key, max_idle_per_dest, worker: this.worker },
    });
  }

  private connect(dest: Destination, record: number): void {
    const conn = new Pooled(this, dest, record);
    this.attempts.add(conn);
    this.changePending(dest, 1);
    void this.open(conn).catch((error: unknown) =>
      logUnexpected(this.log, error, { at: "upstream pool connect", target: dest.key }),
    );
  }

  /** Resolves, checks each address, connects within connect_timeout_ms. */
  private async open(conn: Pooled): Promise<void> {
    const { dest } = conn;
    const abandoned = () => conn.state !== "connecting";
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const resolved = await resolveHost(dest.host, this.dnsTimeoutMs);
      if (abandoned()) return;
      const addresses = resolved.filter((address) =>
        this.allowConnect(dest.host, dest.port, address),
      );
      if (addresses.length === 0) {
        this.failedAttempt(conn, "ACCESS_DENIED");
        return;
      }
      const connecting = connectAny(addresses, dest.port, conn, upstreamEvents, abandoned);
      const timeout = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), this.settings.connect_timeout_ms);
      });
      const connected = await Promise.race([connecting, timeout]);
      if (connected === null) {
        // A pending Bun.connect cannot be cancelled: whatever connects later is closed at once.
        connecting.then(
          (late) => late?.socket.end(),
          () => {},
        );
        if (!abandoned()) this.failedAttempt(conn, "ETIMEDOUT");
        return;
      }
      if (abandoned()) {
        connected.socket.end(); // the pool closed meanwhile
        return;
      }
      this.opened(conn, connected.socket, connected.address);
    } catch (error) {
      if (abandoned()) return;
      if (!(error instanceof DialError)) throw error;
      this.failedAttempt(conn, error.code);
    } finally {
      clearTimeout(timer);
    }
  }

  private opened(conn: Pooled, socket: Socket<UpstreamOwner>, address: string): void {
    const { dest } = conn;
    this.attempts.delete(conn);
    this.changePending(dest, -1);
    conn.socket = socket;
    conn.address = address;
    conn.createdAt = this.now();
    conn.state = "idle";
    dest.created++;
    this.add(FIELD.total_created, 1);
    this.link(conn);
    this.changeIdle(dest, 1);
    if (dest.failures > 0) {
      this.log.info("upstream pool: refills work again", {
        target: dest.key,
        failures: dest.failures,
      });
      this.telemetry.emit({
        kind: "upstream_pool_refill_failed",
        level: "info",
        message: `upstream pool: ${dest.key} recovered after ${dest.failures} failed refills`,
        fields: { destination: dest.key, failures: dest.failures, worker: this.worker },
      });
      dest.failures = 0;
      dest.backoffUntil = 0;
    }
    if (conn.doomed !== null) this.closeIdle(conn, conn.doomed);
  }

  private failedAttempt(conn: Pooled, code: string): void {
    const { dest } = conn;
    this.attempts.delete(conn);
    conn.state = "closed";
    this.releaseBanner(conn);
    this.changePending(dest, -1);
    this.shared.unreserve(conn.record);
    const denied = code === "ACCESS_DENIED";
    this.add(denied ? FIELD.refill_denied : FIELD.refill_failures, 1);
    dest.failures++;
    const backoffMs = Math.min(
      LIMITS.upstream_backoff_ms_max,
      LIMITS.upstream_backoff_ms_min * 2 ** Math.min(dest.failures - 1, 30),
    );
    dest.backoffUntil = this.now() + backoffMs;
    if (dest.failures === 1 && denied) {
      this.log.info("upstream pool: the access rules deny warm connects here; backing off", {
        target: dest.key,
        backoff_ms: backoffMs,
      });
    } else if (dest.failures === 1) {
      // Once per failure streak; the recovery is reported when a refill works again.
      this.log.warn("upstream pool: a refill failed; backing off", {
        target: dest.key,
        code,
        backoff_ms: backoffMs,
      });
      this.telemetry.emit({
        kind: "upstream_pool_refill_failed",
        level: "warn",
        message: `upstream pool: a warm connect to ${dest.key} failed (${code}); backing off`,
        fields: { destination: dest.key, code, backoff_ms: backoffMs, worker: this.worker },
      });
    }
    // Retried after the backoff while it is still asked for; a pinned target tops itself up.
    if (!dest.pinned) this.want(dest, 1, false);
  }

  private abandon(conn: Pooled): void {
    conn.state = "closed";
    this.releaseBanner(conn);
    this.changePending(conn.dest, -1);
    this.shared.unreserve(conn.record);
  }

  // ── idle connections' events ───────────────────────────────────────────────────────────────

  /** Bytes from an idle upstream (a banner): kept in one pool slot, in order. */
  idleData(conn: Pooled, chunk: Uint8Array): void {
    if (conn.state !== "idle" && conn.state !== "connecting") return;
    if (conn.bannerSlot < 0) {
      const slot = this.buffers.acquire();
      if (slot === EXHAUSTED) {
        this.lose(conn, "closed_banner"); // never allocate around the buffer pool's bound
        return;
      }
      conn.bannerSlot = slot;
    }
    if (conn.bannerBytes + chunk.length > this.buffers.slotBytes) {
      this.lose(conn, "closed_banner");
      return;
    }
    this.buffers.view(conn.bannerSlot).set(chunk, conn.bannerBytes);
    conn.bannerBytes += chunk.length;
  }

  /** The upstream sent FIN, reset or closed an idle connection: it leaves the pool now. */
  idleLost(conn: Pooled, error: Error | null): void {
    if (error !== null && !isSocketError(error)) {
      logUnexpected(this.log, error, { at: "upstream pool", target: conn.dest.key });
    }
    this.lose(conn, "closed_by_upstream");
  }

  private lose(conn: Pooled, reason: Closing): void {
    if (conn.state === "connecting") conn.doomed ??= reason;
    else if (conn.state === "idle") this.closeIdle(conn, reason);
  }

  private closeIdle(conn: Pooled, reason: Closing): void {
    if (conn.state !== "idle") return;
    const { dest } = conn;
    conn.state = "closed"; // first: end() may report the close synchronously
    this.unlink(conn);
    this.changeIdle(dest, -1);
    this.shared.unreserve(conn.record);
    this.releaseBanner(conn);
    this.add(FIELD[reason as LedgerField], 1);
    if (reason === "expired") dest.expired++;
    if (reason === "evicted") {
      dest.evicted++;
      this.rateLimited(dest, "lastEvictedEvent", {
        kind: "upstream_pool_evicted",
        level: "info",
        message: `upstream pool: max_total_idle (${this.settings.max_total_idle}) reached; evicted the oldest idle connection, to ${dest.key}`,
        fields: {
          destination: dest.key,
          max_total_idle: this.settings.max_total_idle,
          worker: this.worker,
        },
      });
    }
    conn.socket?.end();
  }

  private releaseBanner(conn: Pooled): void {
    if (conn.bannerSlot < 0) return;
    this.buffers.release(conn.bannerSlot);
    conn.bannerSlot = -1;
    conn.bannerBytes = 0;
  }

  // ── bookkeeping ────────────────────────────────────────────────────────────────────────────

  /** The destination for `key`, marked as asked for now and moved to the recent end. */
  private touch(key: string, host: string, port: number, now: number): Destination {
    let dest = this.dests.get(key);
    if (dest === undefined) dest = new Destination(key, host, port);
    else this.dests.delete(key);
    this.dests.set(key, dest);
    dest.lastUsed = now;
    return dest;
  }

  /** Drops destinations that hold nothing and were not asked for within idle_timeout_secs, and
   *  beyond keysMax the least recently asked that hold nothing: the map stays bounded. */
  private forget(now: number): void {
    let over = this.dests.size - this.keysMax;
    for (const dest of this.dests.values()) {
      const stale = now - dest.lastUsed >= this.idleMs;
      if (!stale && over <= 0) break; // the rest were asked for more recently
      if (dest.pinned || dest.idle + dest.pending + dest.inUse > 0 || this.wanting.has(dest)) {
        continue;
      }
      if (stale && now < dest.backoffUntil) continue; // keep the streak until its backoff ends
      this.dests.delete(dest.key);
      over--;
    }
  }

  private link(conn: Pooled): void {
    const dest = conn.dest;
    conn.older = dest.freshest;
    if (dest.freshest !== null) dest.freshest.newer = conn;
    else dest.oldest = conn;
    dest.freshest = conn;
    conn.olderAll = this.newestAll;
    if (this.newestAll !== null) this.newestAll.newerAll = conn;
    else {
      this.oldestAll = conn;
      this.shared.publishOldest(this.worker, conn.createdAt);
    }
    this.newestAll = conn;
  }

  private unlink(conn: Pooled): void {
    const dest = conn.dest;
    if (conn.older !== null) conn.older.newer = conn.newer;
    else dest.oldest = conn.newer;
    if (conn.newer !== null) conn.newer.older = conn.older;
    else dest.freshest = conn.older;
    if (conn.olderAll !== null) conn.olderAll.newerAll = conn.newerAll;
    else this.oldestAll = conn.newerAll;
    if (conn.newerAll !== null) conn.newerAll.olderAll = conn.olderAll;
    else this.newestAll = conn.olderAll;
    conn.older = conn.newer = conn.olderAll = conn.newerAll = null;
    this.shared.publishOldest(
      this.worker,
      this.oldestAll === null ? Number.POSITIVE_INFINITY : this.oldestAll.createdAt,
    );
  }

  private changeIdle(dest: Destination, delta: number): void {
    const before = dest.idle + dest.pending;
    dest.idle += delta;
    this.add(FIELD.total_idle, delta);
    this.holdingChanged(before, dest.idle + dest.pending);
  }

  private changePending(dest: Destination, delta: number): void {
    const before = dest.idle + dest.pending;
    dest.pending += delta;
    this.add(FIELD.pending_creates, delta);
    this.holdingChanged(before, dest.idle + dest.pending);
  }

  private holdingChanged(before: number, after: number): void {
    if (before === 0 && after > 0) this.add(FIELD.destinations, 1);
    else if (before > 0 && after === 0) this.add(FIELD.destinations, -1);
  }

  private add(field: number, delta: number): void {
    this.block[field] += delta;
  }

  private rateLimited(
    dest: Destination,
    stamp: "lastDroppedEvent" | "lastEvictedEvent",
    event: TelemetryInput,
  ): void {
    const now = this.now();
    if (now - dest[stamp] < EVENT_INTERVAL_MS) return;
    dest[stamp] = now;
    this.telemetry.emit(event);
  }

  /** Waits on this Worker's doorbell (Atomics.waitAsync): another Worker rang it to ask for an
   *  eviction or to say room was made. Re-armed after each ring until close(). */
  private listen(): void {
    if (this.closed) return;
    const { words, index } = this.shared.doorbell(this.worker);
    const waited = Atomics.waitAsync(words, index, 0);
    const rung = () => {
      if (this.closed) return;
      Atomics.store(words, index, 0); // before serving: a ring during service() is not lost
      this.guard("doorbell", () => this.service());
      this.listen();
    };
    if (waited.async) void waited.value.then(rung);
    else queueMicrotask(rung);
  }

  private guard(at: string, work: () => void): void {
    try {
      work();
    } catch (error) {
      logUnexpected(this.log, error, { at: `upstream pool ${at}` });
    }
  }
}
