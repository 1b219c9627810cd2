// Child processes for the end-to-end benchmark: spawn each in its own process group, track it,
// read its stdout line by line, and stop every group at the end (also on failure and on Ctrl-C).
// Not a process supervisor: nothing is restarted, and a dead child is the caller's error. Ports and
// readiness are ports.ts; a process tree's RSS and CPU time, proc-tree.ts.

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

export function hardFileLimit(): number {
  const result = Bun.spawnSync(["bash", "-c", "ulimit -Hn"], { stdout: "pipe" });
  const text = result.stdout.toString().trim();
  return text === "unlimited" ? 1_048_576 : Number(text);
}
