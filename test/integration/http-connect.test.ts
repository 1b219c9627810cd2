// HTTP CONNECT listeners ([[http]]) and the auto port (socks.protocol = "auto") against the real
// proxy, in-process: curl through a tunnel (-p -x http://…), with and without --proxy-user, Bun's
// own fetch through the proxy, and raw request heads for every error status, a split head, an
// oversize head, a silent client and pipelined data. Not the head parser's corner cases
// (test/protocol/http-connect.test.ts).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { startBlackhole } from "../soak/targets.ts";
import { bytes, text } from "../support/bytes.ts";
import { cleanup } from "../support/cleanup.ts";
import type { Conn } from "../support/conn.ts";
import { startTestProxy, type TestProxy } from "../support/proxy.ts";
import { connectTcp } from "../support/sockets.ts";
import { socksConnect } from "../support/socks-client.ts";
import { collect, requireTool } from "../support/spawn.ts";
import { refusedPort, startEcho, startHttp, type Target } from "../support/targets.ts";
import { waitFor, withDeadline } from "../support/wait.ts";

afterAll(cleanup);

const USER = { username: "dora", password: "pa:ss word!" };
const body = `through the tunnel ${Math.random().toString(36).slice(2)}\n`;

let open: TestProxy; // [[http]] without auth, and a SOCKS listener with protocol = "auto"
let authed: TestProxy; // users; [[http]] with auth inherited from socks.auth, and one with "none"
let web: { port: number; close(): void };
let echo: Target;

beforeAll(async () => {
  open = await startTestProxy({
    socks: { protocol: "auto" },
    http: [{}],
    access: {
      rules: [{ name: "no-echo-9", action: "deny", destinations: ["127.0.0.9"] }],
    },
    pool: { slot_bytes: 1024 }, // a head over one slot is refused with 431
  });
  authed = await startTestProxy({
    socks: { auth: "password", users: [USER], protocol: "auto" },
    http: [{}, { auth: "none" }],
  });
  web = startHttp("127.0.0.1", 0, body);
  echo = startEcho();
});

afterAll(async () => {
  await open.close();
  await authed.close();
  web.close();
  echo.close();
});

/** Runs curl without blocking the event loop (the proxy lives in this process). */
async function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = Bun.spawn(
    [requireTool("curl"), "--silent", "--show-error", "--max-time", "10", ...args],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  return await withDeadline(collect(child), 15_000, `curl ${args.join(" ")}`);
}

/** Sends `head`, reads the whole response until the proxy closes. */
async function exchange(port: number, head: string | Uint8Array): Promise<string> {
  const conn = await connectTcp("127.0.0.1", port);
  await conn.write(head);
  return text(await conn.readToEnd());
}

/** Reads a response head (up to its blank line) from a connection that stays open. */
async function readHead(conn: Conn): Promise<string> {
  let head = "";
  while (!head.includes("\r\n\r\n")) head += text(await conn.read(1));
  return head;
}

const connect = (target: string, extra = "") =>
  `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${extra}\r\n`;
const basic = (user: string, pass: string) =>
  `Proxy-Authorization: Basic ${btoa(`${user}:${pass}`)}\r\n`;

describe("curl through an [[http]] listener", () => {
  test("-p -x http://…: a plain HTTP GET through a CONNECT tunnel; logged kind=http", async () => {
    const result = await curl([
      "-p",
      "-x",
      `http://127.0.0.1:${open.httpPorts[0]}`,
      `http://127.0.0.1:${web.port}/`,
    ]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(body);
    const line = await open.waitForConnectionLog(
      (record) => record.kind === "http" && record.target === `127.0.0.1:${web.port}`,
      "curl's tunnel",
    );
    expect(line.outcome).toBe("ok");
  });

  test("--proxy-user against the SOCKS users: fetches; logged with the user", async () => {
    const result = await curl([
      "-p",
      "-x",
      `http://127.0.0.1:${authed.httpPorts[0]}`,
      "--proxy-user",
      `${USER.username}:${USER.password}`,
      `http://127.0.0.1:${web.port}/`,
    ]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(body);
  });

  test("a wrong password: curl fails with 407 and gets no page", async () => {
    const result = await curl([
      "-p",
      "-x",
      `http://127.0.0.1:${authed.httpPorts[0]}`,
      "--proxy-user",
      `${USER.username}:wrong`,
      `http://127.0.0.1:${web.port}/`,
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("407");
    expect(result.stdout).toBe("");
  });

  test('auth = "none" on one listener: no credentials needed there', async () => {
    const result = await curl([
      "-p",
      "-x",
      `http://127.0.0.1:${authed.httpPorts[1]}`,
      `http://127.0.0.1:${web.port}/`,
    ]);
    expect(result.stdout).toBe(body);
  });
});

describe("raw request heads: every status", () => {
  test("200 then a relay; pipelined bytes after the head go upstream", async () => {
    const conn = await connectTcp("127.0.0.1", open.httpPorts[0]!);
    await conn.write(`${connect(`127.0.0.1:${echo.port}`)}pipelined hello`);
    expect(await readHead(conn)).toBe("HTTP/1.1 200 Connection established\r\n\r\n");
    expect(text(await conn.read(15))).toBe("pipelined hello");
    await conn.write("and more");
    expect(text(await conn.read(8))).toBe("and more");
    conn.shutdown();
    await conn.waitEnd();
  });

  test("an IPv6 target in brackets, and a name the proxy resolves", async () => {
    const echo6 = startEcho("::1");
    try {
      for (const target of [`[::1]:${echo6.port}`, `localhost:${echo.port}`]) {
        const conn = await connectTcp("127.0.0.1", open.httpPorts[0]!);
        await conn.write(connect(target));
        expect(await readHead(conn)).toStartWith("HTTP/1.1 200 ");
        await conn.write("v6 or name");
        expect(text(await conn.read(10))).toBe("v6 or name");
        conn.end();
      }
    } finally {
      echo6.close();
    }
  });

  test("a head split byte by byte waits in one slot and still connects", async () => {
    const conn = await connectTcp("127.0.0.1", open.httpPorts[0]!);
    for (const byte of bytes(connect(`127.0.0.1:${echo.port}`))) {
      await conn.write(Uint8Array.of(byte));
      await Bun.sleep(1); // pacing, so the proxy sees separate reads
    }
    expect(await readHead(conn)).toStartWith("HTTP/1.1 200 ");
    conn.end();
  });

  test("407 with Proxy-Authenticate when credentials are missing or wrong", async () => {
    const port = authed.httpPorts[0]!;
    for (const extra of ["", basic(USER.username, "nope"), basic("nobody", "x")]) {
      const response = await exchange(port, connect(`127.0.0.1:${echo.port}`, extra));
      expect(response).toStartWith("HTTP/1.1 407 Proxy Authentication Required\r\n");
      expect(response).toContain('Proxy-Authenticate: Basic realm="sockpool"\r\n');
    }
    const ok = await connectTcp("127.0.0.1", port);
    await ok.write(connect(`127.0.0.1:${echo.port}`, basic(USER.username, USER.password)));
    expect(await readHead(ok)).toStartWith("HTTP/1.1 200 ");
    ok.end();
    await authed.waitForConnectionLog(
      (record) => record.kind === "http" && record.status === 407,
      "a 407 logged as status=407",
    );
  });

  test("403 for a destination an access rule denies, naming the rule in the log", async () => {
    const response = await exchange(open.httpPorts[0]!, connect(`127.0.0.9:${echo.port}`));
    expect(response).toStartWith("HTTP/1.1 403 Forbidden\r\n");
    const line = await open.waitForConnectionLog(
      (record) => record.target === `127.0.0.9:${echo.port}`,
      "the denied CONNECT",
    );
    expect(line).toMatchObject({ outcome: "denied", status: 403 });
  });

  test("502 for a refused port", async () => {
    const response = await exchange(open.httpPorts[0]!, connect(`127.0.0.1:${refusedPort()}`));
    expect(response).toStartWith("HTTP/1.1 502 Bad Gateway\r\n");
  });

  test("504 when the connect times out (a listener whose accept queue is full)", async () => {
    const children = new Set<Subprocess>();
    const blackhole = await startBlackhole(children);
    const handle = await startTestProxy({
      http: [{}],
      upstream: { connect_timeout_ms: 200, dns_timeout_ms: 100 }, // the dial's deadline: their sum
    });
    try {
      const response = await exchange(handle.httpPorts[0]!, connect(`127.0.0.1:${blackhole.port}`));
      expect(response).toStartWith("HTTP/1.1 504 Gateway Timeout\r\n");
    } finally {
      await handle.close();
      await blackhole.close();
    }
  });

  test("405 with Allow: CONNECT for a GET: only tunnels are served", async () => {
    const response = await exchange(
      open.httpPorts[0]!,
      `GET http://127.0.0.1:${web.port}/ HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    expect(response).toStartWith("HTTP/1.1 405 Method Not Allowed\r\n");
    expect(response).toContain("Allow: CONNECT\r\n");
    expect(response).toContain("only CONNECT");
  });

  test("400 for a malformed head, with a one-line body", async () => {
    const response = await exchange(open.httpPorts[0]!, "CONNECT nowhere HTTP/1.1\r\n\r\n");
    expect(response).toStartWith("HTTP/1.1 400 Bad Request\r\n");
    expect(response.split("\r\n\r\n")[1]).toBe("expected CONNECT host:port (IPv6 as [::1]:443)\n");
  });

  test("431 for a head over one pool slot (1 KiB here), sent whole or split", async () => {
    const huge = connect(`127.0.0.1:${echo.port}`, `X-Padding: ${"a".repeat(2000)}\r\n`);
    expect(await exchange(open.httpPorts[0]!, huge)).toStartWith(
      "HTTP/1.1 431 Request Header Fields Too Large\r\n",
    );
    const conn = await connectTcp("127.0.0.1", open.httpPorts[0]!);
    await conn.write(huge.slice(0, 600));
    await Bun.sleep(5); // pacing: a second read, so the first part waits in a slot
    await conn.write(huge.slice(600));
    expect(text(await conn.readToEnd())).toStartWith("HTTP/1.1 431 ");
  });

  test("a silent client is closed at handshake_timeout_ms, and its slot comes back", async () => {
    const handle = await startTestProxy({
      socks: { handshake_timeout_ms: 200 },
      http: [{}],
    });
    try {
      const conn = await connectTcp("127.0.0.1", handle.httpPorts[0]!);
      await conn.write("CONNECT 127.0.0.1:1 HTTP/1.1\r\n"); // half a head, then nothing
      expect(text(await conn.readToEnd())).toBe("");
      await handle.waitForConnectionLog(
        (record) => record.outcome === "handshake_timeout",
        "the timeout",
      );
      await waitFor(() => handle.proxy.stats().pool.in_use === 0, "the head's slot to return");
    } finally {
      await handle.close();
    }
  });
});

describe("Bun's fetch through the proxy", () => {
  test("fetch(url, { proxy }) to an https:// URL tunnels through CONNECT", async () => {
    const tls = await selfSignedCertificate();
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls,
      fetch: () => new Response(body),
    });
    try {
      const response = await fetch(`https://127.0.0.1:${server.port}/`, {
        proxy: `http://127.0.0.1:${open.httpPorts[0]}`,
        tls: { rejectUnauthorized: false },
      });
      expect(await response.text()).toBe(body);
      // fetch keeps its tunnel alive for the next request: it is open in the proxy now.
      const tunnels = open.proxy
        .snapshot(100)
        .connections.filter((info) => info.target === `127.0.0.1:${server.port}`);
      expect(tunnels.map((info) => [info.kind, info.phase])).toEqual([["http", "relay"]]);
    } finally {
      void server.stop(true);
    }
  });
});

describe("one port for both (socks.protocol = auto)", () => {
  test("curl --socks5-hostname and curl -p -x http:// on the same port", async () => {
    const port = open.socksPort;
    const viaSocks = await curl([
      "--socks5-hostname",
      `127.0.0.1:${port}`,
      `http://127.0.0.1:${web.port}/`,
    ]);
    expect(viaSocks.stderr).toBe("");
    expect(viaSocks.stdout).toBe(body);
    const viaHttp = await curl([
      "-p",
      "-x",
      `http://127.0.0.1:${port}`,
      `http://127.0.0.1:${web.port}/`,
    ]);
    expect(viaHttp.stderr).toBe("");
    expect(viaHttp.stdout).toBe(body);
  });

  test("the SOCKS users serve both protocols on an auto port with auth", async () => {
    const port = authed.socksPort;
    const viaHttp = await curl([
      "-p",
      "-x",
      `http://127.0.0.1:${port}`,
      "--proxy-user",
      `${USER.username}:${USER.password}`,
      `http://127.0.0.1:${web.port}/`,
    ]);
    expect(viaHttp.stdout).toBe(body);
    const viaSocks = await curl([
      "--socks5-hostname",
      `127.0.0.1:${port}`,
      "-U",
      `${USER.username}:${USER.password}`,
      `http://127.0.0.1:${web.port}/`,
    ]);
    expect(viaSocks.stdout).toBe(body);
    expect((await exchange(port, connect(`127.0.0.1:${echo.port}`))).slice(0, 12)).toBe(
      "HTTP/1.1 407",
    );
  });

  test("a raw SOCKS5 CONNECT still relays on the auto port", async () => {
    const { conn, reply } = await socksConnect(open.socksPort, "127.0.0.1", echo.port);
    expect(reply.code).toBe(0);
    await conn.write("socks on auto");
    expect(text(await conn.read(13))).toBe("socks on auto");
    conn.end();
  });

  test("a first byte that is neither 0x05 nor a letter: closed without a reply (bad version)", async () => {
    for (const first of [0x04, 0x00, 0x31]) {
      expect(await exchange(open.socksPort, Uint8Array.of(first, 1, 0))).toBe("");
    }
    await open.waitForConnectionLog(
      (record) => record.outcome === "bad_request" && record.kind === "socks",
      "a bad first byte logged as bad_request",
    );
  });
});

/** A throwaway self-signed certificate for 127.0.0.1 (openssl, into memory). */
async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  const dir = `${process.env.TMPDIR ?? "/tmp"}/sockpool-http-${process.pid}`;
  const child = Bun.spawn(
    [
      requireTool("openssl"),
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-keyout",
      `${dir}-key.pem`,
      "-out",
      `${dir}-cert.pem`,
    ],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  const result = await withDeadline(collect(child), 15_000, "openssl req");
  if (result.code !== 0) throw new Error(`openssl failed: ${result.stderr}`);
  const key = await Bun.file(`${dir}-key.pem`).text();
  const cert = await Bun.file(`${dir}-cert.pem`).text();
  await Bun.$`rm -f ${dir}-key.pem ${dir}-cert.pem`.quiet();
  return { key, cert };
}
