// SOCKS5 handshake against the real proxy, in-process: CONNECT by IPv4, IPv6 and name, reply
// codes, split and pipelined handshakes, RFC 1929 auth, malformed input and the handshake
// deadline. Not the relay's throughput or backpressure (relay.test.ts).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { bytes, concat, fromHex, text, toHex } from "../support/bytes.ts";
import { cleanup } from "../support/cleanup.ts";
import type { Conn } from "../support/conn.ts";
import { type LogRecord, startTestProxy, type TestProxy } from "../support/proxy.ts";
import { connectTcp } from "../support/sockets.ts";
import {
  echoThrough,
  encodeAuth,
  encodeGreeting,
  encodeRequest,
  REPLY,
  readReply,
  SOCKS,
  type SocksReply,
  socksConnect,
  socksHandshake,
} from "../support/socks-client.ts";
import { onBothLoopbacks, refusedPort, startEcho, type Target } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

/** Writes each byte on its own. The pause between bytes (pacing, not a readiness wait) lets the
 *  proxy see them as separate reads, so every "need more bytes" path runs. */
async function writeByteByByte(conn: Conn, data: Uint8Array): Promise<void> {
  for (const byte of data) {
    await conn.write(Uint8Array.of(byte));
    await Bun.sleep(2);
  }
}

/** The proxy is idle again: no open connection and no slot held. */
async function expectIdle(handle: TestProxy): Promise<void> {
  await waitFor(
    () => {
      const stats = handle.proxy.stats();
      return stats.connections_open === 0 && stats.pool.in_use === 0;
    },
    () => `the proxy to go idle; stats ${JSON.stringify(handle.proxy.stats())}`,
  );
  expect(handle.proxy.stats().pool.free).toBe(handle.config.pool.slots);
}

/** After a failure reply the proxy closes: nothing more arrives, then EOF. */
async function expectClosedAfter(conn: Conn): Promise<void> {
  const rest = await conn.readToEnd();
  expect(toHex(rest)).toBe("");
}

describe("SOCKS5 CONNECT (no auth)", () => {
  let handle: TestProxy;
  let echo: Target;

  beforeAll(async () => {
    handle = await startTestProxy({ pool: { strategy: "queue" } });
    echo = startEcho();
  });
  afterAll(async () => {
    await handle.close();
    echo.close();
  });

  test("IPv4: success reply carries the upstream socket's local address; bytes relay; one log line", async () => {
    const before = echo.conns.length;
    const { conn, reply } = await socksConnect(handle.socksPort, "127.0.0.1", echo.port);
    expect(reply.version).toBe(SOCKS.version);
    expect(reply.atyp).toBe(SOCKS.ipv4);
    // The target sees the proxy's upstream socket; the reply must name that very socket.
    await waitFor(() => echo.conns.length > before, "the echo target to accept");
    const upstream = echo.conns[before]!;
    expect(`${reply.host}:${reply.port}`).toBe(`${upstream.remoteAddress}:${upstream.remotePort}`);

    await conn.write("ping over IPv4");
    expect(text(await conn.read(14))).toBe("ping over IPv4");
    conn.shutdown();
    expect((await conn.readToEnd()).length).toBe(0); // the echo's FIN comes back through

    const line = await handle.waitForConnectionLog(
      (record) => record.target === `127.0.0.1:${echo.port}`,
      "the IPv4 CONNECT",
    );
    expect(line).toMatchObject({ kind: "socks", outcome: "ok", bytes_up: 14, bytes_down: 14 });
    expect(line.client).toBe(`127.0.0.1:${conn.localPort}`);
    expect(typeof line.duration_ms).toBe("number");
    await expectIdle(handle);
  });

  test("IPv6: CONNECT to ::1 with ATYP 04", async () => {
    const echo6 = startEcho("::1");
    try {
      const { conn, reply } = await socksConnect(handle.socksPort, "::1", echo6.port);
      expect(reply.code).toBe(REPLY.succeeded);
      expect(reply.atyp).toBe(SOCKS.ipv6);
      await waitFor(() => echo6.conns.length > 0, "the ::1 echo target to accept");
      expect(reply.host).toBe("::1");
      expect(reply.port).toBe(echo6.conns[0]!.remotePort);
      await conn.write("ping over IPv6");
      expect(text(await conn.read(14))).toBe("ping over IPv6");
      conn.end();
      const line = await handle.waitForConnectionLog(
        (record) => record.target === `[::1]:${echo6.port}`,
        "the IPv6 CONNECT",
      );
      expect(line.outcome).toBe("ok");
    } finally {
      echo6.close();
    }
  });

  test('domain: CONNECT to "localhost" (ATYP 03) is resolved by the proxy', async () => {
    const both = onBothLoopbacks((host, port) => startEcho(host, port));
    try {
      const { conn, reply } = await socksConnect(handle.socksPort, "localhost", both.port);
      expect(reply.code).toBe(REPLY.succeeded);
      expect(["127.0.0.1", "::1"]).toContain(reply.host);
      await conn.write("ping by name");
      expect(text(await conn.read(12))).toBe("ping by name");
      conn.end();
      const line = await handle.waitForConnectionLog(
        (record) => record.target === `localhost:${both.port}`,
        "the CONNECT by name",
      );
      expect(line.outcome).toBe("ok");
    } finally {
      both.close();
    }
  });

  test("refused target: reply 05, then close; logged as refused", async () => {
    const port = refusedPort();
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    const reply = await socksHandshake(conn, "127.0.0.1", port);
    expect(reply.version).toBe(SOCKS.version);
    expect(reply.code).toBe(REPLY.refused);
    await expectClosedAfter(conn);
    const line = await handle.waitForConnectionLog(
      (record) => record.target === `127.0.0.1:${port}`,
      "the refused CONNECT",
    );
    expect(line).toMatchObject({ outcome: "refused", reply: REPLY.refused, bytes_up: 0 });
    await expectIdle(handle);
  });

  test('name not found ("nonexistent.invalid"): reply 04, then close', async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    const reply = await socksHandshake(conn, "nonexistent.invalid", 80);
    expect(reply.code).toBe(REPLY.hostUnreachable);
    await expectClosedAfter(conn);
    const line = await handle.waitForConnectionLog(
      (record) => record.target === "nonexistent.invalid:80",
      "the NXDOMAIN CONNECT",
    );
    expect(line).toMatchObject({ outcome: "unreachable", reply: REPLY.hostUnreachable });
  });

  test("handshake fed one byte at a time (greeting, then request) works and holds no slot after", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await writeByteByByte(conn, encodeGreeting([SOCKS.noAuth]));
    expect(toHex(await conn.read(2))).toBe("05 00");
    await writeByteByByte(conn, encodeRequest("127.0.0.1", echo.port));
    const reply = await readReply(conn);
    expect(reply.code).toBe(REPLY.succeeded);
    await writeByteByByte(conn, bytes("split"));
    expect(text(await conn.read(5))).toBe("split");
    conn.end();
    await expectIdle(handle);
  });

  test("a greeting offering several methods gets the no-auth one", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(encodeGreeting([0x80, SOCKS.password, SOCKS.noAuth]));
    expect(toHex(await conn.read(2))).toBe("05 00");
    await conn.write(encodeRequest("127.0.0.1", echo.port));
    expect((await readReply(conn)).code).toBe(REPLY.succeeded);
    conn.end();
  });

  test("pipelined early data: greeting + request + payload in ONE write reach the target", async () => {
    const before = echo.conns.length;
    const payload = bytes("early data sent before any reply");
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(
      concat(encodeGreeting([SOCKS.noAuth]), encodeRequest("127.0.0.1", echo.port), payload),
    );
    expect(toHex(await conn.read(2))).toBe("05 00");
    expect((await readReply(conn)).code).toBe(REPLY.succeeded);
    expect(text(await conn.read(payload.length))).toBe(text(payload));
    await waitFor(() => echo.conns.length > before, "the echo target to accept");
    expect(echo.conns[before]!.receivedBytes).toBe(payload.length);
    conn.end();
  });

  test("BIND (02) and UDP ASSOCIATE (03) get reply 07, then close", async () => {
    for (const command of [SOCKS.bind, SOCKS.udpAssociate]) {
      const conn = await connectTcp("127.0.0.1", handle.socksPort);
      const reply = await socksHandshake(conn, "127.0.0.1", echo.port, { command });
      expect(reply.code).toBe(REPLY.commandNotSupported);
      await expectClosedAfter(conn);
    }
    expect(await echoThrough(handle.socksPort, echo.port, "still serving")).toBe("still serving");
  });
});

describe("SOCKS5 malformed input: a clear reply or a close, and the server keeps serving", () => {
  let handle: TestProxy;
  let echo: Target;

  beforeAll(async () => {
    handle = await startTestProxy({ pool: { strategy: "queue-ts" } });
    echo = startEcho();
  });
  afterAll(async () => {
    await handle.close();
    echo.close();
  });

  async function greeted(): Promise<Conn> {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(encodeGreeting([SOCKS.noAuth]));
    expect(toHex(await conn.read(2))).toBe("05 00");
    return conn;
  }

  async function expectStillServing(message: string): Promise<void> {
    expect(await echoThrough(handle.socksPort, echo.port, message)).toBe(message);
    await expectIdle(handle);
  }

  async function failureReply(conn: Conn): Promise<SocksReply> {
    const reply = await readReply(conn);
    expect(reply.version).toBe(SOCKS.version);
    await expectClosedAfter(conn);
    return reply;
  }

  test("unknown command 0x09 → reply 07", async () => {
    const conn = await greeted();
    await conn.write(encodeRequest("127.0.0.1", echo.port, 0x09));
    expect((await failureReply(conn)).code).toBe(REPLY.commandNotSupported);
    await expectStillServing("after 0x09");
  });

  test("unknown address type 0x02 → reply 08", async () => {
    const conn = await greeted();
    // Only the header: with an unknown ATYP the proxy cannot know how long the address is.
    await conn.write(fromHex("05 01 00 02"));
    expect((await failureReply(conn)).code).toBe(REPLY.addressTypeNotSupported);
    await expectStillServing("after atyp 02");
  });

  test("zero-length domain → a failure reply", async () => {
    const conn = await greeted();
    await conn.write(fromHex("05 01 00 03 00 00 50"));
    expect((await failureReply(conn)).code).not.toBe(REPLY.succeeded);
    await expectStillServing("after empty name");
  });

  test("HTTP garbage → close without a reply", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write("GET / HTTP/1.1\r\nHost: example\r\n\r\n");
    await expectClosedAfter(conn);
    await expectStillServing("after garbage");
  });

  test("wrong version 0x04 (a SOCKS4 request) → close without a reply", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(fromHex("04 01 00 50 7f 00 00 01 00"));
    await expectClosedAfter(conn);
    await expectStillServing("after socks4");
  });

  test("wrong version in the request (after a good greeting) → close", async () => {
    const conn = await greeted();
    await conn.write(fromHex("04 01 00 01 7f 00 00 01 00 50"));
    const rest = await conn.readToEnd();
    // A failure reply (05 xx ...) is acceptable, a success is not.
    if (rest.length > 0) {
      expect(rest[0]).toBe(SOCKS.version);
      expect(rest[1]).not.toBe(REPLY.succeeded);
    }
    await expectStillServing("after request v4");
  });

  test("no acceptable method (only 0x80 offered) → 05 FF, then close", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(encodeGreeting([0x80]));
    expect(toHex(await conn.readToEnd())).toBe("05 ff");
    await expectStillServing("after 05 ff");
  });

  test("a greeting with zero methods → 05 FF or close, never a method", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(fromHex("05 00"));
    const answer = toHex(await conn.readToEnd());
    expect(["", "05 ff"]).toContain(answer);
    await expectStillServing("after zero methods");
  });

  test("client closes mid-handshake → no leak", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(fromHex("05 01"));
    conn.end();
    await expectStillServing("after abort");
  });
});

describe("SOCKS5 users with hashed passwords (checked off the event loop)", () => {
  let handle: TestProxy;
  let echo: Target;

  beforeAll(async () => {
    // bcrypt at its lowest cost: the point is the asynchronous path, not the hash's strength.
    const hash = await Bun.password.hash("h4shed", { algorithm: "bcrypt", cost: 4 });
    handle = await startTestProxy({
      socks: { auth: "password", users: [{ username: "dora", password_hash: hash }] },
      pool: { strategy: "queue" },
    });
    echo = startEcho();
  });
  afterAll(async () => {
    await handle.close();
    echo.close();
  });

  test("the right password logs in and relays", async () => {
    const { conn, reply } = await socksConnect(handle.socksPort, "127.0.0.1", echo.port, {
      auth: { user: "dora", pass: "h4shed" },
    });
    expect(reply.code).toBe(REPLY.succeeded);
    await conn.write("via hash");
    expect(text(await conn.read(8))).toBe("via hash");
    conn.end();
    await expectIdle(handle);
    // The access log's fields: who, through which listener, to what address.
    const line = await handle.waitForConnectionLog(
      (record) => record.user === "dora" && record.outcome === "ok",
      "dora's connection line",
    );
    expect(line).toMatchObject({
      kind: "socks",
      listener: "127.0.0.1:0",
      target: `127.0.0.1:${echo.port}`,
      upstream: `127.0.0.1:${echo.port}`,
      bytes_up: 8,
      bytes_down: 8,
    });
  });

  test("greeting, login, request and early data in one write: nothing is lost while the hash is checked", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(
      concat(
        encodeGreeting([SOCKS.password]),
        encodeAuth("dora", "h4shed"),
        encodeRequest("127.0.0.1", echo.port),
        bytes("early!"),
      ),
    );
    expect(toHex(await conn.read(4))).toBe("05 02 01 00");
    expect((await readReply(conn)).code).toBe(REPLY.succeeded);
    expect(text(await conn.read(6))).toBe("early!");
    conn.end();
    await expectIdle(handle);
  });

  test("a wrong password → 01 01 and outcome auth_failed", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(concat(encodeGreeting([SOCKS.password]), encodeAuth("dora", "nope")));
    expect(toHex(await conn.readToEnd())).toBe("05 02 01 01");
    await handle.waitForConnectionLog(
      (record) => record.outcome === "auth_failed",
      "the failed hashed login",
    );
    expect(JSON.stringify(handle.logs)).not.toContain("h4shed");
  });
});

describe("SOCKS5 username/password (RFC 1929)", () => {
  const alice = { user: "alice", pass: "s3cret-pw" };
  let handle: TestProxy;
  let echo: Target;

  beforeAll(async () => {
    handle = await startTestProxy({
      socks: {
        auth: "password",
        users: [
          { username: alice.user, password: alice.pass },
          { username: "bob", password: "other" },
        ],
      },
      pool: { strategy: "queue" },
    });
    echo = startEcho();
  });
  afterAll(async () => {
    await handle.close();
    echo.close();
  });

  test("right password → 01 00, then CONNECT works", async () => {
    const { conn, reply } = await socksConnect(handle.socksPort, "127.0.0.1", echo.port, {
      auth: alice,
    });
    expect(reply.code).toBe(REPLY.succeeded);
    await conn.write("authed");
    expect(text(await conn.read(6))).toBe("authed");
    conn.end();
    await expectIdle(handle);
  });

  test("wrong password → 01 01, then close; the password is never logged", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(encodeGreeting([SOCKS.password]));
    expect(toHex(await conn.read(2))).toBe("05 02");
    await conn.write(encodeAuth(alice.user, "wrong-pw-xyz"));
    expect(toHex(await conn.readToEnd())).toBe("01 01");
    const line = await handle.waitForConnectionLog(
      (record) => record.outcome === "auth_failed",
      "the failed auth",
    );
    expect(line.kind).toBe("socks");
    const everything = JSON.stringify(handle.logs);
    expect(everything).not.toContain("wrong-pw-xyz");
    expect(everything).not.toContain(alice.pass);
    await expectIdle(handle);
  });

  test("unknown user → 01 01, then close", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(concat(encodeGreeting([SOCKS.password]), encodeAuth("mallory", alice.pass)));
    expect(toHex(await conn.readToEnd())).toBe("05 02 01 01");
  });

  test("a wrong ULEN pulls the password into the name: refused, and the password is not logged", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    const name = bytes(alice.user);
    const password = bytes(alice.pass);
    // ULEN counts the name, PLEN and the password: UNAME = "alice" PLEN "s3cret-pw".
    const misframed = concat(
      Uint8Array.of(0x01, name.length + 1 + password.length),
      name,
      Uint8Array.of(password.length),
      password,
      Uint8Array.of(0x01, 0x78), // PLEN 1, PASSWD "x"
    );
    await conn.write(concat(encodeGreeting([SOCKS.password]), misframed));
    expect(toHex(await conn.readToEnd())).toBe("05 02 01 01");
    const isFailure = (record: LogRecord) =>
      record.msg === "authentication failed" && record.user_known === false;
    await waitFor(() => handle.logs.some(isFailure), "the authentication failed line");
    expect(handle.logs.find(isFailure)).toMatchObject({ level: "info" });
    expect(JSON.stringify(handle.logs)).not.toContain(alice.pass);
  });

  test("another user's password does not work for alice", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(concat(encodeGreeting([SOCKS.password]), encodeAuth(alice.user, "other")));
    expect(toHex(await conn.readToEnd())).toBe("05 02 01 01");
  });

  test("a client offering only no-auth → 05 FF, then close", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(encodeGreeting([SOCKS.noAuth]));
    expect(toHex(await conn.readToEnd())).toBe("05 ff");
  });

  test("a client offering no-auth and password gets password", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(encodeGreeting([SOCKS.noAuth, SOCKS.password]));
    expect(toHex(await conn.read(2))).toBe("05 02");
    conn.end();
  });

  test("auth handshake fed one byte at a time works", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await writeByteByByte(conn, encodeGreeting([SOCKS.password]));
    expect(toHex(await conn.read(2))).toBe("05 02");
    await writeByteByByte(conn, encodeAuth(alice.user, alice.pass));
    expect(toHex(await conn.read(2))).toBe("01 00");
    await writeByteByByte(conn, encodeRequest("127.0.0.1", echo.port));
    expect((await readReply(conn)).code).toBe(REPLY.succeeded);
    await conn.write("x");
    expect(text(await conn.read(1))).toBe("x");
    conn.end();
    await expectIdle(handle);
  });

  test("greeting + auth + request + payload pipelined in one write", async () => {
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(
      concat(
        encodeGreeting([SOCKS.password]),
        encodeAuth(alice.user, alice.pass),
        encodeRequest("127.0.0.1", echo.port),
        bytes("pipelined"),
      ),
    );
    expect(toHex(await conn.read(4))).toBe("05 02 01 00");
    expect((await readReply(conn)).code).toBe(REPLY.succeeded);
    expect(text(await conn.read(9))).toBe("pipelined");
    conn.end();
  });
});

describe("SOCKS5 handshake deadline", () => {
  const HANDSHAKE_TIMEOUT_MS = 300;
  /** Timer jitter allowed below the deadline: it may fire late, not early. */
  const EARLY_MS_MAX = 10;
  let handle: TestProxy;
  let echo: Target;

  beforeAll(async () => {
    handle = await startTestProxy({
      socks: { handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS },
      pool: { strategy: "queue-ts" },
    });
    echo = startEcho();
  });
  afterAll(async () => {
    await handle.close();
    echo.close();
  });

  async function expectClosedByDeadline(conn: Conn, started: number): Promise<void> {
    await conn.waitEnd(HANDSHAKE_TIMEOUT_MS + 3_000);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - EARLY_MS_MAX);
  }

  test("a silent client is closed after handshake_timeout_ms", async () => {
    const started = performance.now();
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await expectClosedByDeadline(conn, started);
    expect(conn.available).toBe(0);
    await handle.waitForConnectionLog(
      (record) => record.outcome === "handshake_timeout",
      "the handshake timeout",
    );
    await expectIdle(handle);
  });

  test("a client stalled after half a request is closed too", async () => {
    const started = performance.now();
    const conn = await connectTcp("127.0.0.1", handle.socksPort);
    await conn.write(encodeGreeting([SOCKS.noAuth]));
    expect(toHex(await conn.read(2))).toBe("05 00");
    await conn.write(encodeRequest("127.0.0.1", echo.port).subarray(0, 6));
    await expectClosedByDeadline(conn, started);
    await expectIdle(handle);
  });

  test("the deadline covers the handshake only: a relayed connection idle past it stays open", async () => {
    const { conn } = await socksConnect(handle.socksPort, "127.0.0.1", echo.port);
    // Wait well past the handshake deadline by polling the proxy, then prove the relay is alive.
    const started = performance.now();
    await waitFor(
      () => performance.now() - started > HANDSHAKE_TIMEOUT_MS * 3,
      "three handshake timeouts to pass",
    );
    expect(conn.eof).toBe(false);
    await conn.write("alive");
    expect(text(await conn.read(5))).toBe("alive");
    conn.end();
  });
});
