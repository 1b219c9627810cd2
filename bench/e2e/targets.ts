// The targets the e2e benchmark records (single-stream relay, connection rate, idle memory per
// connection), judged per sockpool strategy from a finished report. Not a gate: a missed target is
// written into e2e.md and e2e.json, and the run still succeeds.

import type { PathInfo } from "./harness.ts";
import type { IdleRow } from "./idle.ts";
import type { RateRow } from "./rate.ts";
import type { Report, Target } from "./report.ts";
import { grouped } from "./table-cells.ts";
import type { ThroughputRow } from "./throughput.ts";

const IDLE_TARGET_BYTES = 3_000; // "3 KB", decimal
const IDLE_TARGET_CONNECTIONS = 10_000;

export function evaluateTargets(report: Report): Target[] {
  const targets: Target[] = [];
  const strategies = report.settings.strategies;
  const directSingle =
    report.throughput.find((row) => row.kind === "direct")?.variants["1"]?.gbps ?? null;
  const danteSingle =
    report.throughput.find((row) => row.family === "dante")?.variants["1"]?.gbps ?? null;
  const microsocksRate = report.rate.find((row) => row.family === "microsocks");
  for (const strategy of strategies) {
    const socks = (rows: PathInfo[]) =>
      rows.find((row) => row.strategy === strategy && row.kind === "socks");
    if (report.throughput.length > 0) {
      const row = socks(report.throughput) as ThroughputRow | undefined;
      const gbps = row?.variants["1"]?.gbps ?? null;
      const name = "single-stream relay ≥ 0.75× direct and ≥ 1.5× Dante";
      if (gbps === null || directSingle === null) {
        targets.push({ name, strategy, met: null, detail: "not measured" });
      } else {
        const vsDirect = gbps / directSingle;
        const vsDante = danteSingle === null ? null : gbps / danteSingle;
        targets.push({
          name,
          strategy,
          met: vsDante === null ? null : vsDirect >= 0.75 && vsDante >= 1.5,
          detail:
            `SOCKS5 1 stream ${gbps.toFixed(2)} Gbit/s = ${vsDirect.toFixed(2)}× direct (${directSingle.toFixed(2)})` +
            (vsDante === null
              ? "; Dante not measured"
              : `, ${vsDante.toFixed(2)}× Dante (${danteSingle!.toFixed(2)})`) +
            `; needs ≥ ${(0.75 * directSingle).toFixed(2)}` +
            (danteSingle === null ? "" : ` and ≥ ${(1.5 * danteSingle).toFixed(2)}`) +
            " Gbit/s",
        });
      }
    }
    if (report.rate.length > 0) {
      const row = socks(report.rate) as RateRow | undefined;
      const name = "connection rate ≥ 2× microsocks with 0 errors";
      const mine = row?.conn_per_s ?? null;
      const theirs = microsocksRate?.conn_per_s ?? null;
      if (mine === null || row === undefined) {
        targets.push({ name, strategy, met: null, detail: "not measured" });
      } else if (theirs === null) {
        targets.push({
          name,
          strategy,
          met: null,
          detail: `${grouped(mine)} conn/s, ${row.errors} errors; microsocks not measured`,
        });
      } else {
        targets.push({
          name,
          strategy,
          met: mine >= 2 * theirs && row.errors === 0,
          detail: `${grouped(mine)} conn/s = ${(mine / theirs).toFixed(2)}× microsocks (${grouped(theirs)}), ${row.errors} errors; needs ≥ ${grouped(2 * theirs)}`,
        });
      }
    }
    if (report.idle.length > 0) {
      const row = socks(report.idle) as IdleRow | undefined;
      const name = "idle memory ≤ 3 KB (3,000 B) per idle proxied connection at 10k connections";
      const perConn = row?.bytes_per_conn ?? null;
      if (row === undefined || perConn === null) {
        targets.push({ name, strategy, met: null, detail: "not measured" });
      } else {
        const at =
          row.open >= IDLE_TARGET_CONNECTIONS
            ? `at ${grouped(row.open)} connections`
            : `at ${grouped(row.open)} connections, not 10,000 (see notes)`;
        targets.push({
          name,
          strategy,
          met: perConn <= IDLE_TARGET_BYTES,
          detail: `${grouped(perConn)} B per connection (RSS), ${at}; ${(perConn / IDLE_TARGET_BYTES).toFixed(2)}× the target`,
        });
      }
    }
  }
  return targets;
}
