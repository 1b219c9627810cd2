// Everything the pool microbenchmarks print or write after measuring: machine info, result lines in
// mitata's layout, the summary table (ratios to the `mutex` baseline), the small JSON file and the SVG
// chart of throughput against Workers. Not a measurement: pool.bench.ts gathers the figures.

import os from "node:os";
import { STRATEGY_NAMES } from "../src/pool/index.ts";
import { describeMachine } from "./lib/machine.ts";
import { markdownTable } from "./lib/markdown.ts";
import {
  BASELINE_STRATEGY,
  type BenchSizes,
  HANDOFF_BASELINE,
  HANDOFF_RING_CELLS,
  LOCAL_BATCH,
  MANY_COUNT,
  SLOT_BYTES,
  SLOTS,
  WORKER_BASELINES,
} from "./pool-config.ts";
import type { SingleFigure } from "./pool-protocol.ts";
import type { ThroughputFigure } from "./pool-threads.ts";

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

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** Three significant digits: the JSON keeps what the measurement can support, and stays small. */
function sig(value: number): number {
  return value === 0 || !Number.isFinite(value) ? value : Number(value.toPrecision(3));
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

function singleJson(f: SingleFigure, base: SingleFigure | undefined): object {
  return {
    name: f.name,
    ns_per_op: sig(f.ns_per_op),
    p50_ns: f.p50_ns === null ? null : sig(f.p50_ns),
    p99_ns: f.p99_ns === null ? null : sig(f.p99_ns),
    heap_bytes_per_op: f.heap_bytes_per_op === null ? null : sig(f.heap_bytes_per_op),
    allocs_per_op: f.allocs_per_op === null ? null : round(f.allocs_per_op, 2),
    vs_mutex: base ? sig(base.ns_per_op / f.ns_per_op) : null,
    timer: f.timer,
  };
}

function rateJson(f: ThroughputFigure, base: ThroughputFigure | undefined): object {
  return {
    ops_per_s: sig(f.ops_per_s),
    min_ops_per_s: sig(f.min_ops_per_s),
    max_ops_per_s: sig(f.max_ops_per_s),
    fairness: round(f.fairness, 2),
    own_cores: round(f.own_cores, 2),
    other_cores: f.other_cores === null ? null : round(f.other_cores, 2),
    rounds_rerun: f.rounds_rerun,
    noisy: f.noisy,
    vs_mutex: base ? sig(f.ops_per_s / base.ops_per_s) : null,
  };
}

function mapValues<T, U>(
  record: Record<string, T>,
  fn: (value: T, key: string) => U,
): Record<string, U> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, fn(v, k)]));
}

export function resultsJson(r: BenchResults): object {
  const handoffBase = r.handoff[BASELINE_STRATEGY];
  return {
    schema: "sockpool-bench-pool/1",
    date: r.date,
    smoke: r.smoke,
    command: "bun run bench",
    machine: r.machine,
    config: {
      slots: SLOTS,
      slot_bytes: SLOT_BYTES,
      local_batch: LOCAL_BATCH,
      many_count: MANY_COUNT,
      handoff_ring_cells: HANDOFF_RING_CELLS,
      worker_counts: r.sizes.workerCounts,
      rounds: r.sizes.rounds,
      round_ms: r.sizes.roundMs,
      warmup_ms: r.sizes.warmupMs,
    },
    baseline: BASELINE_STRATEGY,
    units: {
      ns_per_op:
        "mean ns per call: one acquire+release pair (single), or one acquireMany+releaseMany of many_count slots (batched)",
      ops_per_s:
        "acquire+release pairs per second, summed over Workers, median round; vs_mutex >1 is faster",
    },
    single: mapValues(r.single, (f) => singleJson(f, r.single[BASELINE_STRATEGY])),
    batched: mapValues(r.batched, (f) => singleJson(f, r.batched[BASELINE_STRATEGY])),
    workers: mapValues(r.workers, (byCount) =>
      Object.fromEntries(
        Object.entries(byCount).map(([n, f]) => [
          n,
          rateJson(f, r.workers[BASELINE_STRATEGY]?.[Number(n)]),
        ]),
      ),
    ),
    handoff: mapValues(r.handoff, (f) =>
      f === NOT_APPLICABLE
        ? NOT_APPLICABLE
        : rateJson(f, handoffBase === NOT_APPLICABLE ? undefined : handoffBase),
    ),
    single_other_cores: mapValues(r.single_other_cores, (v) => (v === null ? null : round(v, 2))),
    targets: targets(r),
    checksum: r.checksum,
  };
}

// ---- SVG chart: ops/s against Workers, one line per strategy, log scale ----

const PALETTE: Record<string, { color: string; dashed: boolean; label: string }> = {
  queue: { color: "#1f77b4", dashed: false, label: "queue (Zig via FFI)" },
  "queue-ts": { color: "#17becf", dashed: false, label: "queue-ts" },
  mutex: { color: "#d62728", dashed: false, label: "mutex (baseline)" },
  spinlock: { color: "#ff7f0e", dashed: false, label: "spinlock" },
  local: { color: "#2ca02c", dashed: false, label: "local" },
  alloc: { color: "#9467bd", dashed: false, label: "alloc" },
  "js-array": { color: "#7f7f7f", dashed: true, label: "JS array, unshared" },
  "ffi-noop": { color: "#bcbd22", dashed: true, label: "empty FFI call, unshared" },
};

function xml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function workersSvg(r: BenchResults): string {
  const counts = r.sizes.workerCounts;
  const subjects = [...STRATEGY_NAMES, ...WORKER_BASELINES].filter((s) => r.workers[s]);
  const width = 760;
  const height = 460;
  const left = 72;
  const right = 170;
  const top = 48;
  const bottom = 96;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const values = subjects.flatMap((s) => counts.map((n) => r.workers[s]![n]?.ops_per_s ?? 0));
  const positive = values.filter((v) => v > 0);
  const lo = Math.floor(Math.log10(Math.min(...positive) / 1.5)); // no point on the bottom edge
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...positive))));
  const x = (i: number): number =>
    left + (counts.length === 1 ? plotW / 2 : (i * plotW) / (counts.length - 1));
  const y = (v: number): number => top + plotH - ((Math.log10(v) - lo) / (hi - lo)) * plotH;
  const f1 = (v: number): string => v.toFixed(1);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">sockpool pool: acquire+release pairs/s, all Workers (log scale)</text>`,
    `<text x="${width / 2}" y="38" text-anchor="middle" fill="#555">${xml(`${r.machine.cpu}, ${r.machine.cores} cores, bun ${r.machine.bun.split(" ")[0]}, ${r.date.slice(0, 10)}${r.smoke ? ", SMOKE (not a measurement)" : ""}`)}</text>`,
  );
  // Grid and y ticks: a labelled line per decade, faint lines at 2× and 5×.
  for (let decade = lo; decade <= hi; decade++) {
    const v = 10 ** decade;
    out.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${f1(y(v))}" y2="${f1(y(v))}" stroke="#ccc"/>`,
      `<text x="${left - 6}" y="${f1(y(v) + 4)}" text-anchor="end">${formatRate(v).replace(/\.0+ /, " ").replace(" ", "")}/s</text>`,
    );
    if (decade < hi) {
      for (const m of [2, 5]) {
        out.push(
          `<line x1="${left}" x2="${left + plotW}" y1="${f1(y(m * v))}" y2="${f1(y(m * v))}" stroke="#eee"/>`,
        );
      }
    }
  }
  // Axes and x ticks.
  out.push(
    `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#000"/>`,
    `<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#000"/>`,
  );
  counts.forEach((n, i) => {
    out.push(
      `<line x1="${f1(x(i))}" x2="${f1(x(i))}" y1="${top + plotH}" y2="${top + plotH + 5}" stroke="#000"/>`,
      `<text x="${f1(x(i))}" y="${top + plotH + 18}" text-anchor="middle">${n}${n > r.machine.cores ? "*" : ""}</text>`,
    );
  });
  out.push(
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">pairs/s</text>`,
    `<text x="${left + plotW / 2}" y="${top + plotH + 36}" text-anchor="middle">Workers (${r.machine.cores} cores; * oversubscribed)</text>`,
  );
  // Lines, then their end labels nudged apart so none overlap.
  const ends: { s: string; y: number }[] = [];
  for (const s of subjects) {
    const style = PALETTE[s]!;
    const points = counts
      .map((n, i) => [i, r.workers[s]![n]?.ops_per_s ?? 0] as const)
      .filter(([, v]) => v > 0);
    const path = points.map(([i, v]) => `${f1(x(i))},${f1(y(v))}`).join(" ");
    out.push(
      `<polyline points="${path}" fill="none" stroke="${style.color}" stroke-width="2"${style.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      ...points.map(
        ([i, v]) => `<circle cx="${f1(x(i))}" cy="${f1(y(v))}" r="3" fill="${style.color}"/>`,
      ),
    );
    const last = points.at(-1);
    if (last) ends.push({ s, y: y(last[1]) });
  }
  ends.sort((a, b) => a.y - b.y);
  for (let i = 1; i < ends.length; i++) ends[i]!.y = Math.max(ends[i]!.y, ends[i - 1]!.y + 13);
  for (const end of ends) {
    const style = PALETTE[end.s]!;
    out.push(
      `<text x="${left + plotW + 8}" y="${f1(end.y + 4)}" fill="${style.color}">${xml(end.s)}</text>`,
    );
  }
  // Legend: two rows under the x axis.
  subjects.forEach((s, i) => {
    const style = PALETTE[s]!;
    const lx = 40 + (i % 4) * 175;
    const ly = top + plotH + 58 + Math.floor(i / 4) * 18;
    out.push(
      `<line x1="${lx}" x2="${lx + 24}" y1="${ly - 4}" y2="${ly - 4}" stroke="${style.color}" stroke-width="2"${style.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      `<text x="${lx + 30}" y="${ly}">${xml(style.label)}</text>`,
    );
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
