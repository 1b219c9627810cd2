// The e2e benchmark's command line: its flags, their defaults (full, --quick, --smoke) and the sizes
// they give every section, parsed once by main.ts. Not the measurements: the sections only read
// the Options they are handed.

import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_CONFIG } from "../../src/config/schema.ts";
import { STRATEGY_NAMES, type StrategyName } from "../../src/pool/index.ts";
import { COMMITTED_RESULTS_DIR } from "../lib/results.ts";
import { MIB } from "./harness.ts";
import { IPERF_VARIANTS, type IperfVariant } from "./iperf.ts";
import { PEER_FAMILIES, type PeerName, SOCKPOOL_WORKERS } from "./peers.ts";
import { BENCH_PACKAGES } from "./tools.ts";
import { hardFileLimit } from "./procs.ts";
import type { UdpSettings } from "./udp.ts";
import type { WanSettings } from "../wan/run.ts";

export const SECTIONS = ["throughput", "rate", "idle", "slow", "udp", "wan"] as const;
export type Section = (typeof SECTIONS)[number];
const DEFAULT_STRATEGIES: StrategyName[] = ["local", "queue"];
/** Wanted for the idle test; fewer when the open-file limit cannot hold them. */
const IDLE_CONNECTIONS_WANTED = 10_000;
/** Descriptors a proxy keeps besides two per connection. */
export const FDS_RESERVED = 256;

export interface Options {
  smoke: boolean;
  quick: boolean;
  strategies: StrategyName[];
  peerNames: PeerName[];
  sections: Section[];
  /** Per iperf3 run and per rate test. */
  seconds: number;
  /** Rate test loops. */
  concurrency: number;
  /** The soft open-file limit every peer and load client gets (ulimit -n). */
  fileLimit: number;
  idleWanted: number;
  /** idleWanted, or fewer when the open-file limit cannot hold them. */
  idleConnections: number;
  slow: { conns: number; streamBytes: number; stallMs: number; slowMs: number };
  /** The UDP section's sizes (udp.ts). */
  udp: UdpSettings;
  /** The WAN section's sizes (bench/wan/run.ts). */
  wan: WanSettings;
  /** Where wan.md and wan.json go: the committed results when the WAN ran at its defaults, even
   *  alone (--only wan), else resultsDir(). */
  wanResultsDir: () => string;
  variants: readonly IperfVariant[];
  /** Where the results go; a temp dir is only made when called. */
  resultsDir: () => string;
  /** As run, for the report. */
  command: string;
}

const USAGE = `usage: bun bench/e2e/main.ts [options]          (bun run bench:e2e -- [options])
  --time S           seconds per iperf3 run and per rate test (default 5; --quick 2; --smoke 1)
  --strategies LIST  sockpool pool strategies, comma-separated (default ${DEFAULT_STRATEGIES.join(",")}; any of ${STRATEGY_NAMES.join(", ")})
  --peers LIST       of ${PEER_FAMILIES.join(", ")} (default all; --smoke: direct,sockpool)
  --only LIST        sections, of ${SECTIONS.join(", ")} (default all)
  --concurrency C    rate test loops (default 32)
  --idle N           idle connections (default 10000, fewer if the open-file limit cannot hold them)
  --udp-idle N       idle UDP associations (default 1000; --quick 200; --smoke 20)
  --quick            shorter: 2 s runs, 2000 idle, 16 slow readers × 32 MiB, WAN 50 + 500 connections
  --smoke            tiny sizes, well under a minute (also BENCH_SMOKE=1)
WAN section (sockpool with its upstream pool off and on, across an emulated link; needs root):
  --wan-delay-ms MS        one-way delay of the link (default 10; --smoke 2)
  --wan-serial N           connections at concurrency 1 (default 200; --quick 50; --smoke 10)
  --wan-connections N      connections at --wan-concurrency (default 2000; --quick 500; --smoke 64)
  --wan-concurrency C      (default 32; --smoke 8); also the pool's --upstream-pool-per-dest
  --wan-seconds S          at most this long per phase (default 30)
  --out DIR          where e2e.md and e2e.json (and wan.md, wan.json) go (also BENCH_RESULTS_DIR). Default: bench/results
                     for a run at the defaults, else a temp dir (never over the committed results)
Debian packages it drives: ${BENCH_PACKAGES.join(" ")} (.ci/setup.sh --bench-tools); a missing peer is
skipped with a note, a missing iperf3 or proxychains4 is an error.`;

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

/** Parses the flags (exits 0 after --help, 2 on a bad flag). */
export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      time: { type: "string" },
      strategies: { type: "string" },
      peers: { type: "string" },
      only: { type: "string" },
      concurrency: { type: "string" },
      idle: { type: "string" },
      "udp-idle": { type: "string" },
      quick: { type: "boolean", default: false },
      smoke: { type: "boolean", default: process.env.BENCH_SMOKE === "1" },
      out: { type: "string" },
      "wan-delay-ms": { type: "string" },
      "wan-serial": { type: "string" },
      "wan-connections": { type: "string" },
      "wan-concurrency": { type: "string" },
      "wan-seconds": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });

  if (values.help) {
    console.log(USAGE);
    process.exit(0);
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
  const udpIdleFit = Math.floor((fileLimit - FDS_RESERVED) / 3 / 100) * 100;
  const udp: UdpSettings = {
    seconds,
    associations: smoke ? 2 : 4,
    window: smoke ? 8 : 32,
    // Three descriptors per association in the proxy (control connection, relay socket, and in
    // the load client the control connection and its UDP socket): what the open-file limit holds.
    idle: Math.min(
      udpIdleFit,
      intOption("--udp-idle", values["udp-idle"], smoke ? 20 : quick ? 200 : 1_000, 100_000),
    ),
  };
  const variants: readonly IperfVariant[] = smoke
    ? IPERF_VARIANTS.filter((variant) => variant.key === "1" || variant.key === "4R")
    : IPERF_VARIANTS;
  const wanDelayText = values["wan-delay-ms"];
  const wanDelayMs = wanDelayText === undefined ? (smoke ? 2 : 10) : Number(wanDelayText);
  if (!(Number.isFinite(wanDelayMs) && wanDelayMs >= 0.1 && wanDelayMs <= 1_000)) {
    usageError(
      `--wan-delay-ms: expected a number between 0.1 and 1000, got ${JSON.stringify(wanDelayText)}`,
    );
  }
  const wanConcurrency = intOption(
    "--wan-concurrency",
    values["wan-concurrency"],
    smoke ? 8 : 32,
    1024,
  );
  const wan: WanSettings = {
    delayMs: wanDelayMs,
    concurrency: wanConcurrency,
    serial: intOption("--wan-serial", values["wan-serial"], smoke ? 10 : quick ? 50 : 200, 100_000),
    connections: intOption(
      "--wan-connections",
      values["wan-connections"],
      smoke ? 64 : quick ? 500 : 2_000,
      1_000_000,
    ),
    secondsMax: intOption("--wan-seconds", values["wan-seconds"], 30, 600),
    // A client that runs C connections at once to one destination is best served by C warm ones.
    poolPerDest: wanConcurrency,
    poolTotal: Math.max(wanConcurrency, DEFAULT_CONFIG.server.pool.max_total_idle),
    workers: SOCKPOOL_WORKERS,
    strategy: strategies[0]!,
  };
  const wanFlags = [
    values["wan-delay-ms"],
    values["wan-serial"],
    values["wan-connections"],
    values["wan-concurrency"],
    values["wan-seconds"],
  ];
  /** The WAN at its defaults, alone or with the rest: its own files may go to the committed results. */
  const wanAtDefaults =
    !smoke &&
    !quick &&
    (values.only === undefined || sections.join(",") === "wan") &&
    values.strategies === undefined &&
    wanFlags.every((value) => value === undefined);
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
      values["udp-idle"],
      ...wanFlags,
    ].every((value) => value === undefined);
  /** Where the results go; a temp dir is only made when they are written. */
  let temporary: string | null = null;
  const resultsDir = (): string => {
    const chosen = values.out ?? process.env.BENCH_RESULTS_DIR;
    if (chosen !== undefined) return chosen;
    if (fullRun) return COMMITTED_RESULTS_DIR;
    temporary ??= mkdtempSync(path.join(os.tmpdir(), "sockpool-e2e-results-"));
    return temporary;
  };
  const wanResultsDir = (): string =>
    values.out === undefined && process.env.BENCH_RESULTS_DIR === undefined && wanAtDefaults
      ? COMMITTED_RESULTS_DIR
      : resultsDir();
  const command = ["bun", "bench/e2e/main.ts", ...argv].join(" ");
  return {
    smoke,
    quick,
    strategies,
    peerNames,
    sections,
    seconds,
    concurrency,
    fileLimit,
    idleWanted,
    idleConnections,
    slow,
    udp,
    variants,
    wan,
    resultsDir,
    wanResultsDir,
    command,
  };
}
