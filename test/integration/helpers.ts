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
import { bytes, concat, text, toHex } from "../support/bytes.ts";
import { type Conn, closeOpenConns } from "../support/conn.ts";
import { connectTcp } from "../support/sockets.ts";
import { closeOpenTargets } from "../support/targets.ts";
import { DEADLINE_MS, waitFor, withDeadline } from "../support/wait.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname;

// ── SOCKS5 on the wire (RFC 1928, RFC 1929) ────────────────────────────────────────────────────

export const SOCKS = {
  version: 0x05,
  authVersion: 0x01,
  noAuth: 0x00,
  password: 0x02,
  noAcceptable: 0xff,
  connect: 0x01,
  bind: 0x02,
  udpAssociate: 0x03,
  ipv4: 0x01,
  domain: 0x03,
  ipv6: 0x04,
} as const;

/** Reply codes, as DESIGN.md maps them. */
export const REPLY = {
  succeeded: 0x00,
  general: 0x01,
  ruleset: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  refused: 0x05,
  timeout: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** +----+----------+----------+ : VER NMETHODS METHODS */
export function encodeGreeting(methods: readonly number[]): Uint8Array {
  return Uint8Array.from([SOCKS.version, methods.length, ...methods]);
}

/** +----+------+----------+------+----------+ : VER=01 ULEN UNAME PLEN PASSWD */
export function encodeAuth(user: string, pass: string): Uint8Array {
  const name = bytes(user);
  const secret = bytes(pass);
  return concat(
    Uint8Array.from([SOCKS.authVersion, name.length]),
    name,
    Uint8Array.from([secret.length]),
    secret,
  );
}

function ipv4Bytes(host: string): Uint8Array | null {
  const parts = host.split(".");
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) < 256))
    return null;
  return Uint8Array.from(parts.map(Number));
}

function ipv6Bytes(host: string): Uint8Array | null {
  if (!host.includes(":")) return null;
  const [head, tail, extra] = host.split("::");
  if (extra !== undefined) return null;
  const groups = (part: string | undefined) => (part ? part.split(":") : []);
  const left = groups(head);
  const right = groups(tail);
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return null;
  const all = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill("0"), ...right];
  const out = new Uint8Array(16);
  for (const [index, group] of all.entries()) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
    const value = Number.parseInt(group, 16);
    out[2 * index] = value >> 8;
    out[2 * index + 1] = value & 0xff;
  }
  return out;
}

/** ATYP + DST.ADDR for an IPv4 literal, an IPv6 literal or a name. */
export function encodeAddress(host: string): Uint8Array {
  const v4 = ipv4Bytes(host);
  if (v4) return concat(Uint8Array.from([SOCKS.ipv4]), v4);
  const v6 = ipv6Bytes(host);
  if (v6) return concat(Uint8Array.from([SOCKS.ipv6]), v6);
  const name = bytes(host);
  return concat(Uint8Array.from([SOCKS.domain, name.length]), name);
}

/** +----+-----+-------+------+----------+----------+ : VER CMD RSV ATYP DST.ADDR DST.PORT */
export function encodeRequest(host: string, port: number, command: number = SOCKS.connect) {
  return concat(
    Uint8Array.from([SOCKS.version, command, 0x00]),
    encodeAddress(host),
    Uint8Array.from([port >> 8, port & 0xff]),
  );
}

export interface SocksReply {
  version: number;
  code: number;
  atyp: number;
  /** BND.ADDR as text: dotted quad, compressed-free IPv6 groups, or the name. */
  host: string;
  port: number;
  raw: Uint8Array;
}

function formatIpv6(addr: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((addr[i]! << 8) | addr[i + 1]!).toString(16));
  // Compress the longest run of zero groups, as the usual text form does.
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === "0") length++;
    if (length > bestLength && length > 1) {
      bestStart = start;
      bestLength = length;
    }
  }
  if (bestStart < 0) return groups.join(":");
  return `${groups.slice(0, bestStart).join(":")}::${groups.slice(bestStart + bestLength).join(":")}`;
}

/** Reads one complete reply: VER REP RSV ATYP BND.ADDR BND.PORT. */
export async function readReply(conn: Conn, ms = DEADLINE_MS): Promise<SocksReply> {
  const head = await conn.read(4, ms);
  const atyp = head[3]!;
  let addr: Uint8Array;
  let host: string;
  if (atyp === SOCKS.ipv4) {
    addr = await conn.read(4, ms);
    host = Array.from(addr).join(".");
  } else if (atyp === SOCKS.ipv6) {
    addr = await conn.read(16, ms);
    host = formatIpv6(addr);
  } else if (atyp === SOCKS.domain) {
    const length = await conn.read(1, ms);
    const name = await conn.read(length[0]!, ms);
    addr = concat(length, name);
    host = text(name);
  } else {
    throw new Error(`reply with unknown ATYP 0x${atyp.toString(16)} (head ${toHex(head)})`);
  }
  const portBytes = await conn.read(2, ms);
  return {
    version: head[0]!,
    code: head[1]!,
    atyp,
    host,
    port: (portBytes[0]! << 8) | portBytes[1]!,
    raw: concat(head, addr, portBytes),
  };
}

export interface Credentials {
  user: string;
  pass: string;
}

export interface HandshakeOptions {
  auth?: Credentials;
  command?: number;
}

/** Runs greeting (+ RFC 1929 auth) + request on `conn` and returns the reply, success or not. */
export async function socksHandshake(
  conn: Conn,
  host: string,
  port: number,
  options: HandshakeOptions = {},
): Promise<SocksReply> {
  const method = options.auth ? SOCKS.password : SOCKS.noAuth;
  await conn.write(encodeGreeting([method]));
  const choice = await conn.read(2);
  if (choice[0] !== SOCKS.version || choice[1] !== method) {
    throw new Error(
      `method selection: expected 05 ${toHex(Uint8Array.of(method))}, got ${toHex(choice)}`,
    );
  }
  if (options.auth) {
    await conn.write(encodeAuth(options.auth.user, options.auth.pass));
    const status = await conn.read(2);
    if (status[0] !== SOCKS.authVersion || status[1] !== 0x00) {
      throw new Error(`auth: expected 01 00, got ${toHex(status)}`);
    }
  }
  await conn.write(encodeRequest(host, port, options.command ?? SOCKS.connect));
  return await readReply(conn);
}

export class SocksReplyError extends Error {
  constructor(readonly reply: SocksReply) {
    super(`SOCKS reply 0x${reply.code.toString(16).padStart(2, "0")} (raw ${toHex(reply.raw)})`);
    this.name = "SocksReplyError";
  }
}

/** Connects through the proxy; returns the relayed connection once the reply says success. */
export async function socksConnect(
  proxyPort: number,
  host: string,
  port: number,
  options: HandshakeOptions & { proxyHost?: string } = {},
): Promise<{ conn: Conn; reply: SocksReply }> {
  const conn = await connectTcp(options.proxyHost ?? "127.0.0.1", proxyPort);
  const reply = await socksHandshake(conn, host, port, options);
  if (reply.code !== REPLY.succeeded) {
    conn.end();
    throw new SocksReplyError(reply);
  }
  return { conn, reply };
}

/** Connects, sends `message`, reads it back (an echo target), closes. Returns what came back. */
export async function echoThrough(proxyPort: number, targetPort: number, message: string) {
  const { conn } = await socksConnect(proxyPort, "127.0.0.1", targetPort);
  try {
    await conn.write(message);
    return text(await conn.read(bytes(message).length));
  } finally {
    conn.end();
  }
}

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
