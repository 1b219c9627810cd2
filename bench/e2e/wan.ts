// The e2e benchmark's WAN section: runs bench/wan (sockpool's upstream pool off and on across an
// emulated link, beside direct) and renders its table, into e2e.md and into its own wan.md and
// wan.json. Not the measurement itself (bench/wan/run.ts) nor the link (bench/wan/link.ts).

import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { markdownTable } from "../lib/markdown.ts";
import { linkUnavailable } from "../wan/link.ts";
import { RESPONSE_BYTES } from "../wan/protocol.ts";
import {
  runWan,
  type WanPhase,
  type WanReport,
  type WanRow,
  type WanSettings,
} from "../wan/run.ts";
import { type Context, message, progress } from "./harness.ts";
import { REPO_ROOT } from "./procs.ts";
import type { Report } from "./report.ts";
import { fixed, grouped } from "./table-cells.ts";

/** The section as the report holds it: what ran, or why it did not. */
export type WanSection = WanReport & { error?: string };

export async function measureWan(context: Context): Promise<WanSection> {
  const settings = context.options.wan;
  const unavailable = linkUnavailable();
  if (unavailable !== null) {
    progress(`skipping wan: ${unavailable}`);
    return { ...emptySection(settings), skipped: unavailable };
  }
  progress(
    `wan · ${settings.delayMs} ms each way; c=1 × ${settings.serial}, c=${settings.concurrency} × ${settings.connections}`,
  );
  let section: WanSection;
  try {
    section = await runWan(settings, context.dir, progress);
  } catch (error) {
    progress(`wan · FAILED ${message(error)}`);
    section = { ...emptySection(settings), error: message(error) };
  }
  return section;
}

function emptySection(settings: WanSettings): WanSection {
  return {
    skipped: null,
    settings: { ...settings, response_bytes: RESPONSE_BYTES, fast_reply_ms: settings.delayMs },
    link: null,
    target: null,
    rows: [],
    leftovers: [],
  };
}

/** True when the section ran and something in it failed (it is never a failure to be skipped). */
export function wanFailed(section: WanSection | null): boolean {
  if (section === null || section.skipped !== null) return false;
  return (
    section.error !== undefined ||
    section.leftovers.length > 0 ||
    section.rows.length !== 3 ||
    section.rows.some((row) => row.error !== undefined || row.concurrent === null)
  );
}

// ── Markdown ───────────────────────────────────────────────────────────────────────────────────

function share(part: number | null, whole: number | null): string {
  if (part === null || whole === null || whole === 0) return "n/a";
  return `${Math.round((100 * part) / whole)} %`;
}

function hitRate(phase: WanPhase | null): string {
  if (phase === null || phase.pool_hits === null || phase.pool_misses === null) return "n/a";
  return share(phase.pool_hits, phase.pool_hits + phase.pool_misses);
}

function fastShare(row: WanRow, phase: WanPhase | null): string {
  if (row.id === "direct" || phase === null) return "";
  return share(phase.fast_replies, phase.completed);
}

function cpuPerConnection(phase: WanPhase | null): string {
  if (phase === null || phase.proxy_cpu_s === null || phase.completed === 0) return "";
  return ((1e6 * phase.proxy_cpu_s) / phase.completed).toFixed(0);
}

function errors(row: WanRow): string {
  if (row.error !== undefined) return "failed";
  const count = (row.serial?.errors ?? 0) + (row.concurrent?.errors ?? 0);
  return String(count);
}

/** The table and what it means; "" when the section did not run. */
export function wanTable(section: WanSection): string {
  const c = section.settings.concurrency;
  const rows = section.rows.map((row) => [
    row.label,
    fixed(row.serial?.first_byte_ms.p50 ?? null, 1),
    fixed(row.serial?.first_byte_ms.p99 ?? null, 1),
    fixed(row.concurrent?.first_byte_ms.p50 ?? null, 1),
    fixed(row.concurrent?.first_byte_ms.p99 ?? null, 1),
    row.concurrent === null ? "–" : grouped(row.concurrent.conn_per_s),
    row.id === "pool-on" ? `${hitRate(row.serial)} / ${hitRate(row.concurrent)}` : "",
    row.id === "direct" ? "" : `${fastShare(row, row.serial)} / ${fastShare(row, row.concurrent)}`,
    cpuPerConnection(row.concurrent),
    errors(row),
  ]);
  return markdownTable(
    [
      "path",
      "c=1 p50 ms",
      "c=1 p99 ms",
      `c=${c} p50 ms`,
      `c=${c} p99 ms`,
      `conn/s at c=${c}`,
      `pool hit rate (c=1 / c=${c})`,
      `CONNECT replies < ${section.settings.fast_reply_ms} ms (c=1 / c=${c})`,
      "proxy CPU µs/conn",
      "errors",
    ],
    rows,
  );
}

/** One decimal, and never "-0.0". */
function saved(ms: number): string {
  const text = ms.toFixed(1);
  return text === "-0.0" ? "0.0" : text;
}

function savingLine(section: WanSection): string | null {
  const off = section.rows.find((row) => row.id === "pool-off");
  const on = section.rows.find((row) => row.id === "pool-on");
  if (off?.serial == null || on?.serial == null) return null;
  const rtt = 2 * section.settings.delayMs;
  const serial = off.serial.first_byte_ms.p50 - on.serial.first_byte_ms.p50;
  const concurrent =
    off.concurrent === null || on.concurrent === null
      ? null
      : off.concurrent.first_byte_ms.p50 - on.concurrent.first_byte_ms.p50;
  return (
    `Pool on vs off, p50 first byte: ${saved(serial)} ms saved at c=1` +
    (concurrent === null ? "" : `, ${saved(concurrent)} ms at c=${section.settings.concurrency}`) +
    ` (one round trip is ${rtt} ms).`
  );
}

export function wanMarkdown(section: WanSection | null, heading = "##"): string {
  if (section === null) return "";
  const title = `${heading} WAN: the upstream pool (${section.settings.delayMs} ms each way)`;
  if (section.skipped !== null) return `${title}\n\nSkipped: ${section.skipped}.`;
  if (section.error !== undefined) return `${title}\n\nFailed: ${section.error}`;
  const { settings, link, target } = section;
  const delay = link?.delay_line;
  const lines = [
    title,
    "",
    `The target (${link?.far_address ?? "?"}) runs in its own network namespace, behind a userspace delay`,
    `line (bench/wan/delay.zig: two TUN devices, ${settings.delayMs} ms each way). Clients on loopback make`,
    `SOCKS5 CONNECTs to it through sockpool (${settings.workers} Workers, the ${settings.strategy} buffer pool), send a small`,
    `HTTP/1.0 GET and read the ${settings.response_bytes} B response, after which the target closes.`,
    "Latency runs from connect start to the first response byte. c=1 makes",
    `${settings.serial} connections one at a time; c=${settings.concurrency} makes ${settings.connections}, ${settings.concurrency} at a time (conn/s and CPU`,
    `come from this phase). Pool on: \`--upstream-pool --upstream-pool-per-dest ${settings.poolPerDest}`,
    `--upstream-pool-total ${settings.poolTotal}\`. Each path first makes ${2 * settings.concurrency} unmeasured connections, because`,
    "the first CONNECT to a destination can only miss.",
    "",
    wanTable(section),
    "",
    "- The hit rate comes from the admin API (`GET /api/pool/stats`, pool_hits and pool_misses over",
    "  the phase); n/a where this build has no such counters. A CONNECT reply faster than half a round",
    "  trip cannot have waited for an upstream handshake: that column is the hit rate as the client sees it.",
  ];
  const saving = savingLine(section);
  if (saving !== null) lines.push(`- ${saving}`);
  if (link?.connect_p50_ms != null) {
    lines.push(
      `- The link: direct TCP connect p50 ${link.connect_p50_ms.toFixed(1)} ms for a ${2 * settings.delayMs} ms round trip.`,
    );
  }
  if (delay != null) {
    const dropped =
      delay.to_far.dropped_full +
      delay.to_root.dropped_full +
      delay.to_far.dropped_oversize +
      delay.to_root.dropped_oversize;
    lines.push(
      `- The delay line forwarded ${grouped(delay.to_far.forwarded)} packets out and ${grouped(delay.to_root.forwarded)} back, ` +
        `dropped ${dropped}, held at most ${Math.max(delay.to_far.depth_max, delay.to_root.depth_max)} in one direction.`,
    );
  }
  if (target !== null) {
    lines.push(
      `- The target accepted ${grouped(target.accepted)} connections, answered ${grouped(target.served)}, ` +
        `saw ${grouped(target.unused)} closed unused (warm connections never handed out) and ${target.errors} errors.`,
    );
  }
  lines.push(
    section.leftovers.length === 0
      ? "- Teardown left no namespace and no device behind."
      : `- Teardown LEFT BEHIND: ${section.leftovers.join(", ")}.`,
  );
  return lines.join("\n");
}

/** The source the figures were measured on: `git describe --always --dirty`, or null. */
function revision(): string | null {
  const result = Bun.spawnSync(["git", "describe", "--always", "--dirty"], {
    cwd: REPO_ROOT,
    stdout: "pipe",
    stderr: "ignore",
  });
  return result.exitCode === 0 ? result.stdout.toString().trim() : null;
}

/** wan.md and wan.json, beside (or instead of) e2e.*: the WAN's committed results stand alone. */
export function writeWanResults(report: Report, dir: string): string | null {
  const section = report.wan;
  if (section === null || section.skipped !== null) return null;
  mkdirSync(dir, { recursive: true });
  const source = revision();
  const json = {
    schema: 1,
    date: report.date,
    command: report.command,
    revision: source,
    smoke: report.smoke,
    machine: report.machine,
    ...section,
  };
  const markdown = [
    `# sockpool WAN benchmark${report.smoke ? " (smoke: tiny sizes, figures meaningless)" : ""}`,
    "",
    `- Date: ${report.date}`,
    `- Command: \`${report.command}\` at ${source ?? "an unknown revision"}`,
    `- Machine: ${report.machine.cpu}, ${report.machine.cores} cores, Linux ${report.machine.kernel}, bun ${report.machine.bun}`,
    "",
    wanMarkdown(section),
    "",
  ].join("\n");
  writeFileSync(path.join(dir, "wan.md"), markdown);
  writeFileSync(path.join(dir, "wan.json"), `${JSON.stringify(json, null, 2)}\n`);
  return path.join(dir, "wan.md");
}
