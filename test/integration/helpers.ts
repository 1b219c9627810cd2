// Loopback fixtures for the integration tests: target servers, a raw SOCKS5 client, the proxy
// in-process and as a child process, and bounded waits. Not the proxy and not a SOCKS library:
// the client here is deliberately dumb so a test can send any bytes, split anywhere.
//
// Every server binds 127.0.0.1 or ::1 on port 0 and is ready when its function returns
// (Bun.listen binds synchronously). Nothing here sleeps for readiness: it awaits an event or
// polls a condition under a deadline, and a missed deadline names what it was waiting for.

import { type Config, parseConfig } from "../../src/config/schema.ts";
import { createLogger } from "../../src/log.ts";
import { type BufferPool, createPool } from "../../src/pool/index.ts";
import { type ProxyServer, startProxy } from "../../src/proxy/server.ts";
import { closeOpenConns } from "../support/conn.ts";
import { closeOpenTargets } from "../support/targets.ts";
import { DEADLINE_MS, waitFor, withDeadline } from "../support/wait.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname;

// ── The proxy in-process ───────────────────────────────────────────────────────────────────────

export type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

export interface TestProxy {
  readonly proxy: ProxyServer;
  readonly pool: BufferPool;
  readonly config: Config;
  /** Every log line, parsed. */
  readonly logs: LogRecord[];
  readonly socksPort: number;
  readonly forwardPorts: number[];
  /** The `connection` lines. */
  connectionLogs(): LogRecord[];
  /** Waits for a `connection` line matching `match` and returns it. */
  waitForConnectionLog(match: (record: LogRecord) => boolean, what: string): Promise<LogRecord>;
  close(graceMs?: number): Promise<void>;
}

/** Config sections as tests write them; socks.listen defaults to 127.0.0.1:0. */
export interface TestConfig {
  server?: Record<string, unknown>;
  socks?: Record<string, unknown>;
  forward?: { listen?: string; target: string }[];
  relay?: Record<string, unknown>;
  pool?: Record<string, unknown>;
}

const openProxies = new Set<TestProxy>();

export async function startTestProxy(input: TestConfig = {}): Promise<TestProxy> {
  const config = parseConfig({
    server: input.server ?? {},
    socks: { listen: "127.0.0.1:0", ...input.socks },
    forward: (input.forward ?? []).map((entry) => ({ listen: "127.0.0.1:0", ...entry })),
    relay: input.relay ?? {},
    pool: { slots: 1024, checked: true, ...input.pool },
    log: { level: "info", format: "json" },
  });
  const pool = createPool({
    strategy: config.pool.strategy,
    slots: config.pool.slots,
    slot_bytes: config.pool.slot_bytes,
    checked: config.pool.checked,
    local_batch: config.pool.local_batch,
  });
  const logs: LogRecord[] = [];
  const log = createLogger({
    level: "info",
    format: "json",
    write: (line) => {
      for (const part of line.split("\n")) if (part.trim() !== "") logs.push(JSON.parse(part));
    },
  });
  const proxy = await startProxy({ config, pool, log });
  const socks = proxy.listeners.find((listener) => listener.kind === "socks");
  const connectionLogs = () => logs.filter((record) => record.msg === "connection");
  const handle: TestProxy = {
    proxy,
    pool,
    config,
    logs,
    socksPort: socks?.port ?? 0,
    forwardPorts: proxy.listeners
      .filter((listener) => listener.kind === "forward")
      .map((listener) => listener.port),
    connectionLogs,
    async waitForConnectionLog(match, what) {
      let found: LogRecord | undefined;
      await waitFor(
        () => {
          found = connectionLogs().find(match);
          return found !== undefined;
        },
        () => `a connection log line: ${what}; have ${JSON.stringify(connectionLogs())}`,
      );
      return found!;
    },
    async close(graceMs = 0) {
      if (!openProxies.delete(handle)) return;
      await withDeadline(proxy.close(graceMs), graceMs + DEADLINE_MS, "proxy.close()");
    },
  };
  openProxies.add(handle);
  return handle;
}

// ── The proxy as a child process ───────────────────────────────────────────────────────────────

export interface ListeningAddress {
  kind: string;
  host: string;
  port: number;
}

export interface SpawnedProxy {
  readonly process: ReturnType<typeof Bun.spawn>;
  /** Parsed JSON lines from stderr, in order. */
  readonly logs: LogRecord[];
  /** Every stderr line, parsed or not. */
  readonly stderrLines: string[];
  readonly listening: ListeningAddress[];
  readonly socksPort: number;
  readonly forwardPorts: number[];
  readonly ready: LogRecord;
  /** Sends `signal` and returns the exit code (fails if it does not exit within `ms`). */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<number>;
}

const children = new Set<ReturnType<typeof Bun.spawn>>();

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  return {
    host: address.slice(0, colon).replace(/^\[|\]$/g, ""),
    port: Number(address.slice(colon + 1)),
  };
}

async function pumpLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let newline = pending.indexOf("\n");
    while (newline >= 0) {
      onLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
  }
  if (pending !== "") onLine(pending);
}

/**
 * Starts `bun src/main.ts --log-format json ...args` and resolves when it logs `ready`, with the
 * addresses from its `listening` lines. Fails with its stderr when it exits first.
 */
export async function spawnProxy(args: string[], readyMs = 20_000): Promise<SpawnedProxy> {
  const child = Bun.spawn([process.execPath, "src/main.ts", "--log-format", "json", ...args], {
    cwd: REPO_ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  children.add(child);
  void child.exited.then(() => children.delete(child));
  const logs: LogRecord[] = [];
  const stderrLines: string[] = [];
  const stdoutDone = new Response(child.stdout).text();
  const stderrDone = pumpLines(child.stderr, (line) => {
    stderrLines.push(line);
    if (!line.startsWith("{")) return;
    try {
      logs.push(JSON.parse(line) as LogRecord);
    } catch {
      // a partial or non-JSON line; kept in stderrLines
    }
  });
  const ready = (async () => {
    const started = performance.now();
    while (true) {
      const found = logs.find((record) => record.msg === "ready");
      if (found) return found;
      if (child.exitCode !== null || child.signalCode !== null) {
        await Promise.allSettled([stderrDone, stdoutDone]);
        throw new Error(
          `proxy exited (code ${child.exitCode}, signal ${child.signalCode}) before "ready"; stderr:\n${stderrLines.join("\n")}`,
        );
      }
      if (performance.now() - started > readyMs) {
        child.kill("SIGKILL");
        throw new Error(
          `proxy not ready within ${readyMs} ms; stderr so far:\n${stderrLines.join("\n")}`,
        );
      }
      await Bun.sleep(10);
    }
  })();
  const readyRecord = await ready;
  const seen = new Set<string>();
  const listening: ListeningAddress[] = [];
  for (const record of logs) {
    if (record.msg !== "listening" || typeof record.address !== "string") continue;
    const key = `${String(record.kind)} ${record.address}`;
    if (seen.has(key)) continue; // a line per Worker is allowed; the address is what counts
    seen.add(key);
    listening.push({ kind: String(record.kind), ...splitAddress(record.address) });
  }
  return {
    process: child,
    logs,
    stderrLines,
    listening,
    socksPort: listening.find((entry) => entry.kind === "socks")?.port ?? 0,
    forwardPorts: listening.filter((entry) => entry.kind === "forward").map((entry) => entry.port),
    ready: readyRecord,
    async stop(signal = "SIGTERM", ms = 15_000) {
      child.kill(signal);
      try {
        const code = await withDeadline(child.exited, ms, `the proxy to exit after ${signal}`);
        await Promise.allSettled([stderrDone, stdoutDone]);
        return code;
      } catch (error) {
        child.kill("SIGKILL");
        throw error;
      }
    },
  };
}

/** Runs `bun src/main.ts ...args` to completion (for --help and bad flags). */
export async function runCli(
  args: string[],
  ms = 20_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = Bun.spawn([process.execPath, "src/main.ts", ...args], {
    cwd: REPO_ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  children.add(child);
  try {
    const [stdout, stderr, code] = await withDeadline(
      Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
        child.exited,
      ]),
      ms,
      `sockpool ${args.join(" ")} to exit`,
    );
    return { code, stdout, stderr };
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    children.delete(child);
  }
}

/** A tool on PATH, or a failure that says how to install it (CI installs all of them). */
export function requireTool(name: string): string {
  const path = Bun.which(name);
  if (path === null) {
    throw new Error(
      `${name} not found on PATH: the integration tests need it. Install it with ` +
        `".ci/setup.sh --test-tools" (curl, proxychains4, iperf3) or your package manager.`,
    );
  }
  return path;
}

// ── Cleanup ────────────────────────────────────────────────────────────────────────────────────

/** Closes every proxy, target, socket and child process a test left open. For afterAll. */
export async function cleanup(): Promise<void> {
  for (const child of children) child.kill("SIGKILL");
  await Promise.allSettled([...children].map((child) => child.exited));
  children.clear();
  closeOpenConns();
  await Promise.allSettled([...openProxies].map((proxy) => proxy.close(0)));
  closeOpenTargets();
}
