// The SOCKS5 side of a connection: the handshake state machine over the pure codecs in
// src/protocol/, then CONNECT through the shared dial and relay. Not the codec (no byte layouts
// here) and not the relay: after the success reply this class only forwards to its base.
//
//   1. greeting   VER NMETHODS METHODS      → 05 METHOD   (05 FF and close when none is acceptable)
//   2. auth       RFC 1929 user/password    → 01 STATUS   (only when users are configured)
//   3. request    VER CMD RSV ATYP ADDR PORT → dial → 05 00 00 ATYP BND.ADDR BND.PORT, relay
//
// A message may arrive split at any byte: the incomplete part is copied into one pool slot until
// the rest comes (every message fits one slot: AUTH_REQUEST_BYTES_MAX ≤ slot_bytes, asserted in
// server.ts). Bytes after the request (pipelined early data) go to the relay, never dropped.

import { timingSafeEqual } from "node:crypto";
import type { Socket } from "bun";
import { EXHAUSTED } from "../pool/index.ts";
import {
  AuthStatus,
  Command,
  chooseMethod,
  type Decoded,
  decodeAuthRequest,
  decodeGreeting,
  decodeRequest,
  encodeAuthReply,
  encodeMethodSelection,
  encodeReply,
  Method,
  Reply,
} from "../protocol/index.ts";
import {
  type ClientSocket,
  Connection,
  type ConnectionContext,
  type Outcome,
} from "./connection.ts";

type Step = "greeting" | "auth" | "request";

/** Usernames to UTF-8 password bytes, built once per server from config. */
export type Credentials = ReadonlyMap<string, Uint8Array>;

const encoder = new TextEncoder();

export function credentialsOf(
  users: readonly { username: string; password: string }[],
): Credentials {
  return new Map(users.map((user) => [user.username, encoder.encode(user.password)]));
}

/** Constant-time in the password bytes, so a wrong guess learns nothing from the timing. */
function passwordMatches(expected: Uint8Array | undefined, given: Uint8Array): boolean {
  if (expected === undefined || expected.length !== given.length) return false;
  return timingSafeEqual(expected, given);
}

export class SocksConnection extends Connection {
  readonly kind = "socks";
  private step: Step = "greeting";
  private readonly credentials: Credentials | null;
  private partialSlot = EXHAUSTED; // pool slot holding an incomplete message, if any
  private partialLength = 0;

  constructor(ctx: ConnectionContext, client: ClientSocket, credentials: Credentials | null) {
    super(ctx, client, "handshake", ctx.config.socks.handshake_timeout_ms);
    this.credentials = credentials;
  }

  override clientData(chunk: Uint8Array): void {
    if (this.phase === "handshake") this.handshake(chunk);
    else super.clientData(chunk);
  }

  override clientEnd(): void {
    if (this.phase === "handshake") this.close("aborted");
    else super.clientEnd();
  }

  override close(outcome: Outcome, reply?: Uint8Array | null): void {
    this.dropPartial();
    super.close(outcome, reply);
  }

  /** Feeds bytes through the steps; whatever follows the request is early data for the relay. */
  private handshake(chunk: Uint8Array): void {
    let rest = chunk;
    while (rest.length > 0 && this.phase === "handshake") {
      let input = rest;
      const before = this.partialLength;
      if (before > 0) {
        // Continue the message that began in the slot; copy only what can belong to it.
        const slot = this.ctx.pool.view(this.partialSlot);
        const take = Math.min(rest.length, slot.length - before);
        slot.set(rest.subarray(0, take), before);
        input = slot.subarray(0, before + take);
      }
      const consumed = this.advance(input);
      if (consumed < 0) return; // answered and closed
      if (consumed === 0) {
        this.keepPartial(input);
        return;
      }
      this.dropPartial();
      rest = rest.subarray(consumed - before);
    }
    if (rest.length > 0 && this.phase !== "closed") super.clientData(rest); // pipelined early data
  }

  /** One step on a complete-or-partial message: bytes consumed, 0 for "need more", -1 if closed. */
  private advance(input: Uint8Array): number {
    switch (this.step) {
      case "greeting":
        return this.consume(decodeGreeting(input), (greeting) => {
          const method = chooseMethod(greeting.methods, {
            authRequired: this.credentials !== null,
          });
          if (!this.send(encodeMethodSelection(method))) return false;
          if (method === Method.NO_ACCEPTABLE) return this.refuse("auth_failed");
          this.step = method === Method.USERNAME_PASSWORD ? "auth" : "request";
          return true;
        });
      case "auth":
        return this.consume(decodeAuthRequest(input), (auth) => {
          const ok = passwordMatches(this.credentials?.get(auth.username), auth.password);
          if (!this.send(encodeAuthReply(ok ? AuthStatus.SUCCESS : AuthStatus.FAILURE)))
            return false;
          if (!ok) {
            this.ctx.log.info("authentication failed", { username: auth.username });
            return this.refuse("auth_failed");
          }
          this.step = "request";
          return true;
        });
      case "request":
        return this.consume(decodeRequest(input), (request) => {
          if (request.command !== Command.CONNECT) {
            return this.refuse("unsupported", encodeReply(Reply.COMMAND_NOT_SUPPORTED));
          }
          void this.dial(request.address.host, request.port);
          return true;
        });
    }
  }

  /** Runs `act` on a decoded message; answers a protocol error with its reply (if any) and closes. */
  private consume<T>(decoded: Decoded<T>, act: (message: T) => boolean): number {
    switch (decoded.kind) {
      case "need-more":
        return 0;
      case "error": {
        const { error } = decoded;
        this.ctx.log.debug("bad handshake", { code: error.code, error: error.message });
        const reply = error.reply === null ? null : this.errorReply(error.reply);
        const outcome =
          error.code === "SOCKS_COMMAND" || error.code === "SOCKS_ADDRESS_TYPE"
            ? "unsupported"
            : "bad_request";
        this.close(outcome, reply);
        return -1;
      }
      case "message":
        return act(decoded.message) ? decoded.bytes : -1;
    }
  }

  /** A protocol error's reply byte, framed for the step it happened in. */
  private errorReply(reply: number): Uint8Array {
    switch (this.step) {
      case "greeting":
        return encodeMethodSelection(reply);
      case "auth":
        return encodeAuthReply(reply);
      case "request":
        return encodeReply(reply);
    }
  }

  private refuse(outcome: Outcome, reply?: Uint8Array): false {
    this.close(outcome, reply);
    return false;
  }

  protected connected(upstream: Socket<Connection>): boolean {
    return this.send(
      encodeReply(Reply.SUCCEEDED, { host: upstream.localAddress, port: upstream.localPort }),
    );
  }

  protected failureReply(reply: number): Uint8Array {
    return encodeReply(reply);
  }

  private keepPartial(input: Uint8Array): void {
    if (this.partialLength > 0) {
      this.partialLength = input.length; // already in the slot (input is a view of it)
      return;
    }
    const slot = this.ctx.pool.acquire();
    if (slot === EXHAUSTED) {
      this.close("limit"); // no room to wait for the rest; the pool is saturated
      return;
    }
    this.partialSlot = slot;
    this.ctx.pool.view(slot).set(input, 0);
    this.partialLength = input.length;
  }

  private dropPartial(): void {
    if (this.partialSlot === EXHAUSTED) return;
    this.ctx.pool.release(this.partialSlot);
    this.partialSlot = EXHAUSTED;
    this.partialLength = 0;
  }
}
