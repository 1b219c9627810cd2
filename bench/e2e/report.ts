// The end-to-end benchmark's results: the JSON shape of e2e.json and the markdown of e2e.md (header,
// every section's table, targets, notes). Pure: no processes and no files here, so the report can be
// read and changed without running anything. Not the section tables: each section file has its own.

import { type IdleRow, idleMarkdown } from "./idle.ts";
import { type RateRow, rateMarkdown } from "./rate.ts";
import { type SlowRow, slowMarkdown } from "./slow.ts";
import { type ThroughputRow, throughputMarkdown } from "./throughput.ts";
import { type UdpSection, type UdpSettings, udpMarkdown } from "./udp.ts";
import { type WanSection, wanMarkdown } from "./wan.ts";

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
    udp: UdpSettings & { payload_bytes: readonly number[] };
  };
  throughput: ThroughputRow[];
  rate: RateRow[];
  idle: IdleRow[];
  slow: SlowRow[];
  /** null when the section was not asked for. */
  udp: UdpSection | null;
  /** null when the section was not asked for; its `skipped` says why it did not run. */
  wan: WanSection | null;
  targets: Target[];
  notes: string[];
  skipped: string[];
  leftover_processes: string[];
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
    throughputMarkdown(report),
    rateMarkdown(report),
    idleMarkdown(report),
    slowMarkdown(report),
    udpMarkdown(report),
    wanMarkdown(report.wan),
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
