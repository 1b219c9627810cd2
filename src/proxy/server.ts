// One thread's proxy: the SOCKS5, HTTP CONNECT and forward listeners (reusePort, so every Worker binds the same
// ports), accepting a client into the pipeline (connection.ts), the deadline sweeper, this Worker's
// upstream warm-connection pool (src/upstream/, when server.pool.enabled), a reload's switch to a
// new config (prepareReload) and graceful close. Not process supervision (supervisor.ts) and not config parsing (src/config/).

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
import { type Network, parseNetwork } from "../policy/network.ts";
import type { BufferPool, PoolStats } from "../pool/index.ts";
import { formatHostPort, parseHostPort } from "../protocol/host-port.ts";
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
  type ProxyRefusal,
} from "./connection.ts";
import { passwordCheck } from "./credentials.ts";
import { describeListenFailure } from "../port-probe.ts";
import type { PasswordCheck } from "../protocol/front.ts";

export interface ListenerInfo {
  kind: "socks" | "forward" | "http";
  /** The listen address as configured (port 0 stays 0); access rules match `listeners` on it. */
  listen: string;
  host: string;
  port: number;
  target?: string;
  /** Connections start with a PROXY protocol header (proxy_protocol); a reload that keeps the
   *  listener may change it, for the connections accepted after. */
  proxyProtocol?: boolean;
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
  /** During close(): ends the grace period now, so every open connection is closed at once. */
  closeNow(): void;
  /** A reload's first phase: binds the listeners `next` adds (throws, having bound nothing, when
   *  one cannot be bound). Nothing else changes until commit(); abort() unbinds what it bound. */
  prepareReload(next: Config): PreparedReload;
}

/** A reload bound and ready to apply (ProxyServer.prepareReload). */
export interface PreparedReload {
  /** The listeners as they will be after commit (new ones with their bound ports). */
  readonly listeners: readonly ListenerInfo[];
  /** New connections get the new config; removed listeners stop accepting (their open
   *  connections finish under the config they started with). */
  commit(): void;
  abort(): void;
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

const PROXY_REFUSAL_MESSAGES: Record<ProxyRefusal, string> = {
  untrusted_proxy:
    "connection refused: a PROXY header is expected from server.trusted_proxies only",
  bad_proxy_header: "connection refused: malformed PROXY header",
  no_proxy_header: "connection refused: no PROXY header within handshake_timeout_ms",
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

/** The access rules, with this proxy's own listeners and its admin API denied as destinations. */
function accessPolicyFor(config: Config, listening: readonly ListenerInfo[]): AccessPolicy {
  const admin = config.admin.listen === "off" ? null : parseHostPort(config.admin.listen);
  return new AccessPolicy(config.access, admin === null ? listening : [...listening, admin]);
}

/** Whether any listener asks for a password: only then can failed logins block a client. */
function loginsPossible(config: Config): boolean {
  return (
    (config.socks.enabled && config.socks.auth === "password") ||
    config.http.some((listener) => listener.auth === "password")
  );
}

function addressOf(text: string, what: string): { host: string; port: number } {
  const parsed = parseHostPort(text);
  if (parsed === null) throw new Error(`${what}: expected HOST:PORT, got ${JSON.stringify(text)}`);
  return parsed;
}

export async function startProxy(options: ProxyOptions): Promise<ProxyServer> {
  const { pool, log } = options;
  let config = options.config; // replaced by a reload (commit): read by accept() at each client
  const counters = options.counters ?? WorkerCounters.detached();
  const telemetry = options.telemetry ?? NO_TELEMETRY;
  if (pool.slotBytes < LIMITS.handshake_message_bytes_max) {
    throw new Error(
      `slot_bytes ${pool.slotBytes} cannot hold a handshake message (${LIMITS.handshake_message_bytes_max})`,
    );
  }
  const openWords = options.openConnections ?? new Int32Array(new SharedArrayBuffer(4));
  let admission = new Admission(
    openWords,
    config.server.connections_max,
    options.openConnections ? options.worker : undefined,
  );
  let clients = new ClientTable(
    options.clients ?? createClientTableMemory(config.server.connections_max),
    config.clients,
    Date.now,
    loginsPossible(config),
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

  /** A connection a proxy_protocol listener refused (connection.ts): a warning on the 1st of each
   *  reason and every 1000th (its own connection line says the rest), and an event for the admin
   *  API: a balancer missing from server.trusted_proxies, or one not sending the header, shows. */
  const proxyRefusals: Record<ProxyRefusal, number> = {
    untrusted_proxy: 0,
    bad_proxy_header: 0,
    no_proxy_header: 0,
  };
  function proxyRefused(reason: ProxyRefusal, peer: string | undefined): void {
    const count = ++proxyRefusals[reason];
    const message = PROXY_REFUSAL_MESSAGES[reason];
    telemetry.emit({
      kind: "proxy_header_refused",
      level: "warn",
      message,
      fields: { reason, peer: peer ?? "unknown", refused: count },
    });
    if (count === 1 || count % 1000 === 0) log.warn(message, { peer, reason, refused: count });
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
  /** The access log's line for a client refused at accept, like every connection's last line
   *  (the warnings above are rate-limited summaries; this is per connection). */
  function refusedLine(
    socket: Socket<Connection | undefined>,
    listener: ListenerInfo,
    reason: ClientRefusal | "connections_max" | "shutdown",
  ): void {
    const host = socket.remoteAddress;
    log.info("connection", {
      kind: listener.kind,
      listener: listener.listen,
      client: host ? formatHostPort(host, socket.remotePort) : "unknown",
      bytes_up: 0,
      bytes_down: 0,
      duration_ms: 0,
      outcome: reason === "shutdown" ? "shutdown" : "limit",
      reason,
    });
  }

  function accept(
    socket: Socket<Connection | undefined>,
    listener: ListenerInfo,
    front: () => FrontProtocol | null,
    forwardTarget?: DialRequest,
  ): void {
    const host = socket.remoteAddress;
    // Behind a PROXY header the peer is the balancer: the client's place is taken once the header
    // names it (Connection.proxyHeader, through ctx.admitClient).
    const perClientNow = clients.enabled && listener.proxyProtocol !== true;
    const perClient = perClientNow ? clients.admit(host) : null;
    if (perClient !== null) {
      refusedPerClient(perClient, host);
      refusedLine(socket, listener, perClient);
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
      if (perClientNow) clients.release(host);
      socket.end();
      return;
    }
    if (connection === null) {
      if (perClientNow) clients.release(host);
      if (!closing) refusedAtMax();
      refusedLine(socket, listener, closing ? "shutdown" : "connections_max");
      socket.end();
      return;
    }
    total++;
    counters.opened(connection.kindIndex);
    socket.data = connection; // replaces the listener's shared data object (a Bun quirk)
    connections.add(connection);
    connection.start(forwardTarget);
  }

  // One password check for every listener with auth: the same users, the same cache of verified
  // hashes and the same bound on checks in flight (credentials.ts). A reload replaces it, and the
  // fronts below read it (and `config`) at each accept, so new handshakes get the new users.
  let usersCheck: PasswordCheck = passwordCheck(config.socks.users);
  const checkFor = (auth: "none" | "password"): PasswordCheck | null =>
    auth === "password" ? usersCheck : null;
  // An HTTP head waits in one pool slot while split (PartialMessage), so it must fit one.
  const headBytesMax = Math.min(pool.slotBytes, LIMITS.http_head_bytes_max);
  const socksFront = () =>
    new Socks5Handshake(checkFor(config.socks.auth), { udp: config.udp.enabled });
  const httpFrontFor = (auth: () => "none" | "password") => () =>
    new HttpConnectFront(checkFor(auth()), headBytesMax);
  /** The SOCKS listener's front: SOCKS5, or either protocol by the first byte ("auto"). */
  const socksListenerFront = () =>
    config.socks.protocol === "auto"
      ? new AutoFront(
          socksFront,
          httpFrontFor(() => config.socks.auth),
        )
      : socksFront();
  /** Each [[http]] listener's auth, which a reload that keeps the listener may change. */
  const httpAuth = new Map<ListenerInfo, { auth: "none" | "password" }>();
  /** Binds one listener of the config (at start, or one a reload adds). */
  const bind = (
    kind: ListenerInfo["kind"],
    address: string,
    target?: string,
    auth: "none" | "password" = "none",
    proxyProtocol = false,
  ) => {
    bindListener(kind, address, target, auth);
    info.at(-1)!.proxyProtocol = proxyProtocol;
  };
  const bindListener = (
    kind: ListenerInfo["kind"],
    address: string,
    target: string | undefined,
    auth: "none" | "password",
  ) => {
    if (kind === "socks") {
      listen("socks", address, (socket, listener) => accept(socket, listener, socksListenerFront));
    } else if (kind === "http") {
      const holder = { auth };
      const front = httpFrontFor(() => holder.auth);
      listen("http", address, (socket, listener) => accept(socket, listener, front));
      httpAuth.set(info.at(-1)!, holder);
    } else {
      const to = addressOf(target!, "forward target");
      listen(
        "forward",
        address,
        (socket, listener) => accept(socket, listener, noFront, to),
        target,
      );
    }
  };
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

  try {
    if (config.socks.enabled) {
      bind("socks", config.socks.listen, undefined, "none", config.socks.proxy_protocol);
    }
    for (const http of config.http) {
      bind("http", http.listen, undefined, http.auth, http.proxy_protocol === true);
    }
    for (const forward of config.forward) {
      bind("forward", forward.listen, forward.target, "none", forward.proxy_protocol === true);
    }
  } catch (error) {
    for (const listener of listeners) listener.stop(true);
    throw error;
  }

  // Made once the listeners are bound; accept() runs only on later events, so it sees it set.
  // This proxy's own listeners and its admin API (bound ports known by now) are denied as
  // destinations: through the proxy, a client would otherwise reach them as a local caller.
  let access = accessPolicyFor(config, info);
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
  /** Called once per closed connection; `table` is the client table it was admitted under. */
  const forgetter = (table: ClientTable) => (connection: Connection) => {
    if (connections.delete(connection)) {
      admission.leave(); // any generation's Admission: they share the same words
      if (table.enabled && connection.admitted) table.release(connection.clientHost);
    }
    if (connections.size === 0) onEmpty?.();
  };
  /** Per-client admission for a client a PROXY header named, under `table` (its generation's). */
  const admitter =
    (table: ClientTable) =>
    (host: string | undefined): ClientRefusal | null => {
      if (!table.enabled) return null;
      const refusal = table.admit(host);
      if (refusal !== null) refusedPerClient(refusal, host);
      return refusal;
    };
  const networksOf = (texts: readonly string[]): Network[] =>
    texts.map((text) => parseNetwork(text)!); // the schema checked each one
  // One object for every generation, so handshakes of old and new connections share one bound.
  const handshakeSlots = { held: 0, max: handshakeSlotsPerWorker(config) };
  const udpSlots = { held: 0, max: handshakeSlotsPerWorker(config) };
  let ctx: ConnectionContext = {
    config,
    pool,
    log,
    clock,
    access,
    handshakeSlots,
    udpSlots, // the same share as handshakes, counted apart
    clients,
    counters,
    worker: options.worker ?? 0,
    forget: forgetter(clients),
    ...(upstreamPool === null ? {} : { upstreamPool }),
    trustedProxies: networksOf(config.server.trusted_proxies),
    admitClient: admitter(clients),
    proxyRefused,
  };
  // A forward listener's target is known from the start: keep it warm from now on.
  if (upstreamPool !== null) {
    for (const forward of config.forward) {
      const target = addressOf(forward.target, "forward target");
      upstreamPool.pin(target.host, target.port);
    }
  }

  let sweepMs = sweepInterval(config);
  // lastActivity is stamped with the coarse clock, up to one sweep behind real time: allowing one
  // sweep of margin makes an idle timeout late by at most two sweeps, and never early.
  const idleAfter = (idleMs: number) => (idleMs > 0 ? idleMs + sweepMs : 0);
  let idleAfterMs = idleAfter(config.relay.idle_timeout_ms);
  // A connection opened before a reload keeps the idle timeout it started with (set at the reload
  // for every connection open then); one opened since has no entry and uses idleAfterMs.
  const idleAfterBefore = new WeakMap<Connection, number>();
  // Buffer-pool exhaustion is noticed here, by the count moving between sweeps, rather than on the
  // acquire path: the hot path pays nothing, and an event is at most one sweep late.
  let exhaustedSeen = pool.stats().exhausted;
  const sweep = () => {
    const now = performance.now();
    clock.now = now;
    for (const connection of connections) {
      connection.sweep(now, idleAfterBefore.get(connection) ?? idleAfterMs);
    }
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
  };
  let sweeper = setInterval(sweep, sweepMs);

  // ── reload (SIGHUP): new listeners first, then one switch of the context ─────────────────────
  // Listeners are matched by kind, bound address and target: an unchanged one keeps its socket
  // (its accept queue is never closed); a changed one is a new listener, bound before the old one
  // stops (reusePort lets both hold the port meanwhile). accept() reads `ctx`, `config`,
  // `admission` and `clients` at each client, so the switch is a few assignments on this thread;
  // an open connection keeps the ctx it was made with, and with it its config, rules and table.
  function prepareReload(next: Config): PreparedReload {
    if (closing) throw new Error("stopping: no reload");
    type Wanted = {
      kind: ListenerInfo["kind"];
      listen: string;
      target?: string;
      auth?: "none" | "password";
      proxyProtocol: boolean;
    };
    const wanted: Wanted[] = [
      ...(next.socks.enabled
        ? [
            {
              kind: "socks" as const,
              listen: next.socks.listen,
              proxyProtocol: next.socks.proxy_protocol,
            },
          ]
        : []),
      ...next.http.map((http) => ({
        kind: "http" as const,
        listen: http.listen,
        auth: http.auth,
        proxyProtocol: http.proxy_protocol === true,
      })),
      ...next.forward.map((forward) => ({
        kind: "forward" as const,
        listen: forward.listen,
        target: forward.target,
        proxyProtocol: forward.proxy_protocol === true,
      })),
    ];
    const boundBefore = listeners.length;
    const order: number[] = []; // indexes into listeners/info, in `wanted` order
    try {
      for (const entry of wanted) {
        const { host, port } = addressOf(entry.listen, `${entry.kind} listen`);
        const kept = info.findIndex(
          (listener, i) =>
            i < boundBefore &&
            !order.includes(i) &&
            listener.kind === entry.kind &&
            listener.host === host &&
            listener.port === port &&
            listener.target === entry.target,
        );
        if (kept >= 0) {
          order.push(kept);
          continue;
        }
        try {
          bind(entry.kind, entry.listen, entry.target, entry.auth, entry.proxyProtocol);
        } catch (error) {
          throw new Error(describeListenFailure(`${entry.kind} listen`, host, port, error));
        }
        order.push(listeners.length - 1);
      }
    } catch (error) {
      unbindFrom(boundBefore);
      throw error;
    }
    const after = order.map((i) => info[i]!);
    let settled = false;
    return {
      listeners: after,
      abort() {
        if (settled) return;
        settled = true;
        unbindFrom(boundBefore);
      },
      commit() {
        if (settled) return;
        settled = true;
        const keptListeners = order.map((i) => listeners[i]!);
        listeners.forEach((listener, i) => {
          if (!order.includes(i)) listener.stop(false); // stops accepting; its connections go on
        });
        listeners.splice(0, listeners.length, ...keptListeners);
        info.splice(0, info.length, ...after);
        // A kept [[http]] listener takes the new auth; a stopped one is forgotten. Every kept
        // listener takes the new proxy_protocol (read at each accept).
        wanted.forEach((entry, i) => {
          const holder = httpAuth.get(after[i]!);
          if (holder !== undefined && entry.auth !== undefined) holder.auth = entry.auth;
          after[i]!.proxyProtocol = entry.proxyProtocol;
        });
        for (const listener of httpAuth.keys())
          if (!after.includes(listener)) httpAuth.delete(listener);
        applyConfig(next);
      },
    };
  }

  /** Unbinds the listeners from index `start` on (bound by a reload that did not go through); a
   *  client one of them accepted meanwhile finishes. */
  function unbindFrom(start: number): void {
    for (const listener of listeners.splice(start)) listener.stop(false);
    info.splice(start);
  }

  function applyConfig(next: Config): void {
    config = next;
    usersCheck = passwordCheck(next.socks.users);
    const refusedAtMaxBefore = admission.refused;
    admission = new Admission(
      openWords,
      next.server.connections_max,
      options.openConnections ? options.worker : undefined,
    );
    admission.refused = refusedAtMaxBefore;
    const previousClients = clients;
    clients = new ClientTable(
      options.clients ?? createClientTableMemory(next.server.connections_max),
      next.clients,
      Date.now,
      loginsPossible(next),
    );
    Object.assign(clients.refused, previousClients.refused);
    clients.untracked = previousClients.untracked;
    access = accessPolicyFor(next, info);
    handshakeSlots.max = handshakeSlotsPerWorker(next);
    udpSlots.max = handshakeSlotsPerWorker(next);
    ctx = {
      ...ctx,
      config: next,
      access,
      clients,
      forget: forgetter(clients),
      trustedProxies: networksOf(next.server.trusted_proxies),
      admitClient: admitter(clients),
    };
    if (upstreamPool !== null) {
      for (const forward of next.forward) {
        const target = addressOf(forward.target, "forward target");
        upstreamPool.pin(target.host, target.port);
      }
    }
    // Timeouts may be shorter now: the sweep follows. Open connections keep their idle timeout
    // (the other timeouts each connection reads from its own ctx).
    for (const connection of connections) {
      if (!idleAfterBefore.has(connection)) idleAfterBefore.set(connection, idleAfterMs);
    }
    clearInterval(sweeper);
    sweepMs = sweepInterval(next);
    idleAfterMs = idleAfter(next.relay.idle_timeout_ms);
    sweeper = setInterval(sweep, sweepMs);
  }

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
    prepareReload,
    closeNow() {
      onEmpty?.(); // ends close()'s grace wait, which then closes what is still open
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
