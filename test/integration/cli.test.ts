// The real program as a child process: --help, config errors and their exit code, readiness
// lines, Workers sharing a port, and shutdown on SIGTERM/SIGINT with draining.
// Not the flag parser's details (test/config/cli.test.ts) and not the relay (relay.test.ts).

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TCPSocketListenOptions } from "bun";
import { parse as parseToml } from "smol-toml";
import { FLAGS } from "../../src/config/flags.ts";
import { validateConfig } from "../../src/config/schema.ts";
import { text } from "../support/bytes.ts";
import { cleanup } from "../support/cleanup.ts";
import { REPO_ROOT, runCli, spawnProxy } from "../support/proxy-process.ts";
import { connectTcp } from "../support/sockets.ts";
import { echoThrough, socksConnect } from "../support/socks-client.ts";
import { startEcho } from "../support/targets.ts";
import { DeadlineError, waitFor, withDeadline } from "../support/wait.ts";

const tempDir = mkdtempSync(join(tmpdir(), "sockpool-cli-"));

afterAll(async () => {
  await cleanup();
  rmSync(tempDir, { recursive: true, force: true });
});

/** True when nothing accepts on 127.0.0.1:port any more. */
async function refuses(port: number): Promise<boolean> {
  try {
    const conn = await connectTcp("127.0.0.1", port);
    conn.end();
    return false;
  } catch (error) {
    if (error instanceof DeadlineError) throw error;
    return true;
  }
}

describe("sockpool command line", () => {
  test("--help exits 0 and lists every flag", async () => {
    const result = await runCli(["--help"]);
    expect(result.code).toBe(0);
    for (const flag of FLAGS) expect(result.stdout).toContain(`--${flag.name}`);
    expect(result.stdout).toContain("--pool-strategy");
  });

  test("an invalid value (--pool-slots 1000) exits 2 and says what was expected", async () => {
    const result = await runCli(["--pool-slots", "1000"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--pool-slots: expected");
    expect(result.stderr).toContain("1000");
  });

  test("--check prints the configuration in effect, secrets redacted, exit 0, binding nothing", async () => {
    const file = join(tempDir, "check.toml");
    writeFileSync(
      file,
      '[socks]\nlisten = "127.0.0.1:1"\n[[socks.users]]\nusername = "ann"\npassword = "pw-in-file"\n' +
        '[admin]\nlisten = "127.0.0.1:2"\ntoken = "a-secret-token-of-32-characters!"\n',
    );
    // Port 1 needs root to bind and may be taken: --check only validates, it never listens.
    const result = await runCli(["--config", file, "--socks-user", "bob:pw-on-argv", "--check"]);
    expect(result.code).toBe(0);
    for (const secret of ["pw-in-file", "pw-on-argv", "a-secret-token"]) {
      expect(result.stdout + result.stderr).not.toContain(secret);
    }
    // What it printed is itself a valid configuration: the same one, secrets aside.
    const printed = parseToml(result.stdout) as {
      socks: { users: unknown[] };
      admin: { listen: string; token: string };
    };
    expect(printed.admin).toEqual({ listen: "127.0.0.1:2", token: "<redacted>" });
    expect(printed.socks.users).toEqual([
      { username: "ann", password: "<redacted>" },
      { username: "bob", password: "<redacted>" },
    ]);
    // (A redacted token is too short to be one, so it goes before the check.)
    expect(validateConfig({ ...printed, admin: { listen: printed.admin.listen } }).success).toBe(
      true,
    );
    expect(result.stdout).toContain('listen = "127.0.0.1:1"');
  });

  test("--hash-password's hash in a users_file logs that user in (and --check hides it)", async () => {
    const hasher = Bun.spawn([process.execPath, "src/main.ts", "--hash-password"], {
      cwd: REPO_ROOT,
      stdin: new TextEncoder().encode("file-pw\n"),
      stdout: "pipe",
      stderr: "pipe",
    });
    const [hash, code] = await withDeadline(
      Promise.all([new Response(hasher.stdout).text(), hasher.exited]),
      20_000,
      "sockpool --hash-password",
    );
    expect(code).toBe(0);
    expect(hash).toStartWith("$argon2id$");
    const users = join(tempDir, "users");
    writeFileSync(users, `# one user\nfran:${hash.trim()}\n`);
    const config = join(tempDir, "users.toml");
    writeFileSync(config, `[socks]\nlisten = "127.0.0.1:0"\nusers_file = "${users}"\n`);

    const checked = await runCli(["--config", config, "--check"]);
    expect(checked.code).toBe(0);
    expect(checked.stdout).toContain('password_hash = "<redacted>"');
    expect(checked.stdout).not.toContain("$argon2id$");

    const echo = startEcho();
    const proxy = await spawnProxy(["--config", config]);
    try {
      const { conn, reply } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port, {
        auth: { user: "fran", pass: "file-pw" },
      });
      expect(reply.code).toBe(0);
      await conn.write("hashed");
      expect(text(await conn.read(6))).toBe("hashed");
      conn.end();
    } finally {
      expect(await proxy.stop()).toBe(0);
      echo.close();
    }
  });

  test("--hash-password with nothing on stdin exits 2", async () => {
    const hasher = Bun.spawn([process.execPath, "src/main.ts", "--hash-password"], {
      cwd: REPO_ROOT,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(await withDeadline(hasher.exited, 20_000, "sockpool --hash-password")).toBe(2);
  });

  test("SIGTERM while the Workers are still starting stops cleanly, exit 0 (not the default 143)", async () => {
    const child = Bun.spawn(
      [process.execPath, "src/main.ts", "--log-format", "json", "--socks", "127.0.0.1:0"].concat([
        "--workers",
        "2",
        "--admin",
        "127.0.0.1:0",
      ]),
      { cwd: REPO_ROOT, stdin: "ignore", stdout: "ignore", stderr: "pipe" },
    );
    const lines: string[] = [];
    const decoder = new TextDecoder();
    // The admin API's line comes before the Workers start: the signal lands mid-start.
    for await (const chunk of child.stderr) {
      lines.push(...decoder.decode(chunk).split("\n"));
      if (lines.some((line) => line.includes('"admin listening"'))) break;
    }
    child.kill("SIGTERM");
    expect(await withDeadline(child.exited, 20_000, "sockpool to exit")).toBe(0);
  });

  test("--check with an invalid configuration exits 2 listing the problems", async () => {
    const result = await runCli(["--check", "--pool-slots", "3"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("--pool-slots: expected a power of two");
  });

  /** Start-up log lines of sockpool run under a hard descriptor limit of 1,024 (Bun raises the
   *  soft limit to the hard one by itself), up to `ready`; then it is stopped. */
  async function startUnderLimit(args: string[]): Promise<{ level: string; msg: string }[]> {
    const child = Bun.spawn(
      [
        "prlimit",
        "--nofile=1024:1024",
        process.execPath,
        "src/main.ts",
        "--log-format",
        "json",
      ].concat(["--socks", "127.0.0.1:0", "--workers", "1", "--admin", "off", ...args]),
      { cwd: REPO_ROOT, stdin: "ignore", stdout: "ignore", stderr: "pipe" },
    );
    const records: { level: string; msg: string }[] = [];
    try {
      const decoder = new TextDecoder();
      let pending = "";
      await withDeadline(
        (async () => {
          for await (const chunk of child.stderr) {
            pending += decoder.decode(chunk, { stream: true });
            const lines = pending.split("\n");
            pending = lines.pop()!;
            for (const line of lines) records.push(JSON.parse(line));
            if (records.some((record) => record.msg === "ready")) return;
          }
          throw new Error(`exited before ready: ${JSON.stringify(records)}`);
        })(),
        20_000,
        "sockpool to be ready",
      );
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
    return records;
  }

  test("a default start under a small descriptor limit fits connections_max without a warning", async () => {
    const records = await startUnderLimit([]);
    expect(records.filter((record) => record.level === "warn")).toEqual([]);
    expect(records.find((record) => record.msg.includes("fitted"))).toMatchObject({
      level: "info",
      connections_max: 480,
      file_limit: 1024,
    });
  });

  test("a connections_max the operator chose and the limit cannot hold is warned about", async () => {
    const file = join(tempDir, "many.toml");
    writeFileSync(file, "[server]\nconnections_max = 10000\n");
    const records = await startUnderLimit(["--config", file]);
    const warnings = records.filter((record) => record.level === "warn");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain("lowered to 480");
  });

  test("every problem is listed in one run, one line each", async () => {
    const result = await runCli(["--pool-slots", "1000", "--slot-bytes", "1000", "--bogus"]);
    expect(result.code).toBe(2);
    const lines = result.stderr.split("\n");
    for (const problem of ["--pool-slots: expected", "--slot-bytes: expected", "--bogus"]) {
      expect(lines.filter((line) => line.includes(problem))).toHaveLength(1);
    }
  });

  test("a listen address another process serves (even with SO_REUSEPORT) stops the start, exit 1", async () => {
    // Another instance, sharing nothing with us but the port: before, sockpool bound beside it
    // silently and the kernel split the clients between the two.
    // bun-types declares reusePort on connect options only; Bun.listen honours it.
    const options: TCPSocketListenOptions<undefined> & { reusePort: boolean } = {
      hostname: "127.0.0.1",
      port: 0,
      reusePort: true,
      socket: { data() {} },
    };
    const other = Bun.listen(options);
    try {
      const taken = `127.0.0.1:${other.port}`;
      const refused = await runCli(["--socks", taken]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`${taken} is already in use by another process`);
      expect(refused.stderr).toContain("--share-port");
      // An HTTP CONNECT listener is checked the same way.
      const http = await runCli(["--socks", "127.0.0.1:0", "--http", taken]);
      expect(http.code).toBe(1);
      expect(http.stderr).toContain(`${taken} is already in use by another process`);
      // Sharing on purpose is allowed.
      const shared = await spawnProxy(["--socks", taken, "--share-port", "--workers", "1"]);
      expect(shared.socksPort).toBe(other.port);
      expect(await shared.stop()).toBe(0);
    } finally {
      other.stop(true);
    }
  });

  test("--workers 2: ready line, shared ports, both Workers serve SOCKS5 and forward; SIGTERM exits 0", async () => {
    const echo = startEcho();
    try {
      const proxy = await spawnProxy([
        "--socks",
        "127.0.0.1:0",
        "--forward",
        `127.0.0.1:0=127.0.0.1:${echo.port}`,
        "--workers",
        "2",
        "--pool-strategy",
        "queue",
      ]);
      expect(proxy.ready.workers).toBe(2);
      expect(proxy.socksPort).toBeGreaterThan(0);
      expect(proxy.forwardPorts).toHaveLength(1);

      const connections = 40;
      for (let index = 0; index < connections; index++) {
        const message = `through worker pool #${index}`;
        expect(await echoThrough(proxy.socksPort, echo.port, message)).toBe(message);
      }
      const forwarded = await connectTcp("127.0.0.1", proxy.forwardPorts[0]!);
      await forwarded.write("forwarded by a worker");
      expect(text(await forwarded.read(21))).toBe("forwarded by a worker");
      forwarded.end();

      const lines = () => proxy.logs.filter((record) => record.msg === "connection");
      await waitFor(
        () => lines().length >= connections + 1,
        () => `${connections + 1} connection lines on stderr (have ${lines().length})`,
      );
      expect(lines().every((record) => record.outcome === "ok")).toBe(true);
      // reusePort spreads 40 connections over both Workers (each logs its index).
      expect(new Set(lines().map((record) => record.worker)).size).toBe(2);

      expect(await proxy.stop("SIGTERM")).toBe(0);
      expect(proxy.logs.some((record) => record.msg === "stopped")).toBe(true);
    } finally {
      echo.close();
    }
  });

  test("--socks-user turns on password auth", async () => {
    const echo = startEcho();
    try {
      const proxy = await spawnProxy([
        "--socks",
        "127.0.0.1:0",
        "--socks-user",
        "dave:pw:with:colons",
        "--workers",
        "1",
      ]);
      const { conn } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port, {
        auth: { user: "dave", pass: "pw:with:colons" },
      });
      await conn.write("authed by flag");
      expect(text(await conn.read(14))).toBe("authed by flag");
      conn.end();
      await expect(socksConnect(proxy.socksPort, "127.0.0.1", echo.port)).rejects.toThrow(
        /method selection: expected 05 00, got 05 ff/,
      );
      expect(await proxy.stop("SIGINT")).toBe(0);
    } finally {
      echo.close();
    }
  });

  test("SIGTERM drains: an open connection keeps relaying, new ones are refused, exit 0 once it closes", async () => {
    const echo = startEcho();
    try {
      const proxy = await spawnProxy(["--socks", "127.0.0.1:0", "--workers", "1"]);
      const { conn } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
      await conn.write("before");
      expect(text(await conn.read(6))).toBe("before");

      proxy.process.kill("SIGTERM");
      await waitFor(
        () => proxy.logs.some((record) => record.msg === "stopping"),
        'the "stopping" line',
      );
      // The listener closes after "stopping"; poll until a new connection is refused.
      let refused = false;
      const started = performance.now();
      while (!refused && performance.now() - started < 5_000) {
        refused = await refuses(proxy.socksPort);
        if (!refused) await Bun.sleep(20);
      }
      expect(refused).toBe(true);

      await conn.write("during drain");
      expect(text(await conn.read(12))).toBe("during drain");
      expect(proxy.process.exitCode).toBeNull();

      const closedAt = performance.now();
      conn.end();
      expect(await proxy.stop("SIGTERM", 8_000)).toBe(0);
      expect(performance.now() - closedAt).toBeLessThan(5_000); // well before the 10 s grace
    } finally {
      echo.close();
    }
  });

  test("shutdown_timeout_ms (from --config): connections still open after the grace are closed, exit 0", async () => {
    const echo = startEcho();
    const configPath = join(tempDir, "short-grace.toml");
    writeFileSync(
      configPath,
      '[server]\nshutdown_timeout_ms = 400\nworkers = 1\n\n[socks]\nlisten = "127.0.0.1:0"\n',
    );
    try {
      const proxy = await spawnProxy(["--config", configPath]);
      const { conn } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
      await conn.write("idle soon");
      expect(text(await conn.read(9))).toBe("idle soon");
      const signalled = performance.now();
      expect(await proxy.stop("SIGTERM", 8_000)).toBe(0);
      const elapsed = performance.now() - signalled;
      expect(elapsed).toBeGreaterThanOrEqual(350);
      await conn.waitEnd(2_000); // the proxy closed our connection
      expect(conn.eof).toBe(true);
    } finally {
      echo.close();
    }
  });
});
