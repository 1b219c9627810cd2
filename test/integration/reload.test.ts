// Reload on SIGHUP with the real program (two Workers) and real sockets: open connections keep
// relaying under the settings they started with, a changed password applies to new logins only,
// a new forward listener appears and a removed one stops accepting while its open connection
// finishes, an invalid config is rejected whole with every problem logged, restart-only options
// keep their running value, and clients connecting throughout several reloads all succeed.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TelemetryResponse } from "../../src/admin/types.ts";
import { cleanup } from "../support/cleanup.ts";
import type { LogRecord } from "../support/proxy.ts";
import { type SpawnedProxy, spawnProxy } from "../support/proxy-process.ts";
import { connectTcp } from "../support/sockets.ts";
import { requireTool } from "../support/spawn.ts";
import { echoThrough, REPLY, socksConnect } from "../support/socks-client.ts";
import { startEcho, type Target } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

const decoder = new TextDecoder();

function configFile(): { path: string; write(toml: string): void } {
  const dir = mkdtempSync(join(tmpdir(), "sockpool-reload-"));
  const path = join(dir, "sockpool.toml");
  return { path, write: (toml) => writeFileSync(path, toml) };
}

function socksSection(password: string): string {
  return [
    "[socks]",
    'listen = "127.0.0.1:0"',
    'auth = "password"',
    `users = [{ username = "alice", password = "${password}" }]`,
    "",
  ].join("\n");
}

function forwardSection(target: Target, listen = "127.0.0.1:0"): string {
  return `[[forward]]\nlisten = "${listen}"\ntarget = "127.0.0.1:${target.port}"\n`;
}

/** Sends SIGHUP and waits for the reload's outcome line; returns the lines logged since. */
async function reload(proxy: SpawnedProxy, outcome: "reloaded" | "rejected"): Promise<LogRecord[]> {
  const from = proxy.logs.length;
  proxy.process.kill("SIGHUP");
  const done = (record: LogRecord) =>
    outcome === "reloaded"
      ? record.msg === "reloaded"
      : record.msg === "reload rejected: the running configuration keeps serving";
  await waitFor(() => proxy.logs.slice(from).some(done), `the ${outcome} line`);
  return proxy.logs.slice(from);
}

async function roundTrip(
  conn: Awaited<ReturnType<typeof connectTcp>>,
  message: string,
): Promise<string> {
  await conn.write(message);
  return decoder.decode(await conn.read(message.length));
}

async function metric(proxy: SpawnedProxy, name: string): Promise<number> {
  const body = await (await fetch(`http://${proxy.admin}/metrics`)).text();
  const line = body.split("\n").find((text) => text.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

async function eventKinds(proxy: SpawnedProxy): Promise<string[]> {
  const response = await fetch(`http://${proxy.admin}/api/telemetry/events`);
  return ((await response.json()) as TelemetryResponse).events.map((event) => event.kind);
}

describe("reload (SIGHUP)", () => {
  test("open connections go on; new logins, listeners and rules follow the new config", async () => {
    const echo = startEcho();
    const echo2 = startEcho();
    const config = configFile();
    config.write(`${socksSection("pw1")}${forwardSection(echo)}`);
    try {
      const proxy = await spawnProxy(["--config", config.path, "--workers", "2"]);
      const oldForward = proxy.forwardPorts[0]!;
      const alice1 = { user: "alice", pass: "pw1" };
      const { conn: socksOpen } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port, {
        auth: alice1,
      });
      const forwardOpen = await connectTcp("127.0.0.1", oldForward);
      expect(await roundTrip(socksOpen, "before")).toBe("before");
      expect(await roundTrip(forwardOpen, "before")).toBe("before");

      // First a file with a mistake: nothing of it may apply.
      config.write(`${socksSection("pw2")}${forwardSection(echo2)}[pool]\nslots = "many"\n`);
      const rejected = await reload(proxy, "rejected");
      expect(rejected.some((record) => String(record.problem).startsWith("pool.slots"))).toBe(true);
      // New password, the forward to `echo` replaced by one to `echo2`, a restart-only option.
      config.write(`${socksSection("pw2")}${forwardSection(echo2)}[pool]\nslots = 8192\n`);
      const lines = await reload(proxy, "reloaded");
      expect(lines).toContainEqual(
        expect.objectContaining({
          msg: "reload: needs a restart; the running value stays",
          key: "pool.slots",
        }),
      );
      const reloaded = lines.find((record) => record.msg === "reloaded")!;
      expect(String(reloaded.changed)).toContain("socks.users");
      expect(String(reloaded.changed)).toContain("forward");
      expect(String(reloaded.changed)).not.toContain("pool.slots");
      const added = lines.find(
        (record) => record.msg === "listening" && record.kind === "forward",
      )!;
      expect(added).toBeDefined();
      expect(lines).toContainEqual(
        expect.objectContaining({ msg: "stopped listening", kind: "forward" }),
      );
      const newForward = Number(String(added.address).split(":").at(-1));
      expect(newForward).not.toBe(oldForward);

      // Open connections relay on, under the settings they started with.
      expect(await roundTrip(socksOpen, "after")).toBe("after");
      expect(await roundTrip(forwardOpen, "after")).toBe("after");
      // The SOCKS listener kept its port (port 0 stays resolved); new logins need the new password.
      await expect(
        socksConnect(proxy.socksPort, "127.0.0.1", echo.port, { auth: alice1 }),
      ).rejects.toThrow("auth: expected 01 00");
      const { conn: fresh } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port, {
        auth: { user: "alice", pass: "pw2" },
      });
      expect(await roundTrip(fresh, "new login")).toBe("new login");
      fresh.end();
      // The new forward listens (in every Worker); the removed one accepts no one.
      for (let i = 0; i < 8; i++) {
        const conn = await connectTcp("127.0.0.1", newForward);
        expect(await roundTrip(conn, `f${i}`)).toBe(`f${i}`);
        conn.end();
      }
      await expect(connectTcp("127.0.0.1", oldForward)).rejects.toThrow();
      socksOpen.end();
      forwardOpen.end();

      expect(await metric(proxy, 'sockpool_reloads_total{result="ok"}')).toBe(1);
      expect(await metric(proxy, 'sockpool_reloads_total{result="rejected"}')).toBe(1);
      const kinds = await eventKinds(proxy);
      expect(kinds).toContain("config_reloaded");
      expect(kinds).toContain("config_rejected");
      expect(await proxy.stop("SIGTERM")).toBe(0);
    } finally {
      echo.close();
      echo2.close();
    }
  });

  test("socks.users_file is read again: a changed hash applies to new logins", async () => {
    const echo = startEcho();
    const config = configFile();
    const usersPath = `${config.path}.users`;
    writeFileSync(usersPath, `alice:${await Bun.password.hash("old")}\n`);
    config.write(
      `[socks]\nlisten = "127.0.0.1:0"\nauth = "password"\nusers_file = "${usersPath}"\n`,
    );
    try {
      const proxy = await spawnProxy(["--config", config.path]);
      const login = (pass: string) =>
        socksConnect(proxy.socksPort, "127.0.0.1", echo.port, { auth: { user: "alice", pass } });
      const { conn: open } = await login("old");
      writeFileSync(usersPath, `# rotated\nalice:${await Bun.password.hash("new")}\n`);
      const lines = await reload(proxy, "reloaded");
      expect(String(lines.find((record) => record.msg === "reloaded")?.changed)).toBe(
        "socks.users",
      );
      await expect(login("old")).rejects.toThrow("auth: expected 01 00");
      const { conn } = await login("new");
      expect(await roundTrip(conn, "rotated")).toBe("rotated");
      expect(await roundTrip(open, "still open")).toBe("still open");
      conn.end();
      open.end();
      expect(await proxy.stop("SIGTERM")).toBe(0);
    } finally {
      echo.close();
    }
  });

  test("timeouts and log level: an open connection keeps its idle timeout; a new one gets the new", async () => {
    const echo = startEcho();
    const config = configFile();
    config.write(`[socks]\nlisten = "127.0.0.1:0"\n[relay]\nidle_timeout_ms = 0\n`);
    try {
      const proxy = await spawnProxy(["--config", config.path]);
      const { conn: before } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
      expect(await roundTrip(before, "a")).toBe("a");
      const badHandshake = async () => {
        const conn = await connectTcp("127.0.0.1", proxy.socksPort);
        await conn.write(Uint8Array.of(0x04, 0x01)); // SOCKS4: refused, logged at debug level
        await waitFor(() => conn.closed || conn.eof, "the bad handshake to be closed");
      };
      const debugLines = () => proxy.logs.filter((record) => record.msg === "bad handshake");
      await badHandshake();
      // The log level too: info before, debug after the reload.
      config.write(
        `[socks]\nlisten = "127.0.0.1:0"\n[relay]\nidle_timeout_ms = 200\n[log]\nlevel = "debug"\n`,
      );
      await reload(proxy, "reloaded");
      await badHandshake();
      await waitFor(() => debugLines().length > 0, "a debug line after the reload");
      expect(debugLines()).toHaveLength(1);
      const { conn: after } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
      expect(await roundTrip(after, "b")).toBe("b");
      await waitFor(() => after.closed || after.eof, "the new connection's idle timeout", 5_000);
      const idledOut = () => proxy.logs.filter((record) => record.outcome === "idle_timeout");
      await waitFor(() => idledOut().length > 0, "its connection line", 5_000);
      expect(idledOut()).toHaveLength(1);
      // Idle as long, and longer: the one from before the reload is still relaying.
      expect(before.closed || before.eof).toBe(false);
      expect(await roundTrip(before, "still")).toBe("still");
      before.end();
      expect(await proxy.stop("SIGTERM")).toBe(0);
    } finally {
      echo.close();
    }
  });

  test("an invalid config is rejected whole, every problem logged; the old one serves; then a rule applies", async () => {
    const echo = startEcho();
    const config = configFile();
    config.write(`[socks]\nlisten = "127.0.0.1:0"\n`);
    try {
      const proxy = await spawnProxy(["--config", config.path]);
      // A valid forward with two invalid values next to it: none of it may apply.
      config.write(
        `[socks]\nlisten = "127.0.0.1:0"\nauth = "bogus"\n[relay]\nidle_timeout_ms = -5\n${forwardSection(echo)}`,
      );
      const lines = await reload(proxy, "rejected");
      const problems = lines.filter((record) => record.msg === "reload rejected");
      expect(problems.map((record) => String(record.problem).split(":")[0])).toEqual([
        "socks.auth",
        "relay.idle_timeout_ms",
      ]);
      expect(
        lines.find((record) => String(record.msg).startsWith("reload rejected:")),
      ).toMatchObject({
        level: "error",
        problems: 2,
      });
      expect(lines.some((record) => record.msg === "listening")).toBe(false);
      expect(await echoThrough(proxy.socksPort, echo.port, "old")).toBe("old");
      // A file that is not TOML is a problem too.
      config.write("not = [toml");
      const broken = await reload(proxy, "rejected");
      expect(broken.some((record) => record.msg === "reload rejected")).toBe(true);
      expect(await echoThrough(proxy.socksPort, echo.port, "still old")).toBe("still old");
      expect(await metric(proxy, 'sockpool_reloads_total{result="rejected"}')).toBe(2);
      // A valid one with a rule: new connections meet it, an open one relays on.
      const { conn: open } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
      config.write(
        `[socks]\nlisten = "127.0.0.1:0"\n[[access.rules]]\naction = "deny"\nports = [${echo.port}]\n`,
      );
      await reload(proxy, "reloaded");
      await expect(socksConnect(proxy.socksPort, "127.0.0.1", echo.port)).rejects.toMatchObject({
        reply: { code: REPLY.ruleset },
      });
      expect(await roundTrip(open, "allowed before")).toBe("allowed before");
      open.end();
      expect(await proxy.stop("SIGTERM")).toBe(0);
    } finally {
      echo.close();
    }
  });

  test("clients connecting throughout several reloads: none fails", async () => {
    const echo = startEcho();
    const config = configFile();
    const variants = [
      `[socks]\nlisten = "127.0.0.1:0"\n[log]\nlevel = "info"\n`,
      `[socks]\nlisten = "127.0.0.1:0"\n[log]\nlevel = "debug"\n[relay]\nidle_timeout_ms = 60000\n${forwardSection(echo)}`,
    ];
    config.write(variants[0]!);
    try {
      const proxy = await spawnProxy(["--config", config.path, "--workers", "2"]);
      let running = true;
      let succeeded = 0;
      const failures: string[] = [];
      const client = async (id: number) => {
        for (let i = 0; running; i++) {
          try {
            const message = `c${id}-${i}`;
            if ((await echoThrough(proxy.socksPort, echo.port, message)) !== message)
              failures.push(`${message}: wrong echo`);
            else succeeded++;
          } catch (error) {
            failures.push(String(error));
          }
        }
      };
      // And a real client: curl through the SOCKS listener to an HTTP server, one process each.
      const web = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("hi") });
      const curl = requireTool("curl");
      const curlClient = async () => {
        while (running) {
          const child = Bun.spawn(
            [
              curl,
              "--silent",
              "--show-error",
              "--max-time",
              "10",
              "--socks5-hostname",
              `127.0.0.1:${proxy.socksPort}`,
              `http://127.0.0.1:${web.port}/`,
            ],
            { stdout: "pipe", stderr: "pipe" },
          );
          const [body, error, code] = await Promise.all([
            new Response(child.stdout).text(),
            new Response(child.stderr).text(),
            child.exited,
          ]);
          if (code !== 0 || body !== "hi") failures.push(`curl exit ${code}: ${error}`);
          else curlSucceeded++;
        }
      };
      let curlSucceeded = 0;
      const clients = [...[0, 1, 2, 3].map(client), curlClient()];
      const reloads = 6;
      for (let n = 1; n <= reloads; n++) {
        config.write(variants[n % 2]!);
        const before = succeeded;
        await reload(proxy, "reloaded");
        await waitFor(() => succeeded > before + 20, "clients to get through after a reload");
      }
      running = false;
      await Promise.all(clients);
      web.stop(true);
      expect(failures).toEqual([]);
      expect(curlSucceeded).toBeGreaterThan(0);
      expect(succeeded).toBeGreaterThan(reloads * 20);
      expect(await metric(proxy, 'sockpool_reloads_total{result="ok"}')).toBe(reloads);
      expect(await proxy.stop("SIGTERM")).toBe(0);
    } finally {
      echo.close();
    }
  });
});
