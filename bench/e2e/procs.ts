// Child processes for the end-to-end benchmarks: spawn each in its own process group, track it,
// and stop every group at the end (also on failure and on Ctrl-C); wait for readiness by polling
// the kernel's listening sockets under a deadline; read a process tree's RSS and CPU time from
// /proc. Not a process supervisor: nothing is restarted, and a dead child is the caller's error.

import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** How long a peer may take to start listening. */
export const READY_MS = 20_000;
/** How long a stopped process group gets between SIGTERM and SIGKILL. */
export const STOP_MS = 5_000;
const STDERR_TAIL_BYTES = 4096;

// ── Lines from a child's stdout ────────────────────────────────────────────────────────────────

/** Splits a byte stream into lines; `next()` waits for the next one under a deadline. */
export class LineReader {
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;
  /** Every line seen so far, for error messages (bounded). */
  private seen = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    void this.pump(stream);
  }

  private async pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    try {
      for await (const chunk of stream) {
        partial += decoder.decode(chunk, { stream: true });
        let newline = partial.indexOf("\n");
        while (newline >= 0) {
          this.push(partial.slice(0, newline));
          partial = partial.slice(newline + 1);
          newline = partial.indexOf("\n");
        }
      }
    } catch {
      // The child died or the stream was cancelled: treated as the end.
    }
    if (partial !== "") this.push(partial);
    this.ended = true;
    this.wake();
  }

  private push(line: string): void {
    this.lines.push(line);
    this.seen = `${this.seen}${line}\n`.slice(-STDERR_TAIL_BYTES);
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  /** The next line, or null at end of stream; throws after `timeoutMs`. */
  async next(timeoutMs: number, what: string): Promise<string | null> {
    const deadline = performance.now() + timeoutMs;
    while (this.lines.length === 0) {
      if (this.ended) return null;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.lines.shift() ?? null;
  }

  text(): string {
    return this.seen;
  }
}

/** Keeps the last few KiB of a stream (a child's stderr) and drains the rest, so no pipe fills. */
class Tail {
  text = "";
  constructor(stream: ReadableStream<Uint8Array>) {
    void (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of stream) {
          this.text = (this.text + decoder.decode(chunk, { stream: true })).slice(
            -STDERR_TAIL_BYTES,
          );
        }
      } catch {
        // Stream cancelled: keep what we have.
      }
    })();
  }
}

// ── Spawning and stopping ──────────────────────────────────────────────────────────────────────

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly child: Bun.Subprocess<"ignore" | "pipe", "pipe" | "ignore", "pipe">;
  /** Present when spawned with `stdout: "lines"`. */
  readonly stdout: LineReader | null;
  /** The last few KiB of stderr. */
  stderr(): string;
  alive(): boolean;
  /** stdin, when spawned with `stdin: "pipe"`. */
  send(line: string): void;
}

export interface SpawnOptions {
  stdout?: "lines" | "ignore";
  stdin?: "pipe" | "ignore";
  env?: Record<string, string | undefined>;
  /** Raise the soft open-file limit to this before exec (bash `ulimit -n`). */
  fileLimit?: number;
}

const tracked = new Set<Proc>();
/** Set on SIGINT/SIGTERM: from then on nothing new is started. */
let shuttingDown = false;
/** Process-group ids of everything ever started, for the leftover check at the end. */
const startedGroups = new Set<number>();

/**
 * Starts `argv` in a new process group (setsid), so stopping it also stops whatever it forks
 * (Dante's children, iperf3 under proxychains), and a terminal's Ctrl-C reaches only us.
 */
export function spawn(name: string, argv: string[], options: SpawnOptions = {}): Proc {
  if (shuttingDown) throw new Error(`not starting ${name}: stopping on a signal`);
  const command =
    options.fileLimit === undefined
      ? argv
      : ["bash", "-c", `ulimit -n ${options.fileLimit} && exec "$@"`, "bash", ...argv];
  const child = Bun.spawn(command, {
    cwd: REPO_ROOT,
    detached: true,
    stdin: options.stdin ?? "ignore",
    stdout: options.stdout === "lines" ? "pipe" : "ignore",
    stderr: "pipe",
    env: { ...process.env, ...options.env },
  });
  const stdout =
    child.stdout instanceof ReadableStream ? new LineReader(child.stdout) : (null as null);
  const tail = new Tail(child.stderr);
  const proc: Proc = {
    name,
    pid: child.pid,
    child,
    stdout,
    stderr: () => tail.text,
    alive: () => child.exitCode === null && child.signalCode === null,
    send(line: string) {
      const sink = child.stdin;
      if (sink === undefined || typeof sink === "number" || sink === null) {
        throw new Error(`${name}: stdin is not piped`);
      }
      sink.write(`${line}\n`);
      sink.flush();
    },
  };
  tracked.add(proc);
  startedGroups.add(child.pid);
  void child.exited.then(() => tracked.delete(proc));
  return proc;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Any live (non-zombie) process left in a group we started. */
function groupAlive(pgid: number): boolean {
  return leftoverProcesses([pgid]).length > 0;
}

/** SIGTERM to the whole group, SIGKILL after STOP_MS; resolves when the group is gone. */
export async function stop(proc: Proc): Promise<void> {
  signalGroup(proc.pid, "SIGTERM");
  const deadline = performance.now() + STOP_MS;
  await Promise.race([proc.child.exited, Bun.sleep(STOP_MS)]);
  // The leader may exit before its children (Dante's mother process): wait for the group.
  while (groupAlive(proc.pid) && performance.now() < deadline) await Bun.sleep(20);
  if (groupAlive(proc.pid) || proc.alive()) {
    signalGroup(proc.pid, "SIGKILL");
    await proc.child.exited;
  }
  tracked.delete(proc);
}

export async function stopAll(): Promise<void> {
  await Promise.allSettled([...tracked].map(stop));
}

/** Processes (not zombies) still alive in any of `groups`, as "pid comm" strings, from ps. */
export function leftoverProcesses(groups: Iterable<number> = startedGroups): string[] {
  const wanted = new Set(groups);
  if (wanted.size === 0) return [];
  const ps = Bun.spawnSync(["ps", "-eo", "pid=,pgid=,stat=,comm="], { stdout: "pipe" });
  const left: string[] = [];
  for (const line of ps.stdout.toString().split("\n")) {
    const [pid, pgid, stat, comm] = line.trim().split(/\s+/);
    if (pid === undefined || pgid === undefined || stat === undefined) continue;
    if (wanted.has(Number(pgid)) && !stat.startsWith("Z")) left.push(`${pid} ${comm ?? "?"}`);
  }
  return left;
}

let handlersInstalled = false;
/** Run before exiting on a signal (after every process is stopped): temp dirs and the like. */
const signalCleanups: (() => void)[] = [];

export function cleanupOnSignal(cleanup: () => void): void {
  signalCleanups.push(cleanup);
}

/** On SIGINT/SIGTERM: start nothing more, stop every group, exit 130. A second signal kills
 *  every group at once. */
export function stopAllOnSignals(label: string): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (shuttingDown) {
        for (const pgid of startedGroups) signalGroup(pgid, "SIGKILL");
        process.exit(130);
      }
      shuttingDown = true;
      console.error(`${label}: ${signal}: stopping every process started`);
      void stopAll().finally(() => {
        for (const cleanup of signalCleanups) {
          try {
            cleanup();
          } catch {
            // Best effort: we are exiting anyway.
          }
        }
        const left = leftoverProcesses();
        if (left.length > 0) console.error(`${label}: still running: ${left.join(", ")}`);
        process.exit(130);
      });
    });
  }
}

// ── Ports and readiness ────────────────────────────────────────────────────────────────────────

/** Ports handed out in this run: never twice, even once released. */
const handedOut = new Set<number>();
/** Listening ports are drawn from [PORT_FLOOR, the ephemeral range's start). */
const PORT_FLOOR = 10_240;

/** The kernel's ephemeral port range (ip_local_port_range); 32768–60999 when unreadable. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low !== undefined && high !== undefined && low > PORT_FLOOR) return [low, high];
  } catch {
    // Not Linux, or no /proc: use the usual default.
  }
  return [32_768, 60_999];
}

/**
 * `count` distinct loopback ports that were free a moment ago, all held bound until every one is
 * chosen (bind-to-0 hands the same port back once it is released), and all BELOW the ephemeral
 * range: a listening port taken from that range can be grabbed by one of the thousands of
 * outgoing connections a rate test makes before its peer binds it.
 */
export function freePorts(count: number): number[] {
  const [low] = ephemeralRange();
  const held: { port: number; stop(closeActive?: boolean): void }[] = [];
  try {
    for (let attempt = 0; held.length < count; attempt++) {
      if (attempt > 1_000) throw new Error(`no free port below ${low} after 1000 tries`);
      const port = PORT_FLOOR + Math.floor(Math.random() * (low - PORT_FLOOR));
      if (handedOut.has(port)) continue;
      try {
        held.push(Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }));
        handedOut.add(port);
      } catch {
        // In use: try another.
      }
    }
    return held.map((listener) => listener.port);
  } finally {
    for (const listener of held) listener.stop(true);
  }
}

/** Sockets in TIME_WAIT right now (/proc/net/sockstat), or null. Each holds a port for 60 s. */
export function timeWaitSockets(): number | null {
  try {
    const match = readFileSync("/proc/net/sockstat", "utf8").match(/^TCP:.*\btw (\d+)/m);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

const TCP_LISTEN = "0A";

/** How many sockets LISTEN on 127.0.0.1:port (or 0.0.0.0:port), from /proc/net/tcp. With
 *  reusePort, each of sockpool's Workers has its own. */
export function listeningSockets(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (local === undefined || fields[3] !== TCP_LISTEN) continue;
    if (local === `0100007F:${hexPort}` || local === `00000000:${hexPort}`) count++;
  }
  return count;
}

/** Waits until every port has at least `sockets` listening sockets; fails early if `proc` dies. */
export async function waitListening(proc: Proc, ports: number[], sockets = 1): Promise<void> {
  const started = performance.now();
  while (ports.some((port) => listeningSockets(port) < sockets)) {
    if (!proc.alive()) {
      await proc.child.exited;
      throw new Error(
        `${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) before listening:\n${proc.stderr()}`,
      );
    }
    if (performance.now() - started > READY_MS) {
      throw new Error(
        `${proc.name} did not listen on ${ports.join(", ")} (×${sockets}) within ${READY_MS} ms:\n${proc.stderr()}`,
      );
    }
    await Bun.sleep(10);
  }
}

/** One SOCKS5 greeting (no auth): resolves true on "05 00". Proves the listener speaks SOCKS5. */
export function socksAnswers(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 2_000);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      resolve(ok);
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(socket) {
          socket.write(Uint8Array.of(0x05, 0x01, 0x00));
        },
        data(socket, chunk) {
          done(chunk[0] === 0x05 && chunk[1] === 0x00);
          socket.end();
        },
        close() {
          done(false);
        },
        connectError() {
          done(false);
        },
      },
    }).catch(() => done(false));
  });
}

// ── /proc: a process tree's memory and CPU ─────────────────────────────────────────────────────

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux

interface Stat {
  pid: number;
  ppid: number;
  cpuTicks: number;
}

function readStat(pid: number): Stat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may hold spaces and parentheses: fields start after the LAST ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // fields[0] is state (field 3); ppid is field 4, utime 14, stime 15.
    return { pid, ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** `root` and all its descendants (threads are part of their process, not listed). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat === null) continue;
    const list = children.get(stat.ppid);
    if (list === undefined) children.set(stat.ppid, [stat.pid]);
    else list.push(stat.pid);
  }
  const tree: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    tree.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return tree;
}

function statusField(pid: number, file: string, field: string): number {
  try {
    const match = readFileSync(`/proc/${pid}/${file}`, "utf8").match(
      new RegExp(`^${field}:\\s+(\\d+) kB`, "m"),
    );
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0; // exited between listing and reading
  }
}

export interface Memory {
  rssBytes: number;
  pssBytes: number;
  processes: number;
}

/** Sum of VmRSS (and of Pss, which splits shared pages) over the process tree of `root`. */
export function treeMemory(root: number, withPss = false): Memory {
  const pids = processTree(root);
  let rssBytes = 0;
  let pssBytes = 0;
  for (const pid of pids) {
    rssBytes += statusField(pid, "status", "VmRSS");
    if (withPss) pssBytes += statusField(pid, "smaps_rollup", "Pss");
  }
  return { rssBytes, pssBytes, processes: pids.length };
}

/** User + system CPU seconds used so far by the process tree of `root` (all threads). */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += readStat(pid)?.cpuTicks ?? 0;
  return ticks / CLOCK_TICKS_PER_S;
}

/** The hard open-file limit children may raise their soft limit to (bash `ulimit -Hn`). */
export function hardFileLimit(): number {
  const result = Bun.spawnSync(["bash", "-c", "ulimit -Hn"], { stdout: "pipe" });
  const text = result.stdout.toString().trim();
  return text === "unlimited" ? 1_048_576 : Number(text);
}
