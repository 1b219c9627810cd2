// The relay through SOCKS5, in-process, once per pool strategy (and once through HTTP CONNECT): a target that speaks first,
// half-close in both directions, 64 MiB full duplex, 500 concurrent connections, a slow reader
// whose backlog stays bounded, and pool exhaustion that pauses instead of allocating.
// Not handshake details (socks.test.ts) and not the CLI (cli.test.ts).

import { afterAll, describe, expect, test } from "bun:test";
import { bytes, MIB, sha256, text } from "../support/bytes.ts";
import { cleanup } from "../support/cleanup.ts";
import type { Conn } from "../support/conn.ts";
import { Prng } from "../support/prng.ts";
import { startTestProxy, type TestProxy } from "../support/proxy.ts";
import { testSeed } from "../support/seed.ts";
import { httpConnect } from "../support/http-client.ts";
import { connectTcp } from "../support/sockets.ts";
import { echoThrough, encodeGreeting, socksConnect } from "../support/socks-client.ts";
import { digestToEnd, sendGenerated } from "../support/streams.ts";
import {
  startAnswerAfterFin,
  startBanner,
  startBulk,
  startEcho,
  startSilent,
} from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

/** Pool strategy × front: both strategies through SOCKS5, and one through HTTP CONNECT. */
const CASES = [
  ["queue", "SOCKS5"],
  ["queue-ts", "SOCKS5"],
  ["queue-ts", "http"],
] as const;

/** Bun hands `data` chunks of up to 512 KiB; one may be held in place while its reader is paused. */
const CHUNK_BYTES_MAX = 512 * 1024;

/** Waits until every connection has closed and every slot is back in the pool. */
async function expectAllReleased(handle: TestProxy): Promise<void> {
  await waitFor(
    () => {
      const stats = handle.proxy.stats();
      return (
        stats.connections_open === 0 &&
        stats.pool.in_use === 0 &&
        stats.pool.free === handle.config.pool.slots
      );
    },
    () => `every slot released; stats ${JSON.stringify(handle.proxy.stats())}`,
  );
  expect(handle.proxy.stats().backlog_bytes).toBe(0);
}

/** Resolves once `progress()` has not changed for `quietMs`: the sender is blocked. */
async function waitForStall(progress: () => number, total: number, what: string): Promise<number> {
  const quietMs = 300;
  let last = -1;
  let since = performance.now();
  await waitFor(
    () => {
      const now = progress();
      if (now >= total) throw new Error(`${what}: all ${total} bytes went through before a stall`);
      if (now !== last) {
        last = now;
        since = performance.now();
      }
      return performance.now() - since >= quietMs;
    },
    `${what} to stall`,
    20_000,
  );
  return last;
}

describe.each(CASES)("relay, pool strategy %s, through %s", (strategy, front) => {
  // The same relay tests through an HTTP CONNECT listener: only the front differs.
  const listeners = front === "http" ? { http: [{}] } : {};
  const open = (handle: TestProxy, host: string, port: number): Promise<{ conn: Conn }> =>
    front === "http"
      ? httpConnect(handle.httpPorts[0]!, host, port)
      : socksConnect(handle.socksPort, host, port);

  test("a target that speaks first: the client receives its banner before sending", async () => {
    const handle = await startTestProxy({ pool: { strategy }, ...listeners });
    const banner = startBanner("SSH-2.0-sockpool-test\r\n");
    try {
      const { conn } = await open(handle, "127.0.0.1", banner.port);
      expect(text(await conn.read(23))).toBe("SSH-2.0-sockpool-test\r\n");
      await conn.write("and then echo");
      expect(text(await conn.read(13))).toBe("and then echo");
      conn.end();
      await expectAllReleased(handle);
    } finally {
      banner.close();
      await handle.close();
    }
  });

  test("half-close: client data + FIN reach the target, its full answer comes back, then EOF", async () => {
    const handle = await startTestProxy({ pool: { strategy }, ...listeners });
    const seed = testSeed(`half-close ${strategy}`);
    const trailer = new Uint8Array(300 * 1024);
    new Prng(seed).fill(trailer);
    const target = startAnswerAfterFin(trailer);
    try {
      const { conn } = await open(handle, "127.0.0.1", target.port);
      const request = new Uint8Array(MIB + 17);
      new Prng(seed ^ 0xabcdef).fill(request);
      await conn.write(request);
      conn.shutdown(); // FIN: the target answers only after it sees this
      const answer = await conn.readToEnd();
      const header = `${sha256(request)} ${request.length}\n`;
      expect(text(answer.subarray(0, header.length))).toBe(header);
      expect(answer.length).toBe(header.length + trailer.length);
      expect(sha256(answer.subarray(header.length))).toBe(sha256(trailer));

      const line = await handle.waitForConnectionLog(
        (record) => record.target === `127.0.0.1:${target.port}`,
        "the half-closed connection",
      );
      expect(line).toMatchObject({
        outcome: "ok",
        bytes_up: request.length,
        bytes_down: answer.length,
      });
      await expectAllReleased(handle);
    } finally {
      target.close();
      await handle.close();
    }
  });

  test("half-close the other way: the target's FIN reaches the client, client→target keeps flowing", async () => {
    const handle = await startTestProxy({ pool: { strategy }, ...listeners });
    const seed = testSeed(`reverse half-close ${strategy}`);
    const target = startBulk(2 * MIB, seed); // sends 2 MiB then FIN, digests until our FIN
    try {
      const { conn } = await open(handle, "127.0.0.1", target.port);
      const received = await digestToEnd(conn); // the target's FIN arrived: EOF for us
      // Our direction is still open: send after the peer's FIN.
      const sent = await sendGenerated(conn, 3 * MIB, seed + 99);
      await conn.shutdownAfterFlush();
      const result = await target.results[0]!;
      expect(received).toEqual(result.sent);
      expect(result.received).toEqual(sent);
      await handle.waitForConnectionLog(
        (record) => record.target === `127.0.0.1:${target.port}` && record.outcome === "ok",
        "the reverse half-close",
      );
      await expectAllReleased(handle);
    } finally {
      target.close();
      await handle.close();
    }
  });

  test("64 MiB full duplex, sha256 checked both ways", async () => {
    const handle = await startTestProxy({ pool: { strategy }, ...listeners });
    const totalBytes = 64 * MIB;
    const seed = testSeed(`full duplex ${strategy}`);
    const target = startBulk(totalBytes, seed);
    try {
      const started = performance.now();
      const { conn } = await open(handle, "127.0.0.1", target.port);
      const receiving = digestToEnd(conn, 60_000);
      const sent = await sendGenerated(conn, totalBytes, seed ^ 0x7777_7777, 60_000);
      await conn.shutdownAfterFlush(60_000);
      const received = await receiving;
      const result = await target.results[0]!;
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `[relay ${strategy}] 2 × 64 MiB in ${seconds.toFixed(2)} s (${((2 * totalBytes * 8) / seconds / 1e9).toFixed(2)} Gbit/s both ways)`,
      );
      expect(sent.bytes).toBe(totalBytes);
      expect(result.received).toEqual(sent); // client → target intact
      expect(received).toEqual(result.sent); // target → client intact
      const line = await handle.waitForConnectionLog(
        (record) => record.target === `127.0.0.1:${target.port}`,
        "the 64 MiB connection",
      );
      expect(line).toMatchObject({ outcome: "ok", bytes_up: totalBytes, bytes_down: totalBytes });
      await expectAllReleased(handle);
    } finally {
      target.close();
      await handle.close();
    }
  }, 60_000);

  test("500 concurrent connections each echo a message", async () => {
    const handle = await startTestProxy({ pool: { strategy }, ...listeners });
    const echo = startEcho();
    const count = 500;
    try {
      const conns: Conn[] = [];
      // Open all of them first, so all 500 are relaying at the same time.
      const opened = await Promise.all(
        Array.from({ length: count }, () => open(handle, "127.0.0.1", echo.port)),
      );
      for (const { conn } of opened) conns.push(conn);
      expect(handle.proxy.stats().connections_open).toBe(count);
      const echoed = await Promise.all(
        conns.map(async (conn, index) => {
          const message = `message #${index} ${"x".repeat(index % 97)}`;
          await conn.write(message);
          const back = text(await conn.read(bytes(message).length));
          conn.shutdown();
          await conn.readToEnd();
          return back === message;
        }),
      );
      expect(echoed.filter(Boolean).length).toBe(count);
      expect(echo.conns.length).toBe(count);
      await waitFor(
        () => handle.connectionLogs().length >= count,
        () => `${count} connection log lines (have ${handle.connectionLogs().length})`,
      );
      expect(handle.connectionLogs().filter((record) => record.outcome === "ok").length).toBe(
        count,
      );
      expect(handle.proxy.stats().connections_total).toBe(count);
      await expectAllReleased(handle);
    } finally {
      echo.close();
      await handle.close();
    }
  }, 60_000);

  test("slow reader: backlog in pool slots stays bounded, and every slot comes back", async () => {
    const slotBytes = 16 * 1024;
    const backlogBytesMax = 64 * 1024;
    const handle = await startTestProxy({
      ...listeners,
      pool: { strategy, slots: 64, slot_bytes: slotBytes },
      relay: { backlog_bytes_max: backlogBytesMax },
    });
    // Far more than the kernel buffers on both hops can hold, so the stall reaches the proxy.
    const totalBytes = 64 * MIB;
    const seed = testSeed(`slow reader ${strategy}`);
    const target = startBulk(totalBytes, seed);
    let maxSlotsHeld = 0;
    let maxBacklogBytes = 0;
    const sampler = setInterval(() => {
      const stats = handle.proxy.stats();
      maxSlotsHeld = Math.max(maxSlotsHeld, stats.pool.in_use);
      maxBacklogBytes = Math.max(maxBacklogBytes, stats.backlog_bytes);
    }, 2);
    try {
      const { conn } = await open(handle, "127.0.0.1", target.port);
      conn.pause(); // stop reading: the proxy's writes to us fill the kernel, then its backlog
      const upstream = target.conns[0]!;
      const stalledAt = await waitForStall(
        () => upstream.sentBytes,
        totalBytes,
        "the target's sending",
      );
      const stalled = handle.proxy.stats();
      console.log(
        `[slow reader ${strategy}] target stalled after ${(stalledAt / MIB).toFixed(1)} MiB; ` +
          `slots held ${stalled.pool.in_use} (max ${maxSlotsHeld}), backlog ${stalled.backlog_bytes} B (max ${maxBacklogBytes})`,
      );
      expect(stalledAt).toBeLessThan(totalBytes);
      // The proxy did hold a backlog (the path under test ran) …
      expect(maxSlotsHeld).toBeGreaterThan(0);
      // … and never more than the bound, rounded up to whole slots.
      expect(maxSlotsHeld * slotBytes).toBeLessThanOrEqual(
        Math.ceil(backlogBytesMax / slotBytes) * slotBytes,
      );
      expect(maxBacklogBytes).toBeLessThanOrEqual(backlogBytesMax + CHUNK_BYTES_MAX);
      expect(stalled.pool.exhausted).toBe(0); // 64 slots are plenty for one connection

      conn.resume();
      const received = await digestToEnd(conn, 60_000);
      await conn.shutdownAfterFlush();
      const result = await target.results[0]!;
      expect(received).toEqual(result.sent);
      clearInterval(sampler);
      const line = await handle.waitForConnectionLog(
        (record) => record.target === `127.0.0.1:${target.port}`,
        "the slow reader's connection",
      );
      expect(line).toMatchObject({ outcome: "ok", bytes_down: totalBytes });
      await expectAllReleased(handle);
    } finally {
      clearInterval(sampler);
      target.close();
      await handle.close();
    }
  }, 60_000);

  test("pool exhaustion: several slow readers pause the proxy instead of allocating; data intact", async () => {
    const slots = 16;
    const slotBytes = 16 * 1024;
    const backlogBytesMax = 64 * 1024; // 4 slots each: 8 readers would need 32 of the 16
    const handle = await startTestProxy({
      ...listeners,
      pool: { strategy, slots, slot_bytes: slotBytes, local_batch: 4 },
      relay: { backlog_bytes_max: backlogBytesMax },
    });
    const readers = 8;
    const totalBytes = 24 * MIB; // past one hop's kernel buffers, so each backlog fills
    const seed = testSeed(`pool exhaustion ${strategy}`);
    const target = startBulk(totalBytes, seed);
    let maxSlotsHeld = 0;
    const sampler = setInterval(() => {
      maxSlotsHeld = Math.max(maxSlotsHeld, handle.proxy.stats().pool.in_use);
    }, 2);
    try {
      const conns: Conn[] = [];
      for (let index = 0; index < readers; index++) {
        const { conn } = await open(handle, "127.0.0.1", target.port);
        conn.pause();
        conns.push(conn);
      }
      await waitFor(() => target.conns.length === readers, "every upstream connection");
      const sentTotal = () => target.conns.reduce((sum, conn) => sum + conn.sentBytes, 0);
      await waitForStall(sentTotal, readers * totalBytes, "all targets' sending");
      const stalled = handle.proxy.stats();
      console.log(
        `[exhaustion ${strategy}] stalled after ${(sentTotal() / MIB).toFixed(1)} MiB total; ` +
          `in_use ${stalled.pool.in_use}/${slots} (max ${maxSlotsHeld}), exhausted ${stalled.pool.exhausted}, backlog ${stalled.backlog_bytes} B`,
      );
      expect(stalled.pool.exhausted).toBeGreaterThan(0); // the pool did run dry …
      expect(maxSlotsHeld).toBeLessThanOrEqual(slots); // … and nothing was allocated around it
      expect(stalled.pool.free).toBe(slots - stalled.pool.in_use);
      expect(stalled.backlog_bytes).toBeLessThanOrEqual(
        slots * slotBytes + readers * CHUNK_BYTES_MAX,
      );
      expect(stalled.connections_open).toBe(readers); // paused, not dropped

      for (const conn of conns) conn.resume();
      const received = await Promise.all(
        conns.map(async (conn) => {
          const digest = await digestToEnd(conn, 60_000);
          await conn.shutdownAfterFlush();
          return digest;
        }),
      );
      const results = await Promise.all(target.results);
      const key = (digest: { bytes: number; sha256: string }) => `${digest.bytes}:${digest.sha256}`;
      expect(received.map(key).sort()).toEqual(results.map((result) => key(result.sent)).sort());
      for (const digest of received) expect(digest.bytes).toBe(totalBytes);
      clearInterval(sampler);
      await expectAllReleased(handle);
    } finally {
      clearInterval(sampler);
      target.close();
      await handle.close();
    }
  }, 90_000);
});

describe("relay deadlines and limits", () => {
  const TIMEOUT_MS = 300;
  /** Timer jitter allowed below a deadline. A deadline may fire late, never a quarter early. */
  const EARLY_MS_MAX = 10;
  /** Connections started STAGGER_MS apart cover one sweep period (the proxy sweeps every timeout / 4). */
  const STAGGERED = 6;
  const STAGGER_MS = 13;

  test("idle_timeout_ms closes a relayed connection with no traffic; traffic keeps it open", async () => {
    const handle = await startTestProxy({
      relay: { idle_timeout_ms: TIMEOUT_MS },
      pool: { strategy: "queue" },
    });
    const echo = startEcho();
    try {
      // Traffic every TIMEOUT_MS / 3 for 3 × TIMEOUT_MS: never idle long enough.
      const { conn: busy } = await socksConnect(handle.socksPort, "127.0.0.1", echo.port);
      for (let round = 0; round < 9; round++) {
        await busy.write("tick");
        expect(text(await busy.read(4))).toBe("tick");
        await Bun.sleep(TIMEOUT_MS / 3); // pacing the traffic, not waiting for readiness
      }
      expect(busy.eof).toBe(false);
      busy.end();

      // Several idle connections, started across one sweep period, so whatever the phase of
      // the proxy's timer sweep, none may be closed before idle_timeout_ms.
      const elapsed = await Promise.all(
        Array.from({ length: STAGGERED }, async (_, index) => {
          await Bun.sleep(index * STAGGER_MS); // spreading the start times, not waiting for readiness
          const { conn: idle } = await socksConnect(handle.socksPort, "127.0.0.1", echo.port);
          const started = performance.now();
          await idle.waitEnd(TIMEOUT_MS + 3_000);
          return Math.round(performance.now() - started);
        }),
      );
      console.log(`[idle_timeout ${TIMEOUT_MS} ms] closed after ${elapsed.join(", ")} ms`);
      expect(Math.min(...elapsed)).toBeGreaterThanOrEqual(TIMEOUT_MS - EARLY_MS_MAX);
      await handle.waitForConnectionLog(
        (record) => record.outcome === "idle_timeout",
        "the idle connection's line",
      );
      await expectAllReleased(handle);
    } finally {
      echo.close();
      await handle.close();
    }
  });

  test("fin_timeout_ms: after the client's FIN, an upstream that never finishes is closed", async () => {
    const handle = await startTestProxy({
      relay: { fin_timeout_ms: TIMEOUT_MS },
      pool: { strategy: "queue-ts" },
    });
    const silent = startSilent();
    try {
      const request = "request nobody answers";
      const elapsed = await Promise.all(
        Array.from({ length: STAGGERED }, async (_, index) => {
          const { conn } = await socksConnect(handle.socksPort, "127.0.0.1", silent.port);
          await conn.write(request);
          await Bun.sleep(index * STAGGER_MS); // spreading the FINs over one sweep period
          const started = performance.now();
          conn.shutdown();
          await conn.waitEnd(TIMEOUT_MS + 3_000);
          return Math.round(performance.now() - started);
        }),
      );
      console.log(`[fin_timeout ${TIMEOUT_MS} ms] closed after ${elapsed.join(", ")} ms`);
      expect(Math.min(...elapsed)).toBeGreaterThanOrEqual(TIMEOUT_MS - EARLY_MS_MAX);
      await waitFor(
        () =>
          handle.connectionLogs().filter((record) => record.outcome === "fin_timeout").length ===
          STAGGERED,
        () => `${STAGGERED} fin_timeout lines; have ${JSON.stringify(handle.connectionLogs())}`,
      );
      for (const line of handle.connectionLogs()) {
        expect(line).toMatchObject({
          outcome: "fin_timeout",
          bytes_up: request.length,
          bytes_down: 0,
        });
      }
      await waitFor(
        () => silent.conns.every((conn) => conn.eof),
        "the upstreams to see the proxy close",
      );
      await expectAllReleased(handle);
    } finally {
      silent.close();
      await handle.close();
    }
  });

  test("connections_max: the connection over the limit is closed at once; room frees on close", async () => {
    const handle = await startTestProxy({
      server: { connections_max: 2 },
      pool: { strategy: "queue" },
    });
    const echo = startEcho();
    try {
      const first = await socksConnect(handle.socksPort, "127.0.0.1", echo.port);
      const second = await socksConnect(handle.socksPort, "127.0.0.1", echo.port);
      const third = await connectTcp("127.0.0.1", handle.socksPort);
      await third.write(encodeGreeting([0x00]));
      expect((await third.readToEnd()).length).toBe(0); // closed without a method selection
      expect(handle.proxy.stats().connections_open).toBe(2);
      // Its own access-log line, beside the rate-limited warning.
      const refused = await handle.waitForConnectionLog(
        (record) => record.client === `127.0.0.1:${third.localPort}`,
        "the refused connection's line",
      );
      expect(refused).toMatchObject({ outcome: "limit", reason: "connections_max", kind: "socks" });

      first.conn.end();
      await waitFor(() => handle.proxy.stats().connections_open === 1, "the first to close");
      expect(await echoThrough(handle.socksPort, echo.port, "room again")).toBe("room again");
      second.conn.end();
      await expectAllReleased(handle);
    } finally {
      echo.close();
      await handle.close();
    }
  });
});
