// The PROXY protocol on listeners (proxy_protocol = true, server.trusted_proxies): v1 and v2 from
// a real HAProxy (send-proxy, send-proxy-v2), and raw headers from a test client: the carried client
// address reaches the log line, the per-client limits and the access rules; an untrusted peer, a
// malformed header and a missing one are closed and logged; a header split across reads is held.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TelemetryInput } from "../../src/admin/types.ts";
import { parseConfig } from "../../src/config/schema.ts";
import { encodeProxyV1, encodeProxyV2 } from "../../src/protocol/proxy-header.ts";
import { BALANCER_SOURCE, Balancer } from "../scaleout/cluster.ts";
import { concat, toHex } from "../support/bytes.ts";
import { readResponseHead } from "../support/http-client.ts";
import { cleanup } from "../support/cleanup.ts";
import { startTestProxy } from "../support/proxy.ts";
import { connectTcp } from "../support/sockets.ts";
import {
  encodeGreeting,
  encodeRequest,
  REPLY,
  readReply,
  SOCKS,
  socksConnect,
  socksHandshake,
} from "../support/socks-client.ts";
import { startEcho } from "../support/targets.ts";

const directory = mkdtempSync(join(tmpdir(), "sockpool-proxy-protocol-"));
afterAll(async () => {
  await cleanup();
  rmSync(directory, { recursive: true, force: true });
});

const CLIENT = { host: "203.0.113.7", port: 51_000 };
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A proxy whose SOCKS5 listener expects the header, trusting `trusted` (the test client's own
 *  127.0.0.1 unless said otherwise). */
function proxyProtocolProxy(
  extra: Parameters<typeof startTestProxy>[0] = {},
  trusted = ["127.0.0.1/32"],
) {
  return startTestProxy({
    ...extra,
    server: { trusted_proxies: trusted, ...extra.server },
    socks: { proxy_protocol: true, handshake_timeout_ms: 500, ...extra.socks },
  });
}

/** Sends a header for `source` then a SOCKS5 CONNECT to `port`, and returns the reply code. */
async function connectAs(
  proxyPort: number,
  header: Uint8Array,
  targetPort: number,
): Promise<{ code: number; localPort: number; conn: Awaited<ReturnType<typeof connectTcp>> }> {
  const conn = await connectTcp("127.0.0.1", proxyPort);
  await conn.write(header);
  const reply = await socksHandshake(conn, "127.0.0.1", targetPort);
  return { code: reply.code, localPort: conn.localPort, conn };
}

describe("through a real HAProxy", () => {
  test.each(["v1", "v2"] as const)(
    "send-proxy %s: the client's own address in the log line, HAProxy's as proxy",
    async (version) => {
      const echo = startEcho();
      const tp = await proxyProtocolProxy({}, [`${BALANCER_SOURCE}/32`]);
      const balancer = new Balancer({
        dir: directory,
        servers: [{ name: "s1", port: tp.socksPort }],
        sendProxy: version,
      });
      try {
        await balancer.start();
        const { conn } = await socksConnect(balancer.port, "127.0.0.1", echo.port);
        await conn.write("hello");
        expect(text(await conn.read(5))).toBe("hello");
        conn.end();
        const line = await tp.waitForConnectionLog(
          (record) => record.client === `127.0.0.1:${conn.localPort}`,
          "the client's own address",
        );
        expect(line).toMatchObject({ outcome: "ok", bytes_up: 5, bytes_down: 5 });
        expect(String(line.proxy)).toStartWith(`${BALANCER_SOURCE}:`);
      } finally {
        await balancer.stop();
        await tp.close();
        echo.close();
      }
    },
  );
});

describe("raw headers", () => {
  test("v1 and v2 (IPv4 and IPv6): the carried address is the client; LOCAL keeps the socket's", async () => {
    const echo = startEcho();
    const tp = await proxyProtocolProxy();
    try {
      const cases = [
        [encodeProxyV1(CLIENT, { host: "127.0.0.1", port: tp.socksPort }), "203.0.113.7:51000"],
        [
          encodeProxyV2({ host: "2001:db8::7", port: 443 }, { host: "::1", port: 1 }),
          "[2001:db8::7]:443",
        ],
      ] as const;
      for (const [header, client] of cases) {
        const { code, conn } = await connectAs(tp.socksPort, header, echo.port);
        expect(code).toBe(REPLY.succeeded);
        conn.end();
        await tp.waitForConnectionLog((record) => record.client === client, client);
      }
      const local = await connectAs(tp.socksPort, encodeProxyV2(), echo.port);
      expect(local.code).toBe(REPLY.succeeded);
      local.conn.end();
      await tp.waitForConnectionLog(
        (record) => record.client === `127.0.0.1:${local.localPort}`,
        "LOCAL: the socket's own address",
      );
    } finally {
      await tp.close();
      echo.close();
    }
  });

  test("a header split across reads, with the greeting in its last read, is held and read", async () => {
    const echo = startEcho();
    const tp = await proxyProtocolProxy();
    try {
      const header = encodeProxyV2(CLIENT, { host: "127.0.0.1", port: tp.socksPort });
      const conn = await connectTcp("127.0.0.1", tp.socksPort);
      await conn.write(header.slice(0, 5));
      await Bun.sleep(20);
      await conn.write(header.slice(5, 20));
      await Bun.sleep(20);
      await conn.write(concat(header.slice(20), encodeGreeting([SOCKS.noAuth])));
      expect(toHex(await conn.read(2))).toBe("05 00");
      await conn.write(encodeRequest("127.0.0.1", echo.port));
      expect((await readReply(conn)).code).toBe(REPLY.succeeded);
      conn.end();
      await tp.waitForConnectionLog((record) => record.client === "203.0.113.7:51000", "carried");
      expect(tp.pool.stats().free).toBe(tp.pool.slots);
    } finally {
      await tp.close();
      echo.close();
    }
  });

  test("an untrusted peer: closed before a byte is read, logged bad_request with the reason", async () => {
    const events: TelemetryInput[] = [];
    const tp = await proxyProtocolProxy({ telemetry: { emit: (event) => events.push(event) } }, [
      "192.0.2.0/24",
    ]);
    try {
      const conn = await connectTcp("127.0.0.1", tp.socksPort);
      await conn.write(encodeProxyV1(CLIENT, { host: "127.0.0.1", port: tp.socksPort }));
      expect((await conn.readToEnd()).length).toBe(0);
      const line = await tp.waitForConnectionLog(
        (record) => record.client === `127.0.0.1:${conn.localPort}`,
        "the refused peer, by its own address",
      );
      expect(line).toMatchObject({ outcome: "bad_request", reason: "untrusted_proxy" });
      // A balancer missing from trusted_proxies shows: a warning (1st and every 1000th) and an event.
      expect(tp.logs.find((record) => record.level === "warn")).toMatchObject({
        reason: "untrusted_proxy",
        peer: "127.0.0.1",
        refused: 1,
      });
      expect(events).toEqual([
        expect.objectContaining({
          kind: "proxy_header_refused",
          level: "warn",
          fields: { reason: "untrusted_proxy", peer: "127.0.0.1", refused: 1 },
        }),
      ]);
    } finally {
      await tp.close();
    }
  });

  test("a malformed header, and a client speaking SOCKS5 with no header: closed, logged", async () => {
    const tp = await proxyProtocolProxy();
    try {
      for (const bytes of [
        new TextEncoder().encode("PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n"),
        encodeGreeting([SOCKS.noAuth]),
      ]) {
        const conn = await connectTcp("127.0.0.1", tp.socksPort);
        await conn.write(bytes);
        expect((await conn.readToEnd()).length).toBe(0); // no SOCKS reply: nothing was read as SOCKS
        const line = await tp.waitForConnectionLog(
          (record) => record.client === `127.0.0.1:${conn.localPort}`,
          "the malformed one",
        );
        expect(line).toMatchObject({ outcome: "bad_request", reason: "bad_proxy_header" });
        expect(typeof line.detail).toBe("string");
      }
    } finally {
      await tp.close();
    }
  });

  test("no header within handshake_timeout_ms: closed, logged handshake_timeout", async () => {
    const tp = await proxyProtocolProxy();
    try {
      const conn = await connectTcp("127.0.0.1", tp.socksPort);
      await conn.write(new TextEncoder().encode("PROXY TCP4")); // a start, then silence
      await conn.waitEnd(5_000);
      const line = await tp.waitForConnectionLog(
        (record) => record.client === `127.0.0.1:${conn.localPort}`,
        "the silent one",
      );
      expect(line).toMatchObject({ outcome: "handshake_timeout", reason: "no_proxy_header" });
      expect(tp.pool.stats().free).toBe(tp.pool.slots);
    } finally {
      await tp.close();
    }
  });

  test("clients.connections_max counts the carried address, not the balancer's", async () => {
    const echo = startEcho();
    const tp = await proxyProtocolProxy({ clients: { connections_max: 1 } });
    const destination = { host: "127.0.0.1", port: 1080 };
    try {
      const first = await connectAs(tp.socksPort, encodeProxyV1(CLIENT, destination), echo.port);
      expect(first.code).toBe(REPLY.succeeded);
      // The same client again (another port): over its limit, though the socket is another.
      const again = await connectTcp("127.0.0.1", tp.socksPort);
      await again.write(encodeProxyV1({ ...CLIENT, port: 51_001 }, destination));
      await again.write(encodeGreeting([SOCKS.noAuth]));
      expect((await again.readToEnd()).length).toBe(0);
      const line = await tp.waitForConnectionLog(
        (record) => record.client === "203.0.113.7:51001",
        "the refused second connection",
      );
      expect(line).toMatchObject({ outcome: "limit", reason: "client_connections" });
      // Another client through the same balancer socket address: admitted.
      const other = await connectAs(
        tp.socksPort,
        encodeProxyV1({ host: "203.0.113.8", port: 40_000 }, destination),
        echo.port,
      );
      expect(other.code).toBe(REPLY.succeeded);
      expect(tp.proxy.stats().clients_refused.client_connections).toBe(1);
      first.conn.end();
      other.conn.end();
    } finally {
      await tp.close();
      echo.close();
    }
  });

  test("an access rule on clients matches the carried address", async () => {
    const echo = startEcho();
    const tp = await proxyProtocolProxy({
      access: { rules: [{ name: "no-mallory", action: "deny", clients: ["203.0.113.66/32"] }] },
    });
    const destination = { host: "127.0.0.1", port: 1080 };
    try {
      const mallory = await connectAs(
        tp.socksPort,
        encodeProxyV2({ host: "203.0.113.66", port: 1234 }, destination),
        echo.port,
      );
      expect(mallory.code).toBe(REPLY.ruleset);
      const alice = await connectAs(tp.socksPort, encodeProxyV2(CLIENT, destination), echo.port);
      expect(alice.code).toBe(REPLY.succeeded);
      alice.conn.end();
      const line = await tp.waitForConnectionLog(
        (record) => record.client === "203.0.113.66:1234",
        "mallory's line",
      );
      expect(line).toMatchObject({ outcome: "denied" });
    } finally {
      await tp.close();
      echo.close();
    }
  });

  test("a forward listener: the bytes after the header are the client's first bytes", async () => {
    const echo = startEcho();
    const tp = await startTestProxy({
      server: { trusted_proxies: ["127.0.0.1/32"] },
      forward: [{ target: `127.0.0.1:${echo.port}`, proxy_protocol: true }],
    });
    try {
      const conn = await connectTcp("127.0.0.1", tp.forwardPorts[0]!);
      await conn.write(
        concat(
          encodeProxyV1(CLIENT, { host: "127.0.0.1", port: 1 }),
          new TextEncoder().encode("early"),
        ),
      );
      expect(text(await conn.read(5))).toBe("early");
      conn.end();
      const line = await tp.waitForConnectionLog(
        (record) => record.client === "203.0.113.7:51000",
        "the forward's line",
      );
      expect(line).toMatchObject({ kind: "forward", outcome: "ok" });
    } finally {
      await tp.close();
      echo.close();
    }
  });

  test("an [[http]] listener: the CONNECT request follows the header", async () => {
    const echo = startEcho();
    const tp = await startTestProxy({
      server: { trusted_proxies: ["127.0.0.1/32"] },
      http: [{ proxy_protocol: true }],
    });
    try {
      const conn = await connectTcp("127.0.0.1", tp.httpPorts[0]!);
      const authority = `127.0.0.1:${echo.port}`;
      await conn.write(
        concat(
          encodeProxyV2(CLIENT, { host: "127.0.0.1", port: 3128 }),
          new TextEncoder().encode(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`),
        ),
      );
      expect(await readResponseHead(conn)).toStartWith("HTTP/1.1 200 ");
      await conn.write("tunnel");
      expect(text(await conn.read(6))).toBe("tunnel");
      conn.end();
      const line = await tp.waitForConnectionLog(
        (record) => record.client === "203.0.113.7:51000",
        "the http listener's line",
      );
      expect(line).toMatchObject({ kind: "http", outcome: "ok" });
    } finally {
      await tp.close();
      echo.close();
    }
  });

  test("a client that sends nothing at all is closed at the handshake timeout too", async () => {
    const tp = await proxyProtocolProxy();
    try {
      const conn = await connectTcp("127.0.0.1", tp.socksPort);
      await conn.waitEnd(5_000);
      const line = await tp.waitForConnectionLog(
        (record) => record.client === `127.0.0.1:${conn.localPort}`,
        "the silent one",
      );
      expect(line).toMatchObject({ outcome: "handshake_timeout", reason: "no_proxy_header" });
    } finally {
      await tp.close();
    }
  });

  test("a reload turns proxy_protocol on for a kept listener: the next clients need the header", async () => {
    const echo = startEcho();
    const tp = await startTestProxy({});
    try {
      const before = await socksConnect(tp.socksPort, "127.0.0.1", echo.port);
      const next = parseConfig({
        server: { trusted_proxies: ["127.0.0.1/32"] },
        socks: { listen: `127.0.0.1:${tp.socksPort}`, proxy_protocol: true },
        pool: { slots: 1024, checked: true },
        log: { level: "info", format: "json" },
      });
      const reload = tp.proxy.prepareReload(next);
      expect(reload.listeners.map((listener) => listener.port)).toEqual([tp.socksPort]); // kept
      reload.commit();
      // Open before: unchanged. After: a client with no header is refused, one with it served.
      await before.conn.write("still");
      expect(text(await before.conn.read(5))).toBe("still");
      const bare = await connectTcp("127.0.0.1", tp.socksPort);
      await bare.write(encodeGreeting([SOCKS.noAuth]));
      expect((await bare.readToEnd()).length).toBe(0);
      const { code, conn } = await connectAs(
        tp.socksPort,
        encodeProxyV1(CLIENT, CLIENT),
        echo.port,
      );
      expect(code).toBe(REPLY.succeeded);
      conn.end();
      before.conn.end();
      await tp.waitForConnectionLog((record) => record.client === "203.0.113.7:51000", "carried");
    } finally {
      await tp.close();
      echo.close();
    }
  });
});
