// The proxy in-process for tests: startTestProxy with parsed JSON logs and stats. Not the proxy as a child process (proxy-process.ts).

import type { Telemetry } from "../../src/admin/types.ts";
import { type Config, parseConfig } from "../../src/config/schema.ts";
import { createLogger, type Logger, type LogLevel } from "../../src/log.ts";
import { type BufferPool, createPool } from "../../src/pool/index.ts";
import { type ProxyServer, startProxy } from "../../src/proxy/server.ts";
import {
  type CounterTotals,
  createCounterMemory,
  readCounters,
  WorkerCounters,
} from "../../src/stats/counters.ts";
import { DEADLINE_MS, waitFor, withDeadline } from "./wait.ts";

export type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

export interface TestProxy {
  readonly proxy: ProxyServer;
  readonly pool: BufferPool;
  readonly config: Config;
  /** Every log line, parsed. */
  readonly logs: LogRecord[];
  readonly socksPort: number;
  readonly forwardPorts: number[];
  /** The [[http]] listeners' bound ports, in order. */
  readonly httpPorts: number[];
  /** The proxy's counters (src/stats/counters.ts), summed, as the admin API would read them. */
  counters(): CounterTotals;
  /** The `connection` lines. */
  connectionLogs(): LogRecord[];
  /** Waits for a `connection` line matching `match` and returns it. */
  waitForConnectionLog(match: (record: LogRecord) => boolean, what: string): Promise<LogRecord>;
  close(graceMs?: number): Promise<void>;
}

/** Config sections as tests write them; socks.listen defaults to 127.0.0.1:0. */
export interface TestConfig {
  server?: Record<string, unknown>;
  socks?: Record<string, unknown>;
  forward?: { listen?: string; target: string; proxy_protocol?: boolean }[];
  /** [[http]] listeners; listen defaults to 127.0.0.1:0. */
  http?: { listen?: string; auth?: string; proxy_protocol?: boolean }[];
  /** [udp]: SOCKS5 UDP ASSOCIATE. */
  udp?: Record<string, unknown>;
  /** [upstream]: the dial's connect and DNS timeouts. */
  upstream?: Record<string, unknown>;
  relay?: Record<string, unknown>;
  pool?: Record<string, unknown>;
  access?: Record<string, unknown>;
  clients?: Record<string, unknown>;
  /** [server.pool], the upstream warm-connection pool (merged into `server`). */
  upstreamPool?: Record<string, unknown>;
  /** Not config: where the proxy reports operational events (none when absent). */
  telemetry?: Telemetry;
}

const openProxies = new Set<TestProxy>();

/** A JSON logger whose every line is parsed into `logs`. */
export function capturingLogger(level: LogLevel): { log: Logger; logs: LogRecord[] } {
  const logs: LogRecord[] = [];
  const log = createLogger({
    level,
    format: "json",
    write: (line) => {
      for (const part of line.split("\n")) if (part.trim() !== "") logs.push(JSON.parse(part));
    },
  });
  return { log, logs };
}

export async function startTestProxy(input: TestConfig = {}): Promise<TestProxy> {
  const config = parseConfig({
    server: {
      ...input.server,
      ...(input.upstreamPool === undefined
        ? {}
        : {
            pool: {
              enabled: true,
              ...(input.server?.pool as Record<string, unknown> | undefined),
              ...input.upstreamPool,
            },
          }),
    },
    socks: { listen: "127.0.0.1:0", ...input.socks },
    forward: (input.forward ?? []).map((entry) => ({ listen: "127.0.0.1:0", ...entry })),
    http: (input.http ?? []).map((entry) => ({ listen: "127.0.0.1:0", ...entry })),
    udp: input.udp ?? {},
    upstream: input.upstream ?? {},
    relay: input.relay ?? {},
    pool: { slots: 1024, checked: true, ...input.pool },
    access: input.access ?? {},
    clients: input.clients ?? {},
    log: { level: "info", format: "json" },
  });
  const pool = createPool({
    strategy: config.pool.strategy,
    slots: config.pool.slots,
    slot_bytes: config.pool.slot_bytes,
    checked: config.pool.checked,
    local_batch: config.pool.local_batch,
  });
  const { log, logs } = capturingLogger("info");
  const counterMemory = createCounterMemory(1);
  const proxy = await startProxy({
    config,
    pool,
    log,
    counters: new WorkerCounters(counterMemory, 0),
    ...(input.telemetry === undefined ? {} : { telemetry: input.telemetry }),
  });
  const socks = proxy.listeners.find((listener) => listener.kind === "socks");
  const connectionLogs = () => logs.filter((record) => record.msg === "connection");
  const handle: TestProxy = {
    proxy,
    pool,
    config,
    logs,
    socksPort: socks?.port ?? 0,
    forwardPorts: proxy.listeners
      .filter((listener) => listener.kind === "forward")
      .map((listener) => listener.port),
    httpPorts: proxy.listeners
      .filter((listener) => listener.kind === "http")
      .map((listener) => listener.port),
    connectionLogs,
    counters: () => readCounters(counterMemory).total,
    async waitForConnectionLog(match, what) {
      let found: LogRecord | undefined;
      await waitFor(
        () => {
          found = connectionLogs().find(match);
          return found !== undefined;
        },
        () => `a connection log line: ${what}; have ${JSON.stringify(connectionLogs())}`,
      );
      return found!;
    },
    async close(graceMs = 0) {
      if (!openProxies.delete(handle)) return;
      await withDeadline(proxy.close(graceMs), graceMs + DEADLINE_MS, "proxy.close()");
    },
  };
  openProxies.add(handle);
  return handle;
}

/** Closes every in-process proxy a test left open. */
export async function closeOpenProxies(): Promise<void> {
  await Promise.allSettled([...openProxies].map((proxy) => proxy.close(0)));
}
