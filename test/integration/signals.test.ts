// The real program and the signals an operator sends: SIGHUP, SIGUSR1 and SIGUSR2 are never fatal
// (each logs a line and the proxy serves on), and a second SIGTERM during the drain closes every
// connection at once, still exiting 0. Not the reload's effects (reload.test.ts).

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LIMITS } from "../../src/limits.ts";
import { cleanup } from "../support/cleanup.ts";
import { REPO_ROOT, spawnProxy } from "../support/proxy-process.ts";
import { echoThrough, socksConnect } from "../support/socks-client.ts";
import { startEcho } from "../support/targets.ts";
import { waitFor, withDeadline } from "../support/wait.ts";

afterAll(cleanup);

const ARGS = ["--socks", "127.0.0.1:0", "--workers", "2"];

describe("signals", () => {
  test("SIGHUP, SIGUSR1 and SIGUSR2 (without fault injection) each log a line; the proxy serves on", async () => {
    const echo = startEcho();
    try {
      const proxy = await spawnProxy(ARGS);
      const logged = (msg: string) => proxy.logs.some((record) => record.msg === msg);
      proxy.process.kill("SIGHUP");
      await waitFor(() => logged("reloaded"), "the reloaded line after SIGHUP");
      proxy.process.kill("SIGUSR1");
      await waitFor(() => logged("SIGUSR1: nothing to reopen"), "the SIGUSR1 line");
      proxy.process.kill("SIGUSR2");
      await waitFor(() => logged("SIGUSR2 ignored (it has no meaning here)"), "the SIGUSR2 line");
      expect(proxy.process.exitCode).toBeNull();
      expect(await echoThrough(proxy.socksPort, echo.port, "still here")).toBe("still here");
      expect(await proxy.stop("SIGTERM")).toBe(0);
    } finally {
      echo.close();
    }
  });

  test("Ctrl-C under `bun run serve` (one SIGINT, delivered twice) still drains", async () => {
    // Ctrl-C signals the terminal's whole process group: `bun run` and the proxy under it. `bun
    // run` forwards what it gets, so the proxy sees SIGINT twice within a millisecond; before, the
    // second was taken for an operator's second Ctrl-C and the drain was skipped. setsid makes the
    // group here, as a terminal would.
    const echo = startEcho();
    const dir = mkdtempSync(join(tmpdir(), "sockpool-signals-"));
    const configPath = join(dir, "sockpool.toml");
    writeFileSync(configPath, "[server]\nshutdown_timeout_ms = 300000\n");
    const args = ["--config", configPath, "--log-format", "json", "--admin", "off", ...ARGS];
    const child = Bun.spawn(["setsid", process.execPath, "run", "serve", "--", ...args], {
      cwd: REPO_ROOT,
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    const lines: Record<string, unknown>[] = [];
    const pump = (async () => {
      const decoder = new TextDecoder();
      let pending = "";
      for await (const chunk of child.stderr) {
        pending += decoder.decode(chunk, { stream: true });
        const parts = pending.split("\n");
        pending = parts.pop()!;
        for (const part of parts) if (part.startsWith("{")) lines.push(JSON.parse(part));
      }
    })();
    try {
      await waitFor(() => lines.some((line) => line.msg === "ready"), "the proxy under bun run");
      const address = String(lines.find((line) => line.msg === "listening")?.address);
      const port = Number(address.slice(address.lastIndexOf(":") + 1));
      const { conn } = await socksConnect(port, "127.0.0.1", echo.port);
      process.kill(-child.pid, "SIGINT"); // the whole group, as a terminal's Ctrl-C
      await waitFor(() => lines.some((line) => line.msg === "stopping"), "the stopping line");
      // Still draining: the open connection relays, and no "second SIGINT" was logged.
      await conn.write("still");
      expect(new TextDecoder().decode(await conn.read(5))).toBe("still");
      expect(lines.some((line) => String(line.msg).startsWith("second SIGINT"))).toBe(false);
      conn.end(); // the drain ends with the last connection
      expect(await withDeadline(child.exited, 15_000, "the proxy to exit")).toBe(0);
      await pump;
    } finally {
      if (child.exitCode === null) process.kill(-child.pid, "SIGKILL");
      echo.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a second SIGTERM during the drain closes the open connections at once; exit 0", async () => {
    const echo = startEcho();
    const dir = mkdtempSync(join(tmpdir(), "sockpool-signals-"));
    const configPath = join(dir, "sockpool.toml");
    // A drain that would outlast the test by far: only the second signal can end it in time.
    writeFileSync(configPath, "[server]\nshutdown_timeout_ms = 300000\n");
    try {
      const proxy = await spawnProxy(["--config", configPath, ...ARGS]);
      const { conn } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
      await conn.write("open");
      expect(new TextDecoder().decode(await conn.read(4))).toBe("open");
      proxy.process.kill("SIGTERM");
      await waitFor(
        () => proxy.logs.some((record) => record.msg === "stopping"),
        "the stopping line",
      );
      expect(proxy.process.exitCode).toBeNull(); // draining: the open connection holds it
      // A repeat within LIMITS.signal_repeat_ms is one signal delivered twice (see the next test):
      // an operator's second signal comes later, which is what this waits for.
      await Bun.sleep(LIMITS.signal_repeat_ms + 50);
      const code = await proxy.stop("SIGTERM", 10_000);
      expect(code).toBe(0);
      const second = proxy.logs.find(
        (record) => record.msg === "second SIGTERM while stopping: closing every connection now",
      );
      expect(second).toMatchObject({ level: "warn", open_connections: 1 });
      await withDeadline(
        new Promise<void>((resolve) => {
          const check = () => (conn.closed || conn.eof ? resolve() : setTimeout(check, 10));
          check();
        }),
        5_000,
        "the client connection to be closed",
      );
    } finally {
      echo.close();
    }
  });
});
