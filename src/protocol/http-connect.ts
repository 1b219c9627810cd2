// HTTP CONNECT (RFC 9110 §9.3.6) as a front protocol: the request head a browser, curl -x or a
// package manager sends to a proxy, read as a pure state object like the SOCKS5 handshake. Not I/O,
// not the relay that follows the 200, and not the listener that chooses between SOCKS and HTTP.
//
//   CONNECT example.com:443 HTTP/1.1\r\n        request line: authority-form target, port required
//   Host: example.com:443\r\n                    headers: only Proxy-Authorization is read
//   Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n
//   \r\n                                         end of head; bytes after it are early data
//
// Strictness, where RFC 9112 lets a server choose: a bare LF ends a line (as the RFC allows), a
// bare CR or NUL anywhere, whitespace before a header's colon, and obs-fold are 400; a request
// line that is not exactly METHOD SP TARGET SP VERSION is 400. Any method but CONNECT is answered
// 405 with `Allow: CONNECT`: sockpool is a tunnel, not a forward proxy for plain HTTP.
// The head is bounded (the caller passes the bound: one pool slot holds a split head), and so is
// the number of header lines.
// A little over 300 lines: the decoder, the encoder and the front protocol share the bounds and
// the status table, and the file has no I/O.

import type { ProtocolErrorCode } from "./errors.ts";
import type { Failure, HandshakeFailureCode } from "./failures.ts";
import type {
  AnswerCode,
  DialRequest,
  FrontProtocol,
  FrontStep,
  LoginVerdict,
  PasswordCheck,
} from "./front.ts";
import { parseHostPort } from "./host-port.ts";

export const HTTP_HEADER_LINES_MAX = 100;
export const HTTP_REALM = "sockpool";

/** What a well-formed CONNECT head says. `credentials` is absent without Proxy-Authorization. */
export interface ConnectHead {
  target: DialRequest;
  version: "1.0" | "1.1";
  /** "malformed" when Proxy-Authorization is present but not usable Basic credentials. */
  credentials?: { username: string; password: Uint8Array } | "malformed";
}

export type HttpHeadDecoded =
  | { kind: "need-more" }
  | { kind: "head"; head: ConnectHead; bytes: number }
  | { kind: "error"; status: HttpErrorStatus; detail: string };

export type HttpErrorStatus = 400 | 405 | 431 | 505;

const REASONS: Record<number, string> = {
  200: "Connection established",
  400: "Bad Request",
  403: "Forbidden",
  405: "Method Not Allowed",
  407: "Proxy Authentication Required",
  431: "Request Header Fields Too Large",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder();
const encoder = new TextEncoder();

function error(status: HttpErrorStatus, detail: string): HttpHeadDecoded {
  return { kind: "error", status, detail };
}

/** Where the head ends (index after its blank line), -1 if not yet, and the first bad byte. */
function findHeadEnd(input: Uint8Array, limit: number): { end: number; bad: number } {
  const scan = Math.min(input.length, limit);
  for (let i = 0; i < scan; i++) {
    const byte = input[i]!;
    if (byte === 0) return { end: -1, bad: i };
    if (byte === 0x0d && i + 1 < input.length && input[i + 1] !== 0x0a) return { end: -1, bad: i };
    if (byte !== 0x0a) continue;
    // A line ended at i: the head ends if the next line is empty (LF or CRLF).
    if (input[i + 1] === 0x0a) return { end: i + 2, bad: -1 };
    if (input[i + 1] === 0x0d && input[i + 2] === 0x0a) return { end: i + 3, bad: -1 };
  }
  return { end: -1, bad: -1 };
}

/** Reads one request head from the start of `input`; `maxBytes` bounds it. */
export function decodeConnectHead(input: Uint8Array, maxBytes: number): HttpHeadDecoded {
  if (input.length > 0 && !/[A-Za-z]/.test(String.fromCharCode(input[0]!))) {
    return error(400, "not an HTTP request");
  }
  const { end, bad } = findHeadEnd(input, maxBytes);
  if (bad >= 0) return error(400, `a bare CR or a NUL byte at offset ${bad}`);
  if (end < 0) {
    return input.length >= maxBytes
      ? error(431, `request head over ${maxBytes} bytes`)
      : { kind: "need-more" };
  }
  const lines = latin1
    .decode(input.subarray(0, end))
    .split("\n")
    .map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line));
  lines.length -= 2; // the blank line and what follows its LF
  const [requestLine, ...headerLines] = lines;
  if (headerLines.length > HTTP_HEADER_LINES_MAX) {
    return error(431, `over ${HTTP_HEADER_LINES_MAX} header lines`);
  }
  const parts = requestLine!.split(" ");
  if (parts.length !== 3 || !TOKEN.test(parts[0]!)) {
    return error(400, "expected a request line METHOD TARGET HTTP/1.1");
  }
  const [method, target, versionText] = parts as [string, string, string];
  const version = /^HTTP\/1\.([01])$/.exec(versionText);
  if (version === null) {
    return /^HTTP\/\d\.\d$/.test(versionText)
      ? error(505, `${versionText} is not served; use HTTP/1.1`)
      : error(400, "expected HTTP/1.0 or HTTP/1.1");
  }
  if (method !== "CONNECT") return error(405, `${method} is not served: only CONNECT`);
  const address = parseHostPort(target);
  if (address === null || address.port === 0 || target.includes("/")) {
    return error(400, "expected CONNECT host:port (IPv6 as [::1]:443)");
  }
  let authorization: string | undefined;
  for (const line of headerLines) {
    if (line.startsWith(" ") || line.startsWith("\t")) return error(400, "obs-fold is not allowed");
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    if (colon <= 0 || !TOKEN.test(name)) return error(400, "a malformed header line");
    if (name.toLowerCase() !== "proxy-authorization") continue;
    if (authorization !== undefined) return error(400, "Proxy-Authorization given twice");
    authorization = line.slice(colon + 1).trim();
  }
  const head: ConnectHead = {
    target: { host: address.host, port: address.port },
    version: version[1] === "0" ? "1.0" : "1.1",
  };
  if (authorization !== undefined) head.credentials = basicCredentials(authorization);
  return { kind: "head", head, bytes: end };
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const AUTH_FIELD_BYTES_MAX = 255; // as RFC 1929's, so one user table serves both fronts

/** `Basic base64(user:password)` → the pair, or "malformed". */
function basicCredentials(value: string): ConnectHead["credentials"] {
  const match = /^basic +(\S+)$/i.exec(value);
  if (match === null || match[1]!.length % 4 !== 0 || !BASE64.test(match[1]!)) return "malformed";
  let binary: string;
  try {
    binary = atob(match[1]!);
  } catch {
    return "malformed"; // the pattern above should make this unreachable; a peer's bytes never throw
  }
  const decoded = Uint8Array.from(binary, (char) => char.charCodeAt(0));
  const colon = decoded.indexOf(0x3a);
  if (colon <= 0) return "malformed";
  const username = decoded.subarray(0, colon);
  const password = decoded.subarray(colon + 1);
  if (username.length > AUTH_FIELD_BYTES_MAX || password.length > AUTH_FIELD_BYTES_MAX) {
    return "malformed";
  }
  return { username: utf8.decode(username), password };
}

/** A whole response: status line, headers, and a one-line text body (none for 200). */
export function encodeHttpResponse(
  status: number,
  body = "",
  headers: Record<string, string> = {},
): Uint8Array {
  const reason = REASONS[status] ?? "Error";
  const lines = [`HTTP/1.1 ${status} ${reason}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (status !== 200) {
    const text = `${body || reason}\n`;
    lines.push(
      "Content-Type: text/plain; charset=utf-8",
      `Content-Length: ${encoder.encode(text).length}`,
      "Connection: close",
      "",
      text,
    );
    return encoder.encode(lines.join("\r\n"));
  }
  return encoder.encode(`${lines.join("\r\n")}\r\n\r\n`);
}

/** The status answering a failed dial, from the failure table's SOCKS reply byte. */
export function httpStatusForReply(reply: number): number {
  switch (reply) {
    case 0x02: // ruleset (an access rule or a built-in denial)
      return 403;
    case 0x06: // connect timeout
      return 504;
    case 0x07: // command not supported
    case 0x08: // address type not supported
      return 400;
    default: // 01 general, 03 network, 04 host (or name) unreachable, 05 refused
      return 502;
  }
}

/** The status code of a response this front encoded ("HTTP/1.1 NNN …"). */
export function httpStatusOf(response: Uint8Array): number {
  const digits = response.subarray(9, 12);
  let status = 0;
  for (const digit of digits) status = status * 10 + (digit - 0x30);
  return status;
}

const STATUS_FOR_CODE: Partial<Record<ProtocolErrorCode | HandshakeFailureCode, number>> = {
  ACCESS_DENIED: 403,
  AUTH_FAILED: 407,
};

/** The HTTP CONNECT front protocol: one request head, then dial. */
export class HttpConnectFront implements FrontProtocol {
  private done = false;
  private pending: { target: DialRequest; username: string } | null = null;
  private readonly checkPassword: PasswordCheck | null;
  private readonly headBytesMax: number;

  /** `checkPassword` null: no authentication; else Proxy-Authorization: Basic is required. */
  constructor(checkPassword: PasswordCheck | null, headBytesMax: number) {
    this.checkPassword = checkPassword;
    this.headBytesMax = headBytesMax;
  }

  feed(input: Uint8Array): FrontStep {
    if (this.done) throw new Error("assert: HttpConnectFront.feed() after the head was read");
    const decoded = decodeConnectHead(input, this.headBytesMax);
    if (decoded.kind === "need-more") return decoded;
    this.done = true;
    if (decoded.kind === "error") return this.refuseHead(decoded.status, decoded.detail);
    const { head, bytes } = decoded;
    if (this.checkPassword === null) return { kind: "dial", consumed: bytes, request: head.target };
    const credentials = head.credentials;
    if (credentials === undefined || credentials === "malformed") {
      return this.login(head.target, undefined, "unknown-user", bytes);
    }
    const verdict = this.checkPassword(credentials.username, credentials.password);
    if (typeof verdict !== "string") {
      this.pending = { target: head.target, username: credentials.username };
      return { kind: "login", consumed: bytes, verdict };
    }
    return this.login(head.target, credentials.username, verdict, bytes);
  }

  loginResult(verdict: LoginVerdict): FrontStep {
    const pending = this.pending;
    if (pending === null) throw new Error("assert: loginResult() without a login step");
    this.pending = null;
    return this.login(pending.target, pending.username, verdict, 0);
  }

  /** Dial as the user, or 407 (naming only a configured user in the log, as SOCKS5 does). */
  private login(
    target: DialRequest,
    username: string | undefined,
    verdict: LoginVerdict,
    consumed: number,
  ): FrontStep {
    if (verdict === "ok") return { kind: "dial", consumed, request: target, user: username! };
    if (verdict === "busy") {
      return { kind: "refuse", code: "AUTH_BUSY", reply: encodeHttpResponse(503, "busy: retry") };
    }
    const refusal = this.refuse("AUTH_FAILED", "proxy authentication required", {
      "Proxy-Authenticate": `Basic realm="${HTTP_REALM}"`,
    });
    return verdict === "wrong-password" ? { ...refusal, username } : refusal;
  }

  succeeded(_bound: DialRequest): Uint8Array {
    return encodeHttpResponse(200);
  }

  /** A limit of the proxy's own (out of descriptors) is 503, not the destination's fault. */
  dialFailed(failure: Failure): Uint8Array {
    if (failure.outcome === "limit") return encodeHttpResponse(503, "proxy busy: retry later");
    return encodeHttpResponse(httpStatusForReply(failure.reply ?? 0x01));
  }

  describe(answer: Uint8Array): AnswerCode {
    return { status: httpStatusOf(answer) };
  }

  /** A head that cannot be served: its status, with the detail as the body. */
  private refuseHead(status: HttpErrorStatus, detail: string): FrontStep {
    const code = status === 405 || status === 505 ? "COMMAND_NOT_SUPPORTED" : "HTTP_MALFORMED";
    const headers: Record<string, string> = status === 405 ? { Allow: "CONNECT" } : {};
    return { kind: "refuse", code, reply: encodeHttpResponse(status, detail, headers) };
  }

  private refuse(
    code: HandshakeFailureCode,
    body: string,
    headers: Record<string, string>,
  ): FrontStep & { kind: "refuse" } {
    return {
      kind: "refuse",
      code,
      reply: encodeHttpResponse(STATUS_FOR_CODE[code] ?? 400, body, headers),
    };
  }
}
