#!/usr/bin/env bun

// The fault soak: the real proxy (bun src/main.ts, 2 Workers, --pool-checked) under a seeded mix
// of checked transfers and faults for a bounded time, one Worker crash midway, then its invariants:
// descriptors, slots, open connections, peak RSS, checksums, restarts. It stops by itself and
// kills every child it started. Not a benchmark (bench/) and not a test file: soak.test.ts runs it.
//
//   bun run soak [-- --seconds N] [--clients N] [--no-crash] [--pool-strategy NAME] [--json FILE]
//   SOCKPOOL_TEST_SEED=N replays a run's choices (the seed is printed first).

import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { closeOpenConns } from "../support/conn.ts";
import { Prng } from "../support/prng.ts";
import type { LogRecord } from "../support/proxy.ts";
import { killChildren, spawnProxy } from "../support/proxy-process.ts";
import { testSeed } from "../support/seed.ts";
import { spawnResetStorm, stormResult } from "../support/storm.ts";
import { refusedPort } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";
import {
  pickScenario,
  runScenario,
  SCENARIOS,
  type ScenarioEnv,
  type ScenarioName,
  type ScenarioResult,
} from "./scenarios.ts";
import { Reports, startBlackhole, startScenarioTarget } from "./targets.ts";

// ── Settings ──

// The blackhole is answered 06 at the dial deadline, dns_timeout_ms + connect_timeout_ms (one
// deadline for the whole stage, also for an IP literal).
const CONNECT_TIMEOUT_MS = 500;
const DNS_TIMEOUT_MS = 500;
const HANDSHAKE_TIMEOUT_MS = 1_000; // a silent client is closed after this
const WORKERS = 2;
const STORM_CLIENTS = 300;
const STORM_EVERY_MS = 10_000;
const RSS_SAMPLE_MS = 100;
/** How long a reset scenario waits for the proxy's log line on its connection. */
const OUTCOME_MS = 5_000;
/** Descriptors the proxy may hold above its start-up count once everything is closed. */
const FD_MARGIN = 4;
/** How long the end may wait for the proxy to let go of what the clients used. */
const DRAIN_MS = 15_000;
/** A relay direction holds at most one chunk outside the pool when paused (docs/architecture.md
 *  §2); Bun's chunks reach 512 KiB. */
const HELD_CHUNK_BYTES = 512 * 1024;
/** What the runtime itself may use per thread (the main thread and each Worker) on top of the
 *  slab and held chunks: Bun and JSC (heap, garbage between collections, a fresh buffer per read).
 *  About 57 MiB for the whole process at ready; a 60 s soak peaks near 200 MiB. */
const RUNTIME_ALLOWANCE_PER_THREAD_BYTES = 128 * 1024 * 1024;
const RUNTIME_ALLOWANCE_BYTES = (WORKERS + 1) * RUNTIME_ALLOWANCE_PER_THREAD_BYTES;

interface Options {
  seconds: number;
  clients: number;
  crash: boolean;
  strategy: string;
  json: string | null;
}

function parseArgs(argv: string[]): Options {
  const options: Options = {
    seconds: 600,
    clients: 24,
    crash: true,
    strategy: "local",
    json: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === "--seconds") options.seconds = Number(value());
    else if (arg === "--clients") options.clients = Number(value());
    else if (arg === "--no-crash") options.crash = false;
    else if (arg === "--pool-strategy") options.strategy = value();
    else if (arg === "--json") options.json = value();
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!(options.seconds > 0) || !(options.clients >= 1 && options.clients <= 64))
    throw new Error("--seconds must be > 0 and --clients in 1..64");
  return options;
}

// ── Reading the proxy from outside (/proc) ──

/** The proxy's descriptors by kind (socket, pipe, anon_inode:[eventpoll], …) and socket inodes. */
function descriptors(pid: number): {
  total: number;
  kinds: Record<string, number>;
  sockets: Set<string>;
} {
  const kinds: Record<string, number> = {};
  const sockets = new Set<string>();
  let total = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed while listing
    }
    total++;
    const socket = /^socket:\[(\d+)\]$/.exec(link);
    if (socket) sockets.add(socket[1]!);
    const kind = socket ? "socket" : link.startsWith("/") ? "file" : link.replace(/:.*$/, "");
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return { total, kinds, sockets };
}

/** Of `sockets`, those still connecting (SYN_SENT) to 127.0.0.1:`port`: dials the proxy gave up
 *  on. Bun cannot cancel a pending connect, so the kernel keeps retrying the SYN (up to
 *  tcp_syn_retries, about 127 s) before the descriptor is freed. */
function synSentTo(pid: number, port: number, sockets: Set<string>): number {
  const portHex = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const table of ["tcp", "tcp6"]) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const [, , remote, state] = fields;
      if (state === "02" && remote!.endsWith(`:${portHex}`) && sockets.has(fields[9]!)) count++;
    }
  }
  return count;
}

function statusKb(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
      readFileSync(`/proc/${pid}/status`, "utf8"),
    );
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

// ── Tallies ──

interface ScenarioTally {
  runs: number;
  expected: number;
  unexpected: number;
  crash_affected: number;
  /** Resets the other end learnt of as a FIN (counted here, not under unexpected). */
  reset_as_fin: number;
  via_socks: number;
  via_forward: number;
  bytes_up: number;
  bytes_down: number;
  /** The first few unexpected results, for the report. */
  samples: string[];
}

function emptyTally(): ScenarioTally {
  return {
    runs: 0,
    expected: 0,
    unexpected: 0,
    crash_affected: 0,
    reset_as_fin: 0,
    via_socks: 0,
    via_forward: 0,
    bytes_up: 0,
    bytes_down: 0,
    samples: [],
  };
}

interface Invariant {
  name: string;
  ok: boolean;
  detail: string;
}

const MIB = 1024 * 1024;
const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

// ── The run ──

const options = parseArgs(process.argv.slice(2));
const seed = testSeed("soak");
const pythonChildren = new Set<Subprocess>();
const tempDir = mkdtempSync(join(tmpdir(), "sockpool-soak-"));

let cleanedUp = false;
async function cleanupAll(): Promise<void> {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const child of pythonChildren) child.kill("SIGKILL");
  await Promise.allSettled([...pythonChildren].map((child) => child.exited));
  await killChildren();
  closeOpenConns();
  rmSync(tempDir, { recursive: true, force: true });
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    console.error(`soak: ${signal}, stopping every child`);
    void cleanupAll().then(() => process.exit(130));
  });
}

async function storm(port: number): Promise<boolean> {
  const child = spawnResetStorm(port, STORM_CLIENTS);
  pythonChildren.add(child);
  try {
    const { code, out } = await stormResult(child);
    return code === 0 && out === `done ${STORM_CLIENTS}`;
  } catch {
    child.kill("SIGKILL");
    return false;
  } finally {
    pythonChildren.delete(child);
  }
}

async function main(): Promise<number> {
  const prng = new Prng(seed);
  const reports = new Reports();
  const target = startScenarioTarget(reports);
  const refused = refusedPort();
  const blackhole = await startBlackhole(pythonChildren);

  const configPath = join(tempDir, "soak.toml");
  writeFileSync(
    configPath,
    [
      "[server]",
      `workers = ${WORKERS}`,
      "shutdown_timeout_ms = 5000",
      "[socks]",
      'listen = "127.0.0.1:0"',
      `handshake_timeout_ms = ${HANDSHAKE_TIMEOUT_MS}`,
      "[upstream]",
      `connect_timeout_ms = ${CONNECT_TIMEOUT_MS}`,
      `dns_timeout_ms = ${DNS_TIMEOUT_MS}`,
      "[[forward]]",
      'listen = "127.0.0.1:0"',
      `target = "127.0.0.1:${target.port}"`,
      "[pool]",
      `strategy = "${options.strategy}"`,
      "",
    ].join("\n"),
  );

  // Connection lines are only counted (a long run logs hundreds of thousands); the rest is kept.
  const outcomes: Record<string, number> = {};
  const byWorker: Record<string, number> = {};
  let proxyBytesUp = 0;
  let proxyBytesDown = 0;
  let crashes = 0;
  let restarts = 0;
  let restartedAt = 0;
  const errorLines: LogRecord[] = [];
  // Reset scenarios ask for the proxy's own verdict on their connection, by client port.
  const watchers = new Map<number, ((outcome: string | null) => void)[]>();
  const proxyOutcome = (clientPort: number): Promise<string | null> =>
    new Promise((resolve) => {
      const waiting = watchers.get(clientPort) ?? [];
      const timer = setTimeout(() => {
        const index = waiting.indexOf(settle);
        if (index >= 0) waiting.splice(index, 1);
        resolve(null);
      }, OUTCOME_MS);
      const settle = (outcome: string | null) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      waiting.push(settle);
      watchers.set(clientPort, waiting);
    });
  const onRecord = (record: LogRecord) => {
    if (record.msg === "connection") {
      const port = Number(/:(\d+)$/.exec(String(record.client))?.[1]);
      const waiting = watchers.get(port);
      if (waiting !== undefined) {
        waiting.shift()?.(String(record.outcome));
        if (waiting.length === 0) watchers.delete(port);
      }
      const outcome = String(record.outcome);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      byWorker[String(record.worker)] = (byWorker[String(record.worker)] ?? 0) + 1;
      proxyBytesUp += Number(record.bytes_up ?? 0);
      proxyBytesDown += Number(record.bytes_down ?? 0);
    } else if (record.msg === "worker crashed") {
      crashes++;
    } else if (record.msg === "worker restarted") {
      restarts++;
      restartedAt = performance.now();
    }
    const injected =
      record.msg === "worker crashed" && String(record.error).includes("injected crash");
    if (record.level === "error" && !injected) errorLines.push(record);
  };
  const proxy = await spawnProxy(
    ["--config", configPath, "--workers", String(WORKERS), "--pool-checked"],
    {
      env: { SOCKPOOL_FAULT_INJECTION: "1" },
      onRecord,
      keep: (record) => record.msg !== "connection",
    },
  );
  const pid = proxy.process.pid;
  let stopping = false;
  let diedEarly: string | null = null;
  void proxy.process.exited.then((code) => {
    if (!stopping) diedEarly = `exit code ${code}, signal ${proxy.process.signalCode}`;
  });

  const baseline = descriptors(pid);
  const ownAtReady = descriptors(process.pid).total;
  const rssAtReady = statusKb(pid, "VmRSS") * 1024;
  let rssPeakSampled = rssAtReady;
  const sampler = setInterval(() => {
    rssPeakSampled = Math.max(rssPeakSampled, statusKb(pid, "VmRSS") * 1024);
  }, RSS_SAMPLE_MS);
  const slabBytes = Number(proxy.ready.pool_slots) * Number(proxy.ready.slot_bytes);
  const rssBound = slabBytes + options.clients * 2 * HELD_CHUNK_BYTES + RUNTIME_ALLOWANCE_BYTES;

  const env: ScenarioEnv = {
    socksPort: proxy.socksPort,
    forwardPort: proxy.forwardPorts[0]!,
    targetPort: target.port,
    refusedPort: refused,
    blackholePort: blackhole.port,
    reports,
    dialDeadlineMs: DNS_TIMEOUT_MS + CONNECT_TIMEOUT_MS,
    proxyOutcome,
    handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  };

  const started = performance.now();
  const endAt = started + options.seconds * 1000;
  console.log(
    `soak: ${options.seconds} s, ${options.clients} clients, ${WORKERS} Workers, pool ${options.strategy}, crash ${options.crash ? "at half time" : "off"}; proxy pid ${pid}, socks :${env.socksPort}, forward :${env.forwardPort}, target :${target.port}, refused :${refused}, blackhole :${blackhole.port}`,
  );

  // The Worker crash, once, at half time.
  let crashAt = 0;
  const crashTimer = options.crash
    ? setTimeout(
        () => {
          crashAt = performance.now();
          proxy.process.kill("SIGUSR2");
          console.log(`soak: crash injected at ${((crashAt - started) / 1000).toFixed(1)} s`);
        },
        (options.seconds * 1000) / 2,
      )
    : null;
  /** A scenario running while Worker 0 died or until a second after it was back may be cut off. */
  const crashAffected = (from: number, to: number) => {
    if (crashAt === 0) return false;
    const windowEnd = (restartedAt > crashAt ? restartedAt : performance.now()) + 1_000;
    return from <= windowEnd && to >= crashAt;
  };

  const tallies = Object.fromEntries(SCENARIOS.map((name) => [name, emptyTally()])) as Record<
    ScenarioName,
    ScenarioTally
  >;
  let completed = 0;
  let mismatches = 0;
  let crashTruncations = 0;
  const mismatchSamples: string[] = [];
  const resetAsFinSamples: string[] = [];
  const record = (name: ScenarioName, result: ScenarioResult, from: number) => {
    const tally = tallies[name];
    tally.runs++;
    tally[result.via === "socks" ? "via_socks" : "via_forward"]++;
    tally.bytes_up += result.bytesUp;
    tally.bytes_down += result.bytesDown;
    if (result.completed) completed++;
    if (result.mismatch && crashAffected(from, performance.now())) {
      // Cut off by the crash yet ended by a FIN: a crashed Worker's sockets are closed, not reset.
      crashTruncations++;
      if (mismatchSamples.length < 5) mismatchSamples.push(`${name} (crash): ${result.detail}`);
    } else if (result.mismatch) {
      mismatches++;
      if (mismatchSamples.length < 5) mismatchSamples.push(`${name}: ${result.detail}`);
    }
    if (result.expected) tally.expected++;
    else if (crashAffected(from, performance.now())) tally.crash_affected++;
    else if (result.resetAsFin) {
      tally.reset_as_fin++;
      if (resetAsFinSamples.length < 5)
        resetAsFinSamples.push(`${name} ${result.via}: ${result.detail}`);
    } else {
      tally.unexpected++;
      if (tally.samples.length < 5) tally.samples.push(`${result.via}: ${result.detail}`);
    }
  };

  // Each client loop: one scenario at a time, picked by its own seeded PRNG, until the end.
  const loops = Array.from({ length: options.clients }, async (_, index) => {
    const loopPrng = new Prng(prng.nextU32() ^ index);
    while (performance.now() < endAt && diedEarly === null) {
      const name = pickScenario(loopPrng);
      const from = performance.now();
      record(name, await runScenario(name, env, loopPrng), from);
      await Bun.sleep(loopPrng.int(20)); // pacing, not readiness
    }
  });

  // Reset storms: a burst every STORM_EVERY_MS, alternating the SOCKS5 and forward listeners.
  let storms = 0;
  let stormsFailed = 0;
  const storming = (async () => {
    let next = started + 3_000;
    while (next < endAt - 2_000 && diedEarly === null) {
      await Bun.sleep(Math.max(0, next - performance.now()));
      const port = storms % 2 === 0 ? env.socksPort : env.forwardPort;
      storms++;
      if (!(await storm(port))) stormsFailed++;
      next += STORM_EVERY_MS;
    }
  })();

  await Promise.all([...loops, storming]);
  if (crashTimer) clearTimeout(crashTimer);
  const clientsDoneAt = performance.now();

  // Drain: the proxy should let go of every client and upstream socket now. Waits on the
  // condition (bounded), never a fixed sleep; dials still stuck in the kernel's SYN retries to the
  // blackhole are told apart, as Bun cannot cancel them.
  let after = descriptors(pid);
  let stuckDials = synSentTo(pid, blackhole.port, after.sockets);
  await waitFor(
    () => {
      after = descriptors(pid);
      stuckDials = synSentTo(pid, blackhole.port, after.sockets);
      return after.total - stuckDials <= baseline.total + FD_MARGIN;
    },
    "the proxy's descriptors back to baseline",
    DRAIN_MS,
    100,
  ).catch(() => {});
  const drainMs = performance.now() - clientsDoneAt;
  // This process's own descriptors (clients, targets, pipes): a leak here would be the harness's.
  const own = descriptors(process.pid);
  const ownDescriptors = own.total;
  const rssPeak = Math.max(rssPeakSampled, statusKb(pid, "VmHWM") * 1024);
  clearInterval(sampler);

  stopping = true;
  const exitCode = diedEarly === null ? await proxy.stop("SIGTERM", 30_000) : -1;
  const stoppingLine = proxy.logs.find((line) => line.msg === "stopping");
  const stoppedLine = proxy.logs.find((line) => line.msg === "stopped");
  await blackhole.close();
  target.close();
  const elapsed = (clientsDoneAt - started) / 1000;

  // ── Invariants ──
  const crashed = options.crash;
  const invariants: Invariant[] = [];
  const check = (name: string, ok: boolean, detail: string) =>
    invariants.push({ name, ok, detail });
  check("proxy never died", diedEarly === null, diedEarly ?? "alive until SIGTERM");
  check("proxy exits 0 on SIGTERM", exitCode === 0, `exit ${exitCode}`);
  check(
    "descriptors back to baseline",
    after.total - stuckDials <= baseline.total + FD_MARGIN,
    `${after.total} after (${stuckDials} of them dials to the blackhole in SYN retries) vs ${baseline.total} at start, margin ${FD_MARGIN}`,
  );
  const poolFree = Number(stoppedLine?.pool_free ?? -1);
  const poolSlots = Number(stoppedLine?.pool_slots ?? -1);
  check(
    "every pool slot free",
    poolFree === poolSlots && poolSlots > 0,
    `${poolFree} of ${poolSlots} free`,
  );
  const openAtStop = Number(stoppingLine?.open_connections ?? -1);
  const openAfterStop = Number(stoppedLine?.open_connections ?? -1);
  check(
    "open-connection count zero",
    openAtStop === 0 && openAfterStop === 0,
    `${openAtStop} at SIGTERM, ${openAfterStop} after the Workers stopped`,
  );
  check("peak RSS within bound", rssPeak <= rssBound, `${mib(rssPeak)} ≤ ${mib(rssBound)}`);
  check(
    "every completed transfer's bytes match (outside the crash window)",
    mismatches === 0 && completed > 0,
    `${mismatches} mismatches in ${completed} completed transfers; ${crashTruncations} more cut off by the crash yet ended by a FIN`,
  );
  const unexpected = SCENARIOS.reduce((sum, name) => sum + tallies[name].unexpected, 0);
  check(
    "every scenario as expected (outside the crash window)",
    unexpected === 0,
    `${unexpected} unexpected`,
  );
  const resetsAsFin = tallies.client_reset.reset_as_fin + tallies.target_reset.reset_as_fin;
  check(
    "every reset passed on as a reset",
    resetsAsFin === 0,
    `${resetsAsFin} of ${tallies.client_reset.runs + tallies.target_reset.runs} resets reached the other end as a FIN (client ${tallies.client_reset.reset_as_fin}, target ${tallies.target_reset.reset_as_fin})`,
  );
  check(
    "Worker restarts: exactly the injected crash",
    crashes === (crashed ? 1 : 0) && restarts === (crashed ? 1 : 0),
    `${crashes} crashed, ${restarts} restarted`,
  );
  check(
    "no error lines but the injected crash",
    errorLines.length === 0,
    `${errorLines.length} error lines`,
  );
  const missing = SCENARIOS.filter((name) => tallies[name].runs === 0);
  check(
    "every fault kind injected",
    missing.length === 0 && storms > 0 && stormsFailed === 0,
    `${missing.length === 0 ? "all scenarios ran" : `never ran: ${missing.join(", ")}`}; ${storms} storms, ${stormsFailed} failed`,
  );

  const faults = {
    client_reset: tallies.client_reset.runs,
    target_reset: tallies.target_reset.runs,
    slow_reader: tallies.slow_reader.runs,
    half_close: tallies.half_close_client_first.runs + tallies.half_close_target_first.runs,
    refused: tallies.refused.runs,
    blackhole: tallies.blackhole.runs,
    silent_client: tallies.silent_client.runs,
    reset_storm_bursts: storms,
    reset_storm_clients: storms * STORM_CLIENTS,
    worker_crash: crashed && crashAt > 0 ? 1 : 0,
  };
  const result = {
    seed,
    seconds: options.seconds,
    elapsed_s: Number(elapsed.toFixed(1)),
    drain_ms: Math.round(drainMs),
    clients: options.clients,
    workers: WORKERS,
    pool_strategy: options.strategy,
    crash: crashed,
    scenarios: tallies,
    connections_by_client: SCENARIOS.reduce((sum, name) => sum + tallies[name].runs, 0),
    connections_by_proxy: outcomes,
    connections_by_worker: byWorker,
    bytes: {
      client_sent: SCENARIOS.reduce((sum, name) => sum + tallies[name].bytes_up, 0),
      client_received: SCENARIOS.reduce((sum, name) => sum + tallies[name].bytes_down, 0),
      proxy_up: proxyBytesUp,
      proxy_down: proxyBytesDown,
    },
    faults,
    descriptors: {
      baseline: baseline.total,
      baseline_kinds: baseline.kinds,
      after: after.total,
      after_kinds: after.kinds,
      stuck_blackhole_dials: stuckDials,
      margin: FD_MARGIN,
    },
    slots: { free: poolFree, total: poolSlots },
    open_connections: { at_sigterm: openAtStop, after_stop: openAfterStop },
    rss: {
      at_ready: rssAtReady,
      peak: rssPeak,
      bound: rssBound,
      bound_formula: `slab ${mib(slabBytes)} + ${options.clients} clients × 2 directions × ${HELD_CHUNK_BYTES / 1024} KiB held chunk + runtime ${WORKERS + 1} threads × ${mib(RUNTIME_ALLOWANCE_PER_THREAD_BYTES)}`,
    },
    soak_descriptors: { at_ready: ownAtReady, after: ownDescriptors, after_kinds: own.kinds },
    worker_crashes: crashes,
    worker_restarts: restarts,
    completed_transfers: completed,
    checksum_mismatches: mismatches,
    crash_truncations: crashTruncations,
    mismatch_samples: mismatchSamples,
    reset_as_fin_samples: resetAsFinSamples,
    error_lines: errorLines.slice(0, 5),
    invariants,
  };

  printSummary(result);
  if (options.json) writeFileSync(options.json, `${JSON.stringify(result, null, 2)}\n`);
  return invariants.every((invariant) => invariant.ok) ? 0 : 1;
}

function printSummary(result: {
  seed: number;
  elapsed_s: number;
  drain_ms: number;
  scenarios: Record<ScenarioName, ScenarioTally>;
  connections_by_proxy: Record<string, number>;
  bytes: Record<string, number>;
  faults: Record<string, number>;
  descriptors: { baseline: number; after: number; stuck_blackhole_dials: number; margin: number };
  slots: { free: number; total: number };
  open_connections: { at_sigterm: number; after_stop: number };
  rss: { peak: number; bound: number; bound_formula: string; at_ready: number };
  worker_restarts: number;
  reset_as_fin_samples: string[];
  checksum_mismatches: number;
  crash_truncations: number;
  completed_transfers: number;
  invariants: Invariant[];
}): void {
  const rows: string[][] = [
    [
      "scenario",
      "runs",
      "as expected",
      "unexpected",
      "reset→FIN",
      "crash-hit",
      "socks/fwd",
      "sent",
      "received",
    ],
  ];
  for (const name of SCENARIOS) {
    const t = result.scenarios[name];
    rows.push([
      name,
      String(t.runs),
      String(t.expected),
      String(t.unexpected),
      String(t.reset_as_fin),
      String(t.crash_affected),
      `${t.via_socks}/${t.via_forward}`,
      mib(t.bytes_up),
      mib(t.bytes_down),
    ]);
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) =>
    row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ");
  const out: string[] = [];
  out.push(
    `\nsoak summary (seed ${result.seed}, ${result.elapsed_s} s of load, drain ${result.drain_ms} ms)`,
  );
  out.push(line(rows[0]!));
  for (const row of rows.slice(1)) out.push(line(row));
  for (const name of SCENARIOS)
    for (const sample of result.scenarios[name].samples)
      out.push(`  unexpected ${name}: ${sample}`);
  for (const sample of result.reset_as_fin_samples)
    out.push(`  reset passed on as a FIN: ${sample}`);
  const kv = (key: string, value: string) => out.push(`${key.padEnd(28)} ${value}`);
  kv(
    "connections (proxy log)",
    Object.entries(result.connections_by_proxy)
      .sort((a, b) => b[1] - a[1])
      .map(([outcome, count]) => `${outcome}=${count}`)
      .join(" "),
  );
  kv(
    "bytes",
    `clients sent ${mib(result.bytes.client_sent!)}, received ${mib(result.bytes.client_received!)}; proxy relayed up ${mib(result.bytes.proxy_up!)}, down ${mib(result.bytes.proxy_down!)}`,
  );
  kv(
    "faults injected",
    Object.entries(result.faults)
      .map(([kind, count]) => `${kind}=${count}`)
      .join(" "),
  );
  kv(
    "descriptors",
    `${result.descriptors.baseline} at start, ${result.descriptors.after} after (${result.descriptors.stuck_blackhole_dials} blackhole dials in SYN retries; margin ${result.descriptors.margin})`,
  );
  kv("slots free / total", `${result.slots.free} / ${result.slots.total}`);
  kv(
    "open connections",
    `${result.open_connections.at_sigterm} at SIGTERM, ${result.open_connections.after_stop} after stop`,
  );
  kv(
    "peak RSS / bound",
    `${mib(result.rss.peak)} / ${mib(result.rss.bound)} (at ready ${mib(result.rss.at_ready)}; bound = ${result.rss.bound_formula})`,
  );
  kv("Worker restarts", String(result.worker_restarts));
  kv(
    "checksum mismatches",
    `${result.checksum_mismatches} in ${result.completed_transfers} completed transfers, ${result.crash_truncations} more truncated by the crash (with a FIN)`,
  );
  out.push("invariants:");
  for (const invariant of result.invariants)
    out.push(`  ${invariant.ok ? "ok  " : "FAIL"} ${invariant.name}: ${invariant.detail}`);
  console.log(out.join("\n"));
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(`soak: failed: ${(error as Error).stack ?? error}`);
} finally {
  await cleanupAll();
}
process.exit(code);
