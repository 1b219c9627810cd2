// The cells the e2e section tables share: ratios, fixed and grouped numbers, error counts by kind,
// the failures under a table, and the best peer a column is compared with. Not a table renderer:
// ../lib/markdown.ts lays the rows out.

import type { PathInfo } from "./harness.ts";

const isPeer = (row: PathInfo) => row.family !== "direct" && row.family !== "sockpool";

/** The peer row with the best value (higher or lower is better), or null. */
export function bestPeer<T extends PathInfo>(
  rows: T[],
  value: (row: T) => number | null,
  better: "higher" | "lower",
): { row: T; value: number } | null {
  let best: { row: T; value: number } | null = null;
  for (const row of rows) {
    const candidate = value(row);
    if (!isPeer(row) || candidate === null || candidate <= 0) continue;
    if (best === null || (better === "higher" ? candidate > best.value : candidate < best.value)) {
      best = { row, value: candidate };
    }
  }
  return best;
}

export function ratio(value: number | null, base: number | null | undefined): string {
  if (value === null || base === null || base === undefined || base === 0) return "–";
  return `${(value / base).toFixed(2)}×`;
}

export function fixed(value: number | null, digits: number): string {
  return value === null ? "–" : value.toFixed(digits);
}

export function grouped(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

export function failures(pairs: [PathInfo, { error?: string }][]): string[] {
  const lines = pairs
    .filter(([, item]) => item.error !== undefined)
    .map(([row, item]) => `- ${row.label}: ${item.error}`);
  return lines.length === 0 ? [] : ["", "Failures:", "", ...lines];
}

export function errorText(errors: number, kinds: Record<string, number>): string {
  if (errors === 0) return "0";
  const detail = Object.entries(kinds)
    .map(([kind, count]) => `${kind} ${count}`)
    .join(", ");
  return `${errors} (${detail})`;
}
