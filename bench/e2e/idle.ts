// The idle-memory section: N idle proxied connections per route, held while the proxy's RSS (and
// PSS) settles, then released server-first; the per-connection figure and its table in e2e.md.
// Not the connections themselves: the load client (child-load.ts) opens and holds them.

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
  settledRss,
  startLoad,
} from "./harness.ts";
import type { RunningPeer } from "./peers.ts";
import { timeWaitSockets } from "./ports.ts";
import { treeMemory } from "./proc-tree.ts";
import type { Proc } from "./procs.ts";
import type { Report } from "./report.ts";
import { bestPeer, errorText, failures, fixed, grouped, ratio } from "./table-cells.ts";

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

/** Opens `count` idle connections through the route and waits for "holding". */
async function holdIdle(
  route: Route,
  running: RunningPeer,
  context: Context,
  count: number,
): Promise<{ load: Proc; holding: Extract<LoadMessage, { type: "holding" }> }> {
  const target = endpoint(route, running, context.targets, "echo");
  const load = startLoad(context, {
    mode: "idle",
    ...target,
    count,
    concurrency: 64,
    timeoutMs: 30_000,
  });
  const holding = await nextMessage<Extract<LoadMessage, { type: "holding" }>>(
    load,
    180_000,
    "idle connections to open",
  );
  return { load, holding };
}

/** The echo server closes first (TIME_WAIT on the listening side); the client checks that every
 *  connection was closed through the proxy. Returns the errors while held and on release. */
async function releaseIdle(
  load: Proc,
  servers: Proc,
): Promise<{ whileHeld: number; onRelease: number }> {
  load.send("release");
  await nextMessage(load, 10_000, "the client to expect the closes");
  servers.send("close-echo");
  await nextMessage(servers, 10_000, "the echo server to close its connections");
  const closed = await nextMessage<Extract<LoadMessage, { type: "closed" }>>(
    load,
    60_000,
    "idle connections to close",
  );
  await load.child.exited;
  return { whileHeld: closed.errorsWhileHeld, onRelease: closed.errorsOnRelease };
}

export async function measureIdle(context: Context): Promise<IdleRow[]> {
  const { idleConnections } = context.options;
  const rows: IdleRow[] = [];
  const failedRow = (route: Route, error: string): IdleRow => ({
    ...route.info,
    requested: idleConnections,
    open: 0,
    errors: 0,
    error_kinds: {},
    rss_base_mib: null,
    rss_delta_mib: null,
    bytes_per_conn: null,
    pss_bytes_per_conn: null,
    processes: null,
    error,
  });
  await eachRoute(
    context,
    true,
    false,
    (route, error) => rows.push(failedRow(route, error)),
    async (route, running) => {
      const pid = running!.proc.pid;
      // Warm up first (lazy init, JIT), so the baseline already includes it.
      const warm = await holdIdle(route, running!, context, Math.min(200, idleConnections));
      await releaseIdle(warm.load, context.servers);
      const base = await settledRss(pid, true);
      progress(
        `idle · ${route.info.label}: opening ${idleConnections} connections (base RSS ${(base.rss / MIB).toFixed(1)} MiB, ` +
          `${timeWaitSockets() ?? "?"} sockets in TIME_WAIT)`,
      );
      const { load, holding } = await holdIdle(route, running!, context, idleConnections);
      const held = await settledRss(pid, true);
      const processes = treeMemory(pid).processes;
      const released = await releaseIdle(load, context.servers);
      const open = holding.open;
      const errorKinds = { ...holding.errorKinds };
      if (released.whileHeld > 0) errorKinds["closed while held"] = released.whileHeld;
      if (released.onRelease > 0) errorKinds["close not relayed"] = released.onRelease;
      const row: IdleRow = {
        ...route.info,
        requested: idleConnections,
        open,
        errors: holding.errors + released.whileHeld + released.onRelease,
        error_kinds: errorKinds,
        rss_base_mib: base.rss / MIB,
        rss_delta_mib: (held.rss - base.rss) / MIB,
        bytes_per_conn: open === 0 ? null : (held.rss - base.rss) / open,
        // One process: PSS only adds noise (other Bun processes share the binary's pages).
        pss_bytes_per_conn: open === 0 || processes === 1 ? null : (held.pss - base.pss) / open,
        processes,
      };
      rows.push(row);
      progress(
        `idle · ${route.info.label}: ${open} open in ${holding.openS.toFixed(1)} s, ` +
          `ΔRSS ${row.rss_delta_mib!.toFixed(1)} MiB = ${Math.round(row.bytes_per_conn ?? 0)} B/conn, ` +
          `${row.errors} errors, ${processes} process(es)`,
      );
    },
  );
  return rows;
}

export function idleMarkdown(report: Report): string {
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
