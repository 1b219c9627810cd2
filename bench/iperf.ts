// Relay throughput with iperf3, beside its baseline: iperf3 direct on loopback, then the same runs
// through sockpool's SOCKS5 listener (proxychains4) and through a forward listener, all in ONE run
// so the ratios compare like with like. Single stream, -P 4 and -R (reverse) for each.
// Not a test and not a gate: it prints a table. bench/e2e.ts runs the same cases beside the peers
// (Dante, microsocks, HAProxy); this one is the quick look at one strategy.
//
//   bun bench/iperf.ts [--strategy NAME] [--time SECONDS] [--workers N] [--smoke]
//
// Needs iperf3 and proxychains4 (.ci/setup.sh --test-tools). Everything it starts is stopped at
// the end, on failure and on Ctrl-C too.

import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_CONFIG } from "../src/config/schema.ts";
import { STRATEGY_NAMES } from "../src/pool/index.ts";
import {
  IPERF_VARIANTS,
  type IperfVariant,
  requireTool,
  runIperf,
  startIperfServer,
  writeProxychainsConfig,
} from "./e2e-iperf.ts";
import {
  cleanupOnSignal,
  freePorts,
  leftoverProcesses,
  socksAnswers,
  spawn,
  stopAll,
  stopAllOnSignals,
  waitListening,
} from "./e2e-procs.ts";

// ── Options ────────────────────────────────────────────────────────────────────────────────────

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    strategy: { type: "string", default: DEFAULT_CONFIG.pool.strategy },
    time: { type: "string", default: "5" },
    workers: { type: "string" },
    smoke: { type: "boolean", default: process.env.BENCH_SMOKE === "1" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (values.help) {
  console.log(
    "usage: bun bench/iperf.ts [--strategy NAME] [--time SECONDS] [--workers N] [--smoke]\n" +
      `  --strategy  pool strategy: ${STRATEGY_NAMES.join(", ")} (default ${DEFAULT_CONFIG.pool.strategy})\n` +
      "  --time      seconds per iperf3 run (default 5)\n" +
      "  --workers   proxy Worker threads (default: the proxy's, one per CPU)\n" +
      "  --smoke     1-second runs, single stream and reverse only: proves the harness works",
  );
  process.exit(0);
}

function fail(message: string): never {
  console.error(`bench/iperf: ${message}`);
  process.exit(2);
}

const strategy = values.strategy;
if (!(STRATEGY_NAMES as readonly string[]).includes(strategy)) {
  fail(`--strategy: expected one of ${STRATEGY_NAMES.join(", ")}, got ${JSON.stringify(strategy)}`);
}
const seconds = values.smoke ? 1 : Number(values.time);
if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) {
  fail(`--time: expected whole seconds between 1 and 600, got ${JSON.stringify(values.time)}`);
}
if (values.workers !== undefined && !/^\d+$/.test(values.workers)) {
  fail(`--workers: expected an integer, got ${JSON.stringify(values.workers)}`);
}
const workers = values.workers === undefined ? null : Number(values.workers);

const VARIANTS: readonly IperfVariant[] = values.smoke
  ? IPERF_VARIANTS.filter((variant) => variant.key === "1" || variant.key === "1R")
  : IPERF_VARIANTS;

// ── Report ─────────────────────────────────────────────────────────────────────────────────────

interface Row {
  path: string;
  variant: string;
  bitsPerSecond: number | null;
  error?: string;
}

function table(rows: Row[]): string {
  const direct = new Map(
    rows.filter((row) => row.path === "direct").map((row) => [row.variant, row.bitsPerSecond]),
  );
  const lines = [
    `${"path".padEnd(22)} ${"variant".padEnd(20)} ${"Gbit/s".padStart(8)} ${"vs direct".padStart(10)}`,
    `${"-".repeat(22)} ${"-".repeat(20)} ${"-".repeat(8)} ${"-".repeat(10)}`,
  ];
  for (const row of rows) {
    const baseline = direct.get(row.variant) ?? null;
    const gbits = row.bitsPerSecond === null ? "failed" : (row.bitsPerSecond / 1e9).toFixed(2);
    const ratio =
      row.bitsPerSecond === null || baseline === null || baseline === 0
        ? "-"
        : `${((100 * row.bitsPerSecond) / baseline).toFixed(0)}%`;
    lines.push(
      `${row.path.padEnd(22)} ${row.variant.padEnd(20)} ${gbits.padStart(8)} ${ratio.padStart(10)}`,
    );
    if (row.error) lines.push(`  ↳ ${row.error}`);
  }
  return lines.join("\n");
}

// ── Main ───────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<number> {
  stopAllOnSignals("bench/iperf");
  const iperf3 = requireTool("iperf3", 'install it with ".ci/setup.sh --test-tools"');
  const proxychains = requireTool("proxychains4", 'install it with ".ci/setup.sh --test-tools"');
  const tempDir = mkdtempSync(path.join(os.tmpdir(), "sockpool-iperf-"));
  cleanupOnSignal(() => rmSync(tempDir, { recursive: true, force: true }));
  try {
    const [iperfPort, socksPort, forwardPort] = freePorts(3) as [number, number, number];
    await startIperfServer(iperf3, iperfPort);

    const proxy = spawn("sockpool", [
      process.execPath,
      "src/main.ts",
      "--socks",
      `127.0.0.1:${socksPort}`,
      "--forward",
      `127.0.0.1:${forwardPort}=127.0.0.1:${iperfPort}`,
      "--pool-strategy",
      strategy,
      "--log-level",
      "warn",
      ...(workers === null ? [] : ["--workers", String(workers)]),
    ]);
    await waitListening(proxy, [socksPort, forwardPort], workers ?? 1);
    if (!(await socksAnswers(socksPort))) {
      throw new Error(`the SOCKS5 listener on 127.0.0.1:${socksPort} does not answer a greeting`);
    }

    const confPath = writeProxychainsConfig(tempDir, "sockpool", socksPort);
    const paths: { name: string; prefix: string[]; port: number }[] = [
      { name: "direct", prefix: [], port: iperfPort },
      {
        name: "SOCKS5 (proxychains4)",
        prefix: [proxychains, "-q", "-f", confPath],
        port: iperfPort,
      },
      { name: "forward listener", prefix: [], port: forwardPort },
    ];
    console.log(
      `sockpool iperf3: strategy ${strategy}, ${seconds} s per run, workers ${workers ?? "default"}, ` +
        `${navigator.hardwareConcurrency} CPUs${values.smoke ? " (smoke)" : ""}`,
    );
    const rows: Row[] = [];
    for (const variant of VARIANTS) {
      for (const route of paths) {
        try {
          const { bitsPerSecond } = await runIperf(iperf3, { ...route, seconds, variant });
          rows.push({ path: route.name, variant: variant.name, bitsPerSecond });
          console.log(
            `  ${route.name} / ${variant.name}: ${(bitsPerSecond / 1e9).toFixed(2)} Gbit/s`,
          );
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          rows.push({
            path: route.name,
            variant: variant.name,
            bitsPerSecond: null,
            error: message,
          });
          console.log(`  ${route.name} / ${variant.name}: FAILED ${message}`);
        }
        if (!proxy.alive()) throw new Error(`the proxy exited mid-run:\n${proxy.stderr()}`);
      }
    }
    console.log(`\n${table(rows)}`);
    return rows.some((row) => row.bitsPerSecond === null) ? 1 : 0;
  } finally {
    await stopAll();
    rmSync(tempDir, { recursive: true, force: true });
    const left = leftoverProcesses();
    if (left.length > 0) console.error(`bench/iperf: processes left running: ${left.join(", ")}`);
  }
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    console.error(`bench/iperf: ${error instanceof Error ? error.message : String(error)}`);
    await stopAll();
    process.exit(1);
  },
);
