// The benchmarks' one Markdown table renderer: pool/report.ts prints it padded, so it also reads as
// plain text in a terminal; the e2e report writes it compact into e2e.md. Not a cell formatter:
// callers hand over finished strings.

export interface TableOptions {
  /** Pad every column to its widest cell (the rule too), so the table lines up as plain text. */
  padded?: boolean;
}

/** A table whose first column (the row names) is left-aligned and every other column (figures)
 *  right-aligned: the only layout the reports use. */
export function markdownTable(
  head: string[],
  rows: string[][],
  { padded = false }: TableOptions = {},
): string {
  const widths = head.map((h, i) =>
    padded ? Math.max(h.length, ...rows.map((row) => row[i]!.length)) : 0,
  );
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  const ruleCell = (width: number, i: number): string => {
    if (!padded) return i === 0 ? "---" : "---:";
    return i === 0 ? "-".repeat(width + 2) : `${"-".repeat(width + 1)}:`;
  };
  const rule = `|${widths.map(ruleCell).join("|")}|`;
  return [line(head), rule, ...rows.map(line)].join("\n");
}
