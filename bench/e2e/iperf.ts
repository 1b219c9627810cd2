// iperf3 runs for the benchmarks: one server, clients straight, through a TCP forward, or through
// a SOCKS5 proxy with proxychains4. Reads iperf3's JSON and returns bits per second. Not a report:
// the throughput section prints the table.

import { writeFileSync } from "node:fs";
import path from "node:path";
import { treeCpuSeconds } from "./proc-tree.ts";
import { type Proc, spawn } from "./procs.ts";

export interface IperfVariant {
  /** Stable key, used in JSON. */
  key: string;
  /** Column heading. */
  name: string;
  args: string[];
}

export const IPERF_VARIANTS: readonly IperfVariant[] = [
  { key: "1", name: "1 stream", args: [] },
  { key: "4", name: "4 streams (-P 4)", args: ["-P", "4"] },
  { key: "1R", name: "1 stream -R", args: ["-R"] },
  { key: "4R", name: "4 streams -R", args: ["-R", "-P", "4"] },
];

/** Starts `iperf3 -s` on 127.0.0.1:port and waits for "Server listening". */
export async function startIperfServer(iperf3: string, port: number): Promise<Proc> {
  const server = spawn(
    "iperf3 -s",
    [iperf3, "-s", "-B", "127.0.0.1", "-p", String(port), "--forceflush"],
    { stdout: "lines" },
  );
  while (true) {
    const line = await server.stdout!.next(20_000, "iperf3 -s to print 'Server listening'");
    if (line === null) throw new Error(`iperf3 -s exited:\n${server.stderr()}`);
    if (line.includes("Server listening")) return server;
  }
}

/** Writes a proxychains4 config that sends every connection through the SOCKS5 proxy at port. */
export function writeProxychainsConfig(dir: string, name: string, socksPort: number): string {
  const file = path.join(dir, `proxychains-${name}.conf`);
  writeFileSync(
    file,
    [
      "strict_chain",
      "quiet_mode",
      "tcp_read_time_out 15000",
      "tcp_connect_time_out 8000",
      "[ProxyList]",
      `socks5 127.0.0.1 ${socksPort}`,
      "",
    ].join("\n"),
  );
  return file;
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bits_per_second?: number } };
}

/** iperf3 -s serves one test at a time, and the previous test's sockets may still be closing
 *  through the proxy when its client exits: "busy" is retried, for up to BUSY_RETRY_MS. */
const BUSY_RETRY_MS = 15_000;

class IperfBusy extends Error {}

export interface IperfRun {
  /** Client command prefix (proxychains4 -f conf), or [] to connect straight. */
  prefix: string[];
  port: number;
  seconds: number;
  variant: IperfVariant;
  /** A process tree whose CPU time to measure over the run (the proxy), if any. */
  cpuOf?: number;
}

export interface IperfResult {
  bitsPerSecond: number;
  /** CPU seconds of `cpuOf` per second of the run (1.0 = one core busy), or null. */
  cpuCores: number | null;
}

export async function runIperf(iperf3: string, run: IperfRun): Promise<IperfResult> {
  const started = performance.now();
  while (true) {
    try {
      return await runIperfOnce(iperf3, run);
    } catch (error) {
      if (!(error instanceof IperfBusy) || performance.now() - started > BUSY_RETRY_MS) throw error;
      await Bun.sleep(200);
    }
  }
}

async function runIperfOnce(iperf3: string, run: IperfRun): Promise<IperfResult> {
  const command = [
    ...run.prefix,
    iperf3,
    "-c",
    "127.0.0.1",
    "-p",
    String(run.port),
    "-t",
    String(run.seconds),
    "--connect-timeout",
    "5000",
    "-J",
    ...run.variant.args,
  ];
  const cpuBefore = run.cpuOf === undefined ? 0 : treeCpuSeconds(run.cpuOf);
  const wallBefore = performance.now();
  const client = spawn("iperf3 -c", command, { stdout: "lines" });
  const timer = setTimeout(() => client.child.kill("SIGKILL"), (run.seconds + 30) * 1000);
  const code = await client.child.exited;
  clearTimeout(timer);
  const cpuCores =
    run.cpuOf === undefined
      ? null
      : (treeCpuSeconds(run.cpuOf) - cpuBefore) / ((performance.now() - wallBefore) / 1000);
  const lines: string[] = [];
  for (let line = await client.stdout!.next(1000, "iperf3 output"); line !== null; ) {
    lines.push(line);
    line = await client.stdout!.next(1000, "iperf3 output");
  }
  const stdout = lines.join("\n");
  let parsed: IperfJson;
  try {
    parsed = JSON.parse(stdout) as IperfJson;
  } catch {
    throw new Error(
      `iperf3 exit ${code}, no JSON: ${(client.stderr() || stdout).trim().slice(0, 300)}`,
    );
  }
  if (parsed.error?.includes("busy")) throw new IperfBusy(`iperf3: ${parsed.error}`);
  if (parsed.error) throw new Error(`iperf3: ${parsed.error}`);
  const bits = parsed.end?.sum_received?.bits_per_second;
  if (typeof bits !== "number") {
    throw new Error("iperf3 JSON has no end.sum_received.bits_per_second");
  }
  return { bitsPerSecond: bits, cpuCores };
}
