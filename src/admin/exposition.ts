// A writer of the Prometheus text exposition format 0.0.4: families with HELP and TYPE, samples with
// escaped label values. Not the choice of metrics (metrics.ts) and not a parser (the tests use
// promtool and their own).
//
//   # HELP sockpool_x_total What it counts.     HELP text escapes \ and newline
//   # TYPE sockpool_x_total counter
//   sockpool_x_total{kind="socks"} 12           label values escape \, " and newline

export type MetricType = "counter" | "gauge" | "histogram";
export type Labels = Record<string, string | number>;

/** The exposition's content type (what Prometheus asks for and expects back). */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

function formatLabels(labels: Labels | undefined): string {
  if (labels === undefined) return "";
  const parts: string[] = [];
  for (const key in labels) {
    if (!LABEL_NAME.test(key) || key.startsWith("__")) throw new Error(`bad label name ${key}`);
    parts.push(`${key}="${escapeLabelValue(String(labels[key]))}"`);
  }
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

/** Builds one exposition. Each family is declared once, its samples follow it. */
export class Exposition {
  private readonly lines: string[] = [];
  private readonly declared = new Set<string>();
  private current = "";
  private currentType: MetricType = "gauge";

  /** Starts a family: its HELP and TYPE lines. Names are checked; a repeat is a bug. */
  family(name: string, type: MetricType, help: string): this {
    if (!NAME.test(name)) throw new Error(`bad metric name ${name}`);
    if (this.declared.has(name)) throw new Error(`metric family ${name} declared twice`);
    this.declared.add(name);
    this.current = name;
    this.currentType = type;
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
    return this;
  }

  /** A sample of the current family (histograms: use histogram()). */
  sample(value: number, labels?: Labels): this {
    this.lines.push(`${this.current}${formatLabels(labels)} ${formatValue(value)}`);
    return this;
  }

  /** The samples of a histogram family: cumulative buckets (the last is +Inf), _sum and _count. */
  histogram(
    bounds: readonly number[],
    cumulative: readonly number[],
    sum: number,
    labels: Labels = {},
  ): this {
    if (this.currentType !== "histogram") throw new Error(`${this.current} is not a histogram`);
    const name = this.current;
    bounds.forEach((bound, i) => {
      this.lines.push(
        `${name}_bucket${formatLabels({ ...labels, le: formatValue(bound) })} ${cumulative[i]}`,
      );
    });
    const count = cumulative[bounds.length]!;
    this.lines.push(`${name}_bucket${formatLabels({ ...labels, le: "+Inf" })} ${count}`);
    this.lines.push(`${name}_sum${formatLabels(labels)} ${formatValue(sum)}`);
    this.lines.push(`${name}_count${formatLabels(labels)} ${count}`);
    return this;
  }

  text(): string {
    return `${this.lines.join("\n")}\n`;
  }
}
