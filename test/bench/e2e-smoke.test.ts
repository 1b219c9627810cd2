// The end-to-end benchmark runs here at smoke size (BENCH_SMOKE=1: direct and sockpool only, about a
// second per measure, 50 idle connections, 20 idle UDP associations) so it cannot rot. Its figures
// are not judged, only that every measure ran, wrote sane results to a temp dir, counted no errors
// for sockpool, and left no process behind. Needs iperf3 and proxychains4 (.ci/setup.sh
// --test-tools), not the peers.

import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Report } from "../../bench/e2e/report.ts";
import { runBun } from "../support/spawn.ts";

const BENCH = new URL("../../bench/e2e/main.ts", import.meta.url);
const COMMITTED = new URL("../../bench/results/e2e.json", import.meta.url).pathname;
const SMOKE_TIMEOUT_MS = 90_000;

function modifiedMs(file: string): number | null {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return null;
  }
}

test(
  "bench/e2e/main.ts measures throughput, rate, idle memory, slow readers and UDP at smoke size",
  async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sockpool-e2e-test-"));
    const committedBefore = modifiedMs(COMMITTED);
    try {
      // The WAN section has its own smoke test (wan-smoke.test.ts).
      const { code, stdout, stderr } = await runBun(
        BENCH,
        ["--only", "throughput,rate,idle,slow,udp"],
        {
          BENCH_SMOKE: "1",
          BENCH_RESULTS_DIR: dir,
        },
      );
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      for (const line of ["throughput · ", "rate · ", "idle · ", "slow · ", "udp · "]) {
        expect(stdout).toContain(line);
      }
      expect(stdout).toContain("checked with ps: no process left running");
      expect(stdout).toContain(`results: ${path.join(dir, "e2e.md")}`);

      const report = JSON.parse(readFileSync(path.join(dir, "e2e.json"), "utf8")) as Report;
      expect(report.smoke).toBe(true);
      expect(report.machine.cores).toBeGreaterThan(0);
      expect(report.leftover_processes).toEqual([]);
      expect(report.settings.strategies).toEqual(["local"]);
      expect(report.wan).toBeNull();

      // Throughput: direct, SOCKS5 and forward, and SOCKS5 again with the admin API off (the
      // admin on/off comparison), every variant measured.
      expect(report.throughput.map((row) => row.id)).toEqual([
        "direct",
        "sockpool-local/socks",
        "sockpool-local/forward",
        "sockpool-local-admin-off/socks",
      ]);
      for (const row of report.throughput) {
        for (const { key } of report.settings.iperf_variants) {
          expect(row.variants[key]?.gbps).toBeGreaterThan(0);
        }
      }
      // Rate: direct, SOCKS5, HTTP CONNECT and forward; connections went through with no error.
      expect(report.rate.map((row) => row.id)).toEqual([
        "direct",
        "sockpool-local/socks",
        "sockpool-local/http",
        "sockpool-local/forward",
      ]);
      for (const row of report.rate) {
        expect(row.conn_per_s).toBeGreaterThan(0);
        expect(row.errors).toBe(0);
        expect(row.p50_ms).toBeGreaterThan(0);
        expect(row.p99_ms).toBeGreaterThanOrEqual(row.p50_ms!);
        expect(row.max_ms).toBeGreaterThanOrEqual(row.p99_ms!);
      }
      // Idle: every connection opened and held; the per-connection figure exists (its value at
      // 50 connections is noise).
      expect(report.idle.length).toBe(2);
      for (const row of report.idle) {
        expect(row.open).toBe(report.settings.idle_connections);
        expect(row.errors).toBe(0);
        expect(row.rss_base_mib).toBeGreaterThan(0);
        expect(Number.isFinite(row.bytes_per_conn)).toBe(true);
      }
      // Slow readers: every byte arrived after the stall, and memory was sampled.
      expect(report.slow.length).toBe(2);
      for (const row of report.slow) {
        expect(row.errors).toBe(0);
        expect(row.drain_s).toBeGreaterThan(0);
        expect(row.target_sent_in_stall_mib).toBeGreaterThan(0);
        expect(row.bound_mib).toBeGreaterThan(0);
        expect(typeof row.bounded).toBe("boolean");
      }
      // UDP: direct and through sockpool's association at both sizes and unpaced, echoes back; every idle
      // association opened and held.
      expect(
        report.udp!.rate.map(
          (row) => `${row.id} ${row.payload_bytes}${row.unpaced ? " unpaced" : ""}`,
        ),
      ).toEqual([
        "direct 64",
        "direct 1400",
        "direct 64 unpaced",
        "sockpool-local/socks 64",
        "sockpool-local/socks 1400",
        "sockpool-local/socks 64 unpaced",
      ]);
      for (const row of report.udp!.rate) {
        expect(row.received).toBeGreaterThan(0);
        expect(row.delivered_per_s).toBeGreaterThan(0);
        expect(row.bad).toBe(0);
      }
      expect(report.udp!.idle.length).toBe(1);
      for (const row of report.udp!.idle) {
        expect(row.open).toBe(report.settings.udp.idle);
        expect(row.errors).toBe(0);
        expect(Number.isFinite(row.bytes_per_association)).toBe(true);
      }
      // One verdict per target (3) for the one strategy, each with its figures.
      expect(report.targets.length).toBe(3);
      for (const target of report.targets) expect(target.detail).not.toBe("not measured");

      const markdown = readFileSync(path.join(dir, "e2e.md"), "utf8");
      for (const heading of [
        "## Throughput",
        "## Connection rate",
        "## Idle memory",
        "## Slow",
        "## UDP ASSOCIATE",
      ]) {
        expect(markdown).toContain(heading);
      }
      expect(markdown).toContain("## Targets (recorded, not gated)");
      // Never over the committed results.
      expect(modifiedMs(COMMITTED)).toBe(committedBefore);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  SMOKE_TIMEOUT_MS,
);
