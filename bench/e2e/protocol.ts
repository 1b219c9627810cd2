// What main.ts and its two child processes say to each other: the load client's job (argv JSON) and
// its result lines, the servers' lines, and the echo payload size both children must agree on. Not
// code that runs: see child-load.ts, child-servers.ts and harness.ts.

interface JobBase {
  /** Where to connect (the proxy, or the server itself for "direct"). */
  port: number;
  /** SOCKS5 CONNECT to 127.0.0.1:socksTarget after connecting; null = no handshake. */
  socksTarget: number | null;
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
  | { type: "ready"; echoPort: number; closePort: number; bulkPort: number }
  | { type: "stats"; bulkSentBytes: number; bulkConnections: number; echoConnections: number }
  | { type: "closed-echo"; closed: number };
