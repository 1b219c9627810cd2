// Stage 0 of a connection on a listener with proxy_protocol: reads the PROXY protocol header (v1
// or v2) a load balancer sends before the client's first byte, holding a header split across reads
// in one pool slot as the handshake does (partial.ts). Not the codec (src/protocol/proxy-header.ts),
// not whom to trust (the connection checks the peer against server.trusted_proxies first).

import type { BufferPool } from "../pool/index.ts";
import { type ProxyHeader, parseProxyHeader } from "../protocol/proxy-header.ts";
import { type HandshakeBudget, PartialMessage } from "./partial.ts";

export type HeaderRead =
  | { kind: "need-more" }
  /** `rest`: the bytes of this read after the header (the client's own first bytes), maybe none. */
  | { kind: "header"; header: ProxyHeader; rest: Uint8Array }
  | { kind: "invalid"; reason: string }
  /** A split header could not be held: no slot free, or the handshakes' share spent. */
  | { kind: "no-room" };

const NEED_MORE: HeaderRead = { kind: "need-more" };
const NO_ROOM: HeaderRead = { kind: "no-room" };

export class ProxyHeaderReader {
  // Made only when a header comes split (a balancer sends it whole, in its first segment).
  private partial: PartialMessage | null = null;

  constructor(
    private readonly pool: BufferPool,
    private readonly budget: HandshakeBudget,
  ) {}

  /** Feeds one read. Whatever the answer but need-more, the slot (if any) is back in the pool. */
  feed(chunk: Uint8Array): HeaderRead {
    const held = this.partial?.length ?? 0;
    // The held prefix plus what fits of this read: a slot (≥ 1 KiB) holds the longest header we
    // accept (536 bytes), so the codec always decides within it.
    const input = held > 0 ? this.partial!.extend(chunk) : chunk;
    const step = parseProxyHeader(input);
    if (step.kind === "need-more") {
      this.partial ??= new PartialMessage(this.pool, this.budget);
      return this.partial.keep(input) ? NEED_MORE : NO_ROOM;
    }
    this.drop();
    if (step.kind === "invalid") return step;
    // The header ends inside this read (held < consumed, or it would have been whole before).
    return { kind: "header", header: step.header, rest: chunk.subarray(step.consumed - held) };
  }

  /** Returns the slot, if one is held (the connection closes before the header is whole). */
  drop(): void {
    this.partial?.drop();
  }
}
