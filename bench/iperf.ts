// Relay throughput with iperf3, beside its baseline: iperf3 direct on loopback, then the same runs
// through sockpool's SOCKS5 listener (proxychains4) and through a forward listener, all in ONE run
// so the ratios compare like with like. Single stream, -P 4 and -R (reverse) for each.
// Not a test and not a gate: it prints a table. DESIGN.md lists peers measured the same way.
//
//   bun bench/iperf.ts [--strategy NAME] [--time SECONDS] [--workers N] [--smoke]
//
// Needs iperf3 and proxychains4 (.ci/setup.sh --test-tools). Everything it starts is stopped at
// the end, on failure and on Ctrl-C too.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULT_CONFIG } from "../src/config/schema.ts";
import { STRATEGY_NAMES } from "../src/pool/index.ts";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
const READY_MS = 20_000;
const STOP_MS = 5_000;

// ── Options ────────────────────────────────────────────────────────────────────────────────────

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    strategy: { type: "string", default: DEFAULT_CONFIG.pool.strategy },
    time: { type: "string", default: "5" },
    workers: { type: "string" },
    smoke: { type: "boolean", default: process.env.BENCH_SMOKE === "1" },
    help: { type: "boolean", short: "h", default: false },
  },
  strict: true,
});

if (values.help) {
  console.log(
    "usage: bun bench/iperf.ts [--strategy NAME] [--time SECONDS] [--workers N] [--smoke]\n" +
      `  --strategy  pool strategy: ${STRATEGY_NAMES.join(", ")} (default ${DEFAULT_CONFIG.pool.strategy})\n` +
      "  --time      seconds per iperf3 run (default 5)\n" +
      "  --workers   proxy Worker threads (default: the proxy's, one per CPU)\n" +
      "  --smoke     1-second runs, single stream and reverse only: proves the harness works",
  );
  process.exit(0);
}

function fail(message: string): never {
  console.error(`bench/iperf: ${message}`);
  process.exit(2);
}

const strategy = values.strategy;
if (!(STRATEGY_NAMES as readonly string[]).includes(strategy)) {
  fail(`--strategy: expected one of ${STRATEGY_NAMES.join(", ")}, got ${JSON.stringify(strategy)}`);
}
const seconds = values.smoke ? 1 : Number(values.time);
if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) {
  fail(`--time: expected whole seconds between 1 and 600, got ${JSON.stringify(values.time)}`);
}
if (values.workers !== undefined && !/^\d+$/.test(values.workers)) {
  fail(`--workers: expected an integer, got ${JSON.stringify(values.workers)}`);
}

function tool(name: string): string {
  const found = Bun.which(name);
  if (found === null) {
    fail(
      `${name} not found on PATH; install it with ".ci/setup.sh --test-tools" (or apt-get install ${name})`,
    );
  }
  return found;
}

const IPERF3 = tool("iperf3");
const PROXYCHAINS = tool("proxychains4");

// ── Processes ──────────────────────────────────────────────────────────────────────────────────

type Child = ReturnType<typeof Bun.spawn>;
const children = new Set<Child>();

function spawn(command: string[], stdout: "pipe" | "ignore" = "pipe"): Child {
  const child = Bun.spawn(command, { cwd: REPO_ROOT, stdin: "ignore", stdout, stderr: "pipe" });
  children.add(child);
  void child.exited.then(() => children.delete(child));
  return child;
}

async function stop(child: Child): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_MS);
  await child.exited;
  clearTimeout(timer);
}

async function stopAll(): Promise<void> {
  await Promise.allSettled([...children].map(stop));
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void stopAll().finally(() => process.exit(130));
  });
}

/** A loopback port that was free a moment ago (bound, then released). */
function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}

async function readText(stream: ReadableStream<Uint8Array> | number | undefined): Promise<string> {
  return stream instanceof ReadableStream ? await new Response(stream).text() : "";
}

/** Resolves when `needle` appears on the child's stdout; keeps draining it afterwards. */
async function waitForOutput(child: Child, needle: string, what: string): Promise<void> {
  const stream = child.stdout;
  if (!(stream instanceof ReadableStream)) throw new Error(`${what}: stdout is not piped`);
  const decoder = new TextDecoder();
  let seen = "";
  const reader = stream.getReader();
  const deadline = setTimeout(() => void reader.cancel(), READY_MS);
  try {
    while (!seen.includes(needle)) {
      const { done, value } = await reader.read();
      if (done) {
        const stderr = await readText(child.stderr);
        throw new Error(`${what} exited or timed out before "${needle}":\n${seen}${stderr}`);
      }
      seen += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(deadline);
  }
  // Keep reading so a full pipe never blocks the child.
  void (async () => {
    while (!(await reader.read()).done) {}
  })().catch(() => {});
}

/** Resolves once the SOCKS5 listener answers a greeting with "05 00". */
async function waitForSocks(port: number, proxy: Child): Promise<void> {
  const started = performance.now();
  while (performance.now() - started < READY_MS) {
    if (proxy.exitCode !== null) {
      throw new Error(`the proxy exited with ${proxy.exitCode}:\n${await readText(proxy.stderr)}`);
    }
    const answered = await new Promise<boolean>((resolve) => {
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          open(socket) {
            socket.write(Uint8Array.of(0x05, 0x01, 0x00));
          },
          data(socket, chunk) {
            resolve(chunk[0] === 0x05 && chunk[1] === 0x00);
            socket.end();
          },
          close() {
            resolve(false);
          },
          connectError() {
            resolve(false);
          },
        },
      }).catch(() => resolve(false));
    });
    if (answered) return;
    await Bun.sleep(25);
  }
  throw new Error(`the SOCKS5 listener on 127.0.0.1:${port} did not answer within ${READY_MS} ms`);
}

// ── iperf3 runs ────────────────────────────────────────────────────────────────────────────────

interface Variant {
  name: string;
  args: string[];
}

const VARIANTS: Variant[] = values.smoke
  ? [
      { name: "1 stream", args: [] },
      { name: "reverse (-R)", args: ["-R"] },
    ]
  : [
      { name: "1 stream", args: [] },
      { name: "4 streams (-P 4)", args: ["-P", "4"] },
      { name: "reverse (-R)", args: ["-R"] },
      { name: "reverse, 4 streams", args: ["-R", "-P", "4"] },
    ];

interface Row {
  path: string;
  variant: string;
  bitsPerSecond: number | null;
  error?: string;
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bits_per_second?: number } };
}

/** iperf3 -s serves one test at a time, and the previous test's sockets may still be closing
 *  through the proxy when its client exits: "busy" is retried, for up to BUSY_RETRY_MS. */
const BUSY_RETRY_MS = 15_000;

class IperfBusy extends Error {}

async function iperf(prefix: string[], port: number, variant: Variant): Promise<number> {
  const started = performance.now();
  while (true) {
    try {
      return await iperfOnce(prefix, port, variant);
    } catch (error) {
      if (!(error instanceof IperfBusy) || performance.now() - started > BUSY_RETRY_MS) throw error;
      await Bun.sleep(200);
    }
  }
}

async function iperfOnce(prefix: string[], port: number, variant: Variant): Promise<number> {
  const command = [
    ...prefix,
    IPERF3,
    "-c",
    "127.0.0.1",
    "-p",
    String(port),
    "-t",
    String(seconds),
    "--connect-timeout",
    "5000",
    "-J",
    ...variant.args,
  ];
  const child = spawn(command);
  const timer = setTimeout(() => child.kill("SIGKILL"), (seconds + 30) * 1000);
  const [stdout, stderr, code] = await Promise.all([
    readText(child.stdout),
    readText(child.stderr),
    child.exited,
  ]);
  clearTimeout(timer);
  let parsed: IperfJson;
  try {
    parsed = JSON.parse(stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 exit ${code}, no JSON: ${(stderr || stdout).trim().slice(0, 300)}`);
  }
  if (parsed.error?.includes("busy")) throw new IperfBusy(`iperf3: ${parsed.error}`);
  if (parsed.error) throw new Error(`iperf3: ${parsed.error}`);
  const bits = parsed.end?.sum_received?.bits_per_second;
  if (typeof bits !== "number")
    throw new Error("iperf3 JSON has no end.sum_received.bits_per_second");
  return bits;
}

function table(rows: Row[]): string {
  const direct = new Map(
    rows.filter((row) => row.path === "direct").map((row) => [row.variant, row.bitsPerSecond]),
  );
  const lines = [
    `${"path".padEnd(22)} ${"variant".padEnd(20)} ${"Gbit/s".padStart(8)} ${"vs direct".padStart(10)}`,
    `${"-".repeat(22)} ${"-".repeat(20)} ${"-".repeat(8)} ${"-".repeat(10)}`,
  ];
  for (const row of rows) {
    const baseline = direct.get(row.variant) ?? null;
    const gbits = row.bitsPerSecond === null ? "failed" : (row.bitsPerSecond / 1e9).toFixed(2);
    const ratio =
      row.bitsPerSecond === null || baseline === null || baseline === 0
        ? "-"
        : `${((100 * row.bitsPerSecond) / baseline).toFixed(0)}%`;
    lines.push(
      `${row.path.padEnd(22)} ${row.variant.padEnd(20)} ${gbits.padStart(8)} ${ratio.padStart(10)}`,
    );
    if (row.error) lines.push(`  ↳ ${row.error}`);
  }
  return lines.join("\n");
}

// ── Main ───────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<number> {
  const tempDir = mkdtempSync(path.join(os.tmpdir(), "sockpool-iperf-"));
  try {
    const iperfPort = freePort();
    const socksPort = freePort();
    const forwardPort = freePort();

    const server = spawn([
      IPERF3,
      "-s",
      "-B",
      "127.0.0.1",
      "-p",
      String(iperfPort),
      "--forceflush",
    ]);
    await waitForOutput(server, "Server listening", "iperf3 -s");

    const proxyArgs = [
      process.execPath,
      "src/main.ts",
      "--socks",
      `127.0.0.1:${socksPort}`,
      "--forward",
      `127.0.0.1:${forwardPort}=127.0.0.1:${iperfPort}`,
      "--pool-strategy",
      strategy,
      "--log-level",
      "warn",
      ...(values.workers === undefined ? [] : ["--workers", values.workers]),
    ];
    const proxy = spawn(proxyArgs, "ignore");
    await waitForSocks(socksPort, proxy);

    const confPath = path.join(tempDir, "proxychains.conf");
    writeFileSync(
      confPath,
      [
        "strict_chain",
        "tcp_read_time_out 15000",
        "tcp_connect_time_out 8000",
        "[ProxyList]",
        `socks5 127.0.0.1 ${socksPort}`,
        "",
      ].join("\n"),
    );

    const paths: { name: string; prefix: string[]; port: number }[] = [
      { name: "direct (baseline)", prefix: [], port: iperfPort },
      {
        name: "SOCKS5 (proxychains4)",
        prefix: [PROXYCHAINS, "-q", "-f", confPath],
        port: iperfPort,
      },
      { name: "forward listener", prefix: [], port: forwardPort },
    ];
    console.log(
      `sockpool iperf3: strategy ${strategy}, ${seconds} s per run, workers ${values.workers ?? "default"}, ` +
        `${navigator.hardwareConcurrency} CPUs${values.smoke ? " (smoke)" : ""}`,
    );
    const rows: Row[] = [];
    for (const variant of VARIANTS) {
      for (const route of paths) {
        const pathName = route.name === "direct (baseline)" ? "direct" : route.name;
        try {
          const bits = await iperf(route.prefix, route.port, variant);
          rows.push({ path: pathName, variant: variant.name, bitsPerSecond: bits });
          console.log(`  ${pathName} / ${variant.name}: ${(bits / 1e9).toFixed(2)} Gbit/s`);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          rows.push({ path: pathName, variant: variant.name, bitsPerSecond: null, error: message });
          console.log(`  ${pathName} / ${variant.name}: FAILED ${message}`);
        }
        if (proxy.exitCode !== null)
          throw new Error(`the proxy exited with ${proxy.exitCode} mid-run`);
      }
    }
    const order = ["direct", "SOCKS5 (proxychains4)", "forward listener"];
    rows.sort(
      (left, right) =>
        VARIANTS.findIndex((variant) => variant.name === left.variant) -
          VARIANTS.findIndex((variant) => variant.name === right.variant) ||
        order.indexOf(left.path) - order.indexOf(right.path),
    );
    console.log(`\n${table(rows)}`);
    return rows.some((row) => row.bitsPerSecond === null) ? 1 : 0;
  } finally {
    await stopAll();
    rmSync(tempDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    console.error(`bench/iperf: ${error instanceof Error ? error.message : String(error)}`);
    await stopAll();
    process.exit(1);
  },
);
