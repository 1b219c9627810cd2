// What the WAN benchmark's processes agree on: the link's addresses (RFC 2544's benchmarking range,
// only inside the namespace the benchmark makes), the request and response the target serves, the
// load client's job and result lines, and the target's lines. Types and constants only; the
// processes are link.ts (the namespace and delay line), target.ts and client.ts.

/** The root namespace's end of the link (tun "root" device). */
export const ROOT_ADDRESS = "198.18.0.1";
/** The target's end, inside the benchmark's namespace (tun "far" device). */
export const FAR_ADDRESS = "198.18.1.1";

/** What a client sends once connected (through the proxy or not): a small HTTP/1.0 GET. The
 *  target answers once it has read the blank line that ends it. */
export const REQUEST = new TextEncoder().encode(
  "GET /wan HTTP/1.0\r\nHost: 198.18.1.1\r\nUser-Agent: sockpool-bench\r\n\r\n",
);
/** The whole response, headers and body; the target closes after it (HTTP/1.0, no keep-alive),
 *  so TIME_WAIT stays on the target's side and ties up no client port. */
export const RESPONSE_BYTES = 512;
/** The largest request the target reads before it gives up on a client (it never should). */
export const REQUEST_BYTES_MAX = 4096;

export interface ClientJob {
  /** null: straight to the target; else SOCKS5 (no auth) through 127.0.0.1:proxyPort. */
  proxyPort: number | null;
  targetHost: string;
  targetPort: number;
  concurrency: number;
  /** Connections to complete; fewer when `seconds` runs out first. */
  count: number;
  seconds: number;
  /** A connection that has not finished by then counts as a "timeout" error. */
  timeoutMs: number;
  /** A CONNECT reply faster than this cannot have waited for an upstream handshake (one RTT). */
  fastReplyMs: number;
}

export interface ClientResult {
  type: "result";
  completed: number;
  errors: number;
  errorKinds: Record<string, number>;
  elapsedS: number;
  /** Connect start → first response byte, per completed connection (ms). */
  firstByte: Percentiles;
  /** Connect start → the first hop's TCP handshake done (the proxy on loopback, or the target). */
  connect: Percentiles;
  /** SOCKS5 CONNECT sent → reply received; null when direct. */
  reply: Percentiles | null;
  /** CONNECT replies faster than fastReplyMs: served without an upstream handshake. */
  fastReplies: number;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export type TargetMessage =
  | { type: "ready"; port: number }
  | { type: "stats"; accepted: number; served: number; unused: number; errors: number };
