// The upstream pool in the real program: `sockpool --workers 2 --upstream-pool ...` as a child
// process, with a forward listener whose target both Workers keep warm from start-up. Not the pool's
// behaviour in detail (pool.test.ts) nor the stress (workers.test.ts).

import { afterAll, expect, test } from "bun:test";
import { text } from "../support/bytes.ts";
import { cleanup } from "../support/cleanup.ts";
import { spawnProxy } from "../support/proxy-process.ts";
import { connectTcp } from "../support/sockets.ts";
import { waitFor } from "../support/wait.ts";
import { startTagTarget } from "./support.ts";

afterAll(cleanup);

test("--workers 2 --upstream-pool: the forward target is warm from start-up within the shared limit; clients get warm connections; SIGTERM closes them and exits 0", async () => {
  const target = startTagTarget();
  try {
    const proxy = await spawnProxy([
      "--no-socks",
      "--forward",
      `127.0.0.1:0=127.0.0.1:${target.port}`,
      "--workers",
      "2",
      "--upstream-pool",
      "--upstream-pool-per-dest",
      "4",
      "--upstream-pool-total",
      "8",
    ]);
    // Each Worker keeps its share (2 + 2) of max_idle_per_dest; together exactly the limit.
    await waitFor(() => target.conns.length === 4, "four warm connections from two Workers");
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) {
      const conn = await connectTcp("127.0.0.1", proxy.forwardPorts[0]!);
      await conn.write("who?");
      ids.push(Number(text(await conn.read(2)).trim()));
      conn.end();
      await conn.waitEnd();
    }
    expect(new Set(ids).size).toBe(6); // never one upstream connection for two clients
    expect(ids.filter((id) => id < 4).length).toBeGreaterThan(0); // some were warmed at start-up
    // Every take is replaced; idle connections never exceed the destination's limit.
    await waitFor(() => target.unused() === 4, "topped up to the limit again");
    expect(await proxy.stop("SIGTERM")).toBe(0);
    await waitFor(() => target.conns.every((conn) => conn.eof), "every warm connection closed");
  } finally {
    target.close();
  }
}, 30_000);

test("a crashed Worker's warm connections are reclaimed by the supervisor; its restart warms its share again", async () => {
  const target = startTagTarget();
  try {
    const proxy = await spawnProxy(
      [
        "--no-socks",
        "--forward",
        `127.0.0.1:0=127.0.0.1:${target.port}`,
        "--workers",
        "2",
        "--upstream-pool",
        "--upstream-pool-per-dest",
        "4",
      ],
      { env: { SOCKPOOL_FAULT_INJECTION: "1" } },
    );
    await waitFor(() => target.conns.length === 4, "four warm connections from two Workers");
    proxy.process.kill("SIGUSR2"); // Worker 0 dies of an uncaught error
    await waitFor(
      () => proxy.logs.some((record) => record.msg === "worker restarted"),
      "Worker 0 to be restarted",
    );
    const reclaimed = proxy.logs.find((record) =>
      String(record.msg).startsWith("worker crashed: reclaimed"),
    );
    expect(reclaimed).toMatchObject({ worker: 0, upstream_reservations: 2 });
    // Its two died with it (Bun closes a dead Worker's sockets); the new Worker 0 warms two more,
    // which the limit allows only because the dead one's reservations came back.
    await waitFor(() => target.conns.length === 6, "the restarted Worker's share");
    await waitFor(() => target.unused() === 4, "four warm again, no more");
    expect(await proxy.stop("SIGTERM")).toBe(0);
  } finally {
    target.close();
  }
}, 30_000);
