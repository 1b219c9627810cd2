// A reset (RST) on either side tears the whole connection down at once, is passed on to the other
// side as a reset (never as a FIN, which would make a cut-off transfer look complete), is logged
// as outcome=reset, and returns every pool slot. Bun reports a reset only as close's error
// argument, not as an error event; socket.terminate() sends one.

import { afterAll, describe, expect, test } from "bun:test";
import { MIB } from "../support/bytes.ts";
import { cleanup } from "../support/cleanup.ts";
import { startTestProxy, type TestProxy } from "../support/proxy.ts";
import { socksConnect } from "../support/socks-client.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

/** The connection line to the target says outcome=reset, and every slot is back in the pool. */
async function expectResetLogged(tp: TestProxy, targetPort: number): Promise<void> {
  const record = await tp.waitForConnectionLog(
    (r) => r.target === `127.0.0.1:${targetPort}`,
    "the connection line",
  );
  expect(record.outcome).toBe("reset");
  await waitFor(() => tp.pool.stats().in_use === 0, "every slot back in the pool");
}

describe.each(["queue", "queue-ts"])("resets, pool strategy %s", (strategy) => {
  test("the target resets mid-stream: the client is reset and the log says reset", async () => {
    // A target that reads the first bytes and answers with a reset.
    const target = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: { data: (socket) => socket.terminate() },
    });
    const tp = await startTestProxy({ pool: { strategy } });
    try {
      const { conn } = await socksConnect(tp.socksPort, "127.0.0.1", target.port);
      conn.send(new Uint8Array(4 * MIB)); // more than the kernel takes at once: a backlog forms
      await conn.waitEnd();
      await expectResetLogged(tp, target.port);
      expect(tp.proxy.stats().connections_open).toBe(0);
    } finally {
      target.stop(true);
      await tp.close();
    }
  });

  test("the client resets while the target streams: the upstream is closed too", async () => {
    let upstreamClosed!: () => void;
    let targetError: Error | undefined;
    const closed = new Promise<void>((resolve) => {
      upstreamClosed = resolve;
    });
    const chunk = new Uint8Array(256 * 1024);
    let sent = 0;
    // Write until the socket pushes back (drain resumes it), up to 64 MiB.
    const stream = (socket: { write(data: Uint8Array): number }) => {
      while (sent < 64 * MIB) {
        const written = socket.write(chunk);
        sent += Math.max(written, 0);
        if (written < chunk.length) return;
      }
    };
    const target = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: stream,
        drain: stream,
        data: () => {},
        close: (_socket, error) => {
          targetError = error;
          upstreamClosed();
        },
      },
    });
    const tp = await startTestProxy({ pool: { strategy } });
    try {
      const { conn } = await socksConnect(tp.socksPort, "127.0.0.1", target.port);
      conn.pause(); // let the proxy's backlog toward us fill
      await waitFor(() => tp.pool.stats().in_use > 0, "a backlog in pool slots");
      conn.socket.terminate(); // RST
      await closed; // bounded by the test timeout
      expect((targetError as { code?: string } | undefined)?.code).toBe("ECONNRESET");
      await expectResetLogged(tp, target.port);
    } finally {
      target.stop(true);
      await tp.close();
    }
  }, 20_000);
  test("a target that sends data and then resets: the client sees a reset, never a FIN", async () => {
    // Enough that part of it is still in flight (kernel buffers, the proxy's backlog) at the RST.
    const target = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (socket) => {
          socket.write(new Uint8Array(2 * MIB));
          socket.terminate();
        },
        data: () => {},
      },
    });
    const tp = await startTestProxy({ pool: { strategy } });
    try {
      const { conn } = await socksConnect(tp.socksPort, "127.0.0.1", target.port);
      let sawFin = false;
      conn.onEnd = () => {
        sawFin = true;
      };
      await waitFor(() => conn.closed, "the client socket to close");
      expect({ fin: sawFin, error: (conn.error as { code?: string } | null)?.code }).toEqual({
        fin: false,
        error: "ECONNRESET",
      });
      await expectResetLogged(tp, target.port);
    } finally {
      target.stop(true);
      await tp.close();
    }
  });

  test("a client that sends data and then resets: the target sees a reset, never a FIN", async () => {
    let targetClosed!: (result: { fin: boolean; error: string | undefined }) => void;
    const closed = new Promise<{ fin: boolean; error: string | undefined }>((resolve) => {
      targetClosed = resolve;
    });
    let sawFin = false;
    const target = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        data: () => {},
        end: () => {
          sawFin = true;
        },
        close: (_socket, error) =>
          targetClosed({ fin: sawFin, error: (error as { code?: string } | undefined)?.code }),
      },
    });
    const tp = await startTestProxy({ pool: { strategy } });
    try {
      const { conn } = await socksConnect(tp.socksPort, "127.0.0.1", target.port);
      conn.send(new Uint8Array(2 * MIB));
      conn.socket.terminate(); // RST, with part of the 2 MiB still unsent
      expect(await closed).toEqual({ fin: false, error: "ECONNRESET" });
      await expectResetLogged(tp, target.port);
    } finally {
      target.stop(true);
      await tp.close();
    }
  });
});
