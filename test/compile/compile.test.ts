// The single executable, whole: `bun run compile` builds dist/sockpool, which is copied to an empty
// directory and run with no bun, no zig and no checkout in reach (PATH is an empty directory).
// Not the proxy's behaviour (test/integration/ covers that): only that the binary carries its
// Workers, its native library, its flags, its fallback and its clean SIGTERM.
//
// Readiness is the `ready` and `listening` log lines, awaited as they arrive; nothing sleeps.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import packageJson from "../../package.json" with { type: "json" };
import { Reply, SOCKS_VERSION } from "../../src/protocol/constants.ts";

const REPO_ROOT = new URL("../../", import.meta.url).pathname;
const BUILD_MS = 180_000;
const TEST_MS = 30_000;
/** Any single wait: the binary's start, one SOCKS exchange, its exit after SIGTERM. */
const DEADLINE_MS = 15_000;
/** Large enough that the relay meets backpressure and parks bytes in pool slots. */
const ECHO_BYTES = 4 << 20;

let dir = "";
let binary = "";
/** An empty directory used as PATH: nothing can be found through it. */
let emptyPath = "";
const running = new Set<Bun.Subprocess>();
/** The library src/compiled.ts extracts: sockpool-<version>-<uid>-<hash>.so in $TMPDIR. */
const EXTRACTED = new RegExp(
  `^sockpool-${packageJson.version.replaceAll(".", "\\.")}-\\d+-[0-9a-f]{16}\\.so$`,
);

function withDeadline<T>(promise: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

beforeAll(async () => {
  const started = performance.now();
  const build = Bun.spawn([process.execPath, "run", "compile"], {
    cwd: REPO_ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(build.stdout).text(),
    new Response(build.stderr).text(),
    build.exited,
  ]);
  if (code !== 0) {
    throw new Error(`"bun run compile" exited ${code}:\n${stdout}${stderr}`);
  }
  console.log(`bun run compile: ${((performance.now() - started) / 1000).toFixed(1)} s`);

  dir = mkdtempSync(join(tmpdir(), "sockpool-compile-"));
  emptyPath = join(dir, "empty-path");
  mkdirSync(emptyPath);
  mkdirSync(join(dir, "tmp"));
  binary = join(dir, "sockpool");
  copyFileSync(join(REPO_ROOT, "dist/sockpool"), binary);
  chmodSync(binary, 0o755);
  // A compiled Bun binary reads .env from its working directory unless built not to; `compile`
  // passes --no-compile-autoload-dotenv, and this file would switch the native queue off if read.
  await Bun.write(join(dir, ".env"), "SOCKPOOL_NATIVE=off\n");
}, BUILD_MS);

afterAll(async () => {
  for (const child of running) child.kill("SIGKILL");
  await Promise.allSettled([...running].map((child) => child.exited));
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

/** The binary's whole environment: nothing inherited from the test runner. */
function bareEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: emptyPath, HOME: dir, TMPDIR: join(dir, "tmp"), ...extra };
}

// ── The binary as a child process ──────────────────────────────────────────────────────────────

type LogRecord = Record<string, unknown> & { msg?: string; level?: string };

interface RunningBinary {
  readonly logs: LogRecord[];
  readonly ready: LogRecord;
  readonly socksPort: number;
  /** The admin API's address (HOST:PORT), from its `admin listening` line. */
  readonly admin: string;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number>;
}

/** Starts the binary with JSON logs and resolves once it has logged `listening` and `ready`. */
async function startBinary(args: string[], env: Record<string, string>): Promise<RunningBinary> {
  // The admin API on a port of its own: parallel runs must not collide on the default 9090.
  const child = Bun.spawn([binary, "--log-format", "json", "--admin", "127.0.0.1:0", ...args], {
    cwd: dir,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(child);
  const logs: LogRecord[] = [];
  const lines: string[] = [];
  const ready = Promise.withResolvers<LogRecord>();
  const stderrDone = (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of child.stderr) {
      pending += decoder.decode(chunk, { stream: true });
      for (let newline = pending.indexOf("\n"); newline >= 0; newline = pending.indexOf("\n")) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        lines.push(line);
        if (!line.startsWith("{")) continue;
        const record = JSON.parse(line) as LogRecord;
        logs.push(record);
        if (record.msg === "ready") ready.resolve(record);
      }
    }
  })();
  void child.exited.then(async (code) => {
    await stderrDone;
    ready.reject(new Error(`sockpool exited ${code} before "ready"; stderr:\n${lines.join("\n")}`));
  });
  const readyRecord = await withDeadline(ready.promise, `"ready" from ${args.join(" ")}`);
  const listening = logs.find((record) => record.msg === "listening" && record.kind === "socks");
  const address = String(listening?.address ?? "");
  return {
    logs,
    ready: readyRecord,
    socksPort: Number(address.slice(address.lastIndexOf(":") + 1)),
    admin: String(logs.find((record) => record.msg === "admin listening")?.address ?? ""),
    async stop() {
      child.kill("SIGTERM");
      const code = await withDeadline(child.exited, "sockpool to exit after SIGTERM");
      await stderrDone;
      running.delete(child);
      return code;
    },
  };
}

// ── A loopback echo target and a raw SOCKS5 client, both honouring backpressure ────────────────

interface Outbox {
  pending: Uint8Array[];
}

/** Writes what `socket` accepts now and keeps the rest, in order, for the next drain. */
function send(socket: Socket<Outbox>, bytes: Uint8Array | null): void {
  if (bytes !== null) socket.data.pending.push(bytes);
  while (socket.data.pending.length > 0) {
    const head = socket.data.pending[0]!;
    const written = socket.write(head);
    if (written < 0) return;
    if (written < head.length) {
      socket.data.pending[0] = head.subarray(written);
      return;
    }
    socket.data.pending.shift();
  }
}

function startEcho() {
  return Bun.listen<Outbox>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { pending: [] };
      },
      data(socket, bytes) {
        send(socket, bytes);
      },
      drain(socket) {
        send(socket, null);
      },
    },
  });
}

/** CONNECT through the proxy to 127.0.0.1:`targetPort`, send `payload`, return what comes back. */
async function echoThroughSocks(
  proxyPort: number,
  targetPort: number,
  payload: Uint8Array,
): Promise<Uint8Array> {
  const received: Uint8Array[] = [];
  let receivedBytes = 0;
  let arrived = () => {};
  let closed = false;
  const socket = await Bun.connect<Outbox>({
    hostname: "127.0.0.1",
    port: proxyPort,
    data: { pending: [] },
    socket: {
      data(_socket, bytes) {
        received.push(bytes);
        receivedBytes += bytes.length;
        arrived();
      },
      drain(socket) {
        send(socket, null);
      },
      close() {
        closed = true;
        arrived();
      },
    },
  });
  /** Waits until `count` bytes beyond `offset` have arrived; returns them. */
  const read = async (offset: number, count: number): Promise<Uint8Array> => {
    while (receivedBytes < offset + count) {
      if (closed) throw new Error("proxy closed the connection");
      await new Promise<void>((resolve) => {
        arrived = resolve;
      });
    }
    return Buffer.concat(received).subarray(offset, offset + count);
  };
  try {
    // 1. greeting: VER NMETHODS METHODS → VER METHOD
    send(socket, Uint8Array.of(SOCKS_VERSION, 1, 0x00));
    expect([...(await read(0, 2))]).toEqual([SOCKS_VERSION, 0x00]);
    // 2. CONNECT 127.0.0.1:port → VER REP RSV ATYP(IPv4) BND.ADDR(4) BND.PORT(2)
    send(socket, Uint8Array.of(SOCKS_VERSION, 1, 0, 1, 127, 0, 0, 1, targetPort >> 8, targetPort));
    const reply = await read(2, 10);
    expect(reply[1]).toBe(Reply.SUCCEEDED);
    // 3. relay
    send(socket, payload);
    return await read(12, payload.length);
  } finally {
    socket.end();
  }
}

async function expectEcho(proxyPort: number): Promise<void> {
  const target = startEcho();
  try {
    const payload = new Uint8Array(ECHO_BYTES);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >>> 13)) & 0xff;
    const echoed = await withDeadline(
      echoThroughSocks(proxyPort, target.port, payload),
      `a ${ECHO_BYTES}-byte echo through SOCKS5`,
    );
    expect(echoed.length).toBe(payload.length);
    expect(Bun.hash(echoed)).toBe(Bun.hash(payload));
  } finally {
    target.stop(true);
  }
}

const nativeWarnings = (logs: LogRecord[]) =>
  logs.filter((record) => String(record.msg).includes("native queue unavailable"));

// ── The tests ──────────────────────────────────────────────────────────────────────────────────

describe("dist/sockpool, alone in an empty directory", () => {
  test("finds no bun and no zig on its PATH", () => {
    expect(Bun.which("bun", { PATH: emptyPath })).toBeNull();
    expect(Bun.which("zig", { PATH: emptyPath })).toBeNull();
  });

  test(
    "--version prints the package version",
    async () => {
      const child = Bun.spawn([binary, "--version"], { cwd: dir, env: bareEnv(), stdout: "pipe" });
      const [stdout, code] = await withDeadline(
        Promise.all([new Response(child.stdout).text(), child.exited]),
        "sockpool --version",
      );
      expect(code).toBe(0);
      expect(stdout).toStartWith(`sockpool ${packageJson.version} (bun `);
    },
    TEST_MS,
  );

  test(
    "proxies SOCKS5 over 2 Workers on the embedded native queue, then exits 0 on SIGTERM",
    async () => {
      const env = bareEnv({ TMPDIR: join(dir, "tmp-native") });
      mkdirSync(env.TMPDIR!);
      const proxy = await startBinary(
        ["--socks", "127.0.0.1:0", "--workers", "2", "--pool-strategy", "queue"],
        env,
      );
      expect(proxy.ready.pool_backend).toBe("native");
      expect(proxy.ready.workers).toBe(2);
      // The main thread and every Worker loaded the library: none fell back.
      expect(nativeWarnings(proxy.logs)).toEqual([]);
      // It is the embedded copy, extracted once into this run's private TMPDIR by src/compiled.ts
      // (not by Bun, whose .bun-<uid>-<hash>.so was never removed).
      expect(readdirSync(env.TMPDIR!)).toEqual([expect.stringMatching(EXTRACTED)]);
      expect(proxy.socksPort).toBeGreaterThan(0);
      for (let i = 0; i < 4; i++) await expectEcho(proxy.socksPort); // reusePort spreads these
      // The status page is embedded in the binary (imported as text), and the counters reach the API.
      const page = await fetch(`http://${proxy.admin}/`);
      expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
      expect(await page.text()).toContain("<title>sockpool status</title>");
      const status = (await (await fetch(`http://${proxy.admin}/api/status`)).json()) as {
        connections_total: number;
      };
      expect(status.connections_total).toBe(4);
      expect(await proxy.stop()).toBe(0);
      expect(proxy.logs.at(-1)?.msg).toBe("stopped");
      expect(nativeWarnings(proxy.logs)).toEqual([]);
    },
    TEST_MS,
  );

  test(
    "a second run of the same build reuses the one extracted library: the temp dir holds one file",
    async () => {
      const env = bareEnv({ TMPDIR: join(dir, "tmp-reuse") });
      mkdirSync(env.TMPDIR!);
      const args = ["--socks", "127.0.0.1:0", "--workers", "2", "--pool-strategy", "queue"];
      const first = await startBinary(args, env);
      expect(first.ready.pool_backend).toBe("native");
      expect(await first.stop()).toBe(0);
      const extracted = readdirSync(env.TMPDIR!);
      expect(extracted).toEqual([expect.stringMatching(EXTRACTED)]);
      const second = await startBinary(args, env);
      expect(second.ready.pool_backend).toBe("native");
      await expectEcho(second.socksPort);
      expect(await second.stop()).toBe(0);
      expect(readdirSync(env.TMPDIR!)).toEqual(extracted);
    },
    TEST_MS,
  );

  test.each([
    {
      when: "$TMPDIR does not exist, so the library cannot be extracted",
      env: () => bareEnv({ TMPDIR: join(dir, "no-such-dir") }),
      reason: "$TMPDIR",
    },
    {
      when: "SOCKPOOL_NATIVE_LIB names a missing file",
      env: () => bareEnv({ SOCKPOOL_NATIVE_LIB: join(dir, "missing/libsockpool.so") }),
      reason: join(dir, "missing/libsockpool.so"),
    },
  ])(
    "falls back to the TypeScript queue with one warning when $when",
    async ({ env, reason }) => {
      const proxy = await startBinary(
        ["--socks", "127.0.0.1:0", "--workers", "2", "--pool-strategy", "queue"],
        env(),
      );
      expect(proxy.ready.pool_backend).toBe("typescript");
      const warnings = nativeWarnings(proxy.logs);
      expect(warnings.length).toBe(1);
      expect(String(warnings[0]!.reason)).toContain(reason);
      await expectEcho(proxy.socksPort);
      expect(await proxy.stop()).toBe(0);
    },
    TEST_MS,
  );
});
