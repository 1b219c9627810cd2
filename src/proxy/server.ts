// One thread's proxy: the SOCKS5 and forward listeners (reusePort, so every Worker binds the same
// ports), the socket handler tables, the deadline sweeper and graceful close.
// Not process supervision (supervisor.ts) and not config parsing (src/config/).

import type { Socket, SocketHandler, TCPSocketListener, TCPSocketListenOptions } from "bun";
import type { Config } from "../config/schema.ts";
import { parseHostPort } from "../protocol/host-port.ts";
import type { Logger } from "../log.ts";
import type { BufferPool, PoolStats } from "../pool/index.ts";
import { AUTH_REQUEST_BYTES_MAX } from "../protocol/index.ts";
import {
  type Clock,
  type Connection,
  type ConnectionContext,
  ForwardConnection,
} from "./connection.ts";
import { credentialsOf, SocksConnection } from "./socks5.ts";

export interface ListenerInfo {
  kind: "socks" | "forward";
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
  /** Relay bytes held in pool slots (and chunks held in place) on this thread. */
  backlog_bytes: number;
  pool: PoolStats;
}

export interface ProxyServer {
  readonly listeners: readonly ListenerInfo[];
  stats(): ProxyStats;
  /** Stops accepting, lets open connections finish for up to `graceMs`, then closes the rest. */
  close(graceMs: number): Promise<void>;
}

export interface ProxyOptions {
  config: Config;
  pool: BufferPool;
  log: Logger;
  /** Open connections across every Worker (one Int32 in shared memory); per-thread when absent. */
  openConnections?: Int32Array;
}

const SWEEP_MS_MIN = 25;
const SWEEP_MS_MAX = 1000;

/** Sweeps often enough to honour the shortest configured timeout within about a quarter of it. */
function sweepInterval(config: Config): number {
  const timeouts = [
    config.socks.handshake_timeout_ms,
    config.upstream.connect_timeout_ms,
    config.relay.fin_timeout_ms,
    config.relay.idle_timeout_ms || Number.POSITIVE_INFINITY,
  ];
  return Math.min(SWEEP_MS_MAX, Math.max(SWEEP_MS_MIN, Math.floor(Math.min(...timeouts) / 4)));
}

function addressOf(text: string, what: string): { host: string; port: number } {
  const parsed = parseHostPort(text);
  if (parsed === null) throw new Error(`${what}: expected HOST:PORT, got ${JSON.stringify(text)}`);
  return parsed;
}

export async function startProxy(options: ProxyOptions): Promise<ProxyServer> {
  const { config, pool, log } = options;
  if (pool.slotBytes < AUTH_REQUEST_BYTES_MAX) {
    throw new Error(
      `slot_bytes ${pool.slotBytes} cannot hold a handshake message (${AUTH_REQUEST_BYTES_MAX})`,
    );
  }
  const openConnections = options.openConnections ?? new Int32Array(new SharedArrayBuffer(4));
  const connections = new Set<Connection>();
  const clock: Clock = { now: performance.now() };
  let total = 0;
  let rejected = 0;
  let closing = false;
  let onEmpty: (() => void) | null = null;

  // Upstream sockets belong to a connection from the moment Bun.connect is called (data: conn).
  const upstreamHandlers: SocketHandler<Connection> = {
    data: (socket, chunk) => {
      if (socket.data.phase === "closed")
        socket.end(); // a late socket of an abandoned dial
      else socket.data.upstreamData(chunk);
    },
    drain: (socket) => socket.data.upstreamDrain(),
    end: (socket) => socket.data.upstreamEnd(),
    // Bun reports a reset (ECONNRESET) only as close's error argument: tear down, don't treat it as FIN.
    close: (socket, error) => (error ? socket.data.failed(error) : socket.data.upstreamClosed()),
    error: (socket, error) => socket.data.failed(error),
  };

  const ctx: ConnectionContext = {
    config,
    pool,
    log,
    clock,
    upstreamHandlers,
    forget(connection) {
      if (connections.delete(connection)) Atomics.sub(openConnections, 0, 1);
      if (connections.size === 0) onEmpty?.();
    },
  };

  /** Admits a client under connections_max, or closes it at once. */
  function admit(socket: Socket<Connection>, make: () => Connection): void {
    if (closing || Atomics.add(openConnections, 0, 1) >= config.server.connections_max) {
      if (!closing) Atomics.sub(openConnections, 0, 1);
      rejected++;
      if (rejected === 1 || rejected % 1000 === 0) {
        log.warn("connection refused: connections_max reached", {
          connections_max: config.server.connections_max,
          rejected,
        });
      }
      socket.end();
      return;
    }
    total++;
    const connection = make();
    socket.data = connection; // replaces the listener's shared data object (see DESIGN.md)
    if (connection.phase !== "closed") connections.add(connection);
    else Atomics.sub(openConnections, 0, 1);
  }

  // socket.data is unset only for a client refused in admit(), whose events need no handling.
  const clientEvents: SocketHandler<Connection> = {
    data: (socket, chunk) => socket.data.clientData(chunk),
    drain: (socket) => socket.data.clientDrain(),
    end: (socket) => socket.data?.clientEnd(),
    close: (socket, error) => (error ? socket.data?.failed(error) : socket.data?.clientClosed()),
    error: (socket, error) => socket.data?.failed(error),
  };

  const listeners: TCPSocketListener<Connection>[] = [];
  const info: ListenerInfo[] = [];
  const listen = (
    kind: "socks" | "forward",
    address: string,
    open: (socket: Socket<Connection>) => void,
    target?: string,
  ) => {
    const { host, port } = addressOf(address, `${kind} listen`);
    // bun-types 1.4.5 declares reusePort on connect options only; Bun.listen honours it (DESIGN.md).
    const listenOptions: TCPSocketListenOptions<Connection> & { reusePort: boolean } = {
      hostname: host,
      port,
      reusePort: true, // every Worker binds the same port; the kernel spreads the connections
      allowHalfOpen: true, // a client's FIN is passed on, not treated as the end of the connection
      socket: { ...clientEvents, open },
    };
    const listener = Bun.listen<Connection>(listenOptions);
    listeners.push(listener);
    info.push({ kind, host, port: listener.port, ...(target === undefined ? {} : { target }) });
  };

  try {
    if (config.socks.enabled) {
      const credentials =
        config.socks.auth === "password" ? credentialsOf(config.socks.users) : null;
      listen("socks", config.socks.listen, (socket) =>
        admit(socket, () => new SocksConnection(ctx, socket, credentials)),
      );
    }
    for (const forward of config.forward) {
      const target = addressOf(forward.target, "forward target");
      listen(
        "forward",
        forward.listen,
        (socket) =>
          admit(socket, () => new ForwardConnection(ctx, socket, target.host, target.port)),
        forward.target,
      );
    }
  } catch (error) {
    for (const listener of listeners) listener.stop(true);
    throw error;
  }

  const idleMs = config.relay.idle_timeout_ms;
  const sweepMs = sweepInterval(config);
  // lastActivity is stamped with the coarse clock, up to one sweep behind real time: allowing one
  // sweep of margin makes an idle timeout late by at most two sweeps, and never early.
  const idleAfterMs = idleMs + sweepMs;
  const sweeper = setInterval(() => {
    const now = performance.now();
    clock.now = now;
    for (const connection of connections) {
      if (now >= connection.deadline) connection.expire();
      else if (
        idleMs > 0 &&
        connection.phase === "relaying" &&
        now - connection.lastActivity >= idleAfterMs
      ) {
        connection.close("idle_timeout");
      }
    }
  }, sweepMs);

  return {
    listeners: info,
    stats() {
      let backlog = 0;
      for (const connection of connections) backlog += connection.backlogBytes();
      return {
        connections_open: connections.size,
        connections_total: total,
        connections_rejected: rejected,
        backlog_bytes: backlog,
        pool: pool.stats(),
      };
    },
    async close(graceMs) {
      closing = true;
      for (const listener of listeners) listener.stop(false); // stop accepting; keep open connections
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
