// Fixtures for the upstream pool's tests: a pool on real loopback sockets with the test's own clock
// and no timers, a target that tags each accepted connection, and an owner that records what a
// handed-over socket delivers. Not the proxy (test/support/proxy.ts starts that).

import type { Socket } from "bun";
import type { TelemetryInput } from "../../src/admin/types.ts";
import { DEFAULT_CONFIG } from "../../src/config/schema.ts";
import { AccessPolicy } from "../../src/policy/access.ts";
import { type BufferPool, createPool } from "../../src/pool/index.ts";
import { createUpstreamPoolMemory } from "../../src/upstream/memory.ts";
import type { UpstreamOwner } from "../../src/upstream/owner.ts";
import { UpstreamPool, type UpstreamPoolSettings } from "../../src/upstream/pool.ts";
import type { Conn } from "../support/conn.ts";
import { capturingLogger, type LogRecord } from "../support/proxy.ts";
import { listenTcp } from "../support/sockets.ts";

/** A clock the test moves by hand (epoch-like milliseconds). */
export interface TestClock {
  ms: number;
  now(): number;
}

export function testClock(start = 1_000_000): TestClock {
  const clock = { ms: start, now: () => clock.ms };
  return clock;
}

export interface PoolHarness {
  pool: UpstreamPool;
  buffers: BufferPool;
  logs: LogRecord[];
  events: TelemetryInput[];
}

export const SETTINGS: UpstreamPoolSettings = {
  max_idle_per_dest: 4,
  max_total_idle: 16,
  idle_timeout_secs: 1,
  connect_timeout_ms: 2_000,
};

const openPools = new Set<UpstreamPool>();

/** A pool as a Worker runs it, on `memory` as Worker `worker`, with the test's clock. */
export function makePool(
  options: {
    settings?: Partial<UpstreamPoolSettings>;
    memory?: SharedArrayBuffer;
    worker?: number;
    clock?: TestClock;
    buffers?: BufferPool;
    timers?: boolean;
    access?: AccessPolicy;
  } = {},
): PoolHarness {
  const settings = { ...SETTINGS, ...options.settings };
  const buffers =
    options.buffers ?? createPool({ strategy: "queue-ts", slots: 64, slot_bytes: 1024 });
  const { log, logs } = capturingLogger("debug");
  const events: TelemetryInput[] = [];
  const access = options.access ?? new AccessPolicy(DEFAULT_CONFIG.access, []);
  const clock = options.clock ?? testClock();
  const pool = new UpstreamPool({
    settings,
    dnsTimeoutMs: 2_000,
    buffers,
    log,
    memory: options.memory ?? createUpstreamPoolMemory(1, settings.max_total_idle),
    worker: options.worker ?? 0,
    allowConnect: (host, port, address) => access.allowsWarmConnect(host, port, address),
    telemetry: { emit: (event) => events.push(event) },
    now: () => clock.now(),
    timers: options.timers ?? false,
  });
  openPools.add(pool);
  return { pool, buffers, logs, events };
}

/** Leaves `pool` as a crashed Worker leaves its pool: never closed (the supervisor reclaims). */
export function abandonPool(pool: UpstreamPool): void {
  openPools.delete(pool);
}

export function closePools(): void {
  for (const pool of openPools) pool.close();
  openPools.clear();
}

/** A target that numbers its accepted connections from 0 and answers any bytes with
 *  `<id>\n`, after sending `banner` (if any) on accept; it closes on the client's FIN. */
export interface TagTarget {
  port: number;
  readonly conns: Conn[];
  /** Connections accepted and still open that never received a byte. */
  unused(): number;
  close(): void;
}

export function startTagTarget(banner = "", accepted?: (id: number) => void): TagTarget {
  const conns: Conn[] = [];
  const used = new Set<Conn>();
  const listener = listenTcp("127.0.0.1", 0, (conn) => {
    const id = conns.length;
    conns.push(conn);
    if (banner !== "") conn.send(new TextEncoder().encode(banner));
    conn.onData = () => {
      used.add(conn);
      conn.send(new TextEncoder().encode(`${id}\n`));
    };
    conn.onEnd = () => conn.end(); // the client is done: so is this side, as a server would be
    accepted?.(id);
  });
  return {
    port: listener.port,
    conns,
    unused: () => conns.filter((conn) => !conn.eof && !used.has(conn)).length,
    close: () => listener.stop(true),
  };
}

/** Stands in for a Connection: records what the handed-over socket delivers. */
export class RecordingOwner implements UpstreamOwner {
  received = "";
  ended = false;
  closed = false;
  error: Error | null = null;
  onUpstreamData(_upstream: Socket<UpstreamOwner>, chunk: Uint8Array): void {
    this.received += new TextDecoder().decode(chunk);
  }
  onUpstreamDrain(): void {}
  onUpstreamEnd(): void {
    this.ended = true;
  }
  onUpstreamClosed(): void {
    this.closed = true;
  }
  failed(error: Error): void {
    this.error = error;
  }
}
