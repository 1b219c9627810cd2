// Regression: a storm of clients that connect and reset at once (SO_LINGER 0) must not use up
// connections_max for good. Bun 1.4.5 may give such a client no remoteAddress; opening its connection
// used to throw after the open count was taken, and the count was never given back.

import { afterAll, expect, test } from "bun:test";
import { cleanup } from "../support/cleanup.ts";
import { startTestProxy } from "../support/proxy.ts";
import { echoThrough } from "../support/socks-client.ts";
import { spawnResetStorm, stormResult } from "../support/storm.ts";
import { startEcho } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

const CONNECTIONS_MAX = 20;
const STORM_CLIENTS = 400; // 25 were enough to lock out the old code

async function storm(port: number): Promise<void> {
  expect(await stormResult(spawnResetStorm(port, STORM_CLIENTS))).toEqual({
    code: 0,
    out: `done ${STORM_CLIENTS}`,
    err: "",
  });
}

test.each(["socks", "forward"] as const)(
  "after a reset storm the %s listener still serves and holds no place",
  async (kind) => {
    const echo = startEcho();
    const tp = await startTestProxy({
      server: { connections_max: CONNECTIONS_MAX },
      forward: [{ target: `127.0.0.1:${echo.port}` }],
    });
    try {
      await storm(kind === "socks" ? tp.socksPort : tp.forwardPorts[0]);
      await waitFor(
        () => tp.proxy.stats().connections_open === 0,
        "every stormed connection closed",
      );
      // Every place under connections_max is free again: CONNECTIONS_MAX clients at once all work.
      // (Some storm clients were refused while the storm itself held every place; none may be now.)
      const rejectedBefore = tp.proxy.stats().connections_rejected;
      const replies = await Promise.all(
        Array.from({ length: CONNECTIONS_MAX }, (_, i) =>
          echoThrough(tp.socksPort, echo.port, `hi ${i}`),
        ),
      );
      expect(replies).toEqual(Array.from({ length: CONNECTIONS_MAX }, (_, i) => `hi ${i}`));
      expect(tp.proxy.stats().connections_rejected).toBe(rejectedBefore);
      expect(tp.logs.filter((record) => record.level === "error")).toEqual([]);
    } finally {
      await tp.close();
      echo.close();
    }
  },
);
