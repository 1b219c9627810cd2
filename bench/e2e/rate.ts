// The connection-rate section: C loops of connect [+ SOCKS5 or HTTP CONNECT] + 64 B echo + close
// for T seconds per route, through the load client (child-load.ts), with latency percentiles and
// the proxy's CPU; and its table in e2e.md. Not the load client: that runs in its own process.

import { markdownTable } from "../lib/markdown.ts";
import type { LoadMessage } from "./protocol.ts";
import {
  type Context,
  eachRoute,
  endpoint,
  nextMessage,
  type PathInfo,
  progress,
  type Route,
  startLoad,
} from "./harness.ts";
import { timeWaitSockets } from "./ports.ts";
import { treeCpuSeconds } from "./proc-tree.ts";
import type { Report } from "./report.ts";
import { bestPeer, errorText, failures, fixed, grouped, ratio } from "./table-cells.ts";

export interface RateRow extends PathInfo {
  conn_per_s: number | null;
  completed: number;
  errors: number;
  error_kinds: Record<string, number>;
  p50_ms: number | null;
  p90_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
  proxy_cpu_cores: number | null;
  error?: string;
}

export async function measureRate(context: Context): Promise<RateRow[]> {
  const { concurrency, seconds } = context.options;
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
      const load = startLoad(context, {
        mode: "rate",
        ...target,
        concurrency,
        seconds,
        timeoutMs: 10_000,
      });
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

export function rateMarkdown(report: Report): string {
  const rows = report.rate;
  if (rows.length === 0) return "";
  const direct = rows.find((row) => row.kind === "direct")?.conn_per_s ?? null;
  const best = bestPeer(rows, (row) => row.conn_per_s, "higher");
  const body = rows.map((row) => [
    row.label,
    row.conn_per_s === null ? "failed" : grouped(row.conn_per_s),
    row.kind === "direct" ? "" : ratio(row.conn_per_s, direct),
    ratio(row.conn_per_s, best?.value),
    fixed(row.p50_ms, 2),
    fixed(row.p90_ms, 2),
    fixed(row.p99_ms, 2),
    fixed(row.max_ms, 1),
    errorText(row.errors, row.error_kinds),
    fixed(row.proxy_cpu_cores, 2),
    row.proxy_cpu_cores === null || row.conn_per_s === null || row.conn_per_s === 0
      ? "–"
      : ((1e6 * row.proxy_cpu_cores) / row.conn_per_s).toFixed(0),
  ]);
  return [
    `## Connection rate and latency (${report.settings.rate_concurrency} concurrent loops, ${report.settings.rate_seconds} s each)`,
    "",
    "One loop: connect, SOCKS5 greeting (no auth) + CONNECT to the echo server (SOCKS5 paths), or",
    "`CONNECT 127.0.0.1:PORT HTTP/1.1` and its `HTTP/1.1 200` (HTTP CONNECT paths), or nothing (forward),",
    "64 B echoed, then the server closes and the close comes back through the proxy; the client closes.",
    "conn/s counts complete loops; latency is connect start → echo received. The load client is its",
    `own Bun process on the same cores. Best peer: ${best?.row.label ?? "none"}.`,
    "",
    markdownTable(
      [
        "path",
        "conn/s",
        "× direct",
        "× best peer",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "proxy CPU (cores)",
        "proxy CPU µs/conn",
      ],
      body,
    ),
    ...failures(rows.map((row) => [row, row])),
  ].join("\n");
}
