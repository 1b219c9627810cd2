// What the pool microbenchmarks print after measuring: machine info, result lines in mitata's layout,
// the summary table (ratios to the `mutex` baseline) and the targets. Not a measurement (main.ts
// gathers the figures), and not the files: json.ts writes pool.json, chart.ts pool-workers.svg.

import os from "node:os";
import { STRATEGY_NAMES } from "../../src/pool/index.ts";
import { describeMachine } from "../lib/machine.ts";
import { markdownTable } from "../lib/markdown.ts";
import {
  BASELINE_STRATEGY,
  type BenchSizes,
  HANDOFF_BASELINE,
  MANY_COUNT,
  SLOT_BYTES,
} from "./config.ts";
import type { SingleFigure } from "./protocol.ts";
import type { ThroughputFigure } from "./threads.ts";

export const NOT_APPLICABLE = "n/a (per-thread buffers)";

export interface MachineInfo {
  cpu: string;
  cores: number;
  bun: string;
  os: string;
  /** 1-minute load average before and after the run: other work on the machine skews the figures. */
  loadavg_start: number;
  loadavg_end: number;
}

export interface BenchResults {
  smoke: boolean;
  date: string;
  machine: MachineInfo;
  sizes: BenchSizes;
  /** Keyed by strategy or baseline name. */
  single: Record<string, SingleFigure>;
  batched: Record<string, SingleFigure>;
  /** Subject → Worker count → figure. */
  workers: Record<string, Record<number, ThroughputFigure>>;
  handoff: Record<string, ThroughputFigure | typeof NOT_APPLICABLE>;
  /** Cores other processes kept busy while each single-thread process ran (null: unknown). */
  single_other_cores: Record<string, number | null>;
  checksum: number;
}

export function machineInfo(): MachineInfo {
  const machine = describeMachine();
  const load = round(os.loadavg()[0]!, 2);
  return {
    cpu: machine.cpu,
    cores: machine.cores,
    bun: `${machine.bun_version} (${machine.bun_revision.slice(0, 8)})`,
    os: machine.os,
    loadavg_start: load,
    loadavg_end: load,
  };
}

export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export function formatNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  if (ns >= 100) return `${ns.toFixed(0)} ns`;
  return `${ns.toFixed(ns >= 10 ? 1 : 2)} ns`;
}

export function formatRate(perSecond: number): string {
  const units: [number, string][] = [
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
  ];
  for (const [scale, unit] of units) {
    if (perSecond >= scale) {
      const v = perSecond / scale;
      return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${unit}`;
    }
  }
  return perSecond.toFixed(0);
}

function formatBytes(bytes: number | null): string {
  if (bytes === null) return "–";
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes.toFixed(bytes > 0 && bytes < 10 ? 1 : 0)} B`;
}

function formatRatio(ratio: number): string {
  return `${ratio >= 10 ? ratio.toFixed(0) : ratio.toFixed(2)}×`;
}

/** A result line in mitata's layout: the name padded to the same column as mitata's output. */
export function throughputLine(
  name: string,
  column: number,
  f: ThroughputFigure,
  showFairness = true,
): string {
  const rate = `${formatRate(f.ops_per_s)}/s`.padStart(11);
  const range = `(${formatRate(f.min_ops_per_s)} … ${formatRate(f.max_ops_per_s)})`.padEnd(22);
  const perPair = `${formatNs(1e9 / f.ops_per_s)}/pair`.padStart(14);
  const load = f.other_cores === null ? "" : `  others ${f.other_cores.toFixed(2)} cores`;
  const rerun = f.rounds_rerun > 0 ? `, ${f.rounds_rerun} re-run` : "";
  const fairness = showFairness ? `   fairness ${f.fairness.toFixed(2)}` : "";
  return `${name.padEnd(column)} ${rate} ${range} ${perPair}${fairness}${load}${rerun}${f.noisy ? "  NOISY" : ""}`;
}

/** The summary rows: every strategy, then the baselines, each with what it stands beside. */
const ROWS: { key: string; label: string }[] = [
  ...STRATEGY_NAMES.map((name) => ({
    key: name,
    label: name === BASELINE_STRATEGY ? `${name} (baseline)` : name,
  })),
  { key: "js-array", label: "JS array free list¹" },
  { key: "ffi-noop", label: "empty bun:ffi call¹" },
  { key: "ffi-noop-x2", label: "two empty bun:ffi calls" },
  { key: "ring-native", label: "Zig ring, no pool layer" },
  { key: "ring-ts", label: "TS ring, no pool layer" },
  { key: HANDOFF_BASELINE, label: "SPSC ring only, no pool" },
];

function allocsCell(single: SingleFigure | undefined, batched: SingleFigure | undefined): string {
  const one = (f: SingleFigure | undefined): string =>
    f?.allocs_per_op == null ? "–" : String(round(f.allocs_per_op, 2));
  return single || batched ? `${one(single)} / ${one(batched)}` : "–";
}

/** Speed-up over `mutex`: >1 is faster. For times mutex/x, for rates x/mutex. */
function timeCell(figure: SingleFigure | undefined, base: SingleFigure | undefined): string {
  if (!figure) return "–";
  const ratio = base ? ` (${formatRatio(base.ns_per_op / figure.ns_per_op)})` : "";
  return `${formatNs(figure.ns_per_op)}${ratio}`;
}

function rateCell(
  figure: ThroughputFigure | typeof NOT_APPLICABLE | undefined,
  base: ThroughputFigure | typeof NOT_APPLICABLE | undefined,
): string {
  if (figure === undefined) return "–";
  if (figure === NOT_APPLICABLE) return "n/a (per-thread)";
  const ratio =
    base && base !== NOT_APPLICABLE ? ` (${formatRatio(figure.ops_per_s / base.ops_per_s)})` : "";
  return `${formatRate(figure.ops_per_s)}/s${ratio}`;
}

export function summaryTable(r: BenchResults): string {
  const counts = r.sizes.workerCounts;
  const cores = r.machine.cores;
  const header = [
    "",
    "1 thread, per pair",
    "heap B/op",
    "allocs/op (1 / many)",
    `acquireMany ${MANY_COUNT}`,
    ...counts.map((n) => `${n} Worker${n > 1 ? "s" : ""}${n > cores ? "²" : ""}`),
    "hand-off A→B",
  ];
  const rows = ROWS.filter(
    ({ key }) => r.single[key] || r.batched[key] || r.workers[key] || r.handoff[key],
  ).map(({ key, label }) => [
    label,
    timeCell(r.single[key], r.single[BASELINE_STRATEGY]),
    formatBytes(r.single[key]?.heap_bytes_per_op ?? null),
    allocsCell(r.single[key], r.batched[key]),
    timeCell(r.batched[key], r.batched[BASELINE_STRATEGY]),
    ...counts.map((n) => rateCell(r.workers[key]?.[n], r.workers[BASELINE_STRATEGY]?.[n])),
    rateCell(r.handoff[key], r.handoff[BASELINE_STRATEGY]),
  ]);
  const notes = [
    `Cells: figure (speed-up over ${BASELINE_STRATEGY}: ${BASELINE_STRATEGY}'s time ÷ this time, or this rate ÷ ${BASELINE_STRATEGY}'s; >1 is faster).`,
    `Worker and hand-off columns: acquire+release pairs per second, summed over Workers; median of ${r.sizes.rounds} round(s).`,
    "¹ In the Worker columns, the same loop on each Worker's own unshared state: the ceiling for a shared pool.",
    counts.some((n) => n > cores) ? `² More Workers than the ${cores} cores: oversubscribed.` : "",
    noiseNote(r),
    `heap B/op: mitata's heap growth per call with a GC before each sample; it misses what a GC frees inside a sample (alloc frees most of its ${SLOT_BYTES} B buffers that way). allocs/op: JS objects per call (one pair / one acquireMany+releaseMany), counted over 16 calls after a GC.`,
  ].filter((line) => line !== "");
  return `${markdownTable(header, rows, { padded: true })}\n\n${notes.join("\n")}`;
}

/** How busy the rest of the machine was while the Worker figures were taken. */
function noiseNote(r: BenchResults): string {
  const figures = [
    ...Object.values(r.workers).flatMap((byCount) => Object.values(byCount)),
    ...Object.values(r.handoff).filter((f): f is ThroughputFigure => f !== NOT_APPLICABLE),
  ];
  const others = figures.map((f) => f.other_cores).filter((v): v is number => v !== null);
  if (others.length === 0) return "Noise: unknown (no /proc/stat).";
  const rerun = figures.reduce((sum, f) => sum + f.rounds_rerun, 0);
  const noisy = figures.filter((f) => f.noisy).length;
  const singles = Object.values(r.single_other_cores).filter((v): v is number => v !== null);
  return (
    `Noise: other processes kept ${(others.reduce((a, b) => a + b, 0) / others.length).toFixed(2)} cores busy on average ` +
    `(max ${Math.max(...others).toFixed(2)}) during the Worker rounds used, ${rerun} round(s) re-run, ${noisy} figure(s) NOISY; ` +
    `during the single-thread runs at most ${singles.length ? Math.max(...singles).toFixed(2) : "?"} cores.`
  );
}

export interface Target {
  name: string;
  want: string;
  got: number | null;
  met: boolean | null;
  note: string;
}

export function targets(r: BenchResults): Target[] {
  const local2 = r.workers.local?.[2];
  const mutex2 = r.workers[BASELINE_STRATEGY]?.[2];
  const ratio = local2 && mutex2 ? local2.ops_per_s / mutex2.ops_per_s : null;
  const queue = r.single.queue?.ns_per_op ?? null;
  const ring = r.single["ring-native"]?.ns_per_op;
  const ffi2 = r.single["ffi-noop-x2"]?.ns_per_op;
  const p50 = r.single.queue?.p50_ns;
  // The mean is the figure; the median sample shows whether a few slow samples decided it. The
  // Zig ring called directly is no faster than through the pool (measured slower, consistently),
  // so the pool layer is not subtracted: what is left after the FFI crossings is the Zig pop+push.
  const median = p50 == null ? "" : `median sample ${formatNs(p50)}; `;
  const parts =
    queue !== null && ring !== undefined && ffi2 !== undefined
      ? `${median}two empty FFI calls ${formatNs(ffi2)}, leaving ${formatNs(queue - ffi2)} for the Zig ` +
        `pop+push and the pool layer; the Zig ring called directly, without the pool layer: ${formatNs(ring)}`
      : "";
  const judged = (met: boolean): boolean | null => (r.smoke ? null : met);
  return [
    {
      name: "local at 2 Workers vs mutex",
      want: "≥ 10×",
      got: ratio === null ? null : round(ratio, 1),
      met: ratio === null ? null : judged(ratio >= 10),
      note:
        local2 && mutex2
          ? `${formatRate(local2.ops_per_s)}/s vs ${formatRate(mutex2.ops_per_s)}/s`
          : "",
    },
    {
      name: "queue, single thread, ns per acquire+release",
      want: "≤ 15 ns",
      got: queue === null ? null : round(queue, 1),
      met: queue === null ? null : judged(queue <= 15),
      note: parts,
    },
  ];
}

export function targetLines(list: Target[]): string {
  return list
    .map((t) => {
      const verdict =
        t.got === null
          ? "not measured"
          : t.met === null
            ? "not judged (smoke run)"
            : t.met
              ? "met"
              : "MISSED";
      const got = t.got === null ? "–" : String(t.got);
      return `target ${t.name} ${t.want}: ${got} — ${verdict}${t.note ? ` (${t.note})` : ""}`;
    })
    .join("\n");
}
