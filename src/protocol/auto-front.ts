// SOCKS5 and HTTP CONNECT on one port (socks.protocol = "auto"): a front protocol that reads the
// client's first byte, picks the front that speaks it, and hands every later call to that one. Not
// a parser of either protocol: both fronts stay as they are, and this file only chooses.
//
//   first byte 0x05            → SOCKS5 (its version byte)
//   first byte A-Z or a-z      → HTTP (a request line starts with a method token: CONNECT, GET…)
//   anything else              → SOCKS5 too, which refuses it as a wrong version: no reply, close,
//                                exactly as a SOCKS-only listener treats it

import type { Failure } from "./failures.ts";
import type { AnswerCode, DialRequest, FrontProtocol, FrontStep, LoginVerdict } from "./front.ts";

const SOCKS_VERSION_BYTE = 0x05;

/** True for an ASCII letter: the first byte of every HTTP method. */
function isAsciiLetter(byte: number): boolean {
  return (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a);
}

export class AutoFront implements FrontProtocol {
  private chosen: FrontProtocol | null = null;
  private chosenHttp = false;
  private readonly socks: () => FrontProtocol;
  private readonly http: () => FrontProtocol;

  /** Each factory is called at most once, when the first byte chooses it. */
  constructor(socks: () => FrontProtocol, http: () => FrontProtocol) {
    this.socks = socks;
    this.http = http;
  }

  /** "socks" or "http" once the first byte has chosen; null before. */
  get protocol(): "socks" | "http" | null {
    if (this.chosen === null) return null;
    return this.chosenHttp ? "http" : "socks";
  }

  feed(input: Uint8Array): FrontStep {
    if (this.chosen === null) {
      if (input.length === 0) return { kind: "need-more" };
      const first = input[0]!;
      this.chosenHttp = first !== SOCKS_VERSION_BYTE && isAsciiLetter(first);
      this.chosen = this.chosenHttp ? this.http() : this.socks();
    }
    return this.chosen.feed(input);
  }

  succeeded(bound: DialRequest): Uint8Array {
    return this.front().succeeded(bound);
  }

  dialFailed(failure: Failure): Uint8Array {
    return this.front().dialFailed(failure);
  }

  describe(answer: Uint8Array): AnswerCode {
    return this.front().describe(answer);
  }

  loginResult(verdict: LoginVerdict): FrontStep {
    return this.front().loginResult(verdict);
  }

  private front(): FrontProtocol {
    if (this.chosen === null) throw new Error("assert: AutoFront used before its first byte");
    return this.chosen;
  }
}
