#!/usr/bin/env bun

// Scale-out on loopback: two sockpool instances behind HAProxy (mode tcp, health checks against
// /readyz) with Prometheus scraping both, under a continuous SOCKS5 load through HAProxy. Phases:
// spread (both instances serve), a rolling restart (SIGTERM one, start it again on the same ports
// once it has exited, wait until HAProxy sees it up, then the other), a reload (SIGHUP) of each,
// then Prometheus' sum of the connection counters against the instances' own /metrics. Every
// connection is counted, made or failed, per phase. It stops by itself and tears everything down,
// also on failure or Ctrl-C. Not a benchmark: the load is small on purpose. scaleout.test.ts runs it.
//
//   bun run scaleout [-- --concurrency N] [--pause-ms N] [--hold-ms N] [--workers N] [--phase-ms N]
//                    [--drain-delay-ms N] [--no-proxy-protocol] [--json FILE]

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { closeOpenConns } from "../support/conn.ts";
import type { LogRecord } from "../support/proxy.ts";
import { killChildren } from "../support/proxy-process.ts";
import { startEcho } from "../support/targets.ts";
import {
  Balancer,
  Instance,
  killOthers,
  Load,
  type PhaseCount,
  Prometheus,
  serverOf,
  sumFamily,
  type Troubles,
} from "./cluster.ts";

export interface ScaleoutOptions {
  /** Client loops running at once. */
  concurrency: number;
  /** Each loop's pause between two connections. */
  pauseMs: number;
  /** How long every other loop keeps its connection open before sending (so a stop drains). */
  holdMs: number;
  /** Workers per instance. */
  workers: number;
  /** How long the load runs in each phase before and after its action. */
  phaseMs: number;
  /** `server.drain_delay_ms` for both instances (null: not set). */
  drainDelayMs: number | null;
  /** PROXY protocol v2 from HAProxy to the instances. */
  proxyProtocol: boolean;
}

export const DEFAULT_OPTIONS: ScaleoutOptions = {
  concurrency: 4,
  pauseMs: 10,
  holdMs: 800,
  workers: 1,
  phaseMs: 1_000,
  drainDelayMs: 1_000,
  proxyProtocol: true,
};

export interface PhaseResult extends PhaseCount, Troubles {
  phase: string;
  duration_ms: number;
}

export interface ScaleoutResult {
  options: ScaleoutOptions;
  phases: PhaseResult[];
  /** Connection lines each instance logged, over all its runs. */
  served: Record<string, number>;
  /** Clients whose own address:port appears as `client` in an instance's connection line, of those
   *  sampled (a sample every 16th connection of each loop). */
  addresses: { sampled: number; found: number; missing: string[] };
  /** What each step of the rolling restart took, from the SIGTERM. */
  restarts: {
    instance: string;
    /** Connections open on the instance just before its SIGTERM: what its drain had to finish. */
    open_at_sigterm: number;
    down_ms: number;
    exited_ms: number;
    up_ms: number;
    code: number;
  }[];
  reloads: { instance: string; msg: string }[];
  prometheus: {
    query: string;
    value: number;
    /** The same counter read from each instance's own /metrics. */
    direct: Record<string, number>;
    up: number;
  };
  /** Warnings and errors the instances logged (expected: none). */
  notable: LogRecord[];
}

export const PROMETHEUS_QUERY = "sum(sockpool_connections_total)";

/** The temporary directories of runs in progress (removed by Ctrl-C too). */
const runDirs = new Set<string>();

export async function runScaleout(options: ScaleoutOptions): Promise<ScaleoutResult> {
  const dir = mkdtempSync(join(tmpdir(), "sockpool-scaleout-"));
  runDirs.add(dir);
  const echo = startEcho();
  const instances = ["s1", "s2"].map(
    (name) =>
      new Instance({
        name,
        dir,
        workers: options.workers,
        drainDelayMs: options.drainDelayMs,
        proxyProtocol: options.proxyProtocol,
      }),
  );
  const balancer = new Balancer({
    dir,
    servers: instances.map(serverOf),
    sendProxy: options.proxyProtocol ? "v2" : null,
  });
  const prometheus = new Prometheus(dir, instances);
  const load = new Load(
    balancer.port,
    echo.port,
    options.concurrency,
    options.pauseMs,
    options.holdMs,
  );
  const phases: PhaseResult[] = [];
  const restarts: ScaleoutResult["restarts"] = [];
  const reloads: ScaleoutResult["reloads"] = [];

  /** Runs `action` under the load as phase `name`, with `phaseMs` of load before and after. */
  async function phase(name: string, action: () => Promise<void>): Promise<void> {
    const started = performance.now();
    const before = await balancer.troubles();
    load.phase = name;
    await Bun.sleep(options.phaseMs);
    await action();
    await Bun.sleep(options.phaseMs);
    load.phase = "between";
    await Bun.sleep(options.holdMs + 100); // the phase's last connections finish
    const after = await balancer.troubles();
    phases.push({
      phase: name,
      ...load.count(name),
      retries: after.retries - before.retries,
      redispatches: after.redispatches - before.redispatches,
      connect_errors: after.connect_errors - before.connect_errors,
      duration_ms: Math.round(performance.now() - started),
    });
  }

  try {
    await Promise.all([...instances.map((instance) => instance.start()), prometheus.start()]);
    await balancer.start(); // resolves once HAProxy sees both up
    load.start();

    // 1. Spread: round robin over both.
    await phase("spread", async () => {});

    // 2. Rolling restart: SIGTERM (readyz 503, the drain, exit), start again, wait until up.
    for (const instance of instances) {
      await phase(`restart ${instance.name}`, async () => {
        // Connections that outlive the drain delay: the stop must let them finish. Round robin
        // sends about half of them to this instance.
        const held = Array.from({ length: 4 }, () => load.held((options.drainDelayMs ?? 0) + 500));
        await Promise.all(held.map((connection) => connection.open));
        const status = JSON.parse((await instance.get("/api/status")).body) as {
          connections_open: number;
        };
        const sent = performance.now();
        const down = balancer
          .waitForStates({ [instance.name]: "DOWN" }, 20_000)
          .then(() => performance.now() - sent);
        const code = await instance.stop("SIGTERM");
        const exited = performance.now() - sent;
        const downMs = await down;
        await instance.start();
        await balancer.waitForStates({ [instance.name]: "UP" }, 20_000);
        await Promise.all(held.map((connection) => connection.done));
        restarts.push({
          instance: instance.name,
          down_ms: Math.round(downMs),
          exited_ms: Math.round(exited),
          up_ms: Math.round(performance.now() - sent),
          code,
          open_at_sigterm: status.connections_open,
        });
      });
    }

    // 3. Reload: a changed config file, SIGHUP, the `reloaded` line.
    for (const instance of instances) {
      await phase(`reload ${instance.name}`, async () => {
        instance.writeConfig(200_000);
        const outcome = await instance.reload();
        reloads.push({ instance: instance.name, msg: String(outcome.msg) });
      });
    }

    await load.stop();

    // 4. Prometheus: its sum of both instances' counter equals theirs, once it has scraped both
    // after the load stopped (the counters no longer move).
    const direct: Record<string, number> = {};
    for (const instance of instances) {
      direct[instance.name] = sumFamily(
        (await instance.get("/metrics")).body,
        "sockpool_connections_total",
      );
    }
    const expected = Object.values(direct).reduce((sum, value) => sum + value, 0);
    let value = Number.NaN;
    const deadline = performance.now() + 15_000;
    while (value !== expected) {
      if (performance.now() > deadline) {
        throw new Error(
          `Prometheus' ${PROMETHEUS_QUERY} never reached ${expected} (it says ${value})`,
        );
      }
      await Bun.sleep(250);
      value = (await prometheus.query(PROMETHEUS_QUERY))[0]?.value ?? Number.NaN;
    }
    const up = (await prometheus.query('sum(up{job="sockpool"})'))[0]?.value ?? 0;

    // Addresses: each sampled client, as the instance that served it logged it.
    const logged = new Set<string>();
    for (const instance of instances) {
      for (const line of instance.connectionLines) logged.add(String(line.client));
    }
    const missing = load.samples.filter((sample) => !logged.has(sample.client));

    return {
      options,
      phases,
      served: Object.fromEntries(
        instances.map((instance) => [instance.name, instance.connectionLines.length]),
      ),
      addresses: {
        sampled: load.samples.length,
        found: load.samples.length - missing.length,
        missing: missing.slice(0, 5).map((sample) => `${sample.client} (${sample.phase})`),
      },
      restarts,
      reloads,
      prometheus: { query: PROMETHEUS_QUERY, value, direct, up },
      notable: instances.flatMap((instance) => instance.notable),
    };
  } catch (error) {
    // What the instances warned about is most often the why.
    const notable = instances.flatMap((instance) => instance.notable).slice(0, 20);
    if (notable.length > 0 && error instanceof Error) {
      error.message += `\ninstances' warnings and errors:\n${notable.map((line) => JSON.stringify(line)).join("\n")}`;
    }
    throw error;
  } finally {
    await load.stop().catch(() => {});
    await Promise.allSettled([balancer.stop(), prometheus.stop()]);
    await killChildren();
    closeOpenConns();
    echo.close();
    rmSync(dir, { recursive: true, force: true });
    runDirs.delete(dir);
  }
}

// ── the command line ──

function parseArgs(argv: string[]): { options: ScaleoutOptions; json: string | null } {
  const options = { ...DEFAULT_OPTIONS };
  let json: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return Number.isFinite(Number(next)) ? Number(next) : Number.NaN;
    };
    if (arg === "--concurrency") options.concurrency = value();
    else if (arg === "--pause-ms") options.pauseMs = value();
    else if (arg === "--hold-ms") options.holdMs = value();
    else if (arg === "--workers") options.workers = value();
    else if (arg === "--phase-ms") options.phaseMs = value();
    else if (arg === "--drain-delay-ms") options.drainDelayMs = value();
    else if (arg === "--no-proxy-protocol") options.proxyProtocol = false;
    else if (arg === "--proxy-protocol") options.proxyProtocol = true;
    else if (arg === "--json") json = argv[++i] ?? null;
    else throw new Error(`unknown argument ${arg}`);
  }
  for (const [key, number] of Object.entries(options)) {
    if (typeof number === "number" && !(number >= 0))
      throw new Error(`--${key}: expected a number ≥ 0`);
  }
  return { options, json };
}

function summary(result: ScaleoutResult): string {
  const rows = result.phases.map(
    (phase) =>
      `${phase.phase.padEnd(12)} ${String(phase.made).padStart(7)} ${String(phase.failed).padStart(7)} ${String(phase.retries).padStart(8)} ${String(phase.slowest_ms).padStart(11)} ${String(phase.duration_ms).padStart(8)}${phase.errors.length > 0 ? `  ${phase.errors[0]}` : ""}`,
  );
  return [
    `phase           made  failed  retried  slowest ms  time ms`,
    ...rows,
    `served: ${Object.entries(result.served)
      .map(([name, count]) => `${name} ${count}`)
      .join(", ")}`,
    `client addresses in the instances' logs: ${result.addresses.found} of ${result.addresses.sampled} sampled`,
    ...result.restarts.map(
      (step) =>
        `restart ${step.instance}: ${step.open_at_sigterm} connections open at SIGTERM; HAProxy saw it down after ${step.down_ms} ms, exited ${step.exited_ms} ms (code ${step.code}), up again at ${step.up_ms} ms`,
    ),
    `Prometheus ${result.prometheus.query} = ${result.prometheus.value}; the instances' /metrics: ${Object.entries(
      result.prometheus.direct,
    )
      .map(([name, value]) => `${name} ${value}`)
      .join(" + ")}; up = ${result.prometheus.up}`,
  ].join("\n");
}

if (import.meta.main) {
  const { options, json } = parseArgs(process.argv.slice(2));
  process.on("SIGINT", () => {
    killOthers();
    void killChildren().finally(() => {
      for (const dir of runDirs) rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  });
  try {
    const result = await runScaleout(options);
    console.log(summary(result));
    if (json !== null) writeFileSync(json, JSON.stringify(result, null, 2));
    const failed = result.phases.reduce((sum, phase) => sum + phase.failed, 0);
    process.exit(failed === 0 ? 0 : 1);
  } catch (error) {
    console.error(`scaleout: failed: ${(error as Error).stack ?? error}`);
    process.exit(1);
  }
}

export { summary };
