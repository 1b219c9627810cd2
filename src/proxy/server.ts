// One thread's proxy: the SOCKS5, HTTP CONNECT and forward listeners (reusePort, so every Worker binds the same
// ports), accepting a client into the pipeline (connection.ts), the deadline sweeper, this Worker's
// upstream warm-connection pool (src/upstream/, when server.pool.enabled) and graceful close. Not process supervision (supervisor.ts) and not config parsing (src/config/).

import type { Socket, TCPSocketListener, TCPSocketListenOptions } from "bun";
import {
  type ConnectionInfo,
  NO_TELEMETRY,
  type Telemetry,
  type UpstreamDestinationStats,
  type UpstreamPoolCounts,
} from "../admin/types.ts";
import { type Config, handshakeSlotsPerWorker } from "../config/schema.ts";
import { LIMITS } from "../limits.ts";
import type { Logger } from "../log.ts";
import { AccessPolicy } from "../policy/access.ts";
import type { BufferPool, PoolStats } from "../pool/index.ts";
import { parseHostPort } from "../protocol/host-port.ts";
import { WorkerCounters } from "../stats/counters.ts";
import {
  AutoFront,
  type DialRequest,
  type FrontProtocol,
  HttpConnectFront,
  Socks5Handshake,
} from "../protocol/index.ts";
import { createUpstreamPoolMemory } from "../upstream/memory.ts";
import { UpstreamPool } from "../upstream/pool.ts";
import { Admission } from "./admission.ts";
import { type ClientRefusal, ClientTable, createClientTableMemory } from "./clients.ts";
import {
  type Clock,
  Connection,
  type ConnectionContext,
  clientEvents,
  logUnexpected,
} from "./connection.ts";
import { passwordCheck } from "./credentials.ts";
import type { PasswordCheck } from "../protocol/front.ts";

export interface ListenerInfo {
  kind: "socks" | "forward" | "http";
  /** The listen address as configured (port 0 stays 0); access rules match `listeners` on it. */
  listen: string;
  host: string;
  port: number;
  target?: string;
}

export interface ProxyStats {
  /** Connections open on this thread. */
  connections_open: number;
  /** Connections accepted on this thread since start. */
  connections_total: number;
  /** Connections refused at accept because connections_max was reached (all threads count). */
  connections_rejected: number;
  /** Connections refused at accept by a per-client limit, on this thread, by reason. */
  clients_refused: Record<ClientRefusal, number>;
  /** Relay bytes held in pool slots (and chunks held in place) on this thread. */
  backlog_bytes: number;
  pool: PoolStats;
  /** This Worker's upstream warm-connection pool (the seed's fields); null when it is off. */
  upstream_pool: UpstreamPoolCounts | null;
}

/** What the admin API asks a Worker for (src/admin/views.ts, takeSnapshots): what only the Worker
 *  knows. */
export interface ProxySnapshot {
  connections_open: number;
  backlog_bytes: number;
  pool: PoolStats;
  /** Up to the number asked for of this Worker's open connections, oldest first. */
  connections: ConnectionInfo[];
  /** This Worker's upstream pool, per destination ([] while it has none). */
  upstream_destinations: UpstreamDestinationStats[];
}

export interface ProxyServer {
  readonly listeners: readonly ListenerInfo[];
  stats(): ProxyStats;
  /** This Worker's lists and pool counts for the admin API, with up to `connections` entries. */
  snapshot(connections: number): ProxySnapshot;
  /** This Worker's upstream pool, per destination; null when server.pool is off. */
  readonly upstreamPool: { destinations(): UpstreamDestinationStats[] } | null;
  /** Stops accepting, lets open connections finish for up to `graceMs`, then closes the rest. */
  close(graceMs: number): Promise<void>;
}

export interface ProxyOptions {
  config: Config;
  pool: BufferPool;
  log: Logger;
  /** Open connections across every Worker (shared memory, see admission.ts); per-thread when absent. */
  openConnections?: Int32Array;
  /** The per-client table shared by every Worker (createClientTableMemory); per-thread when absent. */
  clients?: SharedArrayBuffer;
  /** This Worker's index, so its own connections are counted apart (admission.ts). */
  worker?: number;
  /** This Worker's block of the shared counters (src/stats/counters.ts); private when absent. */
  counters?: WorkerCounters;
  /** The upstream pool's memory shared by every Worker (createUpstreamPoolMemory); made for this
   *  thread alone when absent. Unused when server.pool is off. */
  upstreamPool?: SharedArrayBuffer;
  /** Where operational events go (the admin API's ring); nowhere when absent. */
  telemetry?: Telemetry;
}

const CLIENT_REFUSAL_MESSAGES: Record<ClientRefusal, string> = {
  client_connections: "connection refused: clients.connections_max reached for this client",
  client_rate: "connection refused: clients.new_per_second exceeded by this client",
  client_blocked: "connection refused: client blocked after too many failed logins",
};

const noFront = (): null => null; // a forward listener relays from the first byte

/** Sweeps often enough to honour the shortest configured timeout within about a quarter of it. */
function sweepInterval(config: Config): number {
  const timeouts = [
    config.socks.handshake_timeout_ms,
    config.upstream.connect_timeout_ms,
    config.relay.fin_timeout_ms,
    config.relay.idle_timeout_ms || Number.POSITIVE_INFINITY,
    config.udp.enabled ? config.udp.idle_timeout_ms : Number.POSITIVE_INFINITY,
  ];
  const quarter = Math.floor(Math.min(...timeouts) / 4);
  return Math.min(LIMITS.sweep_ms_max, Math.max(LIMITS.sweep_ms_min, quarter));
}

function addressOf(text: string, what: string): { host: string; port: number } {
  const parsed = parseHostPort(text);
  if (parsed === null) throw new Error(`${what}: expected HOST:PORT, got ${JSON.stringify(text)}`);
  return parsed;
}

export async function startProxy(options: ProxyOptions): Promise<ProxyServer> {
  const { config, pool, log } = options;
  const counters = options.counters ?? WorkerCounters.detached();
  const telemetry = options.telemetry ?? NO_TELEMETRY;
  if (pool.slotBytes < LIMITS.handshake_message_bytes_max) {
    throw new Error(
      `slot_bytes ${pool.slotBytes} cannot hold a handshake message (${LIMITS.handshake_message_bytes_max})`,
    );
  }
  const admission = new Admission(
    options.openConnections ?? new Int32Array(new SharedArrayBuffer(4)),
    config.server.connections_max,
    options.openConnections ? options.worker : undefined,
  );
  const clients = new ClientTable(
    options.clients ?? createClientTableMemory(config.server.connections_max),
    config.clients,
    Date.now,
    (config.socks.enabled && config.socks.auth === "password") ||
      config.http.some((listener) => listener.auth === "password"),
  );
  const connections = new Set<Connection>();
  const clock: Clock = { now: performance.now() };
  let total = 0;
  let closing = false;
  let onEmpty: (() => void) | null = null;

  /** Logs a per-client refusal: the first of each kind, then every 1,000th, with the counts. */
  function refusedPerClient(reason: ClientRefusal, host: string | undefined): void {
    counters.refused(reason);
    const count = clients.refused[reason];
    if (count !== 1 && count % 1000 !== 0) return;
    log.warn(CLIENT_REFUSAL_MESSAGES[reason], { client: host, reason, refused: count });
  }

  /** A client refused under connections_max: counted; logged on the 1st and every 1000th; an
   *  event for the admin API (the telemetry passes the first per second). */
  function refusedAtMax(): void {
    counters.refused("connections_max");
    telemetry.emit({
      kind: "connections_max_reached",
      level: "warn",
      message: "connection refused: connections_max reached",
      fields: { connections_max: config.server.connections_max, rejected: admission.refused },
    });
    if (admission.refused === 1 || admission.refused % 1000 === 0) {
      log.warn("connection refused: connections_max reached", {
        connections_max: config.server.connections_max,
        rejected: admission.refused,
      });
    }
  }

  /** Accepts a client into the pipeline under connections_max, or closes it at once. */
  function accept(
    socket: Socket<Connection | undefined>,
    listener: ListenerInfo,
    front: () => FrontProtocol | null,
    forwardTarget?: DialRequest,
  ): void {
    const host = socket.remoteAddress;
    const perClient = clients.enabled ? clients.admit(host) : null;
    if (perClient !== null) {
      refusedPerClient(perClient, host);
      socket.end();
      return;
    }
    let connection: Connection | null;
    try {
      connection = closing
        ? null
        : admission.admit(
            () => new Connection(ctx, socket as Socket<Connection>, listener, front()),
          );
    } catch (error) {
      logUnexpected(log, error, { at: "accept", listener: listener.listen });
      if (clients.enabled) clients.release(host);
      socket.end();
      return;
    }
    if (connection === null) {
      if (clients.enabled) clients.release(host);
      if (!closing) refusedAtMax();
      socket.end();
      return;
    }
    total++;
    counters.opened(connection.kindIndex);
    socket.data = connection; // replaces the listener's shared data object (a Bun quirk)
    connections.add(connection);
    connection.start(forwardTarget);
  }

  const listeners: TCPSocketListener<Connection | undefined>[] = [];
  const info: ListenerInfo[] = [];
  const listen = (
    kind: ListenerInfo["kind"],
    address: string,
    open: (socket: Socket<Connection | undefined>, listener: ListenerInfo) => void,
    target?: string,
  ) => {
    const { host, port } = addressOf(address, `${kind} listen`);
    const listenerInfo: ListenerInfo = {
      kind,
      listen: address,
      host,
      port,
      ...(target === undefined ? {} : { target }),
    };
    // bun-types 1.4.5 declares reusePort on connect options only; Bun.listen honours it.
    const listenOptions: TCPSocketListenOptions<Connection | undefined> & { reusePort: boolean } = {
      hostname: host,
      port,
      reusePort: true, // every Worker binds the same port; the kernel spreads the connections
      allowHalfOpen: true, // a client's FIN is passed on, not treated as the end of the connection
      socket: { ...clientEvents, open: (socket) => open(socket, listenerInfo) },
    };
    const listener = Bun.listen<Connection | undefined>(listenOptions);
    listenerInfo.port = listener.port; // the bound port, when the config said 0
    listeners.push(listener);
    info.push(listenerInfo);
  };

  // One password check for every listener with auth: the same users, the same cache of verified
  // hashes and the same bound on checks in flight (credentials.ts).
  const usersCheck = passwordCheck(config.socks.users);
  const checkFor = (auth: "none" | "password"): PasswordCheck | null =>
    auth === "password" ? usersCheck : null;
  // An HTTP head waits in one pool slot while split (PartialMessage), so it must fit one.
  const headBytesMax = Math.min(pool.slotBytes, LIMITS.http_head_bytes_max);
  try {
    if (config.socks.enabled) {
      const check = checkFor(config.socks.auth);
      const udp = config.udp.enabled; // UDP ASSOCIATE served, else answered 07
      const socksFront = () => new Socks5Handshake(check, { udp });
      const httpFront = () => new HttpConnectFront(check, headBytesMax);
      const front =
        config.socks.protocol === "auto" ? () => new AutoFront(socksFront, httpFront) : socksFront;
      listen("socks", config.socks.listen, (socket, listener) => accept(socket, listener, front));
    }
    for (const http of config.http) {
      const check = checkFor(http.auth);
      const httpFront = () => new HttpConnectFront(check, headBytesMax);
      listen("http", http.listen, (socket, listener) => accept(socket, listener, httpFront));
    }
    for (const forward of config.forward) {
      const target = addressOf(forward.target, "forward target");
      listen(
        "forward",
        forward.listen,
        (socket, listener) => accept(socket, listener, noFront, target),
        forward.target,
      );
    }
  } catch (error) {
    for (const listener of listeners) listener.stop(true);
    throw error;
  }

  // Made once the listeners are bound; accept() runs only on later events, so it sees it set.
  // This proxy's own listeners (bound ports known now) are denied as destinations.
  // This proxy's own listeners and its admin API (bound ports known by now) are denied as
  // destinations: through the proxy, a client would otherwise reach them as a local caller.
  const admin = config.admin.listen === "off" ? null : parseHostPort(config.admin.listen);
  const access = new AccessPolicy(config.access, admin === null ? info : [...info, admin]);
  const poolSettings = config.server.pool;
  const upstreamPool = poolSettings.enabled
    ? new UpstreamPool({
        settings: poolSettings,
        dnsTimeoutMs: config.upstream.dns_timeout_ms,
        buffers: pool,
        log,
        memory: options.upstreamPool ?? createUpstreamPoolMemory(1, poolSettings.max_total_idle),
        worker: options.upstreamPool ? (options.worker ?? 0) : 0,
        allowConnect: (host, port, address) => access.allowsWarmConnect(host, port, address),
        telemetry: options.telemetry ?? NO_TELEMETRY,
      })
    : null;
  const ctx: ConnectionContext = {
    config,
    pool,
    log,
    clock,
    access,
    handshakeSlots: { held: 0, max: handshakeSlotsPerWorker(config) },
    udpSlots: { held: 0, max: handshakeSlotsPerWorker(config) }, // the same share, counted apart
    clients,
    counters,
    worker: options.worker ?? 0,
    forget(connection) {
      if (connections.delete(connection)) {
        admission.leave();
        if (clients.enabled) clients.release(connection.clientHost);
      }
      if (connections.size === 0) onEmpty?.();
    },
    ...(upstreamPool === null ? {} : { upstreamPool }),
  };
  // A forward listener's target is known from the start: keep it warm from now on.
  if (upstreamPool !== null) {
    for (const forward of config.forward) {
      const target = addressOf(forward.target, "forward target");
      upstreamPool.pin(target.host, target.port);
    }
  }

  const idleMs = config.relay.idle_timeout_ms;
  const sweepMs = sweepInterval(config);
  // lastActivity is stamped with the coarse clock, up to one sweep behind real time: allowing one
  // sweep of margin makes an idle timeout late by at most two sweeps, and never early.
  const idleAfterMs = idleMs > 0 ? idleMs + sweepMs : 0;
  // Buffer-pool exhaustion is noticed here, by the count moving between sweeps, rather than on the
  // acquire path: the hot path pays nothing, and an event is at most one sweep late.
  let exhaustedSeen = pool.stats().exhausted;
  const sweeper = setInterval(() => {
    const now = performance.now();
    clock.now = now;
    for (const connection of connections) connection.sweep(now, idleAfterMs);
    const exhausted = pool.stats().exhausted;
    if (exhausted !== exhaustedSeen) {
      telemetry.emit({
        kind: "buffer_pool_exhausted",
        level: "warn",
        message: "buffer pool exhausted: readers wait for free slots",
        fields: { exhausted: exhausted - exhaustedSeen, slots: pool.slots },
      });
      exhaustedSeen = exhausted;
    }
  }, sweepMs);

  return {
    listeners: info,
    upstreamPool,
    stats() {
      let backlog = 0;
      for (const connection of connections) backlog += connection.backlogBytes();
      return {
        connections_open: connections.size,
        connections_total: total,
        connections_rejected: admission.refused,
        clients_refused: { ...clients.refused },
        backlog_bytes: backlog,
        pool: pool.stats(),
        upstream_pool: upstreamPool?.counts() ?? null,
      };
    },
    snapshot(wanted) {
      const now = performance.now();
      let backlog = 0;
      const list: ConnectionInfo[] = [];
      for (const connection of connections) {
        backlog += connection.backlogBytes();
        if (list.length < wanted) list.push(connection.info(now)); // a Set iterates oldest first
      }
      return {
        connections_open: connections.size,
        backlog_bytes: backlog,
        pool: pool.stats(),
        connections: list,
        upstream_destinations: upstreamPool?.destinations() ?? [],
      };
    },
    async close(graceMs) {
      closing = true;
      for (const listener of listeners) listener.stop(false); // stop accepting; keep open connections
      upstreamPool?.close(); // idle warm connections serve no one now
      if (connections.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, graceMs);
          onEmpty = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      for (const connection of [...connections]) connection.close("shutdown");
      clearInterval(sweeper);
      pool.flush();
    },
  };
}
