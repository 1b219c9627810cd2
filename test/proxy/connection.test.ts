// The pipeline driver without a network: a stand-in client socket, so what a connection logs when
// a socket path throws, or when Bun gives a client no address, can be checked exactly.

import { expect, test } from "bun:test";
import type { Socket } from "bun";
import { parseConfig } from "../../src/config/schema.ts";
import { createPool } from "../../src/pool/index.ts";
import { AccessPolicy } from "../../src/policy/access.ts";
import { ClientTable, createClientTableMemory } from "../../src/proxy/clients.ts";
import { Connection, type ConnectionContext } from "../../src/proxy/connection.ts";
import type { ListenerInfo } from "../../src/proxy/server.ts";
import { WorkerCounters } from "../../src/stats/counters.ts";
import { capturingLogger } from "../support/proxy.ts";

function harness() {
  const { log, logs } = capturingLogger("debug");
  const config = parseConfig({ log: { level: "debug", format: "json" } });
  const pool = createPool({ strategy: "queue-ts", slots: 16, slot_bytes: 16384, checked: true });
  const forgotten: Connection[] = [];
  const ctx: ConnectionContext = {
    config,
    pool,
    log,
    clock: { now: performance.now() },
    access: new AccessPolicy(config.access, []),
    handshakeSlots: { held: 0, max: 4 },
    udpSlots: { held: 0, max: 4 },
    clients: new ClientTable(createClientTableMemory(16), config.clients),
    forget: (connection) => forgotten.push(connection),
    counters: WorkerCounters.detached(),
    worker: 0,
    trustedProxies: [],
    admitClient: () => null,
    proxyRefused: () => {},
  };
  return { ctx, logs, forgotten, pool };
}

const SOCKS_LISTENER: ListenerInfo = {
  kind: "socks",
  listen: "127.0.0.1:1080",
  host: "127.0.0.1",
  port: 1080,
};

/** A client socket as the driver uses it; `remoteAddress` may be missing, as Bun 1.4.5 allows. */
function standInClient(remoteAddress: string | undefined) {
  const written: Uint8Array[] = [];
  const socket = {
    remoteAddress,
    remotePort: 40000,
    ended: false,
    write: (bytes: Uint8Array) => {
      written.push(bytes);
      return bytes.length;
    },
    end() {
      socket.ended = true;
    },
    terminated: false,
    terminate() {
      socket.terminated = true;
    },
    pause() {},
    resume() {},
    shutdown() {},
  };
  return { socket: socket as unknown as Socket<Connection>, written, state: socket };
}

test("a client Bun gives no remoteAddress is served and logged as unknown, not thrown on", () => {
  const { ctx, logs, forgotten } = harness();
  const client = standInClient(undefined);
  const connection = new Connection(ctx, client.socket, SOCKS_LISTENER, null);
  connection.close("aborted");
  expect(forgotten).toEqual([connection]);
  expect(logs.find((record) => record.msg === "connection")).toMatchObject({
    client: "unknown",
    outcome: "aborted",
  });
});

test("an exception on a socket path is logged once at error level with its stack", () => {
  const { ctx, logs } = harness();
  const connection = new Connection(ctx, standInClient("127.0.0.1").socket, SOCKS_LISTENER, null);
  connection.failed(new TypeError("a bug in a handler"));
  connection.failed(new TypeError("reported again after close")); // ignored: already closed
  const errors = logs.filter((record) => record.level === "error");
  expect(errors).toHaveLength(1);
  expect(errors[0].msg).toBe("unexpected exception on a socket path");
  expect(String(errors[0].error)).toContain("TypeError: a bug in a handler");
  expect(String(errors[0].error)).toContain("connection.test.ts"); // the stack, not just the text
  expect(logs.find((record) => record.msg === "connection")?.outcome).toBe("error");
});

test("a socket error (a reset) is an ordinary event: logged at debug, not as a bug", () => {
  const { ctx, logs } = harness();
  const client = standInClient("127.0.0.1");
  const connection = new Connection(ctx, client.socket, SOCKS_LISTENER, null);
  const reset = Object.assign(new Error("Connection reset by peer"), { code: "ECONNRESET" });
  connection.failed(reset);
  expect(logs.filter((record) => record.level === "error")).toEqual([]);
  expect(logs.find((record) => record.msg === "socket error")).toMatchObject({
    level: "debug",
    error: "ECONNRESET",
  });
  // Passed on as a reset (terminate), not a FIN (end), and logged as one.
  expect({ terminated: client.state.terminated, ended: client.state.ended }).toEqual({
    terminated: true,
    ended: false,
  });
  expect(logs.find((record) => record.msg === "connection")?.outcome).toBe("reset");
});
