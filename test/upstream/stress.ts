// Concurrency stress for the upstream pool across real Workers: the supervisor runs 2 Workers
// in-process, clients make many concurrent SOCKS5 CONNECTs to a few tag targets (each accepted
// upstream connection answers with its own id), and a sampler reads the shared memory throughout.
// Checked: no upstream connection is handed to two clients (ids never repeat), max_total_idle and
// max_idle_per_dest hold at every sample, and the ledger balances once everything has settled and
// after shutdown. Used by workers.test.ts (small) and `bun run stress:upstream` (full size).
//
//   bun test/upstream/stress.ts [--connections 500] [--concurrency 250] [--destinations 8]

import { parseArgs } from "node:util";
import { parseConfig } from "../../src/config/schema.ts";
import { createLogger } from "../../src/log.ts";
import { createPoolMemory } from "../../src/pool/index.ts";
import { Supervisor } from "../../src/supervisor.ts";
import {
  keyHashes,
  readUpstreamPoolLedger,
  SharedPoolState,
  type UpstreamPoolLedger,
} from "../../src/upstream/memory.ts";
import { text } from "../support/bytes.ts";
import { socksConnect } from "../support/socks-client.ts";
import { waitFor } from "../support/wait.ts";
import { startTagTarget } from "./support.ts";

export interface UpstreamStressOptions {
  connections: number;
  concurrency: number;
  destinations: number;
  maxIdlePerDest: number;
  maxTotalIdle: number;
}

export interface UpstreamStressResult {
  connections: number;
  /** Upstream connections handed to more than one client (must be 0). */
  duplicates: number;
  failures: string[];
  /** Highest sampled reservations (idle + pending), all Workers, and per destination. */
  maxReserved: number;
  maxReservedPerDest: number;
  /** Highest sampled sum of the Workers' own total_idle + pending_creates. */
  maxIdlePlusPending: number;
  samples: number;
  /** The ledger once clients are done and nothing is pending, and after shutdown. */
  settled: UpstreamPoolLedger;
  stopped: UpstreamPoolLedger;
  /** Every identity that failed, by name (must be empty). */
  unbalanced: string[];
  seconds: number;
}

const WORKERS = 2;

/** The identities of src/upstream/pool.ts, by name, that `ledger` breaks. */
export function unbalanced(ledger: UpstreamPoolLedger): string[] {
  const broken: string[] = [];
  const closed =
    ledger.expired +
    ledger.evicted +
    ledger.closed_by_upstream +
    ledger.closed_banner +
    ledger.closed_shutdown +
    ledger.closed_crashed;
  if (ledger.total_created !== ledger.total_reused + ledger.total_idle + closed)
    broken.push("total_created = total_reused + total_idle + closed");
  if (ledger.total_reused !== ledger.pool_hits) broken.push("total_reused = pool_hits");
  if (ledger.total_reused !== ledger.connections_in_use + ledger.finished)
    broken.push("total_reused = connections_in_use + finished");
  for (const name of ["total_idle", "pending_creates", "connections_in_use"] as const) {
    if (ledger[name] < 0) broken.push(`${name} ≥ 0`);
  }
  return broken;
}

export async function runUpstreamStress(
  options: UpstreamStressOptions,
): Promise<UpstreamStressResult> {
  const started = performance.now();
  const targets = Array.from({ length: options.destinations }, () => startTagTarget());
  const config = parseConfig({
    server: {
      workers: WORKERS,
      pool: {
        enabled: true,
        max_idle_per_dest: options.maxIdlePerDest,
        max_total_idle: options.maxTotalIdle,
        idle_timeout_secs: 30,
      },
    },
    socks: { listen: "127.0.0.1:0" },
    pool: { slots: 1024 },
    log: { level: "warn", format: "json" },
  });
  const log = createLogger({ level: "warn", format: "json", write: () => {} });
  const memory = createPoolMemory({
    strategy: config.pool.strategy,
    slots: config.pool.slots,
    slot_bytes: config.pool.slot_bytes,
    local_batch: config.pool.local_batch,
  });
  const supervisor = new Supervisor(config, memory, WORKERS, log);
  const failures: string[] = [];
  const shared = new SharedPoolState(supervisor.upstreamPool, -1);
  const hashes = targets.map((target) => keyHashes(`127.0.0.1:${target.port}`));
  let maxReserved = 0;
  let maxReservedPerDest = 0;
  let maxIdlePlusPending = 0;
  let samples = 0;
  const sample = () => {
    samples++;
    maxReserved = Math.max(maxReserved, shared.reserved());
    for (const hash of hashes)
      maxReservedPerDest = Math.max(maxReservedPerDest, shared.reservedFor(hash));
    const { per_worker } = readUpstreamPoolLedger(supervisor.upstreamPool, WORKERS);
    let held = 0;
    for (const worker of per_worker) held += worker.total_idle + worker.pending_creates;
    maxIdlePlusPending = Math.max(maxIdlePlusPending, held);
  };
  const sampler = setInterval(sample, 2);
  const seen = new Map<string, number>();
  try {
    const { listeners } = await supervisor.start();
    const socksPort = listeners.find((listener) => listener.kind === "socks")!.port;
    let next = 0;
    const client = async () => {
      while (next < options.connections) {
        const index = next++;
        const target = targets[index % targets.length]!;
        try {
          const { conn } = await socksConnect(socksPort, "127.0.0.1", target.port);
          await conn.write("who?");
          const id = `${target.port}/${text(await conn.read(2)).split("\n")[0]}`;
          seen.set(id, (seen.get(id) ?? 0) + 1);
          conn.end();
        } catch (error) {
          failures.push(`connection ${index}: ${(error as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, client));
    const ledger = () => readUpstreamPoolLedger(supervisor.upstreamPool, WORKERS).total;
    await waitFor(
      () => ledger().pending_creates === 0 && ledger().connections_in_use === 0,
      () => `the pool to settle: ${JSON.stringify(ledger())}`,
      30_000,
    );
    sample();
    const settled = ledger();
    await supervisor.stop(1_000);
    const stopped = ledger();
    return {
      connections: options.connections,
      duplicates: [...seen.values()].filter((count) => count > 1).length,
      failures,
      maxReserved,
      maxReservedPerDest,
      maxIdlePlusPending,
      samples,
      settled,
      stopped,
      unbalanced: [
        ...unbalanced(settled),
        ...unbalanced(stopped).map((name) => `stopped: ${name}`),
      ],
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    clearInterval(sampler);
    await supervisor.stop(0);
    for (const target of targets) target.close();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      connections: { type: "string", default: "500" },
      concurrency: { type: "string", default: "250" },
      destinations: { type: "string", default: "8" },
      "per-dest": { type: "string", default: "4" },
      total: { type: "string", default: "16" },
    },
  });
  const result = await runUpstreamStress({
    connections: Number(values.connections),
    concurrency: Number(values.concurrency),
    destinations: Number(values.destinations),
    maxIdlePerDest: Number(values["per-dest"]),
    maxTotalIdle: Number(values.total),
  });
  const ok =
    result.duplicates === 0 &&
    result.failures.length === 0 &&
    result.unbalanced.length === 0 &&
    result.maxReserved <= Number(values.total) &&
    result.maxIdlePlusPending <= Number(values.total) &&
    result.maxReservedPerDest <= Number(values["per-dest"]);
  console.log(JSON.stringify({ ok, ...result, failures: result.failures.slice(0, 10) }, null, 2));
  process.exit(ok ? 0 : 1);
}
