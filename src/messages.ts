// The messages between the main thread (supervisor) and its Workers. Plain data: every field
// survives structured cloning, and SharedArrayBuffers are shared rather than copied.

import type { TelemetryInput } from "./admin/types.ts";
import type { Config } from "./config/schema.ts";
import type { PoolBackend, PoolMemory } from "./pool/index.ts";
import type { ListenerInfo, ProxySnapshot, ProxyStats } from "./proxy/server.ts";

export type ToWorker =
  | {
      type: "start";
      index: number;
      config: Config;
      memory: PoolMemory;
      /** Open-connection counts: the total and one word per Worker (src/proxy/admission.ts). */
      openConnections: SharedArrayBuffer;
      /** The per-client table (src/proxy/clients.ts), shared by every Worker. */
      clients: SharedArrayBuffer;
      /** The counters, one block per Worker (src/stats/counters.ts). */
      counters: SharedArrayBuffer;
      /** The upstream pool's reservations and counters (src/upstream/memory.ts). */
      upstreamPool: SharedArrayBuffer;
    }
  | { type: "shutdown"; graceMs: number }
  /** A second SIGTERM/SIGINT during the drain: close every connection now. */
  | { type: "close-now" }
  /** A reload's first phase: bind what `config` adds, answered by `reload-prepared` or
   *  `reload-failed` with the same id; then `reload-commit` or `reload-abort`. */
  | { type: "reload-prepare"; id: number; config: Config }
  | { type: "reload-commit"; id: number }
  | { type: "reload-abort"; id: number }
  /** The admin API asks for what only the Worker knows (lists, its pool counts): answered with a
   *  `snapshot` carrying the same id, with up to `connections` of its oldest open connections. */
  | { type: "snapshot"; id: number; connections: number }
  // Fault injection only (SOCKPOOL_FAULT_INJECTION=1, see main.ts): die of an uncaught error.
  | { type: "crash" };

export type FromWorker =
  | { type: "ready"; index: number; listeners: ListenerInfo[]; backend: PoolBackend }
  | { type: "fatal"; index: number; message: string }
  | { type: "reload-prepared"; index: number; id: number; listeners: ListenerInfo[] }
  | { type: "reload-failed"; index: number; id: number; message: string }
  /** After `reload-commit`: new connections on this Worker get the new config from now on. */
  | { type: "reload-committed"; index: number; id: number }
  | { type: "stopped"; index: number; stats: ProxyStats }
  | { type: "snapshot"; index: number; id: number; snapshot: ProxySnapshot }
  /** Something operational happened (already rate-limited by the Worker): for the telemetry ring. */
  | { type: "event"; index: number; event: TelemetryInput };
