// The SOCKS5 front protocol: the server side of the handshake as a pure state object over the codecs.
// It reads one message at a time and says what to answer; it never touches a socket, a timer or the
// pool, and it never sees how the bytes were split (the pipeline re-feeds a partial message).
// Not the credential store: the caller passes the check, so how passwords are kept can change
// without this file.
//
//   1. greeting   VER NMETHODS METHODS       → 05 METHOD   (05 FF and refuse when none is acceptable)
//   2. auth       RFC 1929 user/password     → 01 STATUS   (only when a password check is given)
//   3. request    VER CMD RSV ATYP ADDR PORT → dial (CONNECT), or associate (UDP ASSOCIATE, when
//                 served); the pipeline answers with succeeded()/dialFailed()

import { decodeAuthRequest, encodeAuthReply } from "./auth.ts";
import { AuthStatus, Command, Method, Reply } from "./constants.ts";
import type { Decoded, ProtocolError } from "./errors.ts";
import { type Failure, type HandshakeFailureCode, handshakeFailure } from "./failures.ts";
import type {
  AnswerCode,
  DialRequest,
  FrontProtocol,
  FrontStep,
  LoginVerdict,
  PasswordCheck,
} from "./front.ts";
import { chooseMethod, decodeGreeting, encodeMethodSelection } from "./greeting.ts";
import { decodeRequest, encodeReply } from "./request.ts";

export type { LoginVerdict, PasswordCheck } from "./front.ts";

type Step = "greeting" | "auth" | "request" | "done";

export class Socks5Handshake implements FrontProtocol {
  private step: Step = "greeting";
  private user: string | undefined; // set once RFC 1929 succeeded
  private loggingIn: string | undefined; // the username whose check is in flight
  private readonly checkPassword: PasswordCheck | null;
  private readonly udp: boolean;

  /** `checkPassword` null: no authentication (method 00); else RFC 1929 is required. `udp`: UDP
   *  ASSOCIATE is served (else answered 07, like BIND). */
  constructor(checkPassword: PasswordCheck | null, options: { udp?: boolean } = {}) {
    this.checkPassword = checkPassword;
    this.udp = options.udp ?? false;
  }

  feed(input: Uint8Array): FrontStep {
    switch (this.step) {
      case "greeting":
        return this.next(decodeGreeting(input), (greeting, consumed) => {
          const method = chooseMethod(greeting.methods, {
            authRequired: this.checkPassword !== null,
          });
          if (method === Method.NO_ACCEPTABLE) return this.refuse("NO_ACCEPTABLE_METHOD");
          this.step = method === Method.USERNAME_PASSWORD ? "auth" : "request";
          return { kind: "reply", consumed, bytes: encodeMethodSelection(method) };
        });
      case "auth":
        return this.next(decodeAuthRequest(input), (auth, consumed) => {
          const verdict = this.checkPassword?.(auth.username, auth.password) ?? "unknown-user";
          if (typeof verdict !== "string") {
            this.loggingIn = auth.username;
            return { kind: "login", consumed, verdict };
          }
          return this.login(auth.username, verdict, consumed);
        });
      case "request":
        return this.next(decodeRequest(input), (request, consumed) => {
          const associate = request.command === Command.UDP_ASSOCIATE && this.udp;
          if (request.command !== Command.CONNECT && !associate) {
            return this.refuse("COMMAND_NOT_SUPPORTED");
          }
          this.step = "done";
          if (associate) {
            const step: FrontStep = {
              kind: "associate",
              consumed,
              client: { host: request.address.host, port: request.port },
            };
            return this.user === undefined ? step : { ...step, user: this.user };
          }
          const dial: FrontStep = {
            kind: "dial",
            consumed,
            request: { host: request.address.host, port: request.port },
          };
          return this.user === undefined ? dial : { ...dial, user: this.user };
        });
      case "done":
        throw new Error("assert: Socks5Handshake.feed() after the request was read");
    }
  }

  loginResult(verdict: LoginVerdict): FrontStep {
    const username = this.loggingIn;
    if (username === undefined) throw new Error("assert: loginResult() without a login step");
    this.loggingIn = undefined;
    return this.login(username, verdict, 0);
  }

  /** The auth step's answer once the verdict is known. */
  private login(username: string, verdict: LoginVerdict, consumed: number): FrontStep {
    if (verdict === "busy") return this.refuse("AUTH_BUSY");
    if (verdict !== "ok") {
      // Only a configured user's name is given out for the log: an unknown one may be the
      // client's misframing (a wrong ULEN pulls PLEN and password bytes into the name).
      const refusal = this.refuse("AUTH_FAILED");
      return verdict === "wrong-password" ? { ...refusal, username } : refusal;
    }
    this.step = "request";
    this.user = username;
    return { kind: "reply", consumed, bytes: encodeAuthReply(AuthStatus.SUCCESS) };
  }

  succeeded(bound: DialRequest): Uint8Array {
    return encodeReply(Reply.SUCCEEDED, bound);
  }

  dialFailed(failure: Failure): Uint8Array {
    return encodeReply(failure.reply ?? Reply.GENERAL_FAILURE);
  }

  /** Every SOCKS5 and RFC 1929 answer carries its code in its second byte. */
  describe(answer: Uint8Array): AnswerCode {
    return { reply: answer[1]! };
  }

  /** Acts on a decoded message; a decoder error becomes a refusal framed for this step. */
  private next<T>(
    decoded: Decoded<T>,
    act: (message: T, consumed: number) => FrontStep,
  ): FrontStep {
    switch (decoded.kind) {
      case "need-more":
        return decoded;
      case "error":
        return { ...this.refuse(decoded.error.code), error: decoded.error };
      case "message":
        return act(decoded.message, decoded.bytes);
    }
  }

  /** A refusal with the failure table's reply byte in this step's message (none for some). */
  private refuse(code: ProtocolError["code"] | HandshakeFailureCode): FrontStep & {
    kind: "refuse";
  } {
    const { reply } = handshakeFailure(code);
    const step = this.step;
    this.step = "done";
    return { kind: "refuse", code, reply: reply === null ? null : frame(step, reply) };
  }
}

/** A reply byte as the message of the step that failed. */
function frame(step: Step, reply: number): Uint8Array {
  switch (step) {
    case "greeting":
      return encodeMethodSelection(reply);
    case "auth":
      return encodeAuthReply(reply);
    default:
      return encodeReply(reply);
  }
}
