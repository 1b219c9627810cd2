// The HTTP CONNECT front protocol, pure: request heads as curl, browsers and odd clients write them,
// split anywhere, with and without Proxy-Authorization; every malformed head and its status.

import { describe, expect, test } from "bun:test";
import {
  decodeConnectHead,
  encodeHttpResponse,
  HTTP_HEADER_LINES_MAX,
  HttpConnectFront,
  httpStatusForReply,
} from "../../src/protocol/http-connect.ts";
import { dialFailure, handshakeFailure } from "../../src/protocol/failures.ts";
import type { LoginVerdict } from "../../src/protocol/socks-handshake.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array | null) => new TextDecoder().decode(data ?? new Uint8Array());
const MAX = 4096;

// What curl 7.88 sends for `curl -x http://127.0.0.1:8080 -U alice:s3cret https://example.com/`.
const CURL =
  "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n" +
  "Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\nUser-Agent: curl/7.88.1\r\n" +
  "Proxy-Connection: Keep-Alive\r\n\r\n";

describe("decodeConnectHead", () => {
  test("curl's head: target, version, credentials, and where the head ends", () => {
    const input = bytes(`${CURL}\x16\x03\x01`); // a TLS ClientHello follows at once
    expect(decodeConnectHead(input, MAX)).toEqual({
      kind: "head",
      head: {
        target: { host: "example.com", port: 443 },
        version: "1.1",
        credentials: { username: "alice", password: bytes("s3cret") },
      },
      bytes: CURL.length,
    });
  });

  test("every proper prefix of a head needs more", () => {
    const head = bytes(CURL);
    for (let length = 0; length < head.length; length++) {
      expect(decodeConnectHead(head.subarray(0, length), MAX)).toEqual({ kind: "need-more" });
    }
  });

  test.each([
    ["an IPv6 target", "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n", "2001:db8::1", 8443],
    [
      "HTTP/1.0 and bare LF line ends",
      "CONNECT 192.0.2.1:22 HTTP/1.0\nHost: x\n\n",
      "192.0.2.1",
      22,
    ],
    [
      "a lowercase header name",
      "CONNECT a.test:1 HTTP/1.1\r\nproxy-authorization: Basic Yjpj\r\n\r\n",
      "a.test",
      1,
    ],
  ])("%s", (_name, head, host, port) => {
    const decoded = decodeConnectHead(bytes(head), MAX);
    expect(decoded.kind === "head" && decoded.head.target).toEqual({ host, port });
    expect(decoded.kind === "head" && decoded.bytes).toBe(head.length);
  });

  test.each([
    ["GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 405, "GET is not served"],
    ["CONNECT example.com:443 HTTP/2.0\r\n\r\n", 505, "HTTP/2.0 is not served"],
    ["CONNECT example.com:443 HTTX/1.1\r\n\r\n", 400, "expected HTTP/1.0 or HTTP/1.1"],
    ["CONNECT example.com HTTP/1.1\r\n\r\n", 400, "expected CONNECT host:port"],
    ["CONNECT example.com:0 HTTP/1.1\r\n\r\n", 400, "expected CONNECT host:port"],
    ["CONNECT ::1:443 HTTP/1.1\r\n\r\n", 400, "expected CONNECT host:port"],
    ["CONNECT http://example.com:443/ HTTP/1.1\r\n\r\n", 400, "expected CONNECT host:port"],
    ["CONNECT  example.com:443 HTTP/1.1\r\n\r\n", 400, "expected a request line"],
    ["CONNECT a:1 HTTP/1.1\r\nHost : a\r\n\r\n", 400, "a malformed header line"],
    ["CONNECT a:1 HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400, "obs-fold"],
    ["CONNECT a:1 HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "bare CR"],
    ["CONNECT a:1 HTTP/1.1\r\nX: \0\r\n\r\n", 400, "NUL"],
    [
      "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic Yjpj\r\nProxy-Authorization: Basic Yjpj\r\n\r\n",
      400,
      "given twice",
    ],
    ["\x05\x01\x00", 400, "not an HTTP request"],
  ])("%j → %d", (head, status, detail) => {
    const decoded = decodeConnectHead(bytes(head), MAX);
    expect(decoded.kind).toBe("error");
    expect(decoded.kind === "error" && (decoded.status as number)).toBe(status);
    expect(decoded.kind === "error" && decoded.detail).toContain(detail);
  });

  test("a head over the bound is 431 once the bound is reached, never a wait beyond it", () => {
    const long = bytes(`CONNECT a:1 HTTP/1.1\r\nX: ${"y".repeat(200)}\r\n\r\n`);
    expect(decodeConnectHead(long.subarray(0, 99), 100)).toEqual({ kind: "need-more" });
    expect(decodeConnectHead(long.subarray(0, 100), 100)).toMatchObject({ status: 431 });
  });

  test(`more than ${HTTP_HEADER_LINES_MAX} header lines is 431`, () => {
    const head = `CONNECT a:1 HTTP/1.1\r\n${"X: y\r\n".repeat(HTTP_HEADER_LINES_MAX + 1)}\r\n`;
    expect(decodeConnectHead(bytes(head), 8192)).toMatchObject({ status: 431 });
  });

  test.each([
    ["Bearer abc", "not Basic"],
    ["Basic !!!!", "not base64"],
    ["Basic YWxpY2U=", "no colon (alice)"],
    ["Basic OnB3", "an empty username (:pw)"],
  ])("Proxy-Authorization %j is malformed (%s)", (value) => {
    const decoded = decodeConnectHead(
      bytes(`CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: ${value}\r\n\r\n`),
      MAX,
    );
    expect(decoded.kind === "head" && decoded.head.credentials).toBe("malformed");
  });
});

describe("HttpConnectFront", () => {
  const users: Record<string, string> = { alice: "s3cret" };
  const check = (username: string, password: Uint8Array): LoginVerdict =>
    users[username] === undefined
      ? "unknown-user"
      : users[username] === text(password)
        ? "ok"
        : "wrong-password";

  test("without auth: dial at once, early data after the head left to the caller", () => {
    const front = new HttpConnectFront(null, MAX);
    expect(front.feed(bytes(`${CURL}early`))).toEqual({
      kind: "dial",
      consumed: CURL.length,
      request: { host: "example.com", port: 443 },
    });
    expect(text(front.succeeded({ host: "0.0.0.0", port: 0 }))).toBe(
      "HTTP/1.1 200 Connection established\r\n\r\n",
    );
  });

  test("with auth: the right password dials as the user", () => {
    expect(new HttpConnectFront(check, MAX).feed(bytes(CURL))).toMatchObject({
      kind: "dial",
      user: "alice",
    });
  });

  test.each([
    ["no Proxy-Authorization", "CONNECT a:1 HTTP/1.1\r\n\r\n", undefined],
    [
      "a wrong password",
      "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic YWxpY2U6bm8=\r\n\r\n",
      "alice",
    ],
    [
      "an unknown user",
      "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic Ym9iOnM=\r\n\r\n",
      undefined,
    ],
    [
      "malformed credentials",
      "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic ====\r\n\r\n",
      undefined,
    ],
  ])("%s: 407 with Proxy-Authenticate, naming only a known user", (_name, head, username) => {
    const step = new HttpConnectFront(check, MAX).feed(bytes(head));
    expect(step.kind).toBe("refuse");
    if (step.kind !== "refuse") return;
    expect(step.code).toBe("AUTH_FAILED");
    expect(step.username).toBe(username);
    const response = text(step.reply);
    expect(response).toStartWith("HTTP/1.1 407 Proxy Authentication Required\r\n");
    expect(response).toContain('\r\nProxy-Authenticate: Basic realm="sockpool"\r\n');
  });

  test("a method other than CONNECT: 405 with Allow, and a line saying only CONNECT is served", () => {
    const step = new HttpConnectFront(null, MAX).feed(bytes("GET / HTTP/1.1\r\n\r\n"));
    expect(step).toMatchObject({ kind: "refuse", code: "COMMAND_NOT_SUPPORTED" });
    const response = text(step.kind === "refuse" ? step.reply : null);
    expect(response).toStartWith("HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\n");
    expect(response).toEndWith("\r\n\r\nGET is not served: only CONNECT\n");
  });

  test("a malformed head: 400 with the reason as its one-line body", () => {
    const step = new HttpConnectFront(null, MAX).feed(bytes("CONNECT a HTTP/1.1\r\n\r\n"));
    expect(step).toMatchObject({ kind: "refuse", code: "HTTP_MALFORMED" });
    expect(text(step.kind === "refuse" ? step.reply : null)).toContain("400 Bad Request");
  });

  test("dial failures answer the status of their SOCKS reply byte", () => {
    expect([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08].map(httpStatusForReply)).toEqual([
      502, 403, 502, 502, 502, 504, 400,
    ]);
    const front = new HttpConnectFront(null, MAX);
    expect(text(front.dialFailed(dialFailure("ETIMEDOUT")))).toStartWith(
      "HTTP/1.1 504 Gateway Timeout\r\n",
    );
    expect(text(front.dialFailed(dialFailure("ECONNREFUSED")))).toStartWith("HTTP/1.1 502 ");
    expect(text(front.dialFailed(handshakeFailure("ACCESS_DENIED")))).toStartWith("HTTP/1.1 403 ");
    // Out of descriptors is the proxy's own limit, not the destination's fault: 503.
    expect(text(front.dialFailed(dialFailure("EMFILE")))).toStartWith(
      "HTTP/1.1 503 Service Unavailable\r\n",
    );
  });

  test("describe() names a response by its status, for the log and the counters", () => {
    const front = new HttpConnectFront(null, MAX);
    expect(front.describe(front.succeeded({ host: "0.0.0.0", port: 0 }))).toEqual({ status: 200 });
    expect(front.describe(encodeHttpResponse(407))).toEqual({ status: 407 });
  });
});

describe("encodeHttpResponse", () => {
  test("an error is complete: length, type, close, one-line body", () => {
    expect(text(encodeHttpResponse(502, "refused"))).toBe(
      "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n" +
        "Content-Length: 8\r\nConnection: close\r\n\r\nrefused\n",
    );
  });
});

describe("HttpConnectFront with a check that runs asynchronously (a hashed password)", () => {
  test("login step with the head consumed, then loginResult dials as the user", async () => {
    const front = new HttpConnectFront(() => Promise.resolve("ok" as const), MAX);
    const step = front.feed(bytes(`${CURL}early`));
    expect(step.kind === "login" && step.consumed).toBe(CURL.length);
    const verdict = step.kind === "login" ? await step.verdict : "unknown-user";
    expect(front.loginResult(verdict)).toEqual({
      kind: "dial",
      consumed: 0,
      request: { host: "example.com", port: 443 },
      user: "alice",
    });
  });

  test("busy: 503, logged as a limit, not as a failed login", () => {
    const front = new HttpConnectFront(() => Promise.resolve("busy" as const), MAX);
    expect(front.feed(bytes(CURL)).kind).toBe("login");
    const step = front.loginResult("busy");
    expect(step).toMatchObject({ kind: "refuse", code: "AUTH_BUSY" });
    expect(text(step.kind === "refuse" ? step.reply : null)).toStartWith(
      "HTTP/1.1 503 Service Unavailable\r\n",
    );
  });
});
