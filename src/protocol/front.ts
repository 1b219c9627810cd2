// What a front protocol is to the connection pipeline: a pure state object that reads the client's
// handshake and says what to do next. SOCKS5 is one (socks-handshake.ts); HTTP CONNECT will be
// another. Not I/O: the pipeline (src/proxy/connection.ts) owns the sockets, the buffering of a
// message split across reads, the dial and every log line.

import type { ProtocolError } from "./errors.ts";
import type { Failure, HandshakeFailureCode } from "./failures.ts";

/** Where the client wants to go. `host` is an IP literal or a domain, unresolved. */
export interface DialRequest {
  host: string;
  port: number;
}

/**
 * The result of feeding the front protocol the bytes it has so far. `consumed` counts the bytes of
 * the input that belonged to the message just handled; the caller feeds the rest next.
 * - `need-more`: the input is a valid prefix of a message; keep it all and feed it again with more.
 * - `reply`: send `bytes` to the client, then go on feeding the rest.
 * - `dial`: the handshake is done; connect to `request`. Bytes after `consumed` are early data for
 *   the relay, never dropped. `user` is the authenticated username, if the protocol has one.
 * - `associate`: a SOCKS5 UDP ASSOCIATE (RFC 1928 §6): open a datagram relay for the client, which
 *   says it will send from `client` (host and port may be all zeros: not known yet); answer with
 *   succeeded() naming the relay, then hold the connection open as the association's lifeline.
 * - `login`: the credentials are being checked off the event loop (a hashed password). Hold the
 *   bytes after `consumed` and read nothing more from the client until `verdict` settles, then
 *   hand it to loginResult() and go on with the step it returns (and then the held bytes).
 * - `refuse`: send `reply` (if any), then close. `error` is the decoder's error, when one caused it;
 *   `username` is set for a failed login of a configured user only (the password never leaves
 *   the front, and an unknown name may hold password bytes of a misframed request).
 */
export type FrontStep =
  | { kind: "need-more" }
  | { kind: "reply"; consumed: number; bytes: Uint8Array }
  | { kind: "dial"; consumed: number; request: DialRequest; user?: string }
  | { kind: "associate"; consumed: number; client: DialRequest; user?: string }
  | { kind: "login"; consumed: number; verdict: Promise<LoginVerdict> }
  | {
      kind: "refuse";
      code: ProtocolError["code"] | HandshakeFailureCode;
      reply: Uint8Array | null;
      error?: ProtocolError;
      username?: string;
    };

export interface FrontProtocol {
  /** Reads the next message from `input` (a whole message or a prefix of one). */
  feed(input: Uint8Array): FrontStep;
  /** The client's answer once the upstream is connected; `bound` is its local address. */
  succeeded(bound: DialRequest): Uint8Array;
  /** The client's answer when the dial failed (the failure table's entry: its SOCKS reply byte and
   *  its outcome, so a limit can be told from a refusal). */
  dialFailed(failure: Failure): Uint8Array;
  /** How an answer this front produced is named in the log and the counters: the SOCKS reply
   *  byte, or the HTTP status. */
  describe(answer: Uint8Array): AnswerCode;
  /** Goes on after a `login` step, with the verdict it waited for. Its `consumed` is 0. */
  loginResult(verdict: LoginVerdict): FrontStep;
}

/** An answer's code: `reply` for SOCKS5 (the REP/STATUS/METHOD byte), `status` for HTTP. */
export type AnswerCode = { reply: number } | { status: number };

/** What a login check found. "busy": too many checks in flight to start another one now. */
export type LoginVerdict = "ok" | "wrong-password" | "unknown-user" | "busy";

/** Checks a login; must compare a plain password in constant time. A Promise when the check runs
 *  off the event loop (a hashed password); a plain verdict when it is immediate. */
export type PasswordCheck = (
  username: string,
  password: Uint8Array,
) => LoginVerdict | Promise<LoginVerdict>;
