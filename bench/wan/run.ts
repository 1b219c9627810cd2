// The WAN benchmark's measurement: what the upstream warm pool is for. Over an emulated link (link.ts:
// a fixed delay each way, 10 ms by default), clients on loopback make SOCKS5 CONNECTs through sockpool
// (2 Workers) to a target in the benchmark's namespace, with the pool off and then on, in one run,
// beside "direct" (no proxy) as the baseline. For each: CONNECT-to-first-response-byte p50/p99 at
// concurrency 1 and C, connections per second at C, the pool's hit rate, and the proxy's CPU per
// connection. A hit saves the upstream handshake: about one round trip.
// Not a section of e2e.md by itself (bench/e2e/wan.ts renders it) and not a test.

import { writeFileSync } from "node:fs";
import path from "node:path";
import type { UpstreamPoolResponse } from "../../src/admin/types.ts";
import { nextMessage } from "../e2e/harness.ts";
import { freePorts, socksAnswers, waitListening } from "../e2e/ports.ts";
import { treeCpuSeconds } from "../e2e/proc-tree.ts";
import { type Proc, READY_MS, spawn, stop } from "../e2e/procs.ts";
import { type DelayStats, leftovers, linkUnavailable, type Link, openLink } from "./link.ts";
import {
  type ClientJob,
  type ClientResult,
  FAR_ADDRESS,
  type Percentiles,
  RESPONSE_BYTES,
  ROOT_ADDRESS,
  type TargetMessage,
} from "./protocol.ts";

export interface WanSettings {
  /** One-way delay of the emulated link. */
  delayMs: number;
  /** Loops in the concurrent phase (and in the warm-up). */
  concurrency: number;
  /** Connections in the concurrent phase. */
  connections: number;
  /** Connections in the serial (concurrency 1) phase. */
  serial: number;
  /** Upper bound on each phase's time; a phase ends at its count or this, whichever is first. */
  secondsMax: number;
  /** sockpool with the pool on: --upstream-pool-per-dest and --upstream-pool-total. */
  poolPerDest: number;
  poolTotal: number;
  workers: number;
  strategy: string;
}

export type WanPathId = "direct" | "pool-off" | "pool-on";

export interface WanPhase {
  concurrency: number;
  completed: number;
  errors: number;
  error_kinds: Record<string, number>;
  elapsed_s: number;
  conn_per_s: number;
  first_byte_ms: Percentiles;
  /** Loopback to the proxy, or the target's handshake across the link (direct). */
  connect_ms: Percentiles;
  /** CONNECT sent → reply; null when direct. */
  reply_ms: Percentiles | null;
  /** CONNECT replies faster than half a round trip: no upstream handshake was waited for. */
  fast_replies: number;
  /** From the admin API's pool_hits and pool_misses over the phase; null where it has none. */
  pool_hits: number | null;
  pool_misses: number | null;
  proxy_cpu_s: number | null;
}

export interface WanRow {
  id: WanPathId;
  label: string;
  serial: WanPhase | null;
  concurrent: WanPhase | null;
  error?: string;
}

export interface WanReport {
  /** Why the section did not run (no namespaces here), or null. */
  skipped: string | null;
  settings: WanSettings & { response_bytes: number; fast_reply_ms: number };
  link: {
    namespace: string;
    root_address: string;
    root_device: string;
    far_address: string;
    far_device: string;
    /** Direct TCP connect across the link, concurrency 1: at least 2 × delay when it works. */
    connect_p50_ms: number | null;
    delay_line: DelayStats | null;
  } | null;
  target: Extract<TargetMessage, { type: "stats" }> | null;
  rows: WanRow[];
  /** Namespaces or devices still there after teardown (none expected). */
  leftovers: string[];
}

// ── The hit rate: the one place that reads the pool's counters ─────────────────────────────────

/**
 * pool_hits and pool_misses from sockpool's admin API (GET /api/pool/stats, summed over Workers),
 * or null where it cannot say (an admin server or pool that does not exist yet, or is off).
 */
export async function poolCounters(
  adminAddress: string,
): Promise<{ hits: number; misses: number } | null> {
  try {
    const response = await fetch(`http://${adminAddress}/api/pool/stats`, {
      signal: AbortSignal.timeout(2_000),
    });
    if (!response.ok) return null;
    const stats = (await response.json()) as Partial<UpstreamPoolResponse>;
    if (typeof stats.pool_hits !== "number" || typeof stats.pool_misses !== "number") return null;
    return { hits: stats.pool_hits, misses: stats.pool_misses };
  } catch {
    return null;
  }
}

// ── The proxy ──────────────────────────────────────────────────────────────────────────────────

interface Proxy {
  proc: Proc;
  socksPort: number;
  adminAddress: string;
}

const SHUTDOWN_TIMEOUT_MS = 1_000;
/** Far above what the benchmark opens (C clients + C upstreams + the pool), far below 10,000. */
const CONNECTIONS_MAX = 4_096;

async function startProxy(settings: WanSettings, poolOn: boolean, dir: string): Promise<Proxy> {
  const [socksPort, adminPort] = freePorts(2) as [number, number];
  // The admin port is chosen here rather than read from the log: its "listening" line is at info
  // level, which would also log every connection and cost the proxy CPU that is measured.
  const adminAddress = `127.0.0.1:${adminPort}`;
  const configFile = path.join(dir, `sockpool-wan-${poolOn ? "on" : "off"}.toml`);
  // connections_max well under the default open-file limit: no warning that it was lowered.
  writeFileSync(
    configFile,
    `[server]\nconnections_max = ${CONNECTIONS_MAX}\nshutdown_timeout_ms = ${SHUTDOWN_TIMEOUT_MS}\n`,
  );
  const argv = [
    process.execPath,
    "src/main.ts",
    "--config",
    configFile,
    "--socks",
    `127.0.0.1:${socksPort}`,
    "--workers",
    String(settings.workers),
    "--pool-strategy",
    settings.strategy,
    "--admin",
    adminAddress,
    "--log-level",
    "warn",
    "--log-format",
    "json",
    ...(poolOn
      ? [
          "--upstream-pool",
          "--upstream-pool-per-dest",
          String(settings.poolPerDest),
          "--upstream-pool-total",
          String(settings.poolTotal),
        ]
      : []),
  ];
  const proc = spawn(`sockpool pool ${poolOn ? "on" : "off"}`, argv);
  try {
    await waitListening(proc, [socksPort], settings.workers);
    const deadline = performance.now() + READY_MS;
    while (!(await socksAnswers(socksPort))) {
      if (!proc.alive() || performance.now() > deadline) {
        throw new Error(`${proc.name} does not answer a SOCKS5 greeting:\n${proc.stderr()}`);
      }
      await Bun.sleep(20);
    }
  } catch (error) {
    await stop(proc);
    // By now its stderr has been read to the end: the first error line alone may have missed it.
    const first = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    const detail = proc.stderr().trim();
    throw new Error(`${first}${detail === "" ? "" : `\n${detail}`}`);
  }
  return { proc, socksPort, adminAddress };
}

// ── One path: warm-up, the serial phase, the concurrent phase ──────────────────────────────────

async function runClient(job: ClientJob): Promise<ClientResult> {
  const client = spawn(
    `wan client c=${job.concurrency}`,
    [process.execPath, "bench/wan/client.ts", JSON.stringify(job)],
    { stdout: "lines" },
  );
  const result = await nextMessage<ClientResult>(
    client,
    (job.seconds + 30) * 1000,
    "the client's result",
  );
  await client.child.exited;
  return result;
}

async function phase(job: ClientJob, proxy: Proxy | null): Promise<WanPhase> {
  const countersBefore = proxy === null ? null : await poolCounters(proxy.adminAddress);
  const cpuBefore = proxy === null ? 0 : treeCpuSeconds(proxy.proc.pid);
  const result = await runClient(job);
  const cpu = proxy === null ? null : treeCpuSeconds(proxy.proc.pid) - cpuBefore;
  const countersAfter = proxy === null ? null : await poolCounters(proxy.adminAddress);
  const counted = countersBefore !== null && countersAfter !== null;
  return {
    concurrency: job.concurrency,
    completed: result.completed,
    errors: result.errors,
    error_kinds: result.errorKinds,
    elapsed_s: result.elapsedS,
    conn_per_s: result.completed / result.elapsedS,
    first_byte_ms: result.firstByte,
    connect_ms: result.connect,
    reply_ms: result.reply,
    fast_replies: result.fastReplies,
    pool_hits: counted ? countersAfter.hits - countersBefore.hits : null,
    pool_misses: counted ? countersAfter.misses - countersBefore.misses : null,
    proxy_cpu_s: cpu,
  };
}

const PATH_LABELS: Record<WanPathId, string> = {
  direct: "direct (no proxy)",
  "pool-off": "sockpool, pool off",
  "pool-on": "sockpool, pool on",
};

async function measurePath(
  id: WanPathId,
  settings: WanSettings,
  targetPort: number,
  dir: string,
  note: (line: string) => void,
): Promise<WanRow> {
  const row: WanRow = { id, label: PATH_LABELS[id], serial: null, concurrent: null };
  let proxy: Proxy | null = null;
  try {
    if (id !== "direct") proxy = await startProxy(settings, id === "pool-on", dir);
    const job = (concurrency: number, count: number): ClientJob => ({
      proxyPort: proxy?.socksPort ?? null,
      targetHost: FAR_ADDRESS,
      targetPort,
      concurrency,
      count,
      seconds: settings.secondsMax,
      timeoutMs: 10_000 + 20 * settings.delayMs,
      fastReplyMs: settings.delayMs,
    });
    // Warm-up, the same for every path: the first CONNECT to a destination can only miss, and a
    // pool fills as it is used; the JIT warms too. Not measured.
    await runClient(job(settings.concurrency, 2 * settings.concurrency));
    row.serial = await phase(job(1, settings.serial), proxy);
    row.concurrent = await phase(job(settings.concurrency, settings.connections), proxy);
    for (const measured of [row.serial, row.concurrent]) {
      note(
        `wan · ${row.label}, c=${measured.concurrency}: ${measured.completed} done, ` +
          `first byte p50 ${measured.first_byte_ms.p50.toFixed(1)} ms p99 ${measured.first_byte_ms.p99.toFixed(1)} ms, ` +
          `${Math.round(measured.conn_per_s)} conn/s, ${measured.errors} errors` +
          (measured.reply_ms === null ? "" : `, ${measured.fast_replies} fast CONNECT replies`) +
          (measured.pool_hits === null
            ? ""
            : `, pool hits ${measured.pool_hits} misses ${measured.pool_misses}`),
      );
    }
    if (proxy !== null && !proxy.proc.alive()) {
      throw new Error(`${proxy.proc.name} exited mid-run:\n${proxy.proc.stderr()}`);
    }
  } catch (error) {
    row.error = error instanceof Error ? error.message : String(error);
    note(`wan · ${row.label}: FAILED ${row.error}`);
  } finally {
    if (proxy !== null) await stop(proxy.proc);
  }
  return row;
}

// ── The whole section ──────────────────────────────────────────────────────────────────────────

/** Runs the WAN benchmark: link up, target up, every path measured, everything torn down. */
export async function runWan(
  settings: WanSettings,
  dir: string,
  note: (line: string) => void,
): Promise<WanReport> {
  const report: WanReport = {
    skipped: linkUnavailable(),
    settings: {
      ...settings,
      response_bytes: RESPONSE_BYTES,
      fast_reply_ms: settings.delayMs,
    },
    link: null,
    target: null,
    rows: [],
    leftovers: [],
  };
  if (report.skipped !== null) return report;

  let link: Link | null = null;
  let target: Proc | null = null;
  try {
    link = await openLink(settings.delayMs, note);
    report.link = {
      namespace: link.namespace,
      root_address: ROOT_ADDRESS,
      root_device: link.rootDevice,
      far_address: FAR_ADDRESS,
      far_device: link.farDevice,
      connect_p50_ms: null,
      delay_line: null,
    };
    note(
      `wan · link up: ${ROOT_ADDRESS} on ${link.rootDevice} ⇄ ${FAR_ADDRESS} on ${link.farDevice} ` +
        `in namespace ${link.namespace}, ${settings.delayMs} ms each way`,
    );
    target = spawn(
      "wan target",
      link.inside([process.execPath, "bench/wan/target.ts", FAR_ADDRESS]),
      { stdout: "lines", stdin: "pipe" },
    );
    const ready = await nextMessage<Extract<TargetMessage, { type: "ready" }>>(
      target,
      READY_MS,
      "the target listening",
    );
    for (const id of ["direct", "pool-off", "pool-on"] as const) {
      const row = await measurePath(id, settings, ready.port, dir, note);
      report.rows.push(row);
      if (id === "direct") report.link.connect_p50_ms = row.serial?.connect_ms.p50 ?? null;
    }
    target.send("stats");
    report.target = await nextMessage(target, 5_000, "the target's counters");
  } finally {
    if (target !== null) await stop(target);
    if (link !== null) {
      const stats = await link.close();
      if (report.link !== null) report.link.delay_line = stats;
      report.leftovers = leftovers(link);
      note(
        report.leftovers.length === 0
          ? `wan · link down: namespace ${link.namespace} and devices ${link.rootDevice}, ${link.farDevice} removed`
          : `wan · LEFT BEHIND: ${report.leftovers.join(", ")}`,
      );
    }
  }
  return report;
}
