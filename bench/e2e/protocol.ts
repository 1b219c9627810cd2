// What main.ts and its two child processes say to each other: the load client's job (argv JSON) and
// its result lines, the servers' lines, and the echo payload size both children must agree on. Not
// code that runs: see child-load.ts, child-servers.ts and harness.ts.

interface JobBase {
  /** Where to connect (the proxy, or the server itself for "direct"). */
  port: number;
  /** SOCKS5 CONNECT (or HTTP CONNECT, with `http`) to 127.0.0.1:socksTarget after connecting;
   *  null = no handshake. */
  socksTarget: number | null;
  /** Reach socksTarget with `CONNECT 127.0.0.1:PORT HTTP/1.1` instead of SOCKS5. */
  http?: boolean;
  /** A connection that has not finished its step by then counts as a "timeout" error. */
  timeoutMs: number;
}
export interface RateJob extends JobBase {
  mode: "rate";
  concurrency: number;
  seconds: number;
}
export interface IdleJob extends JobBase {
  mode: "idle";
  count: number;
  /** Connections being opened at once. */
  concurrency: number;
}
export interface SlowJob extends JobBase {
  mode: "slow";
  count: number;
  streamBytes: number;
  /** Phase 1: read nothing for this long. */
  stallMs: number;
  /** Phase 2: read one chunk per connection per tick for this long. */
  slowMs: number;
  slowTickMs: number;
}
export type LoadJob = RateJob | IdleJob | SlowJob;

export type ErrorKinds = Record<string, number>;

export type LoadMessage =
  | {
      type: "rate";
      completed: number;
      errors: number;
      errorKinds: ErrorKinds;
      elapsedS: number;
      p50Ms: number;
      p90Ms: number;
      p99Ms: number;
      maxMs: number;
    }
  | { type: "holding"; open: number; errors: number; errorKinds: ErrorKinds; openS: number }
  | { type: "releasing" }
  | { type: "closed"; errorsWhileHeld: number; errorsOnRelease: number }
  | { type: "stalling"; connected: number; errors: number }
  | { type: "slow" }
  | { type: "draining"; receivedBytes: number }
  | {
      type: "drained";
      receivedBytes: number;
      errors: number;
      errorKinds: ErrorKinds;
      drainS: number;
    };

export const PAYLOAD_BYTES = 64;

export type ServersMessage =
  | { type: "ready"; echoPort: number; closePort: number; bulkPort: number; udpEchoPort: number }
  | { type: "stats"; bulkSentBytes: number; bulkConnections: number; echoConnections: number }
  | { type: "closed-echo"; closed: number };

// ── UDP (child-udp.ts) ─────────────────────────────────────────────────────────────────────────

export interface UdpRateJob {
  mode: "udp-rate";
  /** The proxy's SOCKS5 port (UDP ASSOCIATE), or null to send straight to the target. */
  proxyPort: number | null;
  /** The UDP echo server on 127.0.0.1. */
  targetPort: number;
  /** Payload bytes per datagram, without the SOCKS UDP header. */
  payloadBytes: number;
  /** Associations (one client socket each) sending at once. */
  associations: number;
  /** Datagrams in flight per association: one more is sent when one comes back or is lost.
   *  0: unpaced, as fast as the client can send (overload). */
  window: number;
  seconds: number;
  /** At most this many datagrams in all. */
  datagramsMax: number;
  /** A datagram not back after this long is counted lost. */
  lostAfterMs: number;
  /** For the control connection's handshake. */
  timeoutMs: number;
}

export interface UdpIdleJob {
  mode: "udp-idle";
  proxyPort: number;
  targetPort: number;
  count: number;
  /** Associations being set up at once. */
  concurrency: number;
  timeoutMs: number;
}

export type UdpJob = UdpRateJob | UdpIdleJob;

export type UdpMessage =
  | {
      type: "udp-rate";
      sent: number;
      received: number;
      lost: number;
      /** Came back after being counted lost (not in `received`). */
      late: number;
      /** Sends the kernel refused (send buffer full); retried on drain, not counted as sent. */
      sendBlocked: number;
      /** Bytes that were not an echo of what was sent. */
      bad: number;
      /** The sending time: first datagram to the end of the run. */
      elapsedS: number;
    }
  | { type: "udp-holding"; open: number; errors: number; errorKinds: ErrorKinds; openS: number }
  | { type: "udp-released"; closedWhileHeld: number };
