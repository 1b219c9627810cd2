// The end-to-end benchmark's results: their JSON shape, the ratios (against direct and against the
// best peer), the targets, and the markdown report. Pure: no processes and no files here, so the
// formatting can be read and changed without running anything.

import { markdownTable } from "../lib/markdown.ts";

export type PathKind = "direct" | "socks" | "forward";

/** One way through: straight to the server, or one peer's SOCKS5 or forward listener. */
export interface PathInfo {
  /** "direct", "sockpool-local/socks", "dante/socks", "haproxy/forward", … */
  id: string;
  label: string;
  kind: PathKind;
  /** "direct", "sockpool", "dante", "microsocks", "haproxy". */
  family: string;
  strategy: string | null;
}

export interface Cell {
  gbps: number | null;
  /** The proxy's CPU over the run, in cores (1.0 = one core busy). */
  proxy_cpu_cores: number | null;
  error?: string;
}

export interface ThroughputRow extends PathInfo {
  variants: Record<string, Cell>;
}

export interface RateRow extends PathInfo {
  conn_per_s: number | null;
  completed: number;
  errors: number;
  error_kinds: Record<string, number>;
  p50_ms: number | null;
  p90_ms: number | null;
  p99_ms: number | null;
  max_ms: number | null;
  proxy_cpu_cores: number | null;
  error?: string;
}

export interface IdleRow extends PathInfo {
  requested: number;
  open: number;
  errors: number;
  error_kinds: Record<string, number>;
  rss_base_mib: number | null;
  rss_delta_mib: number | null;
  bytes_per_conn: number | null;
  /** Pss splits pages shared between processes (Dante's children); null for one process. */
  pss_bytes_per_conn: number | null;
  processes: number | null;
  error?: string;
}

export interface SlowRow extends PathInfo {
  conns: number;
  stream_mib: number;
  /** Overall peak ΔRSS. */
  peak_delta_mib: number | null;
  /** Peak while the client read nothing (includes garbage not yet collected). */
  stall_peak_delta_mib: number | null;
  /** At the end of the stall: what the proxy still holds for readers that read nothing. */
  stall_end_delta_mib: number | null;
  /** Peak while the client read one chunk per connection per tick. */
  slow_peak_delta_mib: number | null;
  /** Peak while the client read at full speed. */
  drain_peak_delta_mib: number | null;
  end_delta_mib: number | null;
  /** What the target had handed its kernel by the end of the stall: proxy + socket buffers. */
  target_sent_in_stall_mib: number | null;
  /** sockpool only: min(pool, conns × backlog_bytes_max) + one read chunk per connection + runtime. */
  bound_mib: number | null;
  /** ΔRSS at the end of the stall < 25 % of the streams' total: the proxy did not absorb them. */
  bounded: boolean | null;
  within_bound: boolean | null;
  drain_s: number | null;
  errors: number;
  error_kinds: Record<string, number>;
  error?: string;
}

export interface Target {
  name: string;
  strategy: string;
  met: boolean | null;
  detail: string;
}

export interface Report {
  schema: 1;
  date: string;
  command: string;
  smoke: boolean;
  wall_s: number;
  machine: {
    cpu: string;
    cores: number;
    kernel: string;
    memory_gib: number;
    bun: string;
    file_limit: number;
  };
  versions: Record<string, string>;
  settings: {
    sockpool_workers: number;
    strategies: string[];
    peers: string[];
    sections: string[];
    iperf_seconds: number;
    iperf_variants: { key: string; name: string }[];
    rate_seconds: number;
    rate_concurrency: number;
    idle_connections: number;
    slow_conns: number;
    slow_stream_mib: number;
    slow_stall_ms: number;
    slow_slow_ms: number;
    pool: { slots: number; slot_bytes: number; backlog_bytes_max: number };
  };
  throughput: ThroughputRow[];
  rate: RateRow[];
  idle: IdleRow[];
  slow: SlowRow[];
  targets: Target[];
  notes: string[];
  skipped: string[];
  leftover_processes: string[];
}

const MIB = 1024 * 1024;

// ── Best peer ──────────────────────────────────────────────────────────────────────────────────

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

function ratio(value: number | null, base: number | null | undefined): string {
  if (value === null || base === null || base === undefined || base === 0) return "–";
  return `${(value / base).toFixed(2)}×`;
}

function fixed(value: number | null, digits: number): string {
  return value === null ? "–" : value.toFixed(digits);
}

function grouped(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

// ── Sections ───────────────────────────────────────────────────────────────────────────────────

function throughputSection(report: Report): string {
  const rows = report.throughput;
  if (rows.length === 0) return "";
  const variants = report.settings.iperf_variants;
  const direct = rows.find((row) => row.kind === "direct");
  const best = new Map(
    variants.map((variant) => [
      variant.key,
      bestPeer(rows, (row) => row.variants[variant.key]?.gbps ?? null, "higher"),
    ]),
  );
  const body = rows.map((row) => [
    row.label,
    ...variants.map((variant) => {
      const cell = row.variants[variant.key];
      if (cell === undefined) return "–";
      if (cell.gbps === null) return "failed";
      const gbps = cell.gbps.toFixed(2);
      if (row.kind === "direct") return gbps;
      const base = direct?.variants[variant.key]?.gbps ?? null;
      return `${gbps} (${ratio(cell.gbps, base)} / ${ratio(cell.gbps, best.get(variant.key)?.value)})`;
    }),
    fixed(row.variants[variants[0]!.key]?.proxy_cpu_cores ?? null, 2),
  ]);
  const bestNames = variants
    .map((variant) => `${variant.name}: ${best.get(variant.key)?.row.label ?? "none"}`)
    .join("; ");
  return [
    `## Throughput (iperf3 -t ${report.settings.iperf_seconds}, Gbit/s)`,
    "",
    "Each cell: Gbit/s (× direct / × best peer). SOCKS5 paths run iperf3 under proxychains4;",
    `forward paths connect iperf3 to the forward listener. Best peer per column: ${bestNames}.`,
    "",
    markdownTable(
      ["path", ...variants.map((variant) => variant.name), "proxy CPU, 1 stream (cores)"],
      body,
    ),
    ...failures(rows.flatMap((row) => Object.values(row.variants).map((cell) => [row, cell]))),
  ].join("\n");
}

function failures(pairs: [PathInfo, { error?: string }][]): string[] {
  const lines = pairs
    .filter(([, item]) => item.error !== undefined)
    .map(([row, item]) => `- ${row.label}: ${item.error}`);
  return lines.length === 0 ? [] : ["", "Failures:", "", ...lines];
}

function rateSection(report: Report): string {
  const rows = report.rate;
  if (rows.length === 0) return "";
  const direct = rows.find((row) => row.kind === "direct")?.conn_per_s ?? null;
  const best = bestPeer(rows, (row) => row.conn_per_s, "higher");
  const body = rows.map((row) => [
    row.label,
    row.conn_per_s === null ? "failed" : grouped(row.conn_per_s),
    row.kind === "direct" ? "" : ratio(row.conn_per_s, direct),
    ratio(row.conn_per_s, best?.value),
    fixed(row.p50_ms, 2),
    fixed(row.p90_ms, 2),
    fixed(row.p99_ms, 2),
    fixed(row.max_ms, 1),
    errorText(row.errors, row.error_kinds),
    fixed(row.proxy_cpu_cores, 2),
    row.proxy_cpu_cores === null || row.conn_per_s === null || row.conn_per_s === 0
      ? "–"
      : ((1e6 * row.proxy_cpu_cores) / row.conn_per_s).toFixed(0),
  ]);
  return [
    `## Connection rate and latency (${report.settings.rate_concurrency} concurrent loops, ${report.settings.rate_seconds} s each)`,
    "",
    "One loop: connect, SOCKS5 greeting (no auth) + CONNECT to the echo server (SOCKS5 paths only),",
    "64 B echoed, then the server closes and the close comes back through the proxy; the client closes.",
    "conn/s counts complete loops; latency is connect start → echo received. The load client is its",
    `own Bun process on the same cores. Best peer: ${best?.row.label ?? "none"}.`,
    "",
    markdownTable(
      [
        "path",
        "conn/s",
        "× direct",
        "× best peer",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "proxy CPU (cores)",
        "proxy CPU µs/conn",
      ],
      body,
    ),
    ...failures(rows.map((row) => [row, row])),
  ].join("\n");
}

function errorText(errors: number, kinds: Record<string, number>): string {
  if (errors === 0) return "0";
  const detail = Object.entries(kinds)
    .map(([kind, count]) => `${kind} ${count}`)
    .join(", ");
  return `${errors} (${detail})`;
}

function idleSection(report: Report): string {
  const rows = report.idle;
  if (rows.length === 0) return "";
  const best = bestPeer(rows, (row) => row.bytes_per_conn, "lower");
  const body = rows.map((row) => [
    row.label,
    grouped(row.open),
    fixed(row.rss_delta_mib, 1),
    row.bytes_per_conn === null ? "failed" : grouped(row.bytes_per_conn),
    ratio(row.bytes_per_conn, best?.value),
    row.pss_bytes_per_conn === null ? "–" : grouped(row.pss_bytes_per_conn),
    row.processes === null ? "–" : String(row.processes),
    errorText(row.errors, row.error_kinds),
  ]);
  return [
    `## Idle memory (${grouped(report.settings.idle_connections)} idle proxied connections)`,
    "",
    "Each connection completed its handshake (SOCKS5 paths) and one 64 B echo, then stayed open.",
    "ΔRSS is the proxy's process tree (sum of VmRSS) holding them minus before; lower is better.",
    `Best peer: ${best?.row.label ?? "none"}.`,
    "",
    markdownTable(
      [
        "path",
        "open",
        "ΔRSS MiB",
        "bytes/conn (RSS)",
        "× best peer",
        "bytes/conn (PSS)",
        "processes",
        "errors",
      ],
      body,
    ),
    ...failures(rows.map((row) => [row, row])),
  ].join("\n");
}

function slowSection(report: Report): string {
  const rows = report.slow;
  if (rows.length === 0) return "";
  const settings = report.settings;
  const best = bestPeer(rows, (row) => row.stall_end_delta_mib, "lower");
  const body = rows.map((row) => [
    row.label,
    fixed(row.stall_peak_delta_mib, 1),
    fixed(row.stall_end_delta_mib, 1),
    ratio(row.stall_end_delta_mib, best?.value),
    fixed(row.slow_peak_delta_mib, 1),
    fixed(row.drain_peak_delta_mib, 1),
    fixed(row.target_sent_in_stall_mib, 1),
    row.bound_mib === null
      ? "–"
      : `${row.bound_mib.toFixed(1)} (${row.within_bound ? "within" : "EXCEEDED"})`,
    row.bounded === null ? "–" : row.bounded ? "yes" : "NO",
    fixed(row.drain_s, 2),
    errorText(row.errors, row.error_kinds),
  ]);
  const pool = settings.pool;
  return [
    `## Slow readers (${settings.slow_conns} connections × ${settings.slow_stream_mib} MiB)`,
    "",
    `The target sends each connection ${settings.slow_stream_mib} MiB as fast as it can. The client reads nothing for`,
    `${settings.slow_stall_ms} ms (stalled), then one chunk per connection every 100 ms for ${settings.slow_slow_ms} ms (reading slowly),`,
    "then everything (draining; the byte count is checked). ΔRSS is the proxy's, sampled every 100 ms.",
    "Peaks include garbage not yet collected; the value at the end of the stall is what the proxy still",
    "holds for readers that read nothing. Bounded: that value is under 25 % of the streams' total (the",
    "proxy did not absorb the unread streams; what the target sent while stalled sits in socket buffers).",
    `sockpool's bound: min(pool ${pool.slots} × ${pool.slot_bytes / 1024} KiB = ${(pool.slots * pool.slot_bytes) / MIB} MiB,`,
    `connections × backlog_bytes_max ${pool.backlog_bytes_max / 1024} KiB) + one 512 KiB read chunk per connection`,
    "+ 32 MiB for the runtime, against the value at the end of the stall. Best peer: the lowest of that value.",
    "",
    markdownTable(
      [
        "path",
        "ΔRSS peak stalled MiB",
        "ΔRSS end of stall MiB",
        "× best peer",
        "ΔRSS peak reading slowly MiB",
        "ΔRSS peak draining MiB",
        "target sent while stalled MiB",
        "sockpool bound MiB",
        "bounded",
        "drain s",
        "errors",
      ],
      body,
    ),
    ...failures(rows.map((row) => [row, row])),
  ].join("\n");
}

function targetsSection(report: Report): string {
  if (report.targets.length === 0) return "";
  return [
    "## Targets (recorded, not gated)",
    "",
    ...report.targets.map((target) => {
      const verdict = target.met === null ? "n/a" : target.met ? "met" : "MISSED";
      return `- **${verdict}** — ${target.name} (${target.strategy}): ${target.detail}`;
    }),
  ].join("\n");
}

export function renderMarkdown(report: Report): string {
  const machine = report.machine;
  const header = [
    `# sockpool end-to-end benchmark${report.smoke ? " (smoke: tiny sizes, figures meaningless)" : ""}`,
    "",
    `- Date: ${report.date}; wall time ${report.wall_s.toFixed(0)} s`,
    `- Command: \`${report.command}\``,
    `- Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib.toFixed(0)} GiB, Linux ${machine.kernel}, bun ${machine.bun}, open-file limit ${machine.file_limit}`,
    `- Versions: ${Object.entries(report.versions)
      .map(([name, version]) => `${name} ${version}`)
      .join(", ")}`,
    `- sockpool: \`--workers ${report.settings.sockpool_workers}\`, strategies ${report.settings.strategies.join(", ")}, default pool and relay limits; everything on 127.0.0.1`,
  ];
  const sections = [
    header.join("\n"),
    throughputSection(report),
    rateSection(report),
    idleSection(report),
    slowSection(report),
    targetsSection(report),
    report.notes.length === 0
      ? ""
      : ["## Notes", "", ...report.notes.map((note) => `- ${note}`)].join("\n"),
    report.skipped.length === 0
      ? ""
      : ["## Skipped", "", ...report.skipped.map((line) => `- ${line}`)].join("\n"),
  ];
  return `${sections.filter((section) => section !== "").join("\n\n")}\n`;
}

// ── Targets ────────────────────────────────────────────────────────────────────────────────────

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
