// The UDP section: datagrams through a SOCKS5 UDP association to a UDP echo server, per route
// (direct, then every peer that serves UDP ASSOCIATE), at each payload size: echoes per second,
// Mbit/s, loss, and the proxy's CPU per echo; then N idle associations held open, for the proxy's
// RSS per association. And its tables in e2e.md. Not the datagrams themselves: the load client is
// child-udp.ts, in its own process, and the echo server is in child-servers.ts.

import { markdownTable } from "../lib/markdown.ts";
import type { UdpJob, UdpMessage } from "./protocol.ts";
import {
  type Context,
  eachRoute,
  MIB,
  nextMessage,
  type PathInfo,
  progress,
  type Route,
  settledRss,
} from "./harness.ts";
import type { RunningPeer } from "./peers.ts";
import { treeCpuSeconds, treeMemory } from "./proc-tree.ts";
import { type Proc, spawn } from "./procs.ts";
import type { Report } from "./report.ts";
import { bestPeer, errorText, failures, fixed, grouped, ratio } from "./table-cells.ts";

/** Payload sizes: a DNS-sized datagram, and one that fills a 1,500 B MTU with headers. */
export const UDP_PAYLOADS = [64, 1_400] as const;

/** One measure per route: each size in a closed loop, then the small one unpaced (overload). */
interface UdpRun {
  payloadBytes: number;
  unpaced: boolean;
}
const UDP_RUNS: readonly UdpRun[] = [
  ...UDP_PAYLOADS.map((payloadBytes) => ({ payloadBytes, unpaced: false })),
  { payloadBytes: 64, unpaced: true },
];
const BATCH_NOTE = "(32 datagrams per event-loop turn)";
const runName = (run: UdpRun) =>
  `${run.payloadBytes.toLocaleString("en-US")} B${run.unpaced ? ", unpaced" : ""}`;
const sameRun = (row: UdpRateRow, run: UdpRun) =>
  row.payload_bytes === run.payloadBytes && row.unpaced === run.unpaced;
/** A datagram not back after this long is counted lost. */
const LOST_AFTER_MS = 200;
/** At most this many datagrams per run, whatever the time. */
const DATAGRAMS_MAX = 20_000_000;

export interface UdpSettings {
  seconds: number;
  /** Associations (client sockets) sending at once. */
  associations: number;
  /** Datagrams in flight per association. */
  window: number;
  /** Idle associations held for the memory figure. */
  idle: number;
}

export interface UdpRateRow extends PathInfo {
  payload_bytes: number;
  /** Sent as fast as the client could, not in a window: offered beyond what the path delivers. */
  unpaced: boolean;
  sent: number;
  received: number;
  lost: number;
  late: number;
  bad: number;
  send_blocked: number;
  /** Datagrams sent per second (the offered load). */
  offered_per_s: number | null;
  /** Echoes back per second. */
  delivered_per_s: number | null;
  /** Payload bits delivered per second, one way (the echoes' payload). */
  mbit_per_s: number | null;
  loss_pct: number | null;
  proxy_cpu_cores: number | null;
  /** Proxy CPU per echoed datagram (two relayed datagrams: there and back). */
  cpu_us_per_echo: number | null;
  error?: string;
}

export interface UdpIdleRow extends PathInfo {
  requested: number;
  open: number;
  errors: number;
  error_kinds: Record<string, number>;
  rss_base_mib: number | null;
  rss_delta_mib: number | null;
  bytes_per_association: number | null;
  /** Pss splits pages shared between processes (Dante's children); null for one process. */
  pss_bytes_per_association: number | null;
  processes: number | null;
  error?: string;
}

export interface UdpSection {
  rate: UdpRateRow[];
  idle: UdpIdleRow[];
}

function startUdpLoad(context: Context, job: UdpJob): Proc {
  return spawn(
    `load ${job.mode}`,
    [process.execPath, "bench/e2e/child-udp.ts", JSON.stringify(job)],
    {
      stdout: "lines",
      stdin: job.mode === "udp-idle" ? "pipe" : "ignore",
      fileLimit: context.options.fileLimit,
    },
  );
}

async function measureRate(
  context: Context,
  route: Route,
  running: RunningPeer | null,
  run: UdpRun,
): Promise<UdpRateRow> {
  const { seconds, associations } = context.options.udp;
  const { payloadBytes, unpaced } = run;
  const window = unpaced ? 0 : context.options.udp.window;
  progress(
    `udp · ${route.info.label}, ${runName(run)}: ${associations} associations × ` +
      `${unpaced ? "unpaced" : `${window} in flight`} for ${seconds} s`,
  );
  const cpuBefore = running === null ? 0 : treeCpuSeconds(running.proc.pid);
  const wallBefore = performance.now();
  const load = startUdpLoad(context, {
    mode: "udp-rate",
    proxyPort: running === null ? null : running.socksPort,
    targetPort: context.udpEchoPort,
    payloadBytes,
    associations,
    window,
    seconds,
    datagramsMax: DATAGRAMS_MAX,
    lostAfterMs: LOST_AFTER_MS,
    timeoutMs: 10_000,
  });
  const result = await nextMessage<Extract<UdpMessage, { type: "udp-rate" }>>(
    load,
    (seconds + 30) * 1000,
    "the UDP rate result",
  );
  await load.child.exited;
  const cores =
    running === null
      ? null
      : (treeCpuSeconds(running.proc.pid) - cpuBefore) / ((performance.now() - wallBefore) / 1000);
  const delivered = result.received / result.elapsedS;
  // CPU over the whole wall time (handshakes and the settle included) per echo: a slight overestimate.
  const cpuSeconds = cores === null ? null : cores * ((performance.now() - wallBefore) / 1000);
  const row: UdpRateRow = {
    ...route.info,
    payload_bytes: payloadBytes,
    unpaced,
    sent: result.sent,
    received: result.received,
    lost: result.lost,
    late: result.late,
    bad: result.bad,
    send_blocked: result.sendBlocked,
    offered_per_s: result.sent / result.elapsedS,
    delivered_per_s: delivered,
    mbit_per_s: (delivered * payloadBytes * 8) / 1e6,
    loss_pct: result.sent === 0 ? null : (100 * result.lost) / result.sent,
    proxy_cpu_cores: cores,
    cpu_us_per_echo:
      cpuSeconds === null || result.received === 0 ? null : (1e6 * cpuSeconds) / result.received,
  };
  progress(
    `udp · ${route.info.label}, ${runName(run)}: ${grouped(delivered)} echoes/s ` +
      `(offered ${grouped(result.sent / result.elapsedS)}/s), ` +
      `${row.mbit_per_s!.toFixed(1)} Mbit/s, loss ${row.loss_pct?.toFixed(3) ?? "–"} % ` +
      `(${result.lost} of ${result.sent}, ${result.late} late)` +
      (cores === null ? "" : `, proxy ${cores.toFixed(2)} cores`),
  );
  return row;
}

async function holdIdle(
  context: Context,
  running: RunningPeer,
  count: number,
): Promise<{ load: Proc; holding: Extract<UdpMessage, { type: "udp-holding" }> }> {
  const load = startUdpLoad(context, {
    mode: "udp-idle",
    proxyPort: running.socksPort!,
    targetPort: context.udpEchoPort,
    count,
    concurrency: 32,
    timeoutMs: 10_000,
  });
  const holding = await nextMessage<Extract<UdpMessage, { type: "udp-holding" }>>(
    load,
    180_000,
    "idle associations to open",
  );
  return { load, holding };
}

async function releaseIdle(load: Proc): Promise<number> {
  load.send("release");
  const released = await nextMessage<Extract<UdpMessage, { type: "udp-released" }>>(
    load,
    30_000,
    "idle associations to close",
  );
  await load.child.exited;
  return released.closedWhileHeld;
}

async function measureIdleAssociations(
  context: Context,
  route: Route,
  running: RunningPeer,
): Promise<UdpIdleRow> {
  const count = context.options.udp.idle;
  const pid = running.proc.pid;
  // Warm up first (lazy init, JIT), so the baseline already includes it.
  const warm = await holdIdle(context, running, Math.min(100, count));
  await releaseIdle(warm.load);
  const base = await settledRss(pid, true);
  progress(
    `udp idle · ${route.info.label}: opening ${count} associations (base RSS ${(base.rss / MIB).toFixed(1)} MiB)`,
  );
  const { load, holding } = await holdIdle(context, running, count);
  const held = await settledRss(pid, true);
  const processes = treeMemory(pid).processes;
  const closedWhileHeld = await releaseIdle(load);
  const errorKinds = { ...holding.errorKinds };
  if (closedWhileHeld > 0) errorKinds["closed while held"] = closedWhileHeld;
  const open = holding.open;
  const row: UdpIdleRow = {
    ...route.info,
    requested: count,
    open,
    errors: holding.errors + closedWhileHeld,
    error_kinds: errorKinds,
    rss_base_mib: base.rss / MIB,
    rss_delta_mib: (held.rss - base.rss) / MIB,
    bytes_per_association: open === 0 ? null : (held.rss - base.rss) / open,
    pss_bytes_per_association: open === 0 || processes === 1 ? null : (held.pss - base.pss) / open,
    processes,
  };
  progress(
    `udp idle · ${route.info.label}: ${open} open in ${holding.openS.toFixed(1)} s, ` +
      `ΔRSS ${row.rss_delta_mib!.toFixed(1)} MiB = ${Math.round(row.bytes_per_association ?? 0)} B/association, ` +
      `${row.errors} errors, ${processes} process(es)`,
  );
  return row;
}

export async function measureUdp(context: Context): Promise<UdpSection> {
  const section: UdpSection = { rate: [], idle: [] };
  const failedRate = (route: Route, run: UdpRun, error: string): UdpRateRow => ({
    ...route.info,
    payload_bytes: run.payloadBytes,
    unpaced: run.unpaced,
    sent: 0,
    received: 0,
    lost: 0,
    late: 0,
    bad: 0,
    send_blocked: 0,
    offered_per_s: null,
    delivered_per_s: null,
    mbit_per_s: null,
    loss_pct: null,
    proxy_cpu_cores: null,
    cpu_us_per_echo: null,
    error,
  });
  const failedIdle = (route: Route, error: string): UdpIdleRow => ({
    ...route.info,
    requested: context.options.udp.idle,
    open: 0,
    errors: 0,
    error_kinds: {},
    rss_base_mib: null,
    rss_delta_mib: null,
    bytes_per_association: null,
    pss_bytes_per_association: null,
    processes: null,
    error,
  });
  await eachRoute(
    context,
    false,
    true,
    (route, error) => {
      for (const run of UDP_RUNS) {
        if (!section.rate.some((row) => row.id === route.info.id && sameRun(row, run))) {
          section.rate.push(failedRate(route, run, error));
        }
      }
      if (route.info.kind !== "direct" && !section.idle.some((row) => row.id === route.info.id)) {
        section.idle.push(failedIdle(route, error));
      }
    },
    async (route, running) => {
      for (const run of UDP_RUNS) {
        section.rate.push(await measureRate(context, route, running, run));
      }
      if (running !== null) {
        section.idle.push(await measureIdleAssociations(context, route, running));
      }
    },
  );
  return section;
}

// ── Tables ─────────────────────────────────────────────────────────────────────────────────────

export function udpMarkdown(report: Report): string {
  const section = report.udp;
  if (section === null) return "";
  const settings = report.settings.udp;
  const parts: string[] = [
    `## UDP ASSOCIATE (${settings.associations} associations, ${settings.seconds} s per measure)`,
    "",
    `Each association's client socket keeps a window of ${settings.window} datagrams in flight to a UDP echo`,
    "server (a Bun process of its own) and sends one more when one comes back, or when one has been out",
    `${LOST_AFTER_MS} ms and is counted lost: a closed loop, so the offered rate follows what the path delivers.`,
    `"Unpaced" drops the window: each association sends ${BATCH_NOTE} as fast as the client process can,`,
    "whatever comes back, so the offered rate exceeds what a proxy relays and the loss shows where it",
    'drops (a datagram back after being counted lost is "late", not delivered). Through a proxy each',
    "datagram carries the SOCKS UDP header (10 B, IPv4) both ways; Mbit/s counts payload, one way. The",
    "proxy relays two datagrams per echo; its CPU is per echo. The load client is its own Bun process",
    "on the same cores.",
  ];
  for (const run of UDP_RUNS) {
    const rows = section.rate.filter((row) => sameRun(row, run));
    if (rows.length === 0) continue;
    const direct = rows.find((row) => row.kind === "direct")?.delivered_per_s ?? null;
    const best = bestPeer(rows, (row) => row.delivered_per_s, "higher");
    parts.push(
      "",
      `### ${runName(run)}${best === null ? "" : ` (best peer: ${best.row.label})`}`,
      "",
      markdownTable(
        [
          "path",
          "echoes/s",
          "Mbit/s",
          "× direct",
          "× best peer",
          "offered/s",
          "loss %",
          "late",
          "proxy CPU (cores)",
          "proxy CPU µs/echo",
        ],
        rows.map((row) => [
          row.label,
          row.delivered_per_s === null ? "failed" : grouped(row.delivered_per_s),
          fixed(row.mbit_per_s, 1),
          row.kind === "direct" ? "" : ratio(row.delivered_per_s, direct),
          ratio(row.delivered_per_s, best?.value),
          row.offered_per_s === null ? "–" : grouped(row.offered_per_s),
          fixed(row.loss_pct, 3),
          grouped(row.late),
          fixed(row.proxy_cpu_cores, 2),
          fixed(row.cpu_us_per_echo, 1),
        ]),
      ),
    );
  }
  parts.push(...failures(section.rate.map((row) => [row, row])));
  if (section.idle.length > 0) {
    const best = bestPeer(section.idle, (row) => row.bytes_per_association, "lower");
    parts.push(
      "",
      `### Idle associations (${grouped(settings.idle)} at once)`,
      "",
      "Each: a TCP control connection, UDP ASSOCIATE, one 64 B datagram echoed through the relay, then",
      "idle. ΔRSS is the proxy's process tree (sum of VmRSS) holding them minus before (after a warm-up",
      `of up to 100); lower is better. Best peer: ${best?.row.label ?? "none"}.`,
      "",
      markdownTable(
        [
          "path",
          "open",
          "ΔRSS MiB",
          "bytes/association (RSS)",
          "× best peer",
          "bytes/association (PSS)",
          "processes",
          "errors",
        ],
        section.idle.map((row) => [
          row.label,
          grouped(row.open),
          fixed(row.rss_delta_mib, 1),
          row.bytes_per_association === null ? "failed" : grouped(row.bytes_per_association),
          ratio(row.bytes_per_association, best?.value),
          row.pss_bytes_per_association === null ? "–" : grouped(row.pss_bytes_per_association),
          row.processes === null ? "–" : String(row.processes),
          errorText(row.errors, row.error_kinds),
        ]),
      ),
      ...failures(section.idle.map((row) => [row, row])),
    );
  }
  return parts.join("\n");
}
