// The admin API around the program's life: the token rule, start errors (a port taken, a public
// address without a token), /readyz during a drain on SIGTERM, and the telemetry events of a Worker
// crash and of connections_max. Each on its own spawned sockpool with 2 Workers.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {
  ConnectionsResponse,
  StatusResponse,
  TelemetryEvent,
  TelemetryResponse,
} from "../../src/admin/types.ts";
import { LIMITS } from "../../src/limits.ts";
import { cleanup } from "../support/cleanup.ts";
import { runCli, spawnProxy } from "../support/proxy-process.ts";
import { connectTcp } from "../support/sockets.ts";
import { REPLY, SocksReplyError, socksConnect } from "../support/socks-client.ts";
import { startEcho } from "../support/targets.ts";
import { withDeadline } from "../support/wait.ts";
import { getJson, sampleValue, parseExposition } from "./support.ts";

const directory = mkdtempSync(join(tmpdir(), "sockpool-admin-"));
afterAll(async () => {
  await cleanup();
  rmSync(directory, { recursive: true, force: true });
});

function configFile(name: string, text: string): string {
  const path = join(directory, name);
  writeFileSync(path, text);
  return path;
}

/** Polls GET `path` until `done` holds for its JSON; returns that body. */
async function pollJson<T>(
  admin: string,
  path: string,
  done: (body: T) => boolean,
  token?: string,
): Promise<T> {
  let last: T | null = null;
  const started = performance.now();
  while (performance.now() - started < 10_000) {
    last = await getJson<T>(admin, path, token);
    if (done(last)) return last;
    await Bun.sleep(20);
  }
  throw new Error(`GET ${path} never reached the expected state; last: ${JSON.stringify(last)}`);
}

describe("the token", () => {
  test("with admin.token set, every path needs Authorization: Bearer TOKEN (401 otherwise)", async () => {
    const token = "s3cret-admin-token-0123";
    const echo = startEcho();
    const proxy = await spawnProxy([
      "--config",
      configFile("token.toml", `[admin]\ntoken = "${token}"\n`),
      "--socks",
      "127.0.0.1:0",
      "--socks-user",
      "alice:wonderland",
      "--workers",
      "2",
    ]);
    try {
      expect(proxy.logs.find((r) => r.msg === "admin listening")?.token).toBe("required");
      for (const path of ["/api/status", "/metrics", "/", "/healthz", "/nowhere"]) {
        for (const authorization of [undefined, "Bearer wrong-token", `Basic ${token}`, token]) {
          const response = await fetch(`http://${proxy.admin}${path}`, {
            headers: authorization === undefined ? {} : { authorization },
          });
          expect(response.status).toBe(401);
          expect(response.headers.get("www-authenticate")).toStartWith("Bearer");
          expect((await response.text()).trim().split("\n")).toHaveLength(1);
        }
      }
      // A token that differs only in its last character, and one that is a prefix, fail too.
      for (const wrong of [`${token.slice(0, -1)}4`, token.slice(0, -1), `${token}x`]) {
        const response = await fetch(`http://${proxy.admin}/healthz`, {
          headers: { authorization: `Bearer ${wrong}` },
        });
        expect(response.status).toBe(401);
      }
      const status = await getJson<StatusResponse>(proxy.admin, "/api/status", token);
      expect(status.ready).toBe(true);
      const metrics = await fetch(`http://${proxy.admin}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(metrics.status).toBe(200);

      // With password auth a connection lists its user; one that has sent nothing is in "front",
      // its target not known yet.
      const authed = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port, {
        auth: { user: "alice", pass: "wonderland" },
      });
      const silent = await connectTcp("127.0.0.1", proxy.socksPort);
      const page = await pollJson<ConnectionsResponse>(
        proxy.admin,
        "/api/connections",
        (body) => body.total === 2,
        token,
      );
      // Sorted here: two Workers' ages can tie at whole milliseconds.
      const rows = page.connections.map((c) => [c.phase, c.user ?? null, c.target]).sort();
      expect(rows).toEqual([
        ["front", null, ""],
        ["relay", "alice", `127.0.0.1:${echo.port}`],
      ]);
      authed.conn.end();
      silent.end();
    } finally {
      await proxy.stop();
      echo.close();
    }
  });

  test("without a token, a loopback admin API is open; a public address is refused at start", async () => {
    // The open case is every other test here (127.0.0.1:0, no token). A public bind without a
    // token is a config error (exit 2) naming the fix; no socket is ever opened.
    const refused = await runCli(["--socks", "127.0.0.1:0", "--admin", "0.0.0.0:0"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("expected a loopback address unless admin.token is set");
    expect(refused.stderr).toContain("Authorization: Bearer TOKEN");
  });
});

describe("start errors", () => {
  test("an admin port already taken stops the start with the address, the error and the fix", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const result = await runCli([
        "--socks",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--admin",
        `127.0.0.1:${taken.port}`,
        "--log-format",
        "json",
      ]);
      expect(result.code).toBe(1);
      const line = result.stderr
        .split("\n")
        .filter((text) => text.startsWith("{"))
        .map((text) => JSON.parse(text) as Record<string, unknown>)
        .find((record) => record.msg === "cannot start");
      expect(String(line?.error)).toStartWith(
        `admin API cannot listen on 127.0.0.1:${taken.port}: EADDRINUSE`,
      );
      expect(String(line?.error)).toContain("--admin HOST:PORT");
      expect(String(line?.error)).toContain("--admin off");
      // It stopped before any Worker listened.
      expect(result.stderr).not.toContain('"msg":"listening"');
    } finally {
      taken.stop(true);
    }
  });

  test("--admin off: no admin API at all", async () => {
    const proxy = await spawnProxy(["--socks", "127.0.0.1:0", "--workers", "1", "--admin", "off"]);
    try {
      expect(proxy.admin).toBe("");
      expect(proxy.logs.some((record) => record.msg === "admin listening")).toBe(false);
    } finally {
      await proxy.stop();
    }
  });
});

describe("/readyz", () => {
  test("turns 503 on SIGTERM while a connection drains, and the connection still relays", async () => {
    const echo = startEcho();
    const proxy = await spawnProxy(["--socks", "127.0.0.1:0", "--workers", "2"]);
    const ready = await fetch(`http://${proxy.admin}/readyz`);
    expect(ready.status).toBe(200);
    const { conn } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
    await conn.write("before");
    await conn.read(6);
    proxy.process.kill("SIGTERM");
    let body = "";
    const started = performance.now();
    while (performance.now() - started < 10_000) {
      const response = await fetch(`http://${proxy.admin}/readyz`);
      body = await response.text();
      if (response.status === 503) break;
      await Bun.sleep(10);
    }
    expect(body).toBe("not ready: stopping (draining connections)\n");
    // The drain: the open connection is still served, and /healthz still says the process is up.
    await conn.write("during");
    expect(new TextDecoder().decode(await conn.read(6))).toBe("during");
    expect((await fetch(`http://${proxy.admin}/healthz`)).status).toBe(200);
    const status = await getJson<StatusResponse>(proxy.admin, "/api/status");
    expect(status).toMatchObject({ ready: false, connections_open: 1 });
    conn.end();
    expect(await withDeadline(proxy.process.exited, 15_000, "the proxy to exit")).toBe(0);
    echo.close();
  });

  test("server.drain_delay_ms: after SIGTERM, /readyz is 503 while new clients are still served, then the drain", async () => {
    // A balancer checking /readyz every few hundred ms must see 503 before the listeners close,
    // or it sends clients to a closed port (refused) or to a closing one (reset in its queue).
    const echo = startEcho();
    const config = configFile(
      "drain-delay.toml",
      '[server]\nworkers = 2\ndrain_delay_ms = 1500\n\n[socks]\nlisten = "127.0.0.1:0"\n',
    );
    const proxy = await spawnProxy(["--config", config]);
    const sent = performance.now();
    proxy.process.kill("SIGTERM");
    while ((await fetch(`http://${proxy.admin}/readyz`)).status !== 503) await Bun.sleep(10);
    // Within the delay: a new client is accepted and relayed.
    const { conn } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
    await conn.write("late");
    expect(new TextDecoder().decode(await conn.read(4))).toBe("late");
    expect(performance.now() - sent).toBeLessThan(1500); // still inside the delay
    conn.end();
    expect(await withDeadline(proxy.process.exited, 15_000, "the proxy to exit")).toBe(0);
    expect(performance.now() - sent).toBeGreaterThanOrEqual(1500);
    const stopping = proxy.logs.find((record) => record.msg === "stopping");
    expect(stopping).toMatchObject({ drain_delay_ms: 1500 });
    echo.close();
  });

  test("server.drain_delay_ms: a second SIGTERM during the delay stops at once", async () => {
    const config = configFile(
      "drain-delay-second.toml",
      '[server]\nworkers = 1\ndrain_delay_ms = 60000\n\n[socks]\nlisten = "127.0.0.1:0"\n',
    );
    const proxy = await spawnProxy(["--config", config]);
    proxy.process.kill("SIGTERM");
    while ((await fetch(`http://${proxy.admin}/readyz`)).status !== 503) await Bun.sleep(10);
    // A repeat within LIMITS.signal_repeat_ms is taken for one signal delivered twice; an
    // operator's second signal comes later, which is what this waits for.
    await Bun.sleep(LIMITS.signal_repeat_ms + 50);
    proxy.process.kill("SIGTERM");
    expect(await withDeadline(proxy.process.exited, 10_000, "the proxy to exit")).toBe(0);
  });

  test("answers a balancer's HTTP/1.0 check with no Host header (HAProxy's option httpchk)", async () => {
    // Bun gives such a request a relative url ("/readyz"); the admin API must still route it.
    const proxy = await spawnProxy(["--socks", "127.0.0.1:0", "--workers", "1"]);
    try {
      const colon = proxy.admin.lastIndexOf(":");
      for (const path of ["/readyz", "/healthz", "/api/status?x=1"]) {
        const conn = await connectTcp("127.0.0.1", Number(proxy.admin.slice(colon + 1)));
        await conn.write(`GET ${path} HTTP/1.0\r\n\r\n`);
        const answer = new TextDecoder().decode(await conn.readToEnd());
        expect(answer.split("\r\n")[0]).toBe("HTTP/1.1 200 OK");
      }
    } finally {
      await proxy.stop();
    }
  });
});

describe("telemetry events", () => {
  test("a Worker crash and its restart (SOCKPOOL_FAULT_INJECTION=1 + SIGUSR2)", async () => {
    const proxy = await spawnProxy(["--socks", "127.0.0.1:0", "--workers", "2"], {
      env: { SOCKPOOL_FAULT_INJECTION: "1" },
    });
    try {
      proxy.process.kill("SIGUSR2");
      const body = await pollJson<TelemetryResponse>(
        proxy.admin,
        "/api/telemetry/events",
        (response) => response.events.some((event) => event.kind === "worker_restarted"),
      );
      const [crashed, restarted] = body.events as [TelemetryEvent, TelemetryEvent];
      expect(body.events).toHaveLength(2);
      expect(crashed).toMatchObject({
        id: 1,
        kind: "worker_crashed",
        level: "error",
        worker: 0,
        fields: { worker: 0, slots: 0, connections: 0 },
      });
      expect(String(crashed.fields?.error)).toContain("injected crash");
      expect(restarted).toMatchObject({
        id: 2,
        kind: "worker_restarted",
        level: "info",
        worker: 0,
      });
      expect(restarted.time_ms).toBeGreaterThanOrEqual(crashed.time_ms);
      expect(Object.keys(crashed).sort()).toEqual(
        ["id", "time_ms", "worker", "kind", "level", "message", "fields"].sort(),
      );
      // ?since= returns only later events.
      const later = await getJson<TelemetryResponse>(proxy.admin, "/api/telemetry/events?since=1");
      expect(later.events.map((event) => event.id)).toEqual([2]);
      expect(later.next_id).toBe(3);
      // The Worker is counted as restarted, and the proxy is ready again.
      const status = await pollJson<StatusResponse>(proxy.admin, "/api/status", (s) => s.ready);
      expect(status.workers[0]).toMatchObject({ worker: 0, up: true, restarts: 1 });
      const metrics = parseExposition(await (await fetch(`http://${proxy.admin}/metrics`)).text());
      expect(sampleValue(metrics, "sockpool_worker_restarts_total", { worker: "0" })).toBe(1);
    } finally {
      await proxy.stop();
    }
  });

  test("connections_max reached: the first refusal per second per Worker, counted exactly", async () => {
    const echo = startEcho();
    const proxy = await spawnProxy([
      "--config",
      configFile("max.toml", "[server]\nconnections_max = 2\n"),
      "--socks",
      "127.0.0.1:0",
      "--workers",
      "2",
    ]);
    try {
      const held = [
        (await socksConnect(proxy.socksPort, "127.0.0.1", echo.port)).conn,
        (await socksConnect(proxy.socksPort, "127.0.0.1", echo.port)).conn,
      ];
      const refused = 3;
      for (let i = 0; i < refused; i++) {
        const conn = await connectTcp("127.0.0.1", proxy.socksPort);
        await conn.waitEnd(); // closed at accept, with nothing sent
      }
      const body = await pollJson<TelemetryResponse>(
        proxy.admin,
        "/api/telemetry/events",
        (response) => response.events.some((event) => event.kind === "connections_max_reached"),
      );
      const event = body.events.find((e) => e.kind === "connections_max_reached")!;
      expect(event).toMatchObject({ level: "warn", fields: { connections_max: 2 } });
      expect([0, 1]).toContain(event.worker!);
      // Rate-limited per Worker: at most one event per Worker within the second the test takes.
      const events = body.events.filter((e) => e.kind === "connections_max_reached");
      expect(new Set(events.map((e) => e.worker)).size).toBe(events.length);
      const status = await getJson<StatusResponse>(proxy.admin, "/api/status");
      expect(status).toMatchObject({ connections_open: 2, connections_rejected: refused });
      const metrics = parseExposition(await (await fetch(`http://${proxy.admin}/metrics`)).text());
      expect(
        sampleValue(metrics, "sockpool_connections_rejected_total", { reason: "connections_max" }),
      ).toBe(refused);
      for (const conn of held) conn.end();
    } finally {
      await proxy.stop();
      echo.close();
    }
  });
});

describe("the admin API is not reachable through the proxy", () => {
  test("a SOCKS5 CONNECT to the admin address is denied (02, builtin:self), with 2 Workers", async () => {
    // On loopback without a token the admin API trusts whoever connects: a SOCKS5 client (from
    // anywhere the listener is open to) must not become that local caller through the proxy.
    const proxy = await spawnProxy(["--socks", "127.0.0.1:0", "--workers", "2"]);
    try {
      const [host, port] = [
        proxy.admin.slice(0, proxy.admin.lastIndexOf(":")),
        Number(proxy.admin.slice(proxy.admin.lastIndexOf(":") + 1)),
      ];
      for (let i = 0; i < 4; i++) {
        // reusePort spreads these over both Workers: each must know the admin's bound port.
        const refusal = socksConnect(proxy.socksPort, host, port);
        await expect(refusal).rejects.toThrow(SocksReplyError);
        await expect(refusal).rejects.toMatchObject({ reply: { code: REPLY.ruleset } });
      }
      const denials = proxy.logs.filter((record) => record.msg === "access denied");
      expect(denials.every((record) => record.rule === "builtin:self")).toBe(true);
      expect(denials.length).toBe(4);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });
});
