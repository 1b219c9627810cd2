// pool-workers.svg: acquire+release pairs/s against the Worker count, one line per strategy and
// baseline, on a log scale. Not a charting library: one fixed layout, written as SVG text.

import { STRATEGY_NAMES } from "../../src/pool/index.ts";
import { WORKER_BASELINES } from "./config.ts";
import { type BenchResults, formatRate } from "./report.ts";

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
