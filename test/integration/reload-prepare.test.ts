// ProxyServer's reload in one thread (src/proxy/server.ts, prepareReload): a listener that cannot
// be bound fails the prepare with nothing changed; an aborted prepare unbinds what it bound; a
// commit stops a removed listener while its open connection relays on. The supervisor's two phases
// across Workers are tested with the real program (reload.test.ts).

import { afterAll, describe, expect, test } from "bun:test";
import { type Config, parseConfig } from "../../src/config/schema.ts";
import { cleanup } from "../support/cleanup.ts";
import { startTestProxy } from "../support/proxy.ts";
import { connectTcp } from "../support/sockets.ts";
import { echoThrough, socksConnect } from "../support/socks-client.ts";
import { startEcho } from "../support/targets.ts";

afterAll(cleanup);

/** The running config with the listeners (as bound: port 0 resolved) replaced. */
function withListeners(
  config: Config,
  socks: string | null,
  forwards: { listen: string; target: string }[],
): Config {
  const input = JSON.parse(JSON.stringify(config)) as Record<string, Record<string, unknown>>;
  input.socks = { ...input.socks, enabled: socks !== null, listen: socks ?? "127.0.0.1:1080" };
  return parseConfig({ ...input, forward: forwards });
}

describe("ProxyServer.prepareReload", () => {
  test("a port in use: the prepare throws naming it, and nothing changes", async () => {
    const echo = startEcho();
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const proxy = await startTestProxy();
      const socks = `127.0.0.1:${proxy.socksPort}`;
      const next = withListeners(proxy.config, socks, [
        { listen: "127.0.0.1:0", target: `127.0.0.1:${echo.port}` },
        { listen: `127.0.0.1:${taken.port}`, target: `127.0.0.1:${echo.port}` },
      ]);
      expect(() => proxy.proxy.prepareReload(next)).toThrow(
        `forward listen 127.0.0.1:${taken.port}: EADDRINUSE (already in use)`,
      );
      expect(proxy.proxy.listeners.map((listener) => listener.kind)).toEqual(["socks"]);
      expect(await echoThrough(proxy.socksPort, echo.port, "unchanged")).toBe("unchanged");
    } finally {
      taken.stop(true);
      echo.close();
    }
  });

  test("abort unbinds what the prepare bound; commit applies it", async () => {
    const echo = startEcho();
    try {
      const proxy = await startTestProxy();
      const socks = `127.0.0.1:${proxy.socksPort}`;
      const next = withListeners(proxy.config, socks, [
        { listen: "127.0.0.1:0", target: `127.0.0.1:${echo.port}` },
      ]);
      const aborted = proxy.proxy.prepareReload(next);
      const abortedPort = aborted.listeners.find((listener) => listener.kind === "forward")!.port;
      expect(aborted.listeners.find((listener) => listener.kind === "socks")?.port).toBe(
        proxy.socksPort,
      );
      aborted.abort();
      await expect(connectTcp("127.0.0.1", abortedPort)).rejects.toThrow();
      expect(proxy.proxy.listeners).toHaveLength(1);

      const applied = proxy.proxy.prepareReload(next);
      applied.commit();
      const forward = proxy.proxy.listeners.find((listener) => listener.kind === "forward")!;
      const conn = await connectTcp("127.0.0.1", forward.port);
      await conn.write("forwarded");
      expect(new TextDecoder().decode(await conn.read(9))).toBe("forwarded");
      conn.end();
    } finally {
      echo.close();
    }
  });

  test("a removed listener stops accepting; its open connection relays on", async () => {
    const echo = startEcho();
    try {
      const proxy = await startTestProxy();
      const { conn } = await socksConnect(proxy.socksPort, "127.0.0.1", echo.port);
      const next = withListeners(proxy.config, null, [
        { listen: "127.0.0.1:0", target: `127.0.0.1:${echo.port}` },
      ]);
      proxy.proxy.prepareReload(next).commit();
      expect(proxy.proxy.listeners.map((listener) => listener.kind)).toEqual(["forward"]);
      await expect(connectTcp("127.0.0.1", proxy.socksPort)).rejects.toThrow();
      await conn.write("open");
      expect(new TextDecoder().decode(await conn.read(4))).toBe("open");
      conn.end();
    } finally {
      echo.close();
    }
  });
});
