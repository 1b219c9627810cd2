// The main thread's supervisor: starts N Workers on the shared pool, resolves port 0 once so every
// Worker binds the same port, reclaims what a dead Worker held and restarts it (with backoff), and
// stops them all gracefully. Not the proxy: that runs inside each Worker (worker.ts).
//
// Concurrency note: reclamation runs on the main thread in the dead Worker's `close` handler, so
// the Worker has exited and cannot write its holder entries or counters again, and it runs before
// the restart timer is even set, so the new Worker with the same index marks nothing until the old
// marks are gone. The other Workers keep running meanwhile; they never write the dead Worker's marks
// or words (pool/slab-pool.ts and proxy/admission.ts say what a Worker killed mid-operation leaks).

import { SHARE_ENV } from "node:worker_threads";
import type { TelemetryInput } from "./admin/types.ts";
import type { Config } from "./config/schema.ts";
import { LIMITS } from "./limits.ts";
import type { Logger } from "./log.ts";
import type { FromWorker, ToWorker } from "./messages.ts";
import { type PoolBackend, type PoolMemory, reclaimWorker } from "./pool/index.ts";
import { formatHostPort } from "./protocol/host-port.ts";
import {
  openConnectionsBytes,
  openConnectionsTotal,
  reclaimConnections,
} from "./proxy/admission.ts";
import { createClientTableMemory } from "./proxy/clients.ts";
import type { ListenerInfo, ProxySnapshot } from "./proxy/server.ts";
import { createCounterMemory, reclaimCounters } from "./stats/counters.ts";
import { createUpstreamPoolMemory, reclaimUpstreamPool } from "./upstream/memory.ts";

const {
  restart_delay_ms_min: RESTART_DELAY_MS_MIN,
  restart_delay_ms_max: RESTART_DELAY_MS_MAX,
  restart_healthy_ms: RESTART_HEALTHY_MS,
  stop_margin_ms: STOP_MARGIN_MS,
} = LIMITS;

/** How long a reload waits for each Worker's answer to bind what the new config adds. */
const RELOAD_ANSWER_MS = 10_000;

interface Ready {
  listeners: ListenerInfo[];
  backend: PoolBackend;
}

interface Slot {
  worker: Worker | null;
  /** The Worker has reported `ready` (its listeners are bound) and has not exited since. */
  listening: boolean;
  /** Restarts after a crash since start. */
  restarts: number;
  /** The last uncaught error the Worker died of, for the crash event. */
  lastError: string;
  startedAt: number;
  restartDelayMs: number;
  restartTimer: ReturnType<typeof setTimeout> | null;
  stopping: boolean;
}

/** The config with every listen address pinned to the port actually bound (port 0 resolved). */
function pinPorts(config: Config, listeners: readonly ListenerInfo[]): Config {
  const socks = listeners.find((listener) => listener.kind === "socks");
  const forwards = listeners.filter((listener) => listener.kind === "forward");
  return {
    ...config,
    socks: socks
      ? { ...config.socks, listen: formatHostPort(socks.host, socks.port) }
      : config.socks,
    forward: config.forward.map((forward, i) => ({
      ...forward,
      listen: formatHostPort(forwards[i]!.host, forwards[i]!.port),
    })),
  };
}

/** `next` with every listen address that `running` (as configured, before pinning) also has, with
 *  the same kind and target, pinned to the port it is bound to in `pinned`: a listener on port 0
 *  keeps its port across a reload while its address and target stay the same. */
function pinKeptPorts(next: Config, running: Config, pinned: Config): Config {
  const taken = new Set<number>();
  const forward = next.forward.map((entry) => {
    const i = running.forward.findIndex(
      (old, j) => !taken.has(j) && old.listen === entry.listen && old.target === entry.target,
    );
    if (i < 0) return entry;
    taken.add(i);
    return { ...entry, listen: pinned.forward[i]!.listen };
  });
  const keepSocks =
    next.socks.enabled && running.socks.enabled && next.socks.listen === running.socks.listen;
  return {
    ...next,
    socks: keepSocks ? { ...next.socks, listen: pinned.socks.listen } : next.socks,
    forward,
    admin: pinned.admin, // restart-only, and pinned to the admin API's bound port
  };
}

/** One line for an event from Bun's report of an uncaught error, which quotes the source around
 *  the throw before the `error: message` line. */
function errorSummary(report: string): string {
  if (report === "") return "exited";
  const lines = report.split("\n").map((line) => line.trim());
  const line =
    lines.find((text) => text.startsWith("error: ")) ?? lines.find((text) => text !== "");
  return (line ?? report).replace(/^error: /, "").slice(0, 200);
}

export class Supervisor {
  /** The config the Workers run, with port 0 resolved (pinPorts); `configured` is the same before
   *  pinning, for matching a reload's addresses. */
  private config: Config;
  private configured: Config;
  private reloadId = 0;
  private readonly memory: PoolMemory;
  private readonly log: Logger;
  private readonly clients: SharedArrayBuffer;
  /** The open-connection counts: the total and one word per Worker (proxy/admission.ts). */
  private readonly openConnections: SharedArrayBuffer;
  private readonly open: Int32Array;
  /** The upstream pool's shared reservations and counters (src/upstream/memory.ts); read it with
   *  readUpstreamPoolCounts(upstreamPool, workers). Allocated even when the pool is off (small):
   *  its counters then read zero. */
  readonly upstreamPool: SharedArrayBuffer;
  readonly workers: number;
  private readonly slots: Slot[];
  private stopping = false;
  /** The counters, one block per Worker (src/stats/counters.ts); read by the admin API. */
  readonly counters: SharedArrayBuffer;
  /** Where operational events go: the Workers' (with their index) and the supervisor's own (crash,
   *  restart). Main sets it to the admin API's ring; nowhere by default. */
  onEvent: (event: TelemetryInput, worker?: number) => void = () => {};
  private snapshotId = 0;
  private readonly pendingSnapshots = new Map<
    number,
    (worker: number, snapshot: ProxySnapshot) => void
  >();

  private readonly workerUrl: string;

  /** `workerUrl` is the Worker entry; tests substitute their own. */
  constructor(
    config: Config,
    memory: PoolMemory,
    workers: number,
    log: Logger,
    workerUrl = new URL("./worker.ts", import.meta.url).href,
  ) {
    this.workerUrl = workerUrl;
    this.config = config;
    this.configured = config;
    this.memory = memory;
    this.clients = createClientTableMemory(config.server.connections_max);
    this.log = log;
    this.openConnections = new SharedArrayBuffer(openConnectionsBytes(workers));
    this.open = new Int32Array(this.openConnections);
    this.counters = createCounterMemory(workers);
    this.workers = workers;
    this.upstreamPool = createUpstreamPoolMemory(
      workers,
      config.server.pool.enabled ? config.server.pool.max_total_idle : 1,
    );
    this.slots = Array.from({ length: workers }, () => ({
      worker: null,
      listening: false,
      restarts: 0,
      lastError: "",
      startedAt: 0,
      restartDelayMs: RESTART_DELAY_MS_MIN,
      restartTimer: null,
      stopping: false,
    }));
  }

  /** Starts Worker 0 (which resolves any port 0), then the rest on the same ports. Returns the
   *  listeners and the pool backend each Worker actually attached with. */
  async start(): Promise<{ listeners: ListenerInfo[]; backends: PoolBackend[] }> {
    const first = await this.spawn(0);
    this.config = pinPorts(this.config, first.listeners);
    const rest = await Promise.all(this.slots.slice(1).map((_, i) => this.spawn(i + 1)));
    return { listeners: first.listeners, backends: [first, ...rest].map((ready) => ready.backend) };
  }

  /** True when every Worker is listening and no stop has begun (GET /readyz). */
  ready(): boolean {
    return !this.stopping && this.slots.every((slot) => slot.listening);
  }

  /** Each Worker's state, by index. */
  workerStates(): { worker: number; up: boolean; restarts: number }[] {
    return this.slots.map((slot, worker) => ({
      worker,
      up: slot.listening,
      restarts: slot.restarts,
    }));
  }

  /** Asks every running Worker for its snapshot (with up to `connections` open connections each)
   *  and resolves after all have answered or `timeoutMs` has passed: null for a Worker that is not
   *  running or did not answer in time. Never waits longer than `timeoutMs`. */
  snapshot(connections: number, timeoutMs: number): Promise<(ProxySnapshot | null)[]> {
    const id = ++this.snapshotId;
    const answers: (ProxySnapshot | null)[] = this.slots.map(() => null);
    let waiting = 0;
    for (const slot of this.slots) {
      if (slot.worker === null || !slot.listening) continue;
      waiting++;
      this.send(slot.worker, { type: "snapshot", id, connections });
    }
    if (waiting === 0) return Promise.resolve(answers);
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.pendingSnapshots.delete(id);
        resolve(answers);
      };
      const timer = setTimeout(finish, timeoutMs);
      this.pendingSnapshots.set(id, (worker, snapshot) => {
        if (answers[worker] !== null) return;
        answers[worker] = snapshot;
        if (--waiting === 0) finish();
      });
    });
  }

  /** The admin API's bound address (port 0 resolved), given to the Workers so their access rules
   *  deny it as a destination like their own listeners. Call before start(). */
  pinAdminAddress(address: string): void {
    this.config = { ...this.config, admin: { ...this.config.admin, listen: address } };
  }

  /** Open connections across every Worker. */
  openConnectionCount(): number {
    return openConnectionsTotal(this.open);
  }

  /** Asks every Worker to drain for up to `graceMs`, then terminates them. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.slots.map(async (slot, index) => {
        if (slot.restartTimer) clearTimeout(slot.restartTimer);
        const worker = slot.worker;
        if (worker === null) return;
        slot.stopping = true;
        const stopped = new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), graceMs + STOP_MARGIN_MS);
          worker.addEventListener("message", (event: MessageEvent<FromWorker>) => {
            if (event.data.type !== "stopped") return;
            clearTimeout(timer);
            resolve(true);
          });
          worker.addEventListener("close", () => resolve(true));
        });
        this.send(worker, { type: "shutdown", graceMs });
        if (!(await stopped))
          this.log.warn("worker did not stop in time; terminating it", { worker: index });
        worker.terminate();
        slot.worker = null;
        slot.listening = false;
      }),
    );
  }

  /**
   * Applies `next` to every running Worker, all or none: each Worker first binds the listeners it
   * adds (Worker 0 first, so a new port 0 is resolved once and the others bind the same port);
   * if any cannot, every Worker unbinds what it bound and this throws, the old config still
   * serving. Then every Worker switches. Returns the listeners as they now are. A Worker restarted
   * later starts with `next`.
   */
  async reload(next: Config): Promise<ListenerInfo[]> {
    if (this.stopping) throw new Error("stopping");
    const id = ++this.reloadId;
    const running = this.slots.flatMap((slot) =>
      slot.worker !== null && slot.listening ? [slot.worker] : [],
    );
    if (running.length === 0) throw new Error("no Worker is running");
    // An abort goes to every Worker asked (one that answered late still unbinds); a Worker takes
    // messages in order, so it never sees an abort before its prepare.
    const settle = (type: "reload-commit" | "reload-abort") => {
      for (const worker of running) this.send(worker, { type, id });
    };
    let pinned = pinKeptPorts(next, this.configured, this.config);
    try {
      const first = await this.askReload(running[0]!, id, pinned);
      pinned = pinPorts(pinned, first);
      const rest = await Promise.allSettled(
        running.slice(1).map((worker) => this.askReload(worker, id, pinned)),
      );
      const failed = rest.flatMap((result) =>
        result.status === "rejected" ? [(result.reason as Error).message] : [],
      );
      if (failed.length > 0) throw new Error(failed.join("; "));
      // Resolved once every Worker has switched, so whoever waits for the reload (main's
      // `reloaded` line) knows that every new connection from then on gets the new config.
      const committed = Promise.all(
        running.map((worker) => this.answer(worker, "reload-committed", id)),
      );
      settle("reload-commit");
      this.config = pinned;
      this.configured = next;
      await committed;
      return first;
    } catch (error) {
      settle("reload-abort");
      throw error;
    }
  }

  /** Asks `worker` to bind what `config` adds; resolves with its listeners after the reload. */
  private askReload(worker: Worker, id: number, config: Config): Promise<ListenerInfo[]> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        worker.removeEventListener("message", onMessage);
      };
      const onMessage = (event: MessageEvent<FromWorker>) => {
        const message = event.data;
        if (message.type === "reload-prepared" && message.id === id) {
          done();
          resolve(message.listeners);
        } else if (message.type === "reload-failed" && message.id === id) {
          done();
          reject(new Error(`worker ${message.index}: ${message.message}`));
        }
      };
      const timer = setTimeout(() => {
        worker.removeEventListener("message", onMessage);
        reject(new Error(`a worker did not answer within ${RELOAD_ANSWER_MS} ms`));
      }, RELOAD_ANSWER_MS);
      worker.addEventListener("message", onMessage);
      this.send(worker, { type: "reload-prepare", id, config });
    });
  }

  /** Resolves when `worker` posts a message of `type` for reload `id`, or after
   *  RELOAD_ANSWER_MS (a Worker that died meanwhile is the crash path's to report). */
  private answer(worker: Worker, type: "reload-committed", id: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        worker.removeEventListener("message", onMessage);
        worker.removeEventListener("close", done);
        resolve();
      };
      const onMessage = (event: MessageEvent<FromWorker>) => {
        if (event.data.type === type && event.data.id === id) done();
      };
      const timer = setTimeout(done, RELOAD_ANSWER_MS);
      worker.addEventListener("message", onMessage);
      worker.addEventListener("close", done);
    });
  }

  /** During stop(): every Worker closes its open connections now instead of after the grace. */
  closeNow(): void {
    for (const slot of this.slots)
      if (slot.worker !== null) this.send(slot.worker, { type: "close-now" });
  }

  /** Fault injection only (main.ts wires it to SIGUSR2 under SOCKPOOL_FAULT_INJECTION=1): asks
   *  Worker `index` to die of an uncaught error. False when that Worker is not running. */
  injectCrash(index: number): boolean {
    const worker = this.slots[index]?.worker;
    if (!worker) return false;
    this.send(worker, { type: "crash" });
    return true;
  }

  private send(worker: Worker, message: ToWorker): void {
    worker.postMessage(message);
  }

  /** Starts Worker `index` and resolves with its listeners once it is serving. */
  private spawn(index: number): Promise<Ready> {
    const slot = this.slots[index]!;
    // SHARE_ENV: the Worker sees process.env as it is now. Bun 1.4.5 gives a Worker created without
    // options the environment the process started with, which misses what main set since
    // (SOCKPOOL_NATIVE_LIB from src/compiled.ts).
    const worker = new Worker(this.workerUrl, { env: SHARE_ENV });
    slot.worker = worker;
    slot.startedAt = performance.now();
    slot.stopping = false;
    return new Promise<Ready>((resolve, reject) => {
      let ready = false;
      worker.addEventListener("message", (event: MessageEvent<FromWorker>) => {
        const message = event.data;
        if (message.type === "event") {
          this.onEvent(message.event, index);
        } else if (message.type === "snapshot") {
          this.pendingSnapshots.get(message.id)?.(index, message.snapshot);
        } else if (message.type === "ready") {
          ready = true;
          slot.listening = true;
          resolve({ listeners: message.listeners, backend: message.backend });
        } else if (message.type === "fatal") {
          slot.stopping = true; // a Worker that cannot listen would fail the same way again
          worker.terminate();
          reject(new Error(`worker ${index} could not start: ${message.message}`));
        }
      });
      worker.addEventListener("error", (event) => {
        slot.lastError = event.message;
        this.log.error("worker crashed", { worker: index, error: event.message });
        if (!ready) reject(new Error(`worker ${index} crashed while starting: ${event.message}`));
      });
      worker.addEventListener("close", () => {
        if (slot.worker === worker) {
          slot.worker = null;
          slot.listening = false;
        }
        if (slot.stopping || this.stopping) return;
        this.reclaim(index); // before any restart: the next Worker `index` must find no old marks
        if (ready) this.scheduleRestart(index);
      });
      this.send(worker, {
        type: "start",
        index,
        config: this.config,
        memory: this.memory,
        openConnections: this.openConnections,
        clients: this.clients,
        counters: this.counters,
        upstreamPool: this.upstreamPool,
      });
    });
  }

  /** Gives back what dead Worker `index` held: its pool slots (held, and cached for `local`), or
   *  its `alloc` budget, its places under connections_max and its upstream pool reservations (its
   *  warm connections died with it). One log line with the counts. */
  private reclaim(index: number): void {
    let slots = 0;
    try {
      slots = reclaimWorker(this.memory, index);
    } catch (error) {
      // Only a free list with no room refuses them, i.e. a slot counted twice somewhere: a bug to
      // report, not a reason to take the supervisor down.
      this.log.error("cannot return a crashed worker's pool slots", {
        worker: index,
        error: (error as Error).message,
      });
    }
    const connections = reclaimConnections(this.open, index);
    reclaimCounters(this.counters, index);
    const upstreamReservations = reclaimUpstreamPool(this.upstreamPool, index);
    this.log.warn(`worker crashed: reclaimed ${slots} slots, ${connections} connections`, {
      worker: index,
      slots,
      connections,
      upstream_reservations: upstreamReservations,
    });
    const slot = this.slots[index]!;
    this.onEvent(
      {
        kind: "worker_crashed",
        level: "error",
        message: `worker ${index} crashed: reclaimed ${slots} slots, ${connections} connections`,
        fields: { worker: index, slots, connections, error: errorSummary(slot.lastError) },
      },
      index,
    );
    slot.lastError = "";
  }

  private scheduleRestart(index: number): void {
    const slot = this.slots[index]!;
    if (performance.now() - slot.startedAt > RESTART_HEALTHY_MS)
      slot.restartDelayMs = RESTART_DELAY_MS_MIN;
    const delayMs = slot.restartDelayMs;
    slot.restartDelayMs = Math.min(RESTART_DELAY_MS_MAX, delayMs * 2);
    this.log.warn("worker exited; restarting it", { worker: index, delay_ms: delayMs });
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      if (this.stopping) return;
      this.spawn(index).then(
        () => {
          slot.restarts++;
          this.log.info("worker restarted", { worker: index });
          this.onEvent(
            {
              kind: "worker_restarted",
              level: "info",
              message: `worker ${index} restarted after ${delayMs} ms`,
              fields: { worker: index, delay_ms: delayMs, restarts: slot.restarts },
            },
            index,
          );
        },
        (error: Error) =>
          this.log.error("worker restart failed", { worker: index, error: error.message }),
      );
    }, delayMs);
  }
}
