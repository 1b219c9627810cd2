// What the e2e sections share: progress lines, the routes through each proxy (direct, SOCKS5,
// forward) and where they connect, one peer instance per route group, the load client and its JSON
// lines, and RSS sampled until it settles. Not a section itself: throughput.ts, rate.ts, idle.ts
// and slow.ts measure, each with this.

import { median } from "../lib/stats.ts";
import type { LoadJob } from "./protocol.ts";
import type { ServersMessage } from "./protocol.ts";
import type { Options } from "./options.ts";
import type { PeerSpec, RunningPeer, Targets } from "./peers.ts";
import { treeMemory } from "./proc-tree.ts";
import { type Proc, spawn, stop } from "./procs.ts";

export const MIB = 1024 * 1024;
/** How often a section samples a proxy's RSS. */
export const SAMPLE_MS = 100;

export type PathKind = "direct" | "socks" | "forward" | "http";

/** One way through: straight to the server, or one peer's SOCKS5 or forward listener. */
export interface PathInfo {
  /** "direct", "sockpool-local/socks", "sockpool-local/http", "dante/socks", "haproxy/forward", … */
  id: string;
  label: string;
  kind: PathKind;
  /** "direct", "sockpool", "dante", "microsocks", "haproxy". */
  family: string;
  strategy: string | null;
}

// ── Progress ───────────────────────────────────────────────────────────────────────────────────

/** When the run began: progress lines count from here, and the report's wall time. */
export const startedMs = performance.now();

export function progress(text: string): void {
  const elapsed = ((performance.now() - startedMs) / 1000).toFixed(0).padStart(4);
  console.log(`[e2e ${elapsed}s] ${text}`);
}

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ── Paths ──────────────────────────────────────────────────────────────────────────────────────

export interface Route {
  info: PathInfo;
  spec: PeerSpec | null; // null: direct
}

/** Sections with a route through sockpool's HTTP CONNECT listener. */
const HTTP_SECTIONS = new Set(["rate"]);
/** Peers that serve UDP ASSOCIATE (microsocks answers 07; HAProxy has no SOCKS). */
const UDP_FAMILIES = new Set(["sockpool", "dante"]);

function kindsOf(spec: PeerSpec, section: string): readonly PathKind[] {
  // UDP ASSOCIATE is a SOCKS5 command: the peers that serve it, through their SOCKS5 port.
  if (section === "udp") return UDP_FAMILIES.has(spec.family) ? ["socks"] : [];
  if (spec.kinds !== undefined) return spec.kinds;
  switch (spec.family) {
    case "sockpool":
      return HTTP_SECTIONS.has(section) ? ["socks", "http", "forward"] : ["socks", "forward"];
    case "haproxy":
      return ["forward"];
    default:
      return ["socks"];
  }
}

const KIND_LABELS: Record<PathKind, string> = {
  direct: "direct",
  socks: "SOCKS5",
  http: "HTTP CONNECT",
  forward: "forward",
};

function routeOf(spec: PeerSpec | null, kind: PathKind): Route {
  if (spec === null) {
    return {
      spec,
      info: {
        id: "direct",
        label: "direct (no proxy)",
        kind: "direct",
        family: "direct",
        strategy: null,
      },
    };
  }
  return {
    spec,
    info: {
      id: `${spec.id}/${kind}`,
      label: `${spec.label} (${KIND_LABELS[kind]})`,
      kind,
      family: spec.family,
      strategy: spec.family === "sockpool" ? spec.id.slice("sockpool-".length) : null,
    },
  };
}

type Which = "echo" | "close" | "bulk" | "iperf";

/** Where a client connects for `which` server along a route, and the SOCKS5 target if any. */
export function endpoint(
  route: Route,
  running: RunningPeer | null,
  targets: Targets,
  which: Which,
): { port: number; socksTarget: number | null; http: boolean } {
  const key = `${which}Port` as const;
  if (route.info.kind === "direct") return { port: targets[key], socksTarget: null, http: false };
  if (running === null) throw new Error("no running peer for a proxied route");
  if (route.info.kind === "socks") {
    return { port: running.socksPort!, socksTarget: targets[key], http: false };
  }
  if (route.info.kind === "http") {
    return { port: running.httpPort!, socksTarget: targets[key], http: true };
  }
  return { port: running.forward![key], socksTarget: null, http: false };
}

// ── Helpers around the child processes ────────────────────────────────────────────────────────

export async function nextMessage<T extends { type: string }>(
  proc: Proc,
  timeoutMs: number,
  what: string,
): Promise<T> {
  while (true) {
    const line = await proc.stdout!.next(timeoutMs, `${proc.name}: ${what}`);
    if (line === null) {
      await proc.child.exited;
      throw new Error(
        `${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) before ${what}:\n${proc.stderr()}`,
      );
    }
    if (line.startsWith("{")) return JSON.parse(line) as T;
  }
}

/** Starts the load client (child-load.ts) on `job`, as its own process. */
export function startLoad(context: Context, job: LoadJob): Proc {
  return spawn(
    `load ${job.mode}`,
    [process.execPath, "bench/e2e/child-load.ts", JSON.stringify(job)],
    {
      stdout: "lines",
      stdin: job.mode === "idle" ? "pipe" : "ignore",
      fileLimit: context.options.fileLimit,
    },
  );
}

export async function serverStats(
  servers: Proc,
): Promise<Extract<ServersMessage, { type: "stats" }>> {
  servers.send("stats");
  return await nextMessage(servers, 5_000, "stats");
}

/** Samples in the settle window: one second at SAMPLE_MS. */
const SETTLE_SAMPLES = 10;
/** Give up waiting for RSS to settle after this long, and use the last window anyway. */
const SETTLE_MAX_MS = 6_000;

/**
 * RSS (and PSS) once it has settled: the median of the last second of samples, taken when that
 * second varied by at most 1 % (or 512 KiB), or after SETTLE_MAX_MS. Right after a burst of
 * connections the runtime still holds garbage it collects within a second or so.
 */
export async function settledRss(
  pid: number,
  withPss = false,
): Promise<{ rss: number; pss: number }> {
  const window: { rss: number; pss: number }[] = [];
  const started = performance.now();
  while (true) {
    const memory = treeMemory(pid, withPss);
    window.push({ rss: memory.rssBytes, pss: memory.pssBytes });
    if (window.length > SETTLE_SAMPLES) window.shift();
    if (window.length === SETTLE_SAMPLES) {
      const rss = window.map((sample) => sample.rss);
      const spread = Math.max(...rss) - Math.min(...rss);
      const settled = spread <= Math.max(0.01 * median(rss), 512 * 1024);
      if (settled || performance.now() - started > SETTLE_MAX_MS) {
        return { rss: median(rss), pss: median(window.map((sample) => sample.pss)) };
      }
    }
    await Bun.sleep(SAMPLE_MS);
  }
}

// ── Running a section ────────────────────────────────────────────────────────────────────────────

/** What every section is handed: the options, the running targets and the proxies to measure. */
export interface Context {
  /** The section running: which routes a peer has (kindsOf). */
  section: string;
  options: Options;
  dir: string;
  targets: Targets;
  /** The UDP echo server (child-servers.ts). */
  udpEchoPort: number;
  specs: PeerSpec[];
  withDirect: boolean;
  servers: Proc;
  iperf3: string | null;
  proxychains: string | null;
}

async function startPeer(context: Context, spec: PeerSpec): Promise<RunningPeer> {
  return await spec.start({
    targets: context.targets,
    dir: context.dir,
    fileLimit: context.options.fileLimit,
    connectionsMax: Math.max(context.options.idleConnections, context.options.udp.idle) + 1_000,
    associationsMax: context.options.udp.idle + 1_000,
  });
}

/** Runs `body` per route, peer by peer: one peer instance serves all its routes (fresh: one per route). */
export async function eachRoute(
  context: Context,
  fresh: boolean,
  withDirect: boolean,
  onFail: (route: Route, error: string) => void,
  body: (route: Route, running: RunningPeer | null) => Promise<void>,
): Promise<void> {
  if (withDirect && context.withDirect) await body(routeOf(null, "direct"), null);
  for (const spec of context.specs) {
    const routes = kindsOf(spec, context.section).map((kind) => routeOf(spec, kind));
    const groups = fresh ? routes.map((route) => [route]) : [routes];
    for (const group of groups) {
      let running: RunningPeer | null = null;
      try {
        progress(`starting ${spec.label}`);
        running = await startPeer(context, spec);
      } catch (error) {
        for (const route of group) onFail(route, `could not start: ${message(error)}`);
        progress(`  ${spec.label} did not start: ${message(error)}`);
        continue;
      }
      try {
        for (const route of group) {
          try {
            await body(route, running);
          } catch (error) {
            onFail(route, message(error));
            progress(`  ${route.info.label}: FAILED ${message(error)}`);
          }
          if (!running.proc.alive()) {
            throw new Error(`${spec.label} exited mid-run:\n${running.proc.stderr()}`);
          }
        }
      } finally {
        await stop(running.proc);
      }
    }
  }
}
