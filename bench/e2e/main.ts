// The end-to-end load benchmark's entry point, `bun run bench:e2e`: sockpool (per pool strategy)
// beside direct loopback and the peers Dante, microsocks and HAProxy, all measured in ONE run with
// real tools on 127.0.0.1 (child-load.ts and child-servers.ts are processes it starts, not entries):
//   throughput  iperf3 (-P 1/4, -R) through proxychains4 (SOCKS5) or a TCP forward;
//   rate        connect [+ SOCKS5 handshake] + 64 B echo + close, C loops for T s: conn/s, latency;
//   idle        N idle proxied connections: the proxy's RSS per connection;
//   slow        K readers that stall while the target streams: the proxy's peak RSS.
// Not a test and not a gate: it prints tables, writes bench/results/e2e.{md,json} and evaluates
// the targets without failing on them. Every process it starts is stopped at the end, also on
// failure and Ctrl-C, and it checks with ps that none is left.
//
//   bun bench/e2e/main.ts [--time S] [--strategies a,b] [--peers list] [--only sections] [--quick]
//                    [--concurrency C] [--idle N] [--out DIR] [--smoke]

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { STRATEGY_NAMES } from "../../src/pool/index.ts";
import {
  IPERF_VARIANTS,
  type IperfVariant,
  requireTool,
  runIperf,
  startIperfServer,
  writeProxychainsConfig,
} from "./iperf.ts";
import type { LoadJob, LoadMessage } from "./child-load.ts";
import {
  BENCH_PACKAGES,
  dantePeer,
  debianVersion,
  haproxyPeer,
  microsocksPeer,
  PEER_FAMILIES,
  type PeerName,
  type PeerSpec,
  type RunningPeer,
  SOCKPOOL_POOL,
  SOCKPOOL_WORKERS,
  sockpoolPeer,
  type Targets,
} from "./peers.ts";
import {
  cleanupOnSignal,
  freePorts,
  hardFileLimit,
  leftoverProcesses,
  type Proc,
  spawn,
  stop,
  stopAll,
  stopAllOnSignals,
  timeWaitSockets,
  treeCpuSeconds,
  treeMemory,
} from "./procs.ts";
import {
  type Cell,
  evaluateTargets,
  type IdleRow,
  type PathInfo,
  type PathKind,
  type RateRow,
  type Report,
  renderMarkdown,
  type SlowRow,
  type ThroughputRow,
} from "./report.ts";
import type { ServersMessage } from "./child-servers.ts";
import { describeMachine } from "../lib/machine.ts";
import { COMMITTED_RESULTS_DIR } from "../lib/results.ts";
import { median } from "../lib/stats.ts";

const MIB = 1024 * 1024;
const SECTIONS = ["throughput", "rate", "idle", "slow"] as const;
type Section = (typeof SECTIONS)[number];
const DEFAULT_STRATEGIES = ["local", "queue"];
/** Wanted for the idle test; fewer when the open-file limit cannot hold them. */
const IDLE_CONNECTIONS_WANTED = 10_000;
/** Descriptors a proxy keeps besides two per connection. */
const FDS_RESERVED = 256;
/** The slow readers' sockpool bound allows this much for the runtime itself. */
const RUNTIME_SLACK_MIB = 32;
/** One read chunk a paused connection may hold outside the pool (Bun hands up to 512 KiB). */
const READ_CHUNK_BYTES = 512 * 1024;
const SAMPLE_MS = 100;

// ── Options ────────────────────────────────────────────────────────────────────────────────────

const USAGE = `usage: bun bench/e2e/main.ts [options]          (bun run bench:e2e -- [options])
  --time S           seconds per iperf3 run and per rate test (default 5; --quick 2; --smoke 1)
  --strategies LIST  sockpool pool strategies, comma-separated (default ${DEFAULT_STRATEGIES.join(",")}; any of ${STRATEGY_NAMES.join(", ")})
  --peers LIST       of ${PEER_FAMILIES.join(", ")} (default all; --smoke: direct,sockpool)
  --only LIST        sections, of ${SECTIONS.join(", ")} (default all)
  --concurrency C    rate test loops (default 32)
  --idle N           idle connections (default 10000, fewer if the open-file limit cannot hold them)
  --quick            shorter: 2 s runs, 2000 idle, 16 slow readers × 32 MiB
  --smoke            tiny sizes, well under a minute (also BENCH_SMOKE=1)
  --out DIR          where e2e.md and e2e.json go (also BENCH_RESULTS_DIR). Default: bench/results
                     for a run at the defaults, else a temp dir (never over the committed results)
Debian packages it drives: ${BENCH_PACKAGES.join(" ")} (.ci/setup.sh --bench-tools); a missing peer is
skipped with a note, a missing iperf3 or proxychains4 is an error.`;

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    time: { type: "string" },
    strategies: { type: "string" },
    peers: { type: "string" },
    only: { type: "string" },
    concurrency: { type: "string" },
    idle: { type: "string" },
    quick: { type: "boolean", default: false },
    smoke: { type: "boolean", default: process.env.BENCH_SMOKE === "1" },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function usageError(message: string): never {
  console.error(`bench/e2e: ${message}\n${USAGE}`);
  process.exit(2);
}

function listOption<T extends string>(
  flag: string,
  text: string | undefined,
  allowed: readonly T[],
  fallback: T[],
): T[] {
  if (text === undefined) return fallback;
  const items = text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) {
      usageError(`${flag}: expected any of ${allowed.join(", ")}, got ${JSON.stringify(item)}`);
    }
  }
  if (items.length === 0) usageError(`${flag}: expected at least one of ${allowed.join(", ")}`);
  return [...new Set(items)] as T[];
}

function intOption(flag: string, text: string | undefined, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    usageError(`${flag}: expected an integer between 1 and ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

const smoke = values.smoke;
const quick = values.quick && !smoke;
const strategies = listOption(
  "--strategies",
  values.strategies,
  STRATEGY_NAMES,
  smoke ? ["local"] : DEFAULT_STRATEGIES,
);
const peerNames = listOption<PeerName>(
  "--peers",
  values.peers,
  PEER_FAMILIES,
  smoke ? ["direct", "sockpool"] : [...PEER_FAMILIES],
);
const sections = listOption<Section>("--only", values.only, SECTIONS, [...SECTIONS]);
const seconds = intOption("--time", values.time, smoke ? 1 : quick ? 2 : 5, 600);
const concurrency = intOption("--concurrency", values.concurrency, smoke ? 8 : 32, 4096);
const fileLimit = Math.min(65_536, hardFileLimit());
const idleFit = Math.floor((fileLimit - FDS_RESERVED) / 2 / 100) * 100;
const idleWanted = intOption(
  "--idle",
  values.idle,
  smoke ? 50 : quick ? 2_000 : IDLE_CONNECTIONS_WANTED,
  1_000_000,
);
const idleConnections = Math.min(idleWanted, idleFit);
const slow = smoke
  ? { conns: 4, streamBytes: 4 * MIB, stallMs: 500, slowMs: 500 }
  : quick
    ? { conns: 16, streamBytes: 32 * MIB, stallMs: 1_000, slowMs: 1_000 }
    : { conns: 32, streamBytes: 64 * MIB, stallMs: 3_000, slowMs: 3_000 };
const variants: readonly IperfVariant[] = smoke
  ? IPERF_VARIANTS.filter((variant) => variant.key === "1" || variant.key === "4R")
  : IPERF_VARIANTS;
/** Only a run at the defaults writes the committed results. */
const fullRun =
  !smoke &&
  !quick &&
  [
    values.only,
    values.peers,
    values.time,
    values.strategies,
    values.concurrency,
    values.idle,
  ].every((value) => value === undefined);
/** Where the results go; a temp dir is only made when they are written. */
function resultsDir(): string {
  return (
    values.out ??
    process.env.BENCH_RESULTS_DIR ??
    (fullRun ? COMMITTED_RESULTS_DIR : mkdtempSync(path.join(os.tmpdir(), "sockpool-e2e-results-")))
  );
}
const command = ["bun", "bench/e2e/main.ts", ...Bun.argv.slice(2)].join(" ");

// ── Progress ───────────────────────────────────────────────────────────────────────────────────

const startedMs = performance.now();

function progress(text: string): void {
  const elapsed = ((performance.now() - startedMs) / 1000).toFixed(0).padStart(4);
  console.log(`[e2e ${elapsed}s] ${text}`);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ── Paths ──────────────────────────────────────────────────────────────────────────────────────

interface Route {
  info: PathInfo;
  spec: PeerSpec | null; // null: direct
}

function kindsOf(spec: PeerSpec): PathKind[] {
  switch (spec.family) {
    case "sockpool":
      return ["socks", "forward"];
    case "haproxy":
      return ["forward"];
    default:
      return ["socks"];
  }
}

function routeOf(spec: PeerSpec | null, kind: PathKind): Route {
  if (spec === null) {
    return {
      spec,
      info: {
        id: "direct",
        label: "direct (no proxy)",
        kind: "direct",
        family: "direct",
        strategy: null,
      },
    };
  }
  return {
    spec,
    info: {
      id: `${spec.id}/${kind}`,
      label: `${spec.label} (${kind === "socks" ? "SOCKS5" : "forward"})`,
      kind,
      family: spec.family,
      strategy: spec.family === "sockpool" ? spec.id.slice("sockpool-".length) : null,
    },
  };
}

type Which = "echo" | "close" | "bulk" | "iperf";

/** Where a client connects for `which` server along a route, and the SOCKS5 target if any. */
function endpoint(
  route: Route,
  running: RunningPeer | null,
  targets: Targets,
  which: Which,
): { port: number; socksTarget: number | null } {
  const key = `${which}Port` as const;
  if (route.info.kind === "direct") return { port: targets[key], socksTarget: null };
  if (running === null) throw new Error("no running peer for a proxied route");
  if (route.info.kind === "socks") return { port: running.socksPort!, socksTarget: targets[key] };
  return { port: running.forward![key], socksTarget: null };
}

// ── Helpers around the child processes ────────────────────────────────────────────────────────

async function nextMessage<T extends { type: string }>(
  proc: Proc,
  timeoutMs: number,
  what: string,
): Promise<T> {
  while (true) {
    const line = await proc.stdout!.next(timeoutMs, `${proc.name}: ${what}`);
    if (line === null) {
      await proc.child.exited;
      throw new Error(
        `${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) before ${what}:\n${proc.stderr()}`,
      );
    }
    if (line.startsWith("{")) return JSON.parse(line) as T;
  }
}

function startLoad(job: LoadJob): Proc {
  return spawn(
    `load ${job.mode}`,
    [process.execPath, "bench/e2e/child-load.ts", JSON.stringify(job)],
    {
      stdout: "lines",
      stdin: job.mode === "idle" ? "pipe" : "ignore",
      fileLimit,
    },
  );
}

async function serverStats(servers: Proc): Promise<Extract<ServersMessage, { type: "stats" }>> {
  servers.send("stats");
  return await nextMessage(servers, 5_000, "stats");
}

/** Samples in the settle window: one second at SAMPLE_MS. */
const SETTLE_SAMPLES = 10;
/** Give up waiting for RSS to settle after this long, and use the last window anyway. */
const SETTLE_MAX_MS = 6_000;

/**
 * RSS (and PSS) once it has settled: the median of the last second of samples, taken when that
 * second varied by at most 1 % (or 512 KiB), or after SETTLE_MAX_MS. Right after a burst of
 * connections the runtime still holds garbage it collects within a second or so.
 */
async function settledRss(pid: number, withPss = false): Promise<{ rss: number; pss: number }> {
  const window: { rss: number; pss: number }[] = [];
  const started = performance.now();
  while (true) {
    const memory = treeMemory(pid, withPss);
    window.push({ rss: memory.rssBytes, pss: memory.pssBytes });
    if (window.length > SETTLE_SAMPLES) window.shift();
    if (window.length === SETTLE_SAMPLES) {
      const rss = window.map((sample) => sample.rss);
      const spread = Math.max(...rss) - Math.min(...rss);
      const settled = spread <= Math.max(0.01 * median(rss), 512 * 1024);
      if (settled || performance.now() - started > SETTLE_MAX_MS) {
        return { rss: median(rss), pss: median(window.map((sample) => sample.pss)) };
      }
    }
    await Bun.sleep(SAMPLE_MS);
  }
}

// ── Sections ───────────────────────────────────────────────────────────────────────────────────

interface Context {
  dir: string;
  targets: Targets;
  specs: PeerSpec[];
  withDirect: boolean;
  servers: Proc;
  iperf3: string | null;
  proxychains: string | null;
}

async function startPeer(context: Context, spec: PeerSpec): Promise<RunningPeer> {
  return await spec.start({
    targets: context.targets,
    dir: context.dir,
    fileLimit,
    connectionsMax: idleConnections + 1_000,
  });
}

/** Runs `body` per route, peer by peer: one peer instance serves all its routes (fresh: one per route). */
async function eachRoute(
  context: Context,
  fresh: boolean,
  withDirect: boolean,
  onFail: (route: Route, error: string) => void,
  body: (route: Route, running: RunningPeer | null) => Promise<void>,
): Promise<void> {
  if (withDirect && context.withDirect) await body(routeOf(null, "direct"), null);
  for (const spec of context.specs) {
    const routes = kindsOf(spec).map((kind) => routeOf(spec, kind));
    const groups = fresh ? routes.map((route) => [route]) : [routes];
    for (const group of groups) {
      let running: RunningPeer | null = null;
      try {
        progress(`starting ${spec.label}`);
        running = await startPeer(context, spec);
      } catch (error) {
        for (const route of group) onFail(route, `could not start: ${message(error)}`);
        progress(`  ${spec.label} did not start: ${message(error)}`);
        continue;
      }
      try {
        for (const route of group) {
          try {
            await body(route, running);
          } catch (error) {
            onFail(route, message(error));
            progress(`  ${route.info.label}: FAILED ${message(error)}`);
          }
          if (!running.proc.alive()) {
            throw new Error(`${spec.label} exited mid-run:\n${running.proc.stderr()}`);
          }
        }
      } finally {
        await stop(running.proc);
      }
    }
  }
}

async function throughputSection(context: Context): Promise<ThroughputRow[]> {
  const rows = new Map<string, ThroughputRow>();
  const rowOf = (route: Route) => {
    let row = rows.get(route.info.id);
    if (row === undefined) {
      row = { ...route.info, variants: {} };
      rows.set(route.info.id, row);
    }
    return row;
  };
  if (context.iperf3 === null || context.proxychains === null) return [];
  const iperf3 = context.iperf3;
  const proxychains = context.proxychains;
  await eachRoute(
    context,
    false,
    true,
    (route, error) => {
      for (const variant of variants) rowOf(route).variants[variant.key] = failedCell(error);
    },
    async (route, running) => {
      const target = endpoint(route, running, context.targets, "iperf");
      const prefix =
        route.info.kind === "socks"
          ? [
              proxychains,
              "-q",
              "-f",
              writeProxychainsConfig(context.dir, route.spec!.id, target.port),
            ]
          : [];
      const port = route.info.kind === "socks" ? context.targets.iperfPort : target.port;
      for (const variant of variants) {
        try {
          const result = await runIperf(iperf3, {
            prefix,
            port,
            seconds,
            variant,
            ...(running === null ? {} : { cpuOf: running.proc.pid }),
          });
          const cell: Cell = { gbps: result.bitsPerSecond / 1e9, proxy_cpu_cores: result.cpuCores };
          rowOf(route).variants[variant.key] = cell;
          progress(
            `throughput · ${route.info.label} · ${variant.name}: ${cell.gbps!.toFixed(2)} Gbit/s` +
              (cell.proxy_cpu_cores === null
                ? ""
                : `, proxy ${cell.proxy_cpu_cores.toFixed(2)} cores`),
          );
        } catch (error) {
          rowOf(route).variants[variant.key] = failedCell(message(error));
          progress(`throughput · ${route.info.label} · ${variant.name}: FAILED ${message(error)}`);
        }
      }
    },
  );
  return [...rows.values()];
}

function failedCell(error: string): Cell {
  return { gbps: null, proxy_cpu_cores: null, error };
}

async function rateSection(context: Context): Promise<RateRow[]> {
  const rows: RateRow[] = [];
  const failedRow = (route: Route, error: string): RateRow => ({
    ...route.info,
    conn_per_s: null,
    completed: 0,
    errors: 0,
    error_kinds: {},
    p50_ms: null,
    p90_ms: null,
    p99_ms: null,
    max_ms: null,
    proxy_cpu_cores: null,
    error,
  });
  await eachRoute(
    context,
    false,
    true,
    (route, error) => rows.push(failedRow(route, error)),
    async (route, running) => {
      progress(
        `rate · ${route.info.label}: ${concurrency} loops for ${seconds} s (${timeWaitSockets() ?? "?"} sockets in TIME_WAIT)`,
      );
      const target = endpoint(route, running, context.targets, "close");
      const cpuBefore = running === null ? 0 : treeCpuSeconds(running.proc.pid);
      const wallBefore = performance.now();
      const load = startLoad({ mode: "rate", ...target, concurrency, seconds, timeoutMs: 10_000 });
      const result = await nextMessage<Extract<LoadMessage, { type: "rate" }>>(
        load,
        (seconds + 30) * 1000,
        "the rate result",
      );
      await load.child.exited;
      const cores =
        running === null
          ? null
          : (treeCpuSeconds(running.proc.pid) - cpuBefore) /
            ((performance.now() - wallBefore) / 1000);
      const row: RateRow = {
        ...route.info,
        conn_per_s: result.completed / result.elapsedS,
        completed: result.completed,
        errors: result.errors,
        error_kinds: result.errorKinds,
        p50_ms: result.p50Ms,
        p90_ms: result.p90Ms,
        p99_ms: result.p99Ms,
        max_ms: result.maxMs,
        proxy_cpu_cores: cores,
      };
      rows.push(row);
      progress(
        `rate · ${route.info.label}: ${Math.round(row.conn_per_s!)} conn/s, p50 ${result.p50Ms.toFixed(2)} ms, ` +
          `p99 ${result.p99Ms.toFixed(2)} ms, ${result.errors} errors` +
          (cores === null ? "" : `, proxy ${cores.toFixed(2)} cores`),
      );
    },
  );
  return rows;
}

/** Opens `count` idle connections through the route and waits for "holding". */
async function holdIdle(
  route: Route,
  running: RunningPeer,
  context: Context,
  count: number,
): Promise<{ load: Proc; holding: Extract<LoadMessage, { type: "holding" }> }> {
  const target = endpoint(route, running, context.targets, "echo");
  const load = startLoad({ mode: "idle", ...target, count, concurrency: 64, timeoutMs: 30_000 });
  const holding = await nextMessage<Extract<LoadMessage, { type: "holding" }>>(
    load,
    180_000,
    "idle connections to open",
  );
  return { load, holding };
}

/** The echo server closes first (TIME_WAIT on the listening side); the client checks that every
 *  connection was closed through the proxy. Returns the errors while held and on release. */
async function releaseIdle(
  load: Proc,
  servers: Proc,
): Promise<{ whileHeld: number; onRelease: number }> {
  load.send("release");
  await nextMessage(load, 10_000, "the client to expect the closes");
  servers.send("close-echo");
  await nextMessage(servers, 10_000, "the echo server to close its connections");
  const closed = await nextMessage<Extract<LoadMessage, { type: "closed" }>>(
    load,
    60_000,
    "idle connections to close",
  );
  await load.child.exited;
  return { whileHeld: closed.errorsWhileHeld, onRelease: closed.errorsOnRelease };
}

async function idleSection(context: Context): Promise<IdleRow[]> {
  const rows: IdleRow[] = [];
  const failedRow = (route: Route, error: string): IdleRow => ({
    ...route.info,
    requested: idleConnections,
    open: 0,
    errors: 0,
    error_kinds: {},
    rss_base_mib: null,
    rss_delta_mib: null,
    bytes_per_conn: null,
    pss_bytes_per_conn: null,
    processes: null,
    error,
  });
  await eachRoute(
    context,
    true,
    false,
    (route, error) => rows.push(failedRow(route, error)),
    async (route, running) => {
      const pid = running!.proc.pid;
      // Warm up first (lazy init, JIT), so the baseline already includes it.
      const warm = await holdIdle(route, running!, context, Math.min(200, idleConnections));
      await releaseIdle(warm.load, context.servers);
      const base = await settledRss(pid, true);
      progress(
        `idle · ${route.info.label}: opening ${idleConnections} connections (base RSS ${(base.rss / MIB).toFixed(1)} MiB, ` +
          `${timeWaitSockets() ?? "?"} sockets in TIME_WAIT)`,
      );
      const { load, holding } = await holdIdle(route, running!, context, idleConnections);
      const held = await settledRss(pid, true);
      const processes = treeMemory(pid).processes;
      const released = await releaseIdle(load, context.servers);
      const open = holding.open;
      const errorKinds = { ...holding.errorKinds };
      if (released.whileHeld > 0) errorKinds["closed while held"] = released.whileHeld;
      if (released.onRelease > 0) errorKinds["close not relayed"] = released.onRelease;
      const row: IdleRow = {
        ...route.info,
        requested: idleConnections,
        open,
        errors: holding.errors + released.whileHeld + released.onRelease,
        error_kinds: errorKinds,
        rss_base_mib: base.rss / MIB,
        rss_delta_mib: (held.rss - base.rss) / MIB,
        bytes_per_conn: open === 0 ? null : (held.rss - base.rss) / open,
        // One process: PSS only adds noise (other Bun processes share the binary's pages).
        pss_bytes_per_conn: open === 0 || processes === 1 ? null : (held.pss - base.pss) / open,
        processes,
      };
      rows.push(row);
      progress(
        `idle · ${route.info.label}: ${open} open in ${holding.openS.toFixed(1)} s, ` +
          `ΔRSS ${row.rss_delta_mib!.toFixed(1)} MiB = ${Math.round(row.bytes_per_conn ?? 0)} B/conn, ` +
          `${row.errors} errors, ${processes} process(es)`,
      );
    },
  );
  return rows;
}

async function slowSection(context: Context): Promise<SlowRow[]> {
  const rows: SlowRow[] = [];
  const streamMib = slow.streamBytes / MIB;
  const failedRow = (route: Route, error: string): SlowRow => ({
    ...route.info,
    conns: slow.conns,
    stream_mib: streamMib,
    peak_delta_mib: null,
    stall_peak_delta_mib: null,
    stall_end_delta_mib: null,
    slow_peak_delta_mib: null,
    drain_peak_delta_mib: null,
    end_delta_mib: null,
    target_sent_in_stall_mib: null,
    bound_mib: null,
    bounded: null,
    within_bound: null,
    drain_s: null,
    errors: 0,
    error_kinds: {},
    error,
  });
  const poolBytes = SOCKPOOL_POOL.slots * SOCKPOOL_POOL.slotBytes;
  const sockpoolBound =
    Math.min(poolBytes, slow.conns * SOCKPOOL_POOL.backlogBytesMax) +
    slow.conns * READ_CHUNK_BYTES +
    RUNTIME_SLACK_MIB * MIB;
  await eachRoute(
    context,
    true,
    false,
    (route, error) => rows.push(failedRow(route, error)),
    async (route, running) => {
      const pid = running!.proc.pid;
      const base = await settledRss(pid);
      const sentBefore = (await serverStats(context.servers)).bulkSentBytes;
      progress(
        `slow · ${route.info.label}: ${slow.conns} readers × ${streamMib} MiB, stalled ${slow.stallMs} ms`,
      );
      const target = endpoint(route, running, context.targets, "bulk");
      // Peaks per phase: while the client reads nothing or one chunk per tick (the proxy must
      // hold or refuse what arrives), and while it drains at full speed.
      const peak = { stall: base.rss, slow: base.rss, drain: base.rss };
      let phase: keyof typeof peak = "stall";
      const sampler = setInterval(() => {
        peak[phase] = Math.max(peak[phase], treeMemory(pid).rssBytes);
      }, SAMPLE_MS);
      try {
        const load = startLoad({
          mode: "slow",
          ...target,
          count: slow.conns,
          streamBytes: slow.streamBytes,
          stallMs: slow.stallMs,
          slowMs: slow.slowMs,
          slowTickMs: 100,
          timeoutMs: 120_000,
        });
        const stalling = await nextMessage<Extract<LoadMessage, { type: "stalling" }>>(
          load,
          30_000,
          "slow readers to connect",
        );
        await nextMessage(load, slow.stallMs + 10_000, "the end of the stall");
        const stallEnd = treeMemory(pid).rssBytes;
        peak.stall = Math.max(peak.stall, stallEnd);
        phase = "slow";
        const sentInStall = (await serverStats(context.servers)).bulkSentBytes - sentBefore;
        await nextMessage(load, slow.slowMs + 10_000, "the end of slow reading");
        peak.slow = Math.max(peak.slow, treeMemory(pid).rssBytes);
        phase = "drain";
        const drained = await nextMessage<Extract<LoadMessage, { type: "drained" }>>(
          load,
          180_000,
          "the streams to drain",
        );
        await load.child.exited;
        clearInterval(sampler);
        const end = treeMemory(pid).rssBytes;
        const expected = stalling.connected * slow.streamBytes;
        const errors = drained.errors + (drained.receivedBytes === expected ? 0 : 1);
        const errorKinds = { ...drained.errorKinds };
        if (drained.receivedBytes !== expected) {
          errorKinds[`received ${drained.receivedBytes} of ${expected} bytes`] = 1;
        }
        // What the proxy still holds after a few seconds of the client reading nothing; the peaks
        // include garbage awaiting collection (Bun allocates a fresh buffer per read).
        const heldDelta = stallEnd - base.rss;
        const isSockpool = route.info.family === "sockpool";
        const row: SlowRow = {
          ...route.info,
          conns: slow.conns,
          stream_mib: streamMib,
          peak_delta_mib: (Math.max(peak.stall, peak.slow, peak.drain) - base.rss) / MIB,
          stall_peak_delta_mib: (peak.stall - base.rss) / MIB,
          stall_end_delta_mib: heldDelta / MIB,
          slow_peak_delta_mib: (peak.slow - base.rss) / MIB,
          drain_peak_delta_mib: (peak.drain - base.rss) / MIB,
          end_delta_mib: (end - base.rss) / MIB,
          target_sent_in_stall_mib: sentInStall / MIB,
          bound_mib: isSockpool ? sockpoolBound / MIB : null,
          bounded: heldDelta < 0.25 * slow.conns * slow.streamBytes,
          within_bound: isSockpool ? heldDelta <= sockpoolBound : null,
          drain_s: drained.drainS,
          errors,
          error_kinds: errorKinds,
        };
        rows.push(row);
        progress(
          `slow · ${route.info.label}: ΔRSS peak ${row.stall_peak_delta_mib!.toFixed(1)} MiB stalled ` +
            `(${row.stall_end_delta_mib!.toFixed(1)} at its end), ` +
            `${row.slow_peak_delta_mib!.toFixed(1)} MiB reading slowly, ` +
            `${row.drain_peak_delta_mib!.toFixed(1)} MiB draining; ` +
            `target sent ${row.target_sent_in_stall_mib!.toFixed(1)} MiB while stalled, ` +
            `drained in ${drained.drainS.toFixed(2)} s, ${errors} errors`,
        );
      } finally {
        clearInterval(sampler);
      }
    },
  );
  return rows;
}

// ── Machine ────────────────────────────────────────────────────────────────────────────────────

function toolVersion(argv: string[], pattern: RegExp): string | null {
  try {
    const result = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
    const text = `${result.stdout.toString()}${result.stderr.toString()}`;
    return text.match(pattern)?.[1] ?? null;
  } catch {
    return null;
  }
}

// ── Main ───────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<number> {
  stopAllOnSignals("bench/e2e");
  const dir = mkdtempSync(path.join(os.tmpdir(), "sockpool-e2e-"));
  cleanupOnSignal(() => rmSync(dir, { recursive: true, force: true }));
  const notes: string[] = [];
  const skipped: string[] = [];
  const versions: Record<string, string> = {};
  let report: Report | null = null;
  let failed = false;

  try {
    const iperf3 = sections.includes("throughput")
      ? requireTool("iperf3", "install it with: apt-get install -y iperf3")
      : null;
    const proxychains = sections.includes("throughput")
      ? requireTool("proxychains4", "install it with: apt-get install -y proxychains4")
      : null;

    const specs: PeerSpec[] = [];
    if (peerNames.includes("sockpool")) specs.push(...strategies.map(sockpoolPeer));
    const others: [PeerName, () => PeerSpec][] = [
      ["dante", dantePeer],
      ["microsocks", microsocksPeer],
      ["haproxy", haproxyPeer],
    ];
    for (const [name, make] of others) {
      if (!peerNames.includes(name)) continue;
      const spec = make();
      if (spec.missing !== null) {
        skipped.push(`${spec.label}: ${spec.missing}`);
        progress(`skipping ${spec.label}: ${spec.missing}`);
        continue;
      }
      specs.push(spec);
      versions[spec.family] = spec.label.split(" ").slice(1).join(" ");
    }
    if (iperf3 !== null) {
      versions.iperf3 = toolVersion([iperf3, "--version"], /iperf (\S+)/) ?? "?";
      versions.proxychains4 = debianVersion("proxychains4")?.replace(/[+~-].*$/, "") ?? "?";
    }

    const machine = describeMachine();
    progress(
      `machine: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, bun ${machine.bun_version}; ` +
        `sections ${sections.join(", ")}; strategies ${strategies.join(", ")}; ` +
        `peers ${specs.map((spec) => spec.label).join(", ")}${peerNames.includes("direct") ? ", direct" : ""}`,
    );
    if (idleConnections < idleWanted) {
      notes.push(
        `Idle test at ${idleConnections.toLocaleString("en-US")} connections, not ${idleWanted.toLocaleString("en-US")}: ` +
          `the hard open-file limit here is ${fileLimit} and cannot be raised (no CAP_SYS_RESOURCE), ` +
          `and a proxy needs 2 descriptors per proxied connection plus ${FDS_RESERVED} spare.`,
      );
      progress(`note: ${notes[notes.length - 1]}`);
    }

    const servers = spawn(
      "servers",
      [process.execPath, "bench/e2e/child-servers.ts", String(slow.streamBytes)],
      { stdout: "lines", stdin: "pipe", fileLimit },
    );
    const ready = await nextMessage<Extract<ServersMessage, { type: "ready" }>>(
      servers,
      20_000,
      "the echo and bulk servers",
    );
    const [iperfPort] = freePorts(1) as [number];
    if (iperf3 !== null) await startIperfServer(iperf3, iperfPort);
    const targets: Targets = {
      echoPort: ready.echoPort,
      closePort: ready.closePort,
      bulkPort: ready.bulkPort,
      iperfPort,
    };
    progress(
      `servers on 127.0.0.1: echo ${targets.echoPort}, echo-close ${targets.closePort}, ` +
        `bulk ${targets.bulkPort}, iperf3 ${iperfPort}`,
    );
    const context: Context = {
      dir,
      targets,
      specs,
      withDirect: peerNames.includes("direct"),
      servers,
      iperf3,
      proxychains,
    };

    report = {
      schema: 1,
      date: new Date().toISOString(),
      command,
      smoke,
      wall_s: 0,
      machine: {
        cpu: machine.cpu,
        cores: machine.cores,
        kernel: machine.kernel,
        memory_gib: machine.memory_gib,
        bun: machine.bun_version,
        file_limit: fileLimit,
      },
      versions,
      settings: {
        sockpool_workers: SOCKPOOL_WORKERS,
        strategies: peerNames.includes("sockpool") ? strategies : [],
        peers: [...(context.withDirect ? ["direct"] : []), ...specs.map((spec) => spec.id)],
        sections: [...sections],
        iperf_seconds: seconds,
        iperf_variants: variants.map(({ key, name }) => ({ key, name })),
        rate_seconds: seconds,
        rate_concurrency: concurrency,
        idle_connections: idleConnections,
        slow_conns: slow.conns,
        slow_stream_mib: slow.streamBytes / MIB,
        slow_stall_ms: slow.stallMs,
        slow_slow_ms: slow.slowMs,
        pool: {
          slots: SOCKPOOL_POOL.slots,
          slot_bytes: SOCKPOOL_POOL.slotBytes,
          backlog_bytes_max: SOCKPOOL_POOL.backlogBytesMax,
        },
      },
      throughput: sections.includes("throughput") ? await throughputSection(context) : [],
      rate: sections.includes("rate") ? await rateSection(context) : [],
      idle: sections.includes("idle") ? await idleSection(context) : [],
      slow: sections.includes("slow") ? await slowSection(context) : [],
      targets: [],
      notes,
      skipped,
      leftover_processes: [],
    };
  } catch (error) {
    console.error(`bench/e2e: ${error instanceof Error ? error.stack : String(error)}`);
    failed = true;
  } finally {
    progress("stopping every process started");
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }

  const left = leftoverProcesses();
  if (left.length > 0) {
    console.error(`bench/e2e: processes left running: ${left.join(", ")}`);
    failed = true;
  } else {
    progress("checked with ps: no process left running");
  }
  if (report === null) return 1;

  notes.push(
    `sockpool runs with --workers ${SOCKPOOL_WORKERS} on this ${report.machine.cores}-core machine; the load client, ` +
      "the echo/bulk servers (Bun) and iperf3 run as separate processes on the same cores, so every figure is for the whole box.",
    "microsocks starts one thread per connection (a 1 KiB relay buffer each); Dante forks negotiate, request " +
      "and io child processes, so its RSS is summed over the process tree, which counts shared pages once per process (the PSS column splits them).",
    "HAProxy runs in tcp mode with nbthread 2; it and sockpool's forward listeners skip the SOCKS5 handshake.",
    "In the rate test the echo server closes first after echoing, and the close travels back through the proxy: " +
      "TIME_WAIT then stays on listening ports. With the client closing first, each connection would tie up an " +
      "ephemeral port for 60 s, the 28k of them run out within seconds, and Dante (which binds its outgoing " +
      "sockets) then fails with reply 03. Idle connections are released the same way.",
    "sockpool's slab is allocated up front, but its pages are committed on first touch. The forward path takes " +
      "one slot per connection when the client's first bytes arrive before the upstream connect completes. The " +
      "queue strategy's FIFO free list hands out a different slot each time until every slot has been used " +
      `(one new 4 KiB page per slot for small writes: up to ${(SOCKPOOL_POOL.slots * 4) / 1024} MiB, once), while local's ` +
      "per-Worker LIFO cache reuses a few; in the idle test this shows as a higher per-connection figure for queue (forward).",
  );
  report.leftover_processes = left;
  report.wall_s = (performance.now() - startedMs) / 1000;
  report.targets = evaluateTargets(report);
  const failures =
    report.throughput.some((row) =>
      Object.values(row.variants).some((cell) => cell.gbps === null),
    ) ||
    report.rate.some((row) => row.conn_per_s === null) ||
    report.idle.some((row) => row.bytes_per_conn === null) ||
    report.slow.some((row) => row.peak_delta_mib === null);
  const markdown = renderMarkdown(report);
  const outDir = resultsDir();
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, "e2e.md"), markdown);
  writeFileSync(path.join(outDir, "e2e.json"), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\n${markdown}`);
  console.log(`results: ${path.join(outDir, "e2e.md")} and e2e.json`);
  return failed || failures ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    console.error(`bench/e2e: ${error instanceof Error ? error.stack : String(error)}`);
    await stopAll();
    process.exit(1);
  },
);
