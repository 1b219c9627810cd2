// The end-to-end load benchmark's entry point, `bun run bench:e2e`: sockpool (per pool strategy)
// beside direct loopback and the peers Dante, microsocks and HAProxy, all measured in ONE run with
// real tools on 127.0.0.1 (child-load.ts and child-servers.ts are processes it starts, not entries):
//   throughput  iperf3 (-P 1/4, -R) through proxychains4 (SOCKS5) or a TCP forward;
//   rate        connect [+ SOCKS5 or HTTP CONNECT] + 64 B echo + close, C loops for T s: conn/s, latency;
//   idle        N idle proxied connections: the proxy's RSS per connection;
//   slow        K readers that stall while the target streams: the proxy's peak RSS;
//   udp         datagrams through UDP ASSOCIATE to a UDP echo server at 64 B and 1,400 B: echoes/s,
//               Mbit/s, loss, proxy CPU; N idle associations: the proxy's RSS per association;
//   wan         sockpool's upstream pool off and on across an emulated 10 ms link (bench/wan/),
//               beside direct: CONNECT-to-first-byte latency, conn/s, hit rate, CPU per connection.
// Not a test and not a gate: it prints tables, writes bench/results/e2e.{md,json} and evaluates
// the targets without failing on them. Every process it starts is stopped at the end, also on
// failure and Ctrl-C, and it checks with ps that none is left. Each section is its own file
// (throughput.ts, rate.ts, idle.ts, slow.ts, udp.ts, wan.ts); options.ts has the flags, report.ts writes
// e2e.md. The WAN section also writes wan.md and wan.json, and is skipped with one line where
// network namespaces cannot be made.
//
//   bun bench/e2e/main.ts [--time S] [--strategies a,b] [--peers list] [--only sections] [--quick]
//                         [--concurrency C] [--idle N] [--udp-idle N] [--out DIR] [--smoke]

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describeMachine } from "../lib/machine.ts";
import type { ServersMessage } from "./protocol.ts";
import { type Context, MIB, nextMessage, progress, startedMs } from "./harness.ts";
import { measureIdle } from "./idle.ts";
import { startIperfServer } from "./iperf.ts";
import { FDS_RESERVED, parseOptions } from "./options.ts";
import {
  dantePeer,
  haproxyPeer,
  microsocksPeer,
  type PeerName,
  type PeerSpec,
  ADMIN_SCRAPE_MS,
  SOCKPOOL_POOL,
  SOCKPOOL_WORKERS,
  sockpoolPeer,
  type Targets,
} from "./peers.ts";
import { freePorts } from "./ports.ts";
import { cleanupOnSignal, leftoverProcesses, spawn, stopAll, stopAllOnSignals } from "./procs.ts";
import { measureRate } from "./rate.ts";
import { type Report, renderMarkdown } from "./report.ts";
import { measureSlow } from "./slow.ts";
import { evaluateTargets } from "./targets.ts";
import { measureUdp, UDP_PAYLOADS } from "./udp.ts";
import { debianVersion, requireTool, toolVersion } from "./tools.ts";
import { measureThroughput } from "./throughput.ts";
import { measureWan, wanFailed, writeWanResults } from "./wan.ts";

const options = parseOptions(Bun.argv.slice(2));

// ── Main ───────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<number> {
  const { smoke, strategies, peerNames, sections, seconds, concurrency, slow, variants } = options;
  const { fileLimit, idleWanted, idleConnections } = options;
  stopAllOnSignals("bench/e2e");
  const dir = mkdtempSync(path.join(os.tmpdir(), "sockpool-e2e-"));
  cleanupOnSignal(() => rmSync(dir, { recursive: true, force: true }));
  const notes: string[] = [];
  const skipped: string[] = [];
  const versions: Record<string, string> = {};
  let report: Report | null = null;
  let failed = false;

  try {
    const iperf3 = sections.includes("throughput")
      ? requireTool("iperf3", "install it with: apt-get install -y iperf3")
      : null;
    const proxychains = sections.includes("throughput")
      ? requireTool("proxychains4", "install it with: apt-get install -y proxychains4")
      : null;

    const specs: PeerSpec[] = [];
    if (peerNames.includes("sockpool")) {
      specs.push(...strategies.map((strategy) => sockpoolPeer(strategy)));
      // The admin API's cost: the first strategy again with --admin off (SOCKS5 throughput only).
      if (sections.includes("throughput")) specs.push(sockpoolPeer(strategies[0]!, "off"));
    }
    const others: [PeerName, () => PeerSpec][] = [
      ["dante", dantePeer],
      ["microsocks", microsocksPeer],
      ["haproxy", haproxyPeer],
    ];
    for (const [name, make] of others) {
      if (!peerNames.includes(name)) continue;
      const spec = make();
      if (spec.missing !== null) {
        skipped.push(`${spec.label}: ${spec.missing}`);
        progress(`skipping ${spec.label}: ${spec.missing}`);
        continue;
      }
      specs.push(spec);
      versions[spec.family] = spec.label.split(" ").slice(1).join(" ");
    }
    if (iperf3 !== null) {
      versions.iperf3 = toolVersion([iperf3, "--version"], /iperf (\S+)/) ?? "?";
      versions.proxychains4 = debianVersion("proxychains4")?.replace(/[+~-].*$/, "") ?? "?";
    }

    const machine = describeMachine();
    progress(
      `machine: ${machine.cpu}, ${machine.cores} cores, Linux ${machine.kernel}, bun ${machine.bun_version}; ` +
        `sections ${sections.join(", ")}; strategies ${strategies.join(", ")}; ` +
        `peers ${specs.map((spec) => spec.label).join(", ")}${peerNames.includes("direct") ? ", direct" : ""}`,
    );
    if (idleConnections < idleWanted) {
      notes.push(
        `Idle test at ${idleConnections.toLocaleString("en-US")} connections, not ${idleWanted.toLocaleString("en-US")}: ` +
          `the hard open-file limit here is ${fileLimit} and cannot be raised (no CAP_SYS_RESOURCE), ` +
          `and a proxy needs 2 descriptors per proxied connection plus ${FDS_RESERVED} spare.`,
      );
      progress(`note: ${notes[notes.length - 1]}`);
    }

    const servers = spawn(
      "servers",
      [process.execPath, "bench/e2e/child-servers.ts", String(slow.streamBytes)],
      { stdout: "lines", stdin: "pipe", fileLimit },
    );
    const ready = await nextMessage<Extract<ServersMessage, { type: "ready" }>>(
      servers,
      20_000,
      "the echo and bulk servers",
    );
    const [iperfPort] = freePorts(1) as [number];
    if (iperf3 !== null) await startIperfServer(iperf3, iperfPort);
    const targets: Targets = {
      echoPort: ready.echoPort,
      closePort: ready.closePort,
      bulkPort: ready.bulkPort,
      iperfPort,
    };
    progress(
      `servers on 127.0.0.1: echo ${targets.echoPort}, echo-close ${targets.closePort}, ` +
        `bulk ${targets.bulkPort}, iperf3 ${iperfPort}, UDP echo ${ready.udpEchoPort}`,
    );
    /** The context of one section: only the peers that run in it. */
    const forSection = (section: string): Context => ({
      ...context,
      section,
      specs: specs.filter((spec) => spec.sections === undefined || spec.sections.includes(section)),
    });
    const context: Context = {
      section: "",
      options,
      dir,
      targets,
      udpEchoPort: ready.udpEchoPort,
      specs,
      withDirect: peerNames.includes("direct"),
      servers,
      iperf3,
      proxychains,
    };

    report = {
      schema: 1,
      date: new Date().toISOString(),
      command: options.command,
      smoke,
      wall_s: 0,
      machine: {
        cpu: machine.cpu,
        cores: machine.cores,
        kernel: machine.kernel,
        memory_gib: machine.memory_gib,
        bun: machine.bun_version,
        file_limit: fileLimit,
      },
      versions,
      settings: {
        sockpool_workers: SOCKPOOL_WORKERS,
        strategies: peerNames.includes("sockpool") ? strategies : [],
        peers: [...(context.withDirect ? ["direct"] : []), ...specs.map((spec) => spec.id)],
        sections: [...sections],
        iperf_seconds: seconds,
        iperf_variants: variants.map(({ key, name }) => ({ key, name })),
        rate_seconds: seconds,
        rate_concurrency: concurrency,
        idle_connections: idleConnections,
        slow_conns: slow.conns,
        slow_stream_mib: slow.streamBytes / MIB,
        slow_stall_ms: slow.stallMs,
        slow_slow_ms: slow.slowMs,
        pool: {
          slots: SOCKPOOL_POOL.slots,
          slot_bytes: SOCKPOOL_POOL.slotBytes,
          backlog_bytes_max: SOCKPOOL_POOL.backlogBytesMax,
        },
        udp: { ...options.udp, payload_bytes: UDP_PAYLOADS },
      },
      throughput: sections.includes("throughput")
        ? await measureThroughput(forSection("throughput"))
        : [],
      rate: sections.includes("rate") ? await measureRate(forSection("rate")) : [],
      idle: sections.includes("idle") ? await measureIdle(forSection("idle")) : [],
      slow: sections.includes("slow") ? await measureSlow(forSection("slow")) : [],
      udp: sections.includes("udp") ? await measureUdp(forSection("udp")) : null,
      wan: sections.includes("wan") ? await measureWan(forSection("wan")) : null,
      targets: [],
      notes,
      skipped,
      leftover_processes: [],
    };
  } catch (error) {
    console.error(`bench/e2e: ${error instanceof Error ? error.stack : String(error)}`);
    failed = true;
  } finally {
    progress("stopping every process started");
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }

  const left = leftoverProcesses();
  if (left.length > 0) {
    console.error(`bench/e2e: processes left running: ${left.join(", ")}`);
    failed = true;
  } else {
    progress("checked with ps: no process left running");
  }
  if (report === null) return 1;

  notes.push(
    `sockpool runs with --workers ${SOCKPOOL_WORKERS} on this ${report.machine.cores}-core machine; the load client, ` +
      "the echo/bulk servers (Bun) and iperf3 run as separate processes on the same cores, so every figure is for the whole box.",
    "microsocks starts one thread per connection (a 1 KiB relay buffer each); Dante forks negotiate, request " +
      "and io child processes, so its RSS is summed over the process tree, which counts shared pages once per process (the PSS column splits them).",
    "HAProxy runs in tcp mode with nbthread 2; it and sockpool's forward listeners skip the SOCKS5 handshake.",
    `sockpool runs with its admin API on (a free port) and the benchmark scrapes its /metrics every ${ADMIN_SCRAPE_MS / 1000} s; ` +
      'the row marked "admin off" is the same sockpool with --admin off, measured in the same run. The Workers\' ' +
      "counters are written in both (one Float64 add per relayed chunk): the comparison shows the admin server and its scrapes.",
    "In the rate test the echo server closes first after echoing, and the close travels back through the proxy: " +
      "TIME_WAIT then stays on listening ports. With the client closing first, each connection would tie up an " +
      "ephemeral port for 60 s, the 28k of them run out within seconds, and Dante (which binds its outgoing " +
      "sockets) then fails with reply 03. Idle connections are released the same way.",
    "sockpool's slab is allocated up front, but its pages are committed on first touch. The forward path takes " +
      "one slot per connection when the client's first bytes arrive before the upstream connect completes. The " +
      "queue strategy's FIFO free list hands out a different slot each time until every slot has been used " +
      `(one new 4 KiB page per slot for small writes: up to ${(SOCKPOOL_POOL.slots * 4) / 1024} MiB, once), while local's ` +
      "per-Worker LIFO cache reuses a few; in the idle test this shows as a higher per-connection figure for queue (forward).",
  );
  report.leftover_processes = left;
  report.wall_s = (performance.now() - startedMs) / 1000;
  report.targets = evaluateTargets(report);
  const failures =
    report.throughput.some((row) =>
      Object.values(row.variants).some((cell) => cell.gbps === null),
    ) ||
    report.rate.some((row) => row.conn_per_s === null) ||
    report.idle.some((row) => row.bytes_per_conn === null) ||
    report.slow.some((row) => row.peak_delta_mib === null) ||
    (report.udp?.rate.some((row) => row.delivered_per_s === null) ?? false) ||
    (report.udp?.idle.some((row) => row.bytes_per_association === null) ?? false) ||
    wanFailed(report.wan);
  if (report.wan?.skipped != null) report.skipped.push(`wan: ${report.wan.skipped}`);
  const markdown = renderMarkdown(report);
  const outDir = options.resultsDir();
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, "e2e.md"), markdown);
  writeFileSync(path.join(outDir, "e2e.json"), `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\n${markdown}`);
  console.log(`results: ${path.join(outDir, "e2e.md")} and e2e.json`);
  const wanFile = writeWanResults(report, options.wanResultsDir());
  if (wanFile !== null) console.log(`WAN results: ${wanFile} and wan.json`);
  return failed || failures ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    console.error(`bench/e2e: ${error instanceof Error ? error.stack : String(error)}`);
    await stopAll();
    process.exit(1);
  },
);
