// Loopback target servers (echo, silent, banner, bulk, HTTP) and spare ports for the proxy to reach. Not the proxy.

import { bytes, concat, MIB } from "./bytes.ts";
import type { Conn } from "./conn.ts";
import { listenTcp } from "./sockets.ts";
import { digestToEnd, type StreamDigest, sendGenerated } from "./streams.ts";

export interface Target {
  host: string;
  port: number;
  /** Every connection accepted, in order. */
  readonly conns: Conn[];
  close(): void;
}

type Behaviour = (conn: Conn) => void;

const openTargets = new Set<{ close(): void }>();

/**
 * Every server binds 127.0.0.1 or ::1 on port 0 (unless told a port) and is ready when its
 * function returns: Bun.listen binds synchronously, so nothing waits for readiness.
 */
function listenOn(host: string, port: number, behaviour: Behaviour): Target {
  const conns: Conn[] = [];
  const listener = listenTcp(host, port, (conn) => {
    conns.push(conn);
    behaviour(conn);
  });
  const target: Target = {
    host,
    port: listener.port,
    conns,
    close() {
      listener.stop(true);
      openTargets.delete(target);
    },
  };
  openTargets.add(target);
  return target;
}

/** Echoes every byte; on the client's FIN, sends FIN after the echo is flushed. */
function echoBehaviour(conn: Conn): void {
  conn.onData = (chunk) => {
    conn.send(chunk);
    if (conn.pendingBytes > 4 * MIB) {
      // Don't buffer without bound when the client reads slowly.
      conn.pause();
      void conn.flushed(60_000).then(
        () => conn.resume(),
        () => {},
      );
    }
  };
  conn.onEnd = () => {
    void conn.shutdownAfterFlush(60_000).catch(() => {});
  };
}

export function startEcho(host = "127.0.0.1", port = 0): Target {
  return listenOn(host, port, echoBehaviour);
}

/** Accepts, reads and discards everything, and never writes or closes: a stuck upstream. */
export function startSilent(host = "127.0.0.1"): Target {
  return listenOn(host, 0, (conn) => {
    conn.onData = () => {};
  });
}

/** Sends `banner` as soon as the connection opens, then echoes. */
export function startBanner(banner: string, host = "127.0.0.1"): Target {
  return listenOn(host, 0, (conn) => {
    echoBehaviour(conn);
    conn.send(bytes(banner));
  });
}

/**
 * Says nothing until the client's FIN; then answers `sha256-of-everything-received bytes\n`
 * followed by `trailer`, and sends its own FIN.
 */
export function startAnswerAfterFin(trailer: Uint8Array, host = "127.0.0.1"): Target {
  return listenOn(host, 0, (conn) => {
    const hasher = new Bun.CryptoHasher("sha256");
    let count = 0;
    conn.onData = (chunk) => {
      hasher.update(chunk);
      count += chunk.length;
    };
    conn.onEnd = () => {
      conn.send(concat(bytes(`${hasher.digest("hex")} ${count}\n`), trailer));
      void conn.shutdownAfterFlush(60_000).catch(() => {});
    };
  });
}

export interface BulkResult {
  sent: StreamDigest;
  received: StreamDigest;
}

export interface BulkTarget extends Target {
  /** One per accepted connection, settled when it has sent everything and seen the client's FIN. */
  readonly results: Promise<BulkResult>[];
}

/**
 * Sends `totalBytes` seeded bytes (seed + connection index) on open, then FIN, while digesting
 * everything it receives until the client's FIN. `Conn.sentBytes` shows progress.
 */
export function startBulk(totalBytes: number, seed: number, host = "127.0.0.1"): BulkTarget {
  const results: Promise<BulkResult>[] = [];
  const target = listenOn(host, 0, (conn) => {
    const index = results.length;
    const received = digestToEnd(conn, 120_000);
    const sent = sendGenerated(conn, totalBytes, seed + index, 120_000).then(async (digest) => {
      await conn.shutdownAfterFlush(120_000);
      return digest;
    });
    const result = Promise.all([sent, received]).then(([sentDigest, receivedDigest]) => {
      conn.end();
      return { sent: sentDigest, received: receivedDigest };
    });
    result.catch(() => {}); // observed by the test; never an unhandled rejection
    results.push(result);
  });
  return Object.assign(target, { results });
}

/** A port on 127.0.0.1 that refuses connections: bound, then released. */
export function refusedPort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

/**
 * Binds the same port on 127.0.0.1 and ::1, so "localhost" reaches it whichever family the
 * resolver returns first. Retries with a new port when ::1 has that port taken.
 */
export function onBothLoopbacks<T extends { close(): void }>(
  start: (host: string, port: number) => T & { port: number },
): { port: number; close(): void; v4: T; v6: T } {
  let lastError: unknown = null;
  for (let attempt = 0; attempt < 20; attempt++) {
    const v4 = start("127.0.0.1", 0);
    try {
      const v6 = start("::1", v4.port);
      return {
        port: v4.port,
        v4,
        v6,
        close() {
          v4.close();
          v6.close();
        },
      };
    } catch (error) {
      lastError = error;
      v4.close();
    }
  }
  throw new Error(`could not bind one port on both 127.0.0.1 and ::1: ${String(lastError)}`);
}

/** A tiny HTTP server (Bun.serve) answering every GET with `body`. */
export function startHttp(
  host: string,
  port: number,
  body: string,
): { port: number; close(): void } {
  const server = Bun.serve({ hostname: host, port, fetch: () => new Response(body) });
  const handle = {
    port: server.port ?? 0,
    close() {
      void server.stop(true);
      openTargets.delete(handle);
    },
  };
  openTargets.add(handle);
  return handle;
}

/** Closes every target server a test left open. */
export function closeOpenTargets(): void {
  for (const target of [...openTargets]) target.close();
}
