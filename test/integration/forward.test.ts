// Static TCP forwarding, in-process: plain bytes to a fixed target, no handshake. Echo round trip,
// half-close both ways, bulk integrity, several listeners side by side, and an unreachable target.
// Not SOCKS5 (socks.test.ts).

import type { Subprocess } from "bun";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MIB, sha256, text } from "../support/bytes.ts";
import { cleanup } from "../support/cleanup.ts";
import { Prng } from "../support/prng.ts";
import { startTestProxy, type TestProxy } from "../support/proxy.ts";
import { testSeed } from "../support/seed.ts";
import { connectTcp } from "../support/sockets.ts";
import { digestToEnd, sendGenerated } from "../support/streams.ts";
import {
  refusedPort,
  startAnswerAfterFin,
  startBanner,
  startBulk,
  startEcho,
  type Target,
} from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";
import { startBlackhole } from "../soak/targets.ts";

afterAll(cleanup);

describe("forward listeners (SOCKS5 off)", () => {
  let handle: TestProxy;
  let echo: Target;
  let banner: Target;
  let answer: Target;
  const trailer = new TextEncoder().encode("answer trailer after FIN");
  let deadPort: number;

  beforeAll(async () => {
    echo = startEcho();
    banner = startBanner("banner from the second target\n");
    answer = startAnswerAfterFin(trailer);
    deadPort = refusedPort();
    handle = await startTestProxy({
      socks: { enabled: false },
      forward: [
        { target: `127.0.0.1:${echo.port}` },
        { target: `127.0.0.1:${banner.port}` },
        { target: `127.0.0.1:${answer.port}` },
        { target: `127.0.0.1:${deadPort}` },
      ],
      pool: { strategy: "queue-ts" },
    });
  });
  afterAll(async () => {
    await handle.close();
    for (const target of [echo, banner, answer]) target.close();
  });

  test("one listener per [[forward]] entry, each reporting its target; no SOCKS listener", () => {
    expect(handle.proxy.listeners.map((listener) => listener.kind)).toEqual([
      "forward",
      "forward",
      "forward",
      "forward",
    ]);
    expect(handle.proxy.listeners.map((listener) => listener.target)).toEqual([
      `127.0.0.1:${echo.port}`,
      `127.0.0.1:${banner.port}`,
      `127.0.0.1:${answer.port}`,
      `127.0.0.1:${deadPort}`,
    ]);
    expect(new Set(handle.forwardPorts).size).toBe(4);
    for (const port of handle.forwardPorts) expect(port).toBeGreaterThan(0);
  });

  test("echo round trip; the client's FIN comes back as EOF; one log line", async () => {
    const conn = await connectTcp("127.0.0.1", handle.forwardPorts[0]!);
    await conn.write("plain tcp, no handshake");
    expect(text(await conn.read(23))).toBe("plain tcp, no handshake");
    conn.shutdown();
    expect((await conn.readToEnd()).length).toBe(0);
    const line = await handle.waitForConnectionLog(
      (record) => record.target === `127.0.0.1:${echo.port}`,
      "the forwarded echo",
    );
    expect(line).toMatchObject({ kind: "forward", outcome: "ok", bytes_up: 23, bytes_down: 23 });
    // The access log's fields: the listener as configured and the address actually connected.
    expect(line.listener).toBe("127.0.0.1:0");
    expect(line.upstream).toBe(`127.0.0.1:${echo.port}`);
    expect(line.client).toBe(`127.0.0.1:${conn.localPort}`);
  });

  test("each listener goes to its own target", async () => {
    const conn = await connectTcp("127.0.0.1", handle.forwardPorts[1]!);
    expect(text(await conn.read(30))).toBe("banner from the second target\n");
    conn.end();
  });

  test("half-close: request + FIN, then the target's whole answer, then EOF", async () => {
    const seed = testSeed("forward half-close");
    const request = new Uint8Array(512 * 1024 + 3);
    new Prng(seed).fill(request);
    const conn = await connectTcp("127.0.0.1", handle.forwardPorts[2]!);
    await conn.write(request);
    conn.shutdown();
    const reply = text(await conn.readToEnd());
    expect(reply).toBe(`${sha256(request)} ${request.length}\n${text(trailer)}`);
  });

  test("unreachable target: the client is closed without data; logged as refused", async () => {
    const conn = await connectTcp("127.0.0.1", handle.forwardPorts[3]!);
    expect((await conn.readToEnd()).length).toBe(0);
    const line = await handle.waitForConnectionLog(
      (record) => record.target === `127.0.0.1:${deadPort}`,
      "the forward to a refused port",
    );
    expect(line).toMatchObject({ kind: "forward", outcome: "refused" });
  });

  test("bytes sent before the upstream connects are not lost", async () => {
    // The forward dials on accept; data arriving during the dial must be held, not dropped.
    const conn = await connectTcp("127.0.0.1", handle.forwardPorts[0]!);
    const message = "sent the instant the TCP connection opened";
    await conn.write(message);
    expect(text(await conn.read(message.length))).toBe(message);
    conn.end();
  });

  test("all connections closed and slots released afterwards", async () => {
    await waitFor(
      () => handle.proxy.stats().connections_open === 0 && handle.proxy.stats().pool.in_use === 0,
      () => `idle proxy; stats ${JSON.stringify(handle.proxy.stats())}`,
    );
    expect(handle.proxy.stats().pool.free).toBe(handle.config.pool.slots);
  });
});

describe("forward bulk, alongside SOCKS5", () => {
  test("16 MiB full duplex through a forward listener, sha256 both ways", async () => {
    const seed = testSeed("forward bulk");
    const totalBytes = 16 * MIB;
    const target = startBulk(totalBytes, seed);
    const handle = await startTestProxy({
      forward: [{ target: `127.0.0.1:${target.port}` }],
      pool: { strategy: "queue" },
    });
    try {
      expect(handle.socksPort).toBeGreaterThan(0); // both kinds of listener at once
      const conn = await connectTcp("127.0.0.1", handle.forwardPorts[0]!);
      const receiving = digestToEnd(conn);
      const sent = await sendGenerated(conn, totalBytes, seed + 1);
      await conn.shutdownAfterFlush();
      const received = await receiving;
      const result = await target.results[0]!;
      expect(result.received).toEqual(sent);
      expect(received).toEqual(result.sent);
    } finally {
      target.close();
      await handle.close();
    }
  });
});

describe("the connection line counts bytes that reached the other side", () => {
  const children = new Set<Subprocess>();
  afterAll(async () => {
    for (const child of children) child.kill();
    await Promise.allSettled([...children].map((child) => child.exited));
  });

  test("a dial that never connects, with bytes already sent, logs bytes_up=0 (they were read, never delivered)", async () => {
    // The blackhole holds the dial until the connect timeout, so the client's bytes are surely
    // read (and held for the upstream) before the dial fails: before, the line said bytes_up=79.
    const blackhole = await startBlackhole(children);
    const handle = await startTestProxy({
      socks: { enabled: false },
      forward: [{ target: `127.0.0.1:${blackhole.port}` }],
      upstream: { connect_timeout_ms: 300, dns_timeout_ms: 100 },
    });
    try {
      const conn = await connectTcp("127.0.0.1", handle.forwardPorts[0]!);
      await conn.write("x".repeat(79));
      expect((await conn.readToEnd()).length).toBe(0);
      const line = await handle.waitForConnectionLog(
        (record) => record.client === `127.0.0.1:${conn.localPort}`,
        "the timed-out forward's line",
      );
      expect(line).toMatchObject({ outcome: "timeout", bytes_up: 0, bytes_down: 0 });
      expect(line.upstream).toBeUndefined(); // never connected
    } finally {
      await handle.close();
    }
  });
});
