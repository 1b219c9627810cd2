// The proxies the end-to-end benchmark compares: sockpool (one instance per pool strategy) and
// the peers Dante, microsocks and HAProxy (tcp mode), each started on 127.0.0.1 with a minimal
// config written to a temp dir, and known ready when its ports listen (and a SOCKS5 greeting is
// answered). Not the measurements (the section files) and not process plumbing (procs.ts, ports.ts).

import { writeFileSync } from "node:fs";
import path from "node:path";
import { DEFAULT_CONFIG } from "../../src/config/schema.ts";
import { freePorts, socksAnswers, waitListening } from "./ports.ts";
import { type Proc, READY_MS, spawn, stop } from "./procs.ts";
import { debianVersion, findBinary, missingBinary, upstreamVersion } from "./tools.ts";

export type PeerFamily = "sockpool" | "dante" | "microsocks" | "haproxy";

/** The servers behind the proxies; a forward-type peer has one forward listener for each. */
export interface Targets {
  /** Echoes and keeps the connection (idle test). */
  echoPort: number;
  /** Echoes 64 B, then closes first (rate test). */
  closePort: number;
  /** Streams a large payload (slow readers). */
  bulkPort: number;
  iperfPort: number;
}

const TARGET_NAMES = ["echo", "close", "bulk", "iperf"] as const;

/** Fresh forward listen ports, one per target, and the (listen, target) pairs. */
function forwardPorts(targets: Targets): {
  forward: Targets;
  pairs: [name: string, listen: number, target: number][];
} {
  const [echoPort, closePort, bulkPort, iperfPort] = freePorts(4) as [
    number,
    number,
    number,
    number,
  ];
  const forward: Targets = { echoPort, closePort, bulkPort, iperfPort };
  return {
    forward,
    pairs: TARGET_NAMES.map((name) => [name, forward[`${name}Port`], targets[`${name}Port`]]),
  };
}

export interface RunningPeer {
  proc: Proc;
  /** SOCKS5 listener, or null for a forward-only peer. */
  socksPort: number | null;
  /** HTTP CONNECT listener (sockpool's `[[http]]`), or null. */
  httpPort: number | null;
  /** Forward listeners (to the echo, bulk and iperf3 servers), or null for a SOCKS-only peer. */
  forward: Targets | null;
}

export interface PeerSpec {
  /** Stable key, used in JSON and --peers: "sockpool-local", "dante", … */
  id: string;
  family: PeerFamily;
  /** For tables: "sockpool local", "Dante 1.4.2". */
  label: string;
  /** null when installed; else why not. */
  missing: string | null;
  /** The sections it runs in (all when absent) and its listener kinds (its family's when absent):
   *  a variant measured for one comparison only. */
  sections?: readonly string[];
  kinds?: readonly ("socks" | "forward" | "http")[];
  start(context: StartContext): Promise<RunningPeer>;
}

export interface StartContext {
  targets: Targets;
  /** Directory for config files. */
  dir: string;
  /** Soft open-file limit for the peer (ulimit -n). */
  fileLimit: number;
  /** Connections the peer must accept at once (idle test). */
  connectionsMax: number;
  /** UDP associations the peer must hold at once (UDP section). */
  associationsMax: number;
}

/** sockpool's Worker threads in every run: the benchmark machine has 2 cores. */
export const SOCKPOOL_WORKERS = 2;
/** sockpool's shutdown grace in the benchmark: short, so stopping a peer is quick. */
const SHUTDOWN_TIMEOUT_MS = 1_000;

async function ready(
  proc: Proc,
  ports: number[],
  sockets: number,
  socksPort: number | null,
): Promise<void> {
  try {
    await waitListening(proc, ports, sockets);
    if (socksPort !== null) {
      const deadline = performance.now() + READY_MS;
      while (!(await socksAnswers(socksPort))) {
        if (!proc.alive() || performance.now() > deadline) {
          throw new Error(
            `${proc.name} listens on ${socksPort} but does not answer a SOCKS5 greeting:\n${proc.stderr()}`,
          );
        }
        await Bun.sleep(20);
      }
    }
  } catch (error) {
    await stop(proc);
    throw error;
  }
}

// ── sockpool ───────────────────────────────────────────────────────────────────────────────────

/** How often the benchmark scrapes an admin-on sockpool's /metrics, as a busy Prometheus would. */
export const ADMIN_SCRAPE_MS = 1_000;

/** Scrapes GET /metrics every ADMIN_SCRAPE_MS while `proc` lives, so "admin on" includes the
 *  snapshot round trips to every Worker, not only an idle HTTP server. */
function scrapeMetrics(proc: Proc, adminPort: number): void {
  const timer = setInterval(() => {
    if (!proc.alive()) {
      clearInterval(timer);
      return;
    }
    fetch(`http://127.0.0.1:${adminPort}/metrics`).then(
      (response) => response.arrayBuffer(),
      () => {}, // stopping: the next tick sees the process gone
    );
  }, ADMIN_SCRAPE_MS);
}

/** sockpool with one pool strategy. `admin: "off"` is the variant of the admin on/off comparison:
 *  `--admin off`, SOCKS5 only, throughput only. */
export function sockpoolPeer(strategy: string, admin: "on" | "off" = "on"): PeerSpec {
  return {
    id: admin === "on" ? `sockpool-${strategy}` : `sockpool-${strategy}-admin-off`,
    family: "sockpool",
    label: admin === "on" ? `sockpool ${strategy}` : `sockpool ${strategy}, admin off`,
    missing: null,
    ...(admin === "on" ? {} : { sections: ["throughput"], kinds: ["socks" as const] }),
    async start(context) {
      const [socksPort, adminPort, httpPort] = freePorts(3) as [number, number, number];
      const { forward, pairs } = forwardPorts(context.targets);
      // Only what flags cannot say: room for the idle test, and a quick stop.
      const configFile = path.join(context.dir, `sockpool-${strategy}.toml`);
      writeFileSync(
        configFile,
        `[server]\nconnections_max = ${context.connectionsMax}\nshutdown_timeout_ms = ${SHUTDOWN_TIMEOUT_MS}\n` +
          `[udp]\nassociations_max = ${context.associationsMax}\n`,
      );
      const argv = [
        process.execPath,
        "src/main.ts",
        "--config",
        configFile,
        "--socks",
        `127.0.0.1:${socksPort}`,
        ...pairs.flatMap(([, listen, target]) => [
          "--forward",
          `127.0.0.1:${listen}=127.0.0.1:${target}`,
        ]),
        // HTTP CONNECT (rate section) and UDP ASSOCIATE (UDP section) on every instance: each is
        // idle unless a section uses it.
        "--http",
        `127.0.0.1:${httpPort}`,
        "--udp",
        "--pool-strategy",
        strategy,
        "--admin",
        // Never the default 9090: runs in parallel must not collide.
        admin === "on" ? `127.0.0.1:${adminPort}` : "off",
        "--workers",
        String(SOCKPOOL_WORKERS),
        "--log-level",
        "warn",
        "--log-format",
        "json",
      ];
      const proc = spawn(`sockpool ${strategy}`, argv, { fileLimit: context.fileLimit });
      // Ready when every Worker listens on every port (one socket each with reusePort): the
      // "ready" log line is at info level, which would also log every connection.
      await ready(
        proc,
        [socksPort, httpPort, ...pairs.map(([, listen]) => listen)],
        SOCKPOOL_WORKERS,
        socksPort,
      );
      if (admin === "on") scrapeMetrics(proc, adminPort);
      return { proc, socksPort, httpPort, forward };
    },
  };
}

/** sockpool's memory bound for held bytes, from its defaults (the benchmark does not change them). */
export const SOCKPOOL_POOL = {
  slots: DEFAULT_CONFIG.pool.slots,
  slotBytes: DEFAULT_CONFIG.pool.slot_bytes,
  backlogBytesMax: DEFAULT_CONFIG.relay.backlog_bytes_max,
};

// ── Dante ──────────────────────────────────────────────────────────────────────────────────────

export function dantePeer(): PeerSpec {
  const version = upstreamVersion(debianVersion("dante-server"));
  return {
    id: "dante",
    family: "dante",
    label: `Dante ${version}`,
    missing: missingBinary("danted", "dante-server"),
    async start(context) {
      const [socksPort] = freePorts(1) as [number];
      const configFile = path.join(context.dir, "danted.conf");
      // Minimal: no auth, loopback in and out, errors only on stderr; root may switch to nobody.
      writeFileSync(
        configFile,
        [
          "logoutput: stderr",
          `internal: 127.0.0.1 port = ${socksPort}`,
          "external: 127.0.0.1",
          "socksmethod: none",
          "clientmethod: none",
          "user.privileged: root",
          "user.unprivileged: nobody",
          "client pass {",
          "  from: 127.0.0.0/8 to: 0.0.0.0/0",
          "}",
          "socks pass {",
          "  from: 127.0.0.0/8 to: 0.0.0.0/0",
          "}",
          "",
        ].join("\n"),
      );
      // Foreground by default (-D would detach); it forks its negotiate/request/io children.
      const proc = spawn("danted", [findBinary("danted")!, "-f", configFile], {
        fileLimit: context.fileLimit,
      });
      await ready(proc, [socksPort], 1, socksPort);
      return { proc, socksPort, httpPort: null, forward: null };
    },
  };
}

// ── microsocks ─────────────────────────────────────────────────────────────────────────────────

export function microsocksPeer(): PeerSpec {
  const version = upstreamVersion(debianVersion("microsocks"));
  return {
    id: "microsocks",
    family: "microsocks",
    label: `microsocks ${version}`,
    missing: missingBinary("microsocks", "microsocks"),
    async start(context) {
      const [socksPort] = freePorts(1) as [number];
      // One thread per connection, a 1 KiB relay buffer; no config file.
      const proc = spawn(
        "microsocks",
        [findBinary("microsocks")!, "-i", "127.0.0.1", "-p", String(socksPort)],
        {
          fileLimit: context.fileLimit,
        },
      );
      await ready(proc, [socksPort], 1, socksPort);
      return { proc, socksPort, httpPort: null, forward: null };
    },
  };
}

// ── HAProxy ────────────────────────────────────────────────────────────────────────────────────

/** Descriptors HAProxy keeps besides two per connection (listeners, pollers, logs). */
const HAPROXY_FDS_RESERVED = 200;

export function haproxyPeer(): PeerSpec {
  const version = upstreamVersion(debianVersion("haproxy"));
  return {
    id: "haproxy",
    family: "haproxy",
    label: `HAProxy ${version}`,
    missing: missingBinary("haproxy", "haproxy"),
    async start(context) {
      const { forward, pairs } = forwardPorts(context.targets);
      // HAProxy refuses a maxconn its file limit cannot hold: two descriptors per connection.
      const maxconn = Math.min(
        context.connectionsMax,
        Math.floor((context.fileLimit - HAPROXY_FDS_RESERVED) / 2),
      );
      const configFile = path.join(context.dir, "haproxy.cfg");
      writeFileSync(
        configFile,
        [
          "global",
          `  maxconn ${maxconn}`,
          "  nbthread 2",
          "defaults",
          "  mode tcp",
          `  maxconn ${maxconn}`,
          "  timeout connect 5s",
          "  timeout client 1h",
          "  timeout server 1h",
          ...pairs.flatMap(([name, listen, target]) => [
            `frontend ${name}`,
            `  bind 127.0.0.1:${listen}`,
            `  default_backend ${name}`,
            `backend ${name}`,
            `  server ${name} 127.0.0.1:${target}`,
          ]),
          "",
        ].join("\n"),
      );
      const proc = spawn("haproxy", [findBinary("haproxy")!, "-f", configFile, "-db"], {
        fileLimit: context.fileLimit,
      });
      await ready(
        proc,
        pairs.map(([, listen]) => listen),
        1,
        null,
      );
      return { proc, socksPort: null, httpPort: null, forward };
    },
  };
}

export const PEER_FAMILIES = ["direct", "sockpool", "dante", "microsocks", "haproxy"] as const;
export type PeerName = (typeof PEER_FAMILIES)[number];
