// Real SOCKS5 clients against the in-process proxy: curl (--socks5 and --socks5-hostname with
// -U) fetching a page from a local Bun.serve, and the `socks` npm package with and without auth.
// Not the protocol's corner cases (socks.test.ts): these prove interoperability.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SocksClient, type SocksClientOptions } from "socks";
import { cleanup } from "../support/cleanup.ts";
import { startTestProxy, type TestProxy } from "../support/proxy.ts";
import { collect, requireTool } from "../support/spawn.ts";
import {
  onBothLoopbacks,
  refusedPort,
  startEcho,
  startHttp,
  type Target,
} from "../support/targets.ts";
import { withDeadline } from "../support/wait.ts";

afterAll(cleanup);

const USER = { user: "carol", pass: "pa:ss word!" }; // a ':' and a space: split at the first ':'

let open: TestProxy;
let authed: TestProxy;
let http: { port: number; close(): void };
let echo: Target;
const body = `hello from sockpool's integration test ${Math.random().toString(36).slice(2)}\n`;

beforeAll(async () => {
  open = await startTestProxy({ pool: { strategy: "queue" } });
  authed = await startTestProxy({
    socks: { auth: "password", users: [{ username: USER.user, password: USER.pass }] },
    pool: { strategy: "queue-ts" },
  });
  // On both loopbacks, so "localhost" resolved by the proxy reaches it either way.
  http = onBothLoopbacks((host, port) => startHttp(host, port, body));
  echo = startEcho();
});

afterAll(async () => {
  await open.close();
  await authed.close();
  http.close();
  echo.close();
});

/** Runs curl without blocking the event loop (the proxy lives in this process). */
async function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = Bun.spawn(
    [requireTool("curl"), "--silent", "--show-error", "--max-time", "10", ...args],
    {
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    },
  );
  return await withDeadline(collect(child), 15_000, `curl ${args.join(" ")}`);
}

describe("curl", () => {
  test("--socks5 (the client resolves): fetches the page", async () => {
    const result = await curl([
      "--socks5",
      `127.0.0.1:${open.socksPort}`,
      `http://127.0.0.1:${http.port}/`,
    ]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(body);
    await open.waitForConnectionLog(
      (record) => record.target === `127.0.0.1:${http.port}` && record.outcome === "ok",
      "curl's connection",
    );
  });

  test("--socks5-hostname with -U user:pass (the proxy resolves, RFC 1929 auth): fetches the page", async () => {
    const result = await curl([
      "--socks5-hostname",
      `127.0.0.1:${authed.socksPort}`,
      "-U",
      `${USER.user}:${USER.pass}`,
      `http://localhost:${http.port}/`,
    ]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(body);
    const line = await authed.waitForConnectionLog(
      (record) => record.target === `localhost:${http.port}`,
      "curl's connection by name",
    );
    expect(line.outcome).toBe("ok");
  });

  test("-U with a wrong password fails, and the page is not fetched", async () => {
    const result = await curl([
      "--socks5-hostname",
      `127.0.0.1:${authed.socksPort}`,
      "-U",
      `${USER.user}:wrong`,
      `http://localhost:${http.port}/`,
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe("");
  });
});

describe("socks npm client", () => {
  async function roundTrip(options: SocksClientOptions, message: string): Promise<string> {
    const { socket } = await SocksClient.createConnection(options);
    try {
      const echoed = new Promise<string>((resolve, reject) => {
        let received = "";
        socket.on("data", (chunk: Buffer) => {
          received += chunk.toString();
          if (received.length >= message.length) resolve(received);
        });
        socket.on("error", reject);
        socket.on("close", () => reject(new Error(`closed after ${JSON.stringify(received)}`)));
      });
      socket.write(message);
      return await withDeadline(echoed, 10_000, "the echo through the socks client");
    } finally {
      socket.destroy();
    }
  }

  test("CONNECT without auth", async () => {
    const reply = await roundTrip(
      {
        proxy: { host: "127.0.0.1", port: open.socksPort, type: 5 },
        command: "connect",
        destination: { host: "127.0.0.1", port: echo.port },
        timeout: 10_000,
      },
      "via the socks package",
    );
    expect(reply).toBe("via the socks package");
  });

  test("CONNECT with username/password", async () => {
    const reply = await roundTrip(
      {
        proxy: {
          host: "127.0.0.1",
          port: authed.socksPort,
          type: 5,
          userId: USER.user,
          password: USER.pass,
        },
        command: "connect",
        destination: { host: "127.0.0.1", port: echo.port },
        timeout: 10_000,
      },
      "authenticated via the socks package",
    );
    expect(reply).toBe("authenticated via the socks package");
  });

  test("CONNECT by name (ATYP 03)", async () => {
    const both = onBothLoopbacks((host, port) => startEcho(host, port));
    try {
      const reply = await roundTrip(
        {
          proxy: { host: "127.0.0.1", port: open.socksPort, type: 5 },
          command: "connect",
          destination: { host: "localhost", port: both.port },
          timeout: 10_000,
        },
        "by name",
      );
      expect(reply).toBe("by name");
    } finally {
      both.close();
    }
  });

  test("wrong password is rejected by the client library", async () => {
    await expect(
      SocksClient.createConnection({
        proxy: {
          host: "127.0.0.1",
          port: authed.socksPort,
          type: 5,
          userId: USER.user,
          password: "nope",
        },
        command: "connect",
        destination: { host: "127.0.0.1", port: echo.port },
        timeout: 10_000,
      }),
    ).rejects.toThrow(/auth/i);
  });

  test("a refused target surfaces as the client's ConnectionRefused", async () => {
    await expect(
      SocksClient.createConnection({
        proxy: { host: "127.0.0.1", port: open.socksPort, type: 5 },
        command: "connect",
        destination: { host: "127.0.0.1", port: refusedPort() },
        timeout: 10_000,
      }),
    ).rejects.toThrow(/ConnectionRefused/);
  });
});
