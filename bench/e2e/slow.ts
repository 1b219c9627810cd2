// The slow-readers section: K connections the target streams into while the client reads nothing,
// then one chunk a tick, then everything; the proxy's RSS per phase against sockpool's bound, and
// its table in e2e.md. Not the readers: the load client (child-load.ts) is them.

import { markdownTable } from "../lib/markdown.ts";
import type { LoadMessage } from "./protocol.ts";
import {
  type Context,
  eachRoute,
  endpoint,
  MIB,
  nextMessage,
  type PathInfo,
  progress,
  type Route,
  SAMPLE_MS,
  serverStats,
  settledRss,
  startLoad,
} from "./harness.ts";
import { SOCKPOOL_POOL } from "./peers.ts";
import { treeMemory } from "./proc-tree.ts";
import type { Report } from "./report.ts";
import { bestPeer, errorText, failures, fixed, ratio } from "./table-cells.ts";

/** The slow readers' sockpool bound allows this much for the runtime itself. */
const RUNTIME_SLACK_MIB = 32;
/** One read chunk a paused connection may hold outside the pool (Bun hands up to 512 KiB). */
const READ_CHUNK_BYTES = 512 * 1024;

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

export async function measureSlow(context: Context): Promise<SlowRow[]> {
  const { slow } = context.options;
  const rows: SlowRow[] = [];
  const streamMib = slow.streamBytes / MIB;
  const failedRow = (route: Route, error: string): SlowRow => ({
    ...route.info,
    conns: slow.conns,
    stream_mib: streamMib,
    peak_delta_mib: null,
    stall_peak_delta_mib: null,
    stall_end_delta_mib: null,
    slow_peak_delta_mib: null,
    drain_peak_delta_mib: null,
    end_delta_mib: null,
    target_sent_in_stall_mib: null,
    bound_mib: null,
    bounded: null,
    within_bound: null,
    drain_s: null,
    errors: 0,
    error_kinds: {},
    error,
  });
  const poolBytes = SOCKPOOL_POOL.slots * SOCKPOOL_POOL.slotBytes;
  const sockpoolBound =
    Math.min(poolBytes, slow.conns * SOCKPOOL_POOL.backlogBytesMax) +
    slow.conns * READ_CHUNK_BYTES +
    RUNTIME_SLACK_MIB * MIB;
  await eachRoute(
    context,
    true,
    false,
    (route, error) => rows.push(failedRow(route, error)),
    async (route, running) => {
      const pid = running!.proc.pid;
      const base = await settledRss(pid);
      const sentBefore = (await serverStats(context.servers)).bulkSentBytes;
      progress(
        `slow · ${route.info.label}: ${slow.conns} readers × ${streamMib} MiB, stalled ${slow.stallMs} ms`,
      );
      const target = endpoint(route, running, context.targets, "bulk");
      // Peaks per phase: while the client reads nothing or one chunk per tick (the proxy must
      // hold or refuse what arrives), and while it drains at full speed.
      const peak = { stall: base.rss, slow: base.rss, drain: base.rss };
      let phase: keyof typeof peak = "stall";
      const sampler = setInterval(() => {
        peak[phase] = Math.max(peak[phase], treeMemory(pid).rssBytes);
      }, SAMPLE_MS);
      try {
        const load = startLoad(context, {
          mode: "slow",
          ...target,
          count: slow.conns,
          streamBytes: slow.streamBytes,
          stallMs: slow.stallMs,
          slowMs: slow.slowMs,
          slowTickMs: 100,
          timeoutMs: 120_000,
        });
        const stalling = await nextMessage<Extract<LoadMessage, { type: "stalling" }>>(
          load,
          30_000,
          "slow readers to connect",
        );
        await nextMessage(load, slow.stallMs + 10_000, "the end of the stall");
        const stallEnd = treeMemory(pid).rssBytes;
        peak.stall = Math.max(peak.stall, stallEnd);
        phase = "slow";
        const sentInStall = (await serverStats(context.servers)).bulkSentBytes - sentBefore;
        await nextMessage(load, slow.slowMs + 10_000, "the end of slow reading");
        peak.slow = Math.max(peak.slow, treeMemory(pid).rssBytes);
        phase = "drain";
        const drained = await nextMessage<Extract<LoadMessage, { type: "drained" }>>(
          load,
          180_000,
          "the streams to drain",
        );
        await load.child.exited;
        clearInterval(sampler);
        const end = treeMemory(pid).rssBytes;
        const expected = stalling.connected * slow.streamBytes;
        const errors = drained.errors + (drained.receivedBytes === expected ? 0 : 1);
        const errorKinds = { ...drained.errorKinds };
        if (drained.receivedBytes !== expected) {
          errorKinds[`received ${drained.receivedBytes} of ${expected} bytes`] = 1;
        }
        // What the proxy still holds after a few seconds of the client reading nothing; the peaks
        // include garbage awaiting collection (Bun allocates a fresh buffer per read).
        const heldDelta = stallEnd - base.rss;
        const isSockpool = route.info.family === "sockpool";
        const row: SlowRow = {
          ...route.info,
          conns: slow.conns,
          stream_mib: streamMib,
          peak_delta_mib: (Math.max(peak.stall, peak.slow, peak.drain) - base.rss) / MIB,
          stall_peak_delta_mib: (peak.stall - base.rss) / MIB,
          stall_end_delta_mib: heldDelta / MIB,
          slow_peak_delta_mib: (peak.slow - base.rss) / MIB,
          drain_peak_delta_mib: (peak.drain - base.rss) / MIB,
          end_delta_mib: (end - base.rss) / MIB,
          target_sent_in_stall_mib: sentInStall / MIB,
          bound_mib: isSockpool ? sockpoolBound / MIB : null,
          bounded: heldDelta < 0.25 * slow.conns * slow.streamBytes,
          within_bound: isSockpool ? heldDelta <= sockpoolBound : null,
          drain_s: drained.drainS,
          errors,
          error_kinds: errorKinds,
        };
        rows.push(row);
        progress(
          `slow · ${route.info.label}: ΔRSS peak ${row.stall_peak_delta_mib!.toFixed(1)} MiB stalled ` +
            `(${row.stall_end_delta_mib!.toFixed(1)} at its end), ` +
            `${row.slow_peak_delta_mib!.toFixed(1)} MiB reading slowly, ` +
            `${row.drain_peak_delta_mib!.toFixed(1)} MiB draining; ` +
            `target sent ${row.target_sent_in_stall_mib!.toFixed(1)} MiB while stalled, ` +
            `drained in ${drained.drainS.toFixed(2)} s, ${errors} errors`,
        );
      } finally {
        clearInterval(sampler);
      }
    },
  );
  return rows;
}

export function slowMarkdown(report: Report): string {
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
