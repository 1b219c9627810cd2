// Per-client limits in the running proxy: open connections per client IP, and a client blocked
// after too many failed logins, each refused at accept with a rate-limited line and a counter.

import { afterAll, expect, test } from "bun:test";
import { concat, toHex } from "../support/bytes.ts";
import { parseConfig } from "../../src/config/schema.ts";
import { cleanup } from "../support/cleanup.ts";
import { readResponseHead } from "../support/http-client.ts";
import type { Conn } from "../support/conn.ts";
import { startTestProxy } from "../support/proxy.ts";
import { connectTcp } from "../support/sockets.ts";
import { encodeAuth, encodeGreeting, SOCKS, socksConnect } from "../support/socks-client.ts";
import { startEcho } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

test("clients.connections_max: a client's next connection is closed at accept, and logged", async () => {
  const echo = startEcho();
  const tp = await startTestProxy({ clients: { connections_max: 2 } });
  const open: Conn[] = [];
  try {
    for (let i = 0; i < 2; i++)
      open.push((await socksConnect(tp.socksPort, "127.0.0.1", echo.port)).conn);
    const third = await connectTcp("127.0.0.1", tp.socksPort);
    await third.waitEnd(); // closed at once, before any handshake
    expect(tp.proxy.stats().clients_refused.client_connections).toBe(1);
    expect(tp.logs.find((record) => record.reason === "client_connections")).toMatchObject({
      level: "warn",
      client: "127.0.0.1",
      refused: 1,
    });
    const line = await tp.waitForConnectionLog(
      (record) => record.client === `127.0.0.1:${third.localPort}`,
      "the refused connection's own line",
    );
    expect(line).toMatchObject({ outcome: "limit", reason: "client_connections" });
    // One leaves: the client may connect again.
    open.pop()!.end();
    await waitFor(() => tp.proxy.stats().connections_open === 1, "one connection closed");
    open.push((await socksConnect(tp.socksPort, "127.0.0.1", echo.port)).conn);
  } finally {
    for (const conn of open) conn.end();
    await tp.close();
    echo.close();
  }
});

test("clients.auth_failures_max: after N failed logins the client is refused, then let in again", async () => {
  const echo = startEcho();
  const tp = await startTestProxy({
    socks: { auth: "password", users: [{ username: "alice", password: "s3cret" }] },
    clients: { auth_failures_max: 2, auth_block_ms: 1_000 },
  });
  const login = (password: string) =>
    concat(encodeGreeting([SOCKS.password]), encodeAuth("alice", password));
  try {
    for (let i = 0; i < 2; i++) {
      const conn = await connectTcp("127.0.0.1", tp.socksPort);
      await conn.write(login("wrong"));
      expect(toHex(await conn.readToEnd())).toBe("05 02 01 01");
    }
    await waitFor(
      () => tp.logs.some((record) => record.msg === "client blocked after too many failed logins"),
      "the block line",
    );
    // Even the right password is not asked for while blocked: the connection closes at accept.
    const blocked = await connectTcp("127.0.0.1", tp.socksPort);
    await blocked.waitEnd();
    expect(tp.proxy.stats().clients_refused.client_blocked).toBe(1);
    // After auth_block_ms (1 s, counted from the block) the client may log in again. The block is
    // a span of time by design, so the test waits for the clock, not for an event.
    const blockedAt = Date.now();
    await waitFor(() => Date.now() > blockedAt + 1_050, "the block to pass", 5_000);
    const { conn } = await socksConnect(tp.socksPort, "127.0.0.1", echo.port, {
      auth: { user: "alice", pass: "s3cret" },
    });
    conn.end();
  } finally {
    await tp.close();
    echo.close();
  }
});

test("after a reload, failed logins on an [[http]] listener still lead to a block", async () => {
  // Only the HTTP listener has auth: the per-client table must count failed logins after a reload
  // as it does at start (it used to look at socks.auth alone when rebuilt by a reload).
  const tp = await startTestProxy({
    socks: { auth: "none", users: [{ username: "alice", password: "s3cret" }] },
    http: [{ auth: "password" }],
    clients: { auth_failures_max: 2, auth_block_ms: 60_000 },
  });
  try {
    const bound = JSON.parse(JSON.stringify(tp.config)) as Record<string, unknown>;
    bound.http = [{ listen: `127.0.0.1:${tp.httpPorts[0]}`, auth: "password" }];
    bound.socks = { ...(bound.socks as object), listen: `127.0.0.1:${tp.socksPort}` };
    tp.proxy.prepareReload(parseConfig(bound)).commit();
    const wrong = `Proxy-Authorization: Basic ${btoa("alice:wrong")}\r\n`;
    for (let i = 0; i < 2; i++) {
      const conn = await connectTcp("127.0.0.1", tp.httpPorts[0]!);
      await conn.write(`CONNECT 127.0.0.1:1 HTTP/1.1\r\n${wrong}\r\n`);
      expect(await readResponseHead(conn)).toStartWith("HTTP/1.1 407 ");
      await conn.waitEnd();
    }
    await waitFor(
      () => tp.logs.some((record) => record.msg === "client blocked after too many failed logins"),
      "the block line",
    );
    const blocked = await connectTcp("127.0.0.1", tp.httpPorts[0]!);
    await blocked.waitEnd();
    expect(tp.proxy.stats().clients_refused.client_blocked).toBe(1);
  } finally {
    await tp.close();
  }
});
