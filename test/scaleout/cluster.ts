// The scale-out cluster on loopback: sockpool instances (the real program, each with its own config
// file, SOCKS5 port and admin port, restartable on the same ports), HAProxy in front of them (Debian's
// package, `mode tcp`, health checks against each instance's /readyz) and Prometheus scraping every
// /metrics, plus the load that runs through HAProxy. Not the phases and their checks (scaleout.ts).

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { Conn } from "../support/conn.ts";
import type { LogRecord } from "../support/proxy.ts";
import { type SpawnedProxy, spawnProxy } from "../support/proxy-process.ts";
import { socksConnect } from "../support/socks-client.ts";
import { requireTool } from "../support/spawn.ts";
import { refusedPort } from "../support/targets.ts";
import { DEADLINE_MS, waitFor, withDeadline } from "../support/wait.ts";

/** HAProxy connects to the instances from this address, not 127.0.0.1 (the clients' address), so a
 *  log line shows which of the two it saw; the instances trust PROXY headers from it alone. */
export const BALANCER_SOURCE = "127.0.0.2";
/** HAProxy's health checks: every 200 ms, one failure marks an instance down, one success up. */
export const CHECK_INTER_MS = 200;

/** HAProxy and Prometheus while they run, for killOthers() (the sockpools are proxy-process.ts's). */
const others = new Set<Subprocess>();

/** Kills HAProxy and Prometheus at once (Ctrl-C of the script; the normal path stops each). */
export function killOthers(): void {
  for (const child of others) child.kill("SIGKILL");
  others.clear();
}

/** A free port on 127.0.0.1 (bound, then released; nothing else here takes ports meanwhile). */
export const freePort = refusedPort;

// ── sockpool instances ──

export interface InstanceOptions {
  name: string;
  dir: string;
  workers: number;
  /** `server.drain_delay_ms`: how long after SIGTERM the listeners keep accepting (null: unset). */
  drainDelayMs: number | null;
  /** `socks.proxy_protocol` with `server.trusted_proxies = [BALANCER_SOURCE]`. */
  proxyProtocol: boolean;
}

/** One sockpool, restartable on the same ports: its config file names its SOCKS5 and admin ports. */
export class Instance {
  readonly socksPort = freePort();
  readonly adminPort = freePort();
  readonly configPath: string;
  proxy: SpawnedProxy | null = null;
  /** Every `connection` line of every run of this instance, in order. */
  readonly connectionLines: LogRecord[] = [];
  /** Lines at warn or above, and reload lines, of every run (the summary prints them on failure). */
  readonly notable: LogRecord[] = [];
  private generation = 0;

  constructor(readonly options: InstanceOptions) {
    this.configPath = join(options.dir, `${options.name}.toml`);
    this.writeConfig(300_000);
  }

  get name(): string {
    return this.options.name;
  }

  get admin(): string {
    return `127.0.0.1:${this.adminPort}`;
  }

  /** (Re)writes the config file; a reload reads it again. `idleMs` is what a test changes. */
  writeConfig(idleMs: number): void {
    const { workers, drainDelayMs, proxyProtocol } = this.options;
    const lines = [
      "[server]",
      `workers = ${workers}`,
      "shutdown_timeout_ms = 5000",
      ...(drainDelayMs === null ? [] : [`drain_delay_ms = ${drainDelayMs}`]),
      ...(proxyProtocol ? [`trusted_proxies = ["${BALANCER_SOURCE}/32"]`] : []),
      "",
      "[socks]",
      `listen = "127.0.0.1:${this.socksPort}"`,
      ...(proxyProtocol ? ["proxy_protocol = true"] : []),
      "",
      "[relay]",
      `idle_timeout_ms = ${idleMs}`,
      "",
      "[admin]",
      `listen = "${this.admin}"`,
      "",
    ];
    writeFileSync(this.configPath, lines.join("\n"));
  }

  async start(): Promise<void> {
    if (this.proxy !== null) throw new Error(`${this.name} is already running`);
    const generation = ++this.generation;
    this.proxy = await spawnProxy(["--config", this.configPath, "--admin", this.admin], {
      onRecord: (record) => {
        if (record.msg === "connection") this.connectionLines.push({ ...record, generation });
        else if (
          record.level === "warn" ||
          record.level === "error" ||
          String(record.msg).startsWith("reload")
        ) {
          this.notable.push({ ...record, instance: this.name, generation });
        }
      },
      keep: (record) => record.msg !== "connection", // kept above, across restarts
    });
  }

  /** SIGTERM, then waits for the exit (after the drain); returns the exit code. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number> {
    const proxy = this.proxy;
    if (proxy === null) return 0;
    try {
      return await proxy.stop(signal, 20_000);
    } finally {
      this.proxy = null;
    }
  }

  /** Sends SIGHUP and waits for this run's `reloaded` (or `reload rejected`) line. */
  async reload(): Promise<LogRecord> {
    const proxy = this.proxy;
    if (proxy === null) throw new Error(`${this.name} is not running`);
    const seen = proxy.logs.length;
    proxy.process.kill("SIGHUP");
    let outcome: LogRecord | undefined;
    await waitFor(
      () => {
        outcome = proxy.logs
          .slice(seen)
          .find(
            (record) =>
              record.msg === "reloaded" || String(record.msg).startsWith("reload rejected"),
          );
        return outcome !== undefined;
      },
      `${this.name}'s reload to finish`,
      DEADLINE_MS,
    );
    return outcome!;
  }

  /** GET on the admin API: status and body. */
  async get(path: string): Promise<{ status: number; body: string }> {
    const response = await fetch(`http://${this.admin}${path}`);
    return { status: response.status, body: await response.text() };
  }
}

/** The value of one counter family in a Prometheus text exposition, summed over its labels. */
export function sumFamily(exposition: string, family: string): number {
  let sum = 0;
  for (const line of exposition.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)/.exec(line);
    if (match && match[1] === family) sum += Number(match[2]);
  }
  return sum;
}

// ── HAProxy ──

/** One server line: its traffic port, and the admin port its health check asks for /readyz
 *  (none: no health check). */
export interface BalancerServer {
  name: string;
  port: number;
  checkPort?: number;
}

export interface BalancerOptions {
  dir: string;
  servers: readonly BalancerServer[];
  /** `send-proxy` (v1) or `send-proxy-v2` on each server line; null for none. */
  sendProxy: "v1" | "v2" | null;
}

/** A sockpool instance as a server line, checked on its admin port. */
export function serverOf(instance: Instance): BalancerServer {
  return { name: instance.name, port: instance.socksPort, checkPort: instance.adminPort };
}

/** The HAProxy configuration the test uses (the README shows the same). */
export function haproxyConfig(
  frontendPort: number,
  statsPort: number,
  servers: readonly BalancerServer[],
  sendProxy: "v1" | "v2" | null,
): string {
  const proxyKeyword =
    sendProxy === null ? "" : sendProxy === "v1" ? " send-proxy" : " send-proxy-v2";
  const lines = servers.map(
    (server) =>
      `  server ${server.name} 127.0.0.1:${server.port}${server.checkPort === undefined ? "" : ` check port ${server.checkPort}`}${proxyKeyword}`,
  );
  return [
    "global",
    "  maxconn 4096",
    "",
    "defaults",
    "  mode tcp",
    "  timeout connect 2s",
    "  timeout client 30s",
    "  timeout server 30s",
    "  timeout check 1s",
    "",
    "frontend socks",
    `  bind 127.0.0.1:${frontendPort}`,
    "  default_backend sockpool",
    "",
    "backend sockpool",
    "  balance roundrobin",
    "  option httpchk GET /readyz", // 200 while serving; 503 from SIGTERM on
    `  source ${BALANCER_SOURCE}`,
    `  default-server inter ${CHECK_INTER_MS}ms fall 1 rise 1`,
    ...lines,
    "",
    "frontend stats", // the test reads each server's state here (CSV)
    "  mode http",
    `  bind 127.0.0.1:${statsPort}`,
    "  stats enable",
    "  stats uri /stats",
    "",
  ].join("\n");
}

export interface Troubles {
  retries: number;
  redispatches: number;
  connect_errors: number;
}

/** SIGTERM, then SIGKILL if `child` has not exited within 5 s. */
async function stopChild(child: Subprocess | null, name: string): Promise<void> {
  if (child === null) return;
  child.kill("SIGTERM");
  try {
    await withDeadline(child.exited, 5_000, `${name} to exit`);
  } catch {
    child.kill("SIGKILL");
    await child.exited;
  }
}

export class Balancer {
  readonly port = freePort();
  readonly statsPort = freePort();
  readonly configPath: string;
  private child: Subprocess<"ignore", "pipe", "pipe"> | null = null;
  private output = "";

  constructor(readonly options: BalancerOptions) {
    this.configPath = join(options.dir, "haproxy.cfg");
    writeFileSync(
      this.configPath,
      haproxyConfig(this.port, this.statsPort, options.servers, options.sendProxy),
    );
  }

  async start(): Promise<void> {
    const haproxy = requireTool("haproxy");
    // -db: stay in the foreground, no daemon; -f: this config only.
    const child = Bun.spawn([haproxy, "-db", "-f", this.configPath], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.child = child;
    others.add(child);
    void child.exited.then(() => others.delete(child));
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) this.output += decoder.decode(chunk, { stream: true });
    };
    void pump(child.stdout);
    void pump(child.stderr);
    await this.waitForStates(
      Object.fromEntries(
        this.options.servers.map((server) => [
          server.name,
          server.checkPort === undefined ? "no check" : "UP",
        ]),
      ),
    );
  }

  /** The backend's rows of HAProxy's CSV statistics, by server name (BACKEND for the total). */
  private async rows(): Promise<Record<string, Record<string, string>>> {
    const response = await fetch(`http://127.0.0.1:${this.statsPort}/stats;csv`);
    const lines = (await response.text()).trim().split("\n");
    const header = lines[0]!.replace(/^# /, "").split(",");
    const rows: Record<string, Record<string, string>> = {};
    for (const line of lines.slice(1)) {
      const fields = line.split(",");
      const row = Object.fromEntries(header.map((name, i) => [name, fields[i] ?? ""]));
      if (row.pxname === "sockpool") rows[row.svname!] = row;
    }
    return rows;
  }

  /** Each server's state as HAProxy sees it ("UP", "DOWN", "MAINT", …). */
  async states(): Promise<Record<string, string>> {
    const rows = await this.rows();
    return Object.fromEntries(Object.entries(rows).map(([name, row]) => [name, row.status!]));
  }

  /** The backend's totals of what HAProxy did about failed connects: `wretr` (connects retried),
   *  `wredis` (sent to another server) and `econ` (connects that failed in the end). */
  async troubles(): Promise<Troubles> {
    const row = (await this.rows()).BACKEND ?? {};
    return {
      retries: Number(row.wretr || 0),
      redispatches: Number(row.wredis || 0),
      connect_errors: Number(row.econ || 0),
    };
  }

  /** Waits until every named server is in the wanted state (e.g. { s1: "DOWN" }). */
  async waitForStates(wanted: Record<string, string>, ms = DEADLINE_MS): Promise<void> {
    let last: Record<string, string> = {};
    const started = performance.now();
    while (true) {
      if (this.child?.exitCode !== null) {
        throw new Error(`haproxy exited (code ${this.child?.exitCode}):\n${this.output}`);
      }
      try {
        last = await this.states();
        if (Object.entries(wanted).every(([name, state]) => last[name] === state)) return;
      } catch {
        // not listening yet
      }
      if (performance.now() - started > ms) {
        throw new Error(
          `timed out after ${ms} ms waiting for HAProxy to see ${JSON.stringify(wanted)}; it sees ${JSON.stringify(last)}\n${this.output}`,
        );
      }
      await Bun.sleep(20);
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    await stopChild(child, "haproxy");
  }
}

// ── Prometheus ──

/** The Prometheus configuration the test uses (the README shows the same). */
export function prometheusConfig(instances: readonly Instance[]): string {
  return [
    "global:",
    "  scrape_interval: 500ms",
    "  scrape_timeout: 400ms",
    "scrape_configs:",
    "  - job_name: sockpool",
    "    static_configs:",
    `      - targets: [${instances.map((instance) => `"${instance.admin}"`).join(", ")}]`,
    "",
  ].join("\n");
}

export class Prometheus {
  readonly port = freePort();
  readonly configPath: string;
  private child: Subprocess<"ignore", "pipe", "pipe"> | null = null;
  private output = "";

  constructor(
    readonly dir: string,
    instances: readonly Instance[],
  ) {
    this.configPath = join(dir, "prometheus.yml");
    writeFileSync(this.configPath, prometheusConfig(instances));
  }

  async start(): Promise<void> {
    const prometheus = requireTool("prometheus");
    const child = Bun.spawn(
      [
        prometheus,
        `--config.file=${this.configPath}`,
        `--storage.tsdb.path=${join(this.dir, "prometheus-data")}`,
        `--web.listen-address=127.0.0.1:${this.port}`,
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    this.child = child;
    others.add(child);
    void child.exited.then(() => others.delete(child));
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) this.output += decoder.decode(chunk, { stream: true });
    };
    void pump(child.stdout);
    void pump(child.stderr);
    const started = performance.now();
    while (true) {
      if (child.exitCode !== null) {
        throw new Error(`prometheus exited (code ${child.exitCode}):\n${this.output}`);
      }
      try {
        const response = await fetch(`http://127.0.0.1:${this.port}/-/ready`);
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      if (performance.now() - started > DEADLINE_MS) {
        throw new Error(`prometheus not ready within ${DEADLINE_MS} ms:\n${this.output}`);
      }
      await Bun.sleep(50);
    }
  }

  /** An instant query through Prometheus' own API; the samples' labels and values. */
  async query(expression: string): Promise<{ metric: Record<string, string>; value: number }[]> {
    const url = `http://127.0.0.1:${this.port}/api/v1/query?query=${encodeURIComponent(expression)}`;
    const answer = (await (await fetch(url)).json()) as {
      status: string;
      error?: string;
      data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    if (answer.status !== "success") throw new Error(`query ${expression}: ${answer.error}`);
    return (answer.data?.result ?? []).map((sample) => ({
      metric: sample.metric,
      value: Number(sample.value[1]),
    }));
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    await stopChild(child, "prometheus");
  }
}

// ── The load: SOCKS5 CONNECTs through HAProxy to an echo target ──

export interface PhaseCount {
  made: number;
  failed: number;
  /** The slowest connection that went through, from connect to echo (holds included). */
  slowest_ms: number;
  /** The first few failures' messages. */
  errors: string[];
}

/** A client's own address for one connection that went through, to find in an instance's log. */
export interface Sample {
  client: string;
  phase: string;
}

/**
 * `concurrency` loops, each: connect to HAProxy, SOCKS5 CONNECT to the echo target, send 32 bytes,
 * read them back, close; then `pauseMs` and again. Every other loop holds its connection open for
 * `holdMs` before sending, so a stop always finds connections to drain. Every connection counts
 * toward the phase that was current when it began: made (the echo came back whole) or failed.
 */
export class Load {
  phase = "idle";
  readonly counts = new Map<string, PhaseCount>();
  readonly samples: Sample[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly balancerPort: number,
    private readonly targetPort: number,
    private readonly concurrency: number,
    private readonly pauseMs: number,
    private readonly holdMs: number,
  ) {}

  count(phase: string): PhaseCount {
    let count = this.counts.get(phase);
    if (count === undefined) {
      count = { made: 0, failed: 0, slowest_ms: 0, errors: [] };
      this.counts.set(phase, count);
    }
    return count;
  }

  start(): void {
    this.running = true;
    for (let i = 0; i < this.concurrency; i++) this.loops.push(this.loop(i));
  }

  /** Stops starting connections and waits for those in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  /**
   * One connection through HAProxy that stays open `holdMs` before its echo, counted toward the
   * current phase like the loops' own: `open` settles once the SOCKS5 CONNECT has succeeded (or
   * failed), `done` once it has been counted. A stop that follows `open` must drain it.
   */
  held(holdMs: number): { open: Promise<void>; done: Promise<void> } {
    const count = this.count(this.phase);
    let opened: () => void = () => {};
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const done = (async () => {
      let conn: Conn | null = null;
      try {
        ({ conn } = await socksConnect(this.balancerPort, "127.0.0.1", this.targetPort));
        opened();
        await Bun.sleep(holdMs);
        await conn.write("held connection");
        const echoed = new TextDecoder().decode(await conn.read(15, 5_000));
        if (echoed !== "held connection")
          throw new Error(`echo mismatch: ${JSON.stringify(echoed)}`);
        count.made++;
      } catch (error) {
        count.failed++;
        if (count.errors.length < 5) count.errors.push(`held: ${(error as Error).message}`);
      } finally {
        opened();
        conn?.end();
      }
    })();
    return { open, done };
  }

  private async loop(index: number): Promise<void> {
    let sequence = 0;
    while (this.running) {
      const phase = this.phase;
      const count = this.count(phase);
      const message = `client ${index} connection ${sequence++} ..........`.slice(0, 32);
      let conn: Conn | null = null;
      const started = performance.now();
      try {
        ({ conn } = await socksConnect(this.balancerPort, "127.0.0.1", this.targetPort));
        const client = `127.0.0.1:${conn.localPort}`;
        if (index % 2 === 1) await Bun.sleep(this.holdMs);
        await conn.write(message);
        const echoed = new TextDecoder().decode(await conn.read(message.length, 5_000));
        if (echoed !== message) throw new Error(`echo mismatch: ${JSON.stringify(echoed)}`);
        count.made++;
        count.slowest_ms = Math.max(count.slowest_ms, Math.round(performance.now() - started));
        if (sequence % 16 === 1) this.samples.push({ client, phase });
      } catch (error) {
        count.failed++;
        if (count.errors.length < 5) count.errors.push((error as Error).message);
      } finally {
        conn?.end();
      }
      if (this.pauseMs > 0) await Bun.sleep(this.pauseMs);
    }
  }
}
