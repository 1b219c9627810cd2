// A Worker: attaches to the shared pool, runs one proxy (its own listeners on the shared ports via
// reusePort) and stops gracefully when told. Not supervision: a crash here is the supervisor's to
// log and repair.

import { RateLimitedTelemetry } from "./admin/telemetry.ts";
import type { Config } from "./config/schema.ts";
import type { FromWorker, ToWorker } from "./messages.ts";
import { attachPool } from "./pool/index.ts";
import { type PreparedReload, type ProxyServer, startProxy } from "./proxy/server.ts";
import { type SwitchableLogger, switchableLogger } from "./reload.ts";
import { WorkerCounters } from "./stats/counters.ts";

declare const self: Worker;

let server: ProxyServer | null = null;
/** The server while it drains after a shutdown message: still answers the admin API. */
let draining: ProxyServer | null = null;
let index = -1;
let workerLog: SwitchableLogger | null = null;
/** A reload bound by `reload-prepare`, waiting for the supervisor's commit or abort. */
let prepared: { id: number; reload: PreparedReload; config: Config } | null = null;

function post(message: FromWorker): void {
  self.postMessage(message);
}

async function start(message: Extract<ToWorker, { type: "start" }>): Promise<void> {
  index = message.index;
  // Switchable: a reload's log.level and log.format apply to every line from then on.
  const log = switchableLogger(
    { level: message.config.log.level, format: message.config.log.format },
    { worker: index },
  );
  workerLog = log;
  try {
    // The Worker index marks what this Worker holds, so the supervisor can reclaim it after a crash.
    const pool = attachPool(message.memory, { log, worker: index });
    server = await startProxy({
      config: message.config,
      pool,
      log,
      openConnections: new Int32Array(message.openConnections),
      clients: message.clients,
      upstreamPool: message.upstreamPool,
      worker: index,
      counters: new WorkerCounters(message.counters, index),
      // Rate-limited here, at the producer, so a flood of refusals costs one message per second.
      telemetry: new RateLimitedTelemetry((event) => post({ type: "event", index, event })),
    });
    post({ type: "ready", index, listeners: [...server.listeners], backend: pool.backend });
  } catch (error) {
    post({ type: "fatal", index, message: error instanceof Error ? error.message : String(error) });
  }
}

/** Binds what the new config adds and answers; applies nothing yet. */
function prepareReload(id: number, config: Config): void {
  prepared?.reload.abort(); // a newer reload replaces one the supervisor gave up on
  prepared = null;
  if (server === null) {
    post({ type: "reload-failed", index, id, message: "not serving (starting or stopping)" });
    return;
  }
  try {
    const reload = server.prepareReload(config);
    prepared = { id, reload, config };
    post({ type: "reload-prepared", index, id, listeners: [...reload.listeners] });
  } catch (error) {
    post({ type: "reload-failed", index, id, message: (error as Error).message });
  }
}

function settleReload(id: number, commit: boolean): void {
  if (prepared === null || prepared.id !== id) return;
  const { reload, config } = prepared;
  prepared = null;
  if (!commit) {
    reload.abort();
    return;
  }
  workerLog?.switchTo({ level: config.log.level, format: config.log.format });
  reload.commit();
  post({ type: "reload-committed", index, id });
}

async function shutdown(graceMs: number): Promise<void> {
  prepared?.reload.abort();
  prepared = null;
  if (server === null) return;
  const closing = server;
  server = null;
  draining = closing;
  await closing.close(graceMs);
  draining = null;
  post({ type: "stopped", index, stats: closing.stats() });
}

/** Fault injection (the soak, test/soak/soak.ts): dies the way a bug would, by an uncaught error
 *  outside any handler, so the supervisor's real crash path runs. Refused unless the process runs
 *  with SOCKPOOL_FAULT_INJECTION=1, whoever sent the message. */
function injectedCrash(): void {
  if (process.env.SOCKPOOL_FAULT_INJECTION !== "1") return;
  setTimeout(() => {
    throw new Error("injected crash (SOCKPOOL_FAULT_INJECTION=1, SIGUSR2)");
  }, 0);
}

/** The admin API's question: answered at once, even while stopping (then with nothing open). */
function snapshot(id: number, connections: number): void {
  const current = server ?? draining;
  if (current === null) return; // not started: the admin server reports this Worker as silent
  post({ type: "snapshot", index, id, snapshot: current.snapshot(connections) });
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "start") void start(message);
  else if (message.type === "crash") injectedCrash();
  else if (message.type === "snapshot") snapshot(message.id, message.connections);
  else if (message.type === "reload-prepare") prepareReload(message.id, message.config);
  else if (message.type === "reload-commit") settleReload(message.id, true);
  else if (message.type === "reload-abort") settleReload(message.id, false);
  else if (message.type === "close-now") draining?.closeNow();
  else void shutdown(message.graceMs);
};
