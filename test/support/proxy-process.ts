// The real program as a child process: spawnProxy (until "ready") and runCli (to exit). Not the in-process proxy (proxy.ts).

import type { LogRecord } from "./proxy.ts";
import { collect, type Finished } from "./spawn.ts";
import { withDeadline } from "./wait.ts";

export const REPO_ROOT = new URL("../../", import.meta.url).pathname;

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
  /** The admin API's bound address ("127.0.0.1:PORT"), from its `admin listening` line; "" when
   *  the test turned it off. */
  readonly admin: string;
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

/** Starts `bun src/main.ts ...args` from the repository root, piped and tracked for cleanup. */
function spawnMain(args: string[], env: Record<string, string> = {}) {
  const child = Bun.spawn([process.execPath, "src/main.ts", ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  children.add(child);
  return child;
}

export interface SpawnProxyOptions {
  /** How long start-up may take before the child is killed and the call fails. */
  readyMs?: number;
  /** Added to the child's environment. */
  env?: Record<string, string>;
  /** Sees every parsed JSON line as it arrives, kept or not. */
  onRecord?: (record: LogRecord) => void;
  /** Which parsed lines `logs` and `stderrLines` keep (default: all). A long run (the soak) keeps
   *  only the few it reads later, so memory does not grow with every connection line. */
  keep?: (record: LogRecord) => boolean;
}

/**
 * Starts `bun src/main.ts --log-format json ...args` and resolves when it logs `ready`, with the
 * addresses from its `listening` lines. Fails with its stderr when it exits first. The admin API
 * listens on 127.0.0.1:0 unless `args` set --admin, so parallel proxies never collide on 9090.
 */
export async function spawnProxy(
  args: string[],
  options: SpawnProxyOptions = {},
): Promise<SpawnedProxy> {
  const { readyMs = 20_000, env = {}, onRecord, keep } = options;
  const admin = args.includes("--admin") ? [] : ["--admin", "127.0.0.1:0"];
  const child = spawnMain(["--log-format", "json", ...admin, ...args], env);
  void child.exited.then(() => children.delete(child));
  const logs: LogRecord[] = [];
  const stderrLines: string[] = [];
  const stdoutDone = new Response(child.stdout).text();
  const stderrDone = pumpLines(child.stderr, (line) => {
    let record: LogRecord | null = null;
    if (line.startsWith("{")) {
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        // a partial or non-JSON line; kept in stderrLines
      }
    }
    if (record !== null) onRecord?.(record);
    // Start-up lines are always kept: readiness and the listening addresses are read from them.
    const startUp =
      record?.msg === "ready" || record?.msg === "listening" || record?.msg === "admin listening";
    if (record !== null && keep && !startUp && !keep(record)) return;
    stderrLines.push(line);
    if (record !== null) logs.push(record);
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
    admin: String(logs.find((record) => record.msg === "admin listening")?.address ?? ""),
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
export async function runCli(args: string[], ms = 20_000): Promise<Finished> {
  const child = spawnMain(args);
  try {
    return await withDeadline(collect(child), ms, `sockpool ${args.join(" ")} to exit`);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    children.delete(child);
  }
}

/** Kills every child process a test left running and waits for them to exit. */
export async function killChildren(): Promise<void> {
  for (const child of children) child.kill("SIGKILL");
  await Promise.allSettled([...children].map((child) => child.exited));
  children.clear();
}
