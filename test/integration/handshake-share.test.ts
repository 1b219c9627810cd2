// Regression: clients that never finish their handshake (one byte each, then silence) may hold at
// most pool.handshake_share_percent of the pool; the rest are refused with outcome=limit, so the
// relays of real users always find slots. Before, 4,200 such clients held all 4,096 slots.

import { afterAll, expect, test } from "bun:test";
import { cleanup } from "../support/cleanup.ts";
import type { Conn } from "../support/conn.ts";
import { startTestProxy } from "../support/proxy.ts";
import { connectTcp } from "../support/sockets.ts";
import { echoThrough } from "../support/socks-client.ts";
import { startEcho } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

const SLOTS = 64;
const SHARE_PERCENT = 25; // 16 slots for handshakes
const STALLERS = 48;

test("one-byte stallers hold at most the handshake share; the rest get outcome=limit", async () => {
  const echo = startEcho();
  const tp = await startTestProxy({
    server: { workers: 1 }, // the share is split across Workers; in-process there is one
    pool: { slots: SLOTS, handshake_share_percent: SHARE_PERCENT },
  });
  const budget = (SLOTS * SHARE_PERCENT) / 100;
  const stallers: Conn[] = [];
  try {
    for (let i = 0; i < STALLERS; i++) {
      const conn = await connectTcp("127.0.0.1", tp.socksPort);
      await conn.write(Uint8Array.of(0x05)); // VER, and nothing more: a split greeting
      stallers.push(conn);
    }
    const refused = () => tp.connectionLogs().filter((record) => record.outcome === "limit");
    await waitFor(
      () => refused().length === STALLERS - budget,
      () => `${STALLERS - budget} refusals, have ${refused().length}`,
    );
    expect(tp.pool.stats().in_use).toBe(budget);
    // A real client still gets through, and its relay still has slots.
    expect(await echoThrough(tp.socksPort, echo.port, "still served")).toBe("still served");
    for (const conn of stallers) conn.end();
    await waitFor(() => tp.proxy.stats().connections_open === 0, "every staller closed");
    expect(tp.pool.stats().in_use).toBe(0);
  } finally {
    await tp.close();
    echo.close();
  }
});
