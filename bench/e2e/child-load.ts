// The load client of the end-to-end benchmark, run as its OWN process (so its CPU is not the
// proxy's): raw SOCKS5 (no auth, CONNECT to 127.0.0.1) or a plain TCP connection, then one of
//   rate  C concurrent loops for T seconds: connect [+ handshake] + 64 B echo + close; latencies;
//   idle  N connections that complete [handshake +] one echo, then stay open until told "close";
//   slow  K connections fed a large stream by the target while this side reads nothing, then
//         one chunk per tick, then everything (the byte count is checked).
// Every failure is counted by kind. Results are JSON lines on stdout. Not a SOCKS library: it
// knows exactly the bytes this benchmark sends, and nothing else.
//
//   bun bench/e2e/child-load.ts '<LoadJob as JSON>'

import type { Socket } from "bun";

// ── The job and its results (shared with main.ts) ──────────────────────────────────────────────

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

// ── Wire bytes ─────────────────────────────────────────────────────────────────────────────────

// Greeting: VER=05 NMETHODS=01 METHOD=00 (no auth). Answer: VER=05 METHOD=00.
const GREETING = Uint8Array.of(0x05, 0x01, 0x00);

/** CONNECT request: VER=05 CMD=01 RSV=00 ATYP=01 127.0.0.1 PORT (10 bytes). */
function connectRequest(port: number): Uint8Array {
  return Uint8Array.of(0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, port >> 8, port & 0xff);
}

/** Length of a CONNECT reply whose first bytes are `head`, or 0 when more bytes are needed:
 *  VER REP RSV ATYP + BND.ADDR (4, 16, or 1 + n for a name) + BND.PORT (2). */
function replyLength(head: Uint8Array): number {
  if (head.length < 5) return 0;
  switch (head[3]) {
    case 0x01:
      return 4 + 4 + 2;
    case 0x04:
      return 4 + 16 + 2;
    case 0x03:
      return 4 + 1 + head[4]! + 2;
    default:
      return -1;
  }
}

const PAYLOAD = new Uint8Array(PAYLOAD_BYTES).map((_, index) => 0x41 + (index % 26));

// ── One connection's state machine ─────────────────────────────────────────────────────────────

const Phase = {
  Connecting: 0,
  Greeting: 1, // sent the greeting, want "05 00"
  Request: 2, // sent CONNECT, want the reply
  Echo: 3, // sent the payload, want it back
  Ready: 4, // idle: holding; slow: receiving the stream
  Done: 5,
} as const;
type Phase = (typeof Phase)[keyof typeof Phase];

interface Conn {
  phase: Phase;
  startedMs: number;
  socket: Socket<Conn> | null;
  /** Handshake bytes received but not yet complete. */
  pending: Uint8Array;
  echoed: number;
  receivedBytes: number;
  /** The far side closes first here (rate: after the echo; idle: when released): not an error. */
  closeExpected: boolean;
  /** When the echo came back (rate: the latency's end). */
  echoMs: number;
}

type Listener = {
  /** The connection reached Ready (after the echo, or the reply in slow mode). */
  ready(conn: Conn): void;
  failed(conn: Conn, kind: string): void;
  /** The far side closed a connection whose close was expected. */
  closed?(conn: Conn): void;
  /** Slow mode: stream bytes arrived. */
  stream?(conn: Conn, bytes: number): void;
};

class Client {
  readonly errorKinds: ErrorKinds = {};
  errors = 0;
  readonly inFlight = new Set<Conn>();
  private readonly request: Uint8Array | null;
  private readonly sweeper: ReturnType<typeof setInterval>;

  constructor(
    private readonly job: LoadJob,
    private readonly listener: Listener,
  ) {
    this.request = job.socksTarget === null ? null : connectRequest(job.socksTarget);
    this.sweeper = setInterval(() => this.sweep(), 200);
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  countError(kind: string): void {
    this.errors++;
    this.errorKinds[kind] = (this.errorKinds[kind] ?? 0) + 1;
  }

  private sweep(): void {
    const now = performance.now();
    for (const conn of this.inFlight) {
      if (now - conn.startedMs > this.job.timeoutMs) this.fail(conn, "timeout");
    }
  }

  private fail(conn: Conn, kind: string): void {
    if (conn.phase === Phase.Done) return;
    conn.phase = Phase.Done;
    this.inFlight.delete(conn);
    conn.socket?.terminate();
    this.countError(kind);
    this.listener.failed(conn, kind);
  }

  private reachReady(conn: Conn): void {
    conn.phase = Phase.Ready;
    if (this.job.mode === "rate") {
      conn.closeExpected = true; // the echo-close server closes first; the timeout still applies
    } else {
      this.inFlight.delete(conn);
    }
    this.listener.ready(conn);
  }

  /** The far side's FIN or close. */
  private onPeerClose(socket: Socket<Conn>): void {
    const conn = socket.data;
    if (conn.phase === Phase.Done) return;
    if (!conn.closeExpected) {
      this.fail(conn, "closed-early");
      return;
    }
    conn.phase = Phase.Done;
    this.inFlight.delete(conn);
    socket.end();
    this.listener.closed?.(conn);
  }

  open(): Conn {
    const conn: Conn = {
      phase: Phase.Connecting,
      startedMs: performance.now(),
      socket: null,
      pending: new Uint8Array(0),
      echoed: 0,
      receivedBytes: 0,
      closeExpected: false,
      echoMs: 0,
    };
    this.inFlight.add(conn);
    Bun.connect<Conn>({
      hostname: "127.0.0.1",
      port: this.job.port,
      data: conn,
      socket: this.handlers,
    }).catch(() => {
      // connectError below has counted it.
    });
    return conn;
  }

  private sendPayload(conn: Conn, socket: Socket<Conn>): void {
    conn.phase = Phase.Echo;
    if (socket.write(PAYLOAD) !== PAYLOAD.length) this.fail(conn, "short-write");
  }

  /** After the handshake (or at open without one): echo, or stream straight away in slow mode. */
  private afterHandshake(conn: Conn, socket: Socket<Conn>, rest: Uint8Array): void {
    if (this.job.mode === "slow") {
      socket.pause(); // read nothing more until the stall is over
      this.reachReady(conn);
      if (rest.length > 0) this.onStream(conn, rest.length);
    } else if (rest.length > 0) {
      this.fail(conn, "unexpected-bytes");
    } else {
      this.sendPayload(conn, socket);
    }
  }

  private onStream(conn: Conn, bytes: number): void {
    conn.receivedBytes += bytes;
    this.listener.stream?.(conn, bytes);
  }

  private readonly handlers = {
    open: (socket: Socket<Conn>) => {
      const conn = socket.data;
      conn.socket = socket;
      if (this.request === null) {
        this.afterHandshake(conn, socket, new Uint8Array(0));
      } else {
        conn.phase = Phase.Greeting;
        if (socket.write(GREETING) !== GREETING.length) this.fail(conn, "short-write");
      }
    },
    data: (socket: Socket<Conn>, chunk: Uint8Array) => {
      const conn = socket.data;
      switch (conn.phase) {
        case Phase.Greeting:
        case Phase.Request: {
          const input = conn.pending.length === 0 ? chunk : concat(conn.pending, chunk);
          this.onHandshakeBytes(conn, socket, input);
          return;
        }
        case Phase.Echo: {
          for (let index = 0; index < chunk.length; index++) {
            if (chunk[index] !== PAYLOAD[conn.echoed + index]) {
              this.fail(conn, "echo-bytes");
              return;
            }
          }
          conn.echoed += chunk.length;
          if (conn.echoed > PAYLOAD_BYTES) {
            this.fail(conn, "echo-bytes");
            return;
          }
          if (conn.echoed === PAYLOAD_BYTES) this.reachReady(conn);
          return;
        }
        case Phase.Ready:
          if (this.job.mode === "slow") this.onStream(conn, chunk.length);
          else this.fail(conn, "unexpected-bytes");
          return;
        default:
          return; // Done: late bytes on a connection we are closing
      }
    },
    close: (socket: Socket<Conn>) => this.onPeerClose(socket),
    end: (socket: Socket<Conn>) => this.onPeerClose(socket),
    error: (socket: Socket<Conn>, error: Error) => {
      this.fail(socket.data, `socket-error ${(error as { code?: string }).code ?? error.name}`);
    },
    connectError: (socket: Socket<Conn>, error: Error) => {
      this.fail(socket.data, `connect ${(error as { code?: string }).code ?? error.name}`);
    },
    drain: () => {},
  };

  private onHandshakeBytes(conn: Conn, socket: Socket<Conn>, input: Uint8Array): void {
    if (conn.phase === Phase.Greeting) {
      if (input.length < 2) {
        conn.pending = input;
        return;
      }
      if (input[0] !== 0x05 || input[1] !== 0x00) {
        this.fail(conn, `greeting ${hex(input.subarray(0, 2))}`);
        return;
      }
      if (input.length > 2) {
        this.fail(conn, "unexpected-bytes");
        return;
      }
      conn.pending = new Uint8Array(0);
      conn.phase = Phase.Request;
      if (socket.write(this.request!) !== this.request!.length) this.fail(conn, "short-write");
      return;
    }
    const length = replyLength(input);
    if (length < 0) {
      this.fail(conn, `reply-atyp ${hex(input.subarray(3, 4))}`);
      return;
    }
    if (length === 0 || input.length < length) {
      conn.pending = input;
      return;
    }
    if (input[0] !== 0x05 || input[1] !== 0x00) {
      this.fail(conn, `reply ${hex(input.subarray(0, 2))}`);
      return;
    }
    conn.pending = new Uint8Array(0);
    this.afterHandshake(conn, socket, input.subarray(length));
  }

  /** A connection we are done with: no error for its close. */
  finish(conn: Conn): void {
    conn.phase = Phase.Done;
    this.inFlight.delete(conn);
    conn.socket?.end();
  }
}

function concat(left: Uint8Array, right: Uint8Array): Uint8Array {
  const out = new Uint8Array(left.length + right.length);
  out.set(left, 0);
  out.set(right, left.length);
  return out;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(" ");
}

function emit(message: LoadMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank]!;
}

// ── rate ───────────────────────────────────────────────────────────────────────────────────────

async function runRate(job: RateJob): Promise<void> {
  const latencies: number[] = [];
  const started = performance.now();
  const endMs = started + job.seconds * 1000;
  let running = job.concurrency;
  let finished!: () => void;
  const allDone = new Promise<void>((resolve) => {
    finished = resolve;
  });
  const next = () => {
    if (performance.now() < endMs) client.open();
    else if (--running === 0) finished();
  };
  const client: Client = new Client(job, {
    ready(conn) {
      conn.echoMs = performance.now();
    },
    closed(conn) {
      // Counted once the whole loop is done: the proxy closed after the server did.
      latencies.push(conn.echoMs - conn.startedMs);
      next();
    },
    failed() {
      // A refused port would otherwise spin: give the loop a millisecond.
      setTimeout(next, 1);
    },
  });
  for (let loop = 0; loop < job.concurrency; loop++) client.open();
  await allDone;
  const elapsedS = (performance.now() - started) / 1000;
  client.close();
  const sorted = Float64Array.from(latencies).sort();
  emit({
    type: "rate",
    completed: latencies.length,
    errors: client.errors,
    errorKinds: client.errorKinds,
    elapsedS,
    p50Ms: percentile(sorted, 0.5),
    p90Ms: percentile(sorted, 0.9),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.length === 0 ? 0 : sorted[sorted.length - 1]!,
  });
}

// ── idle ───────────────────────────────────────────────────────────────────────────────────────

async function runIdle(job: IdleJob): Promise<void> {
  const held: Conn[] = [];
  let started = 0;
  let settled = 0;
  let finished!: () => void;
  const allSettled = new Promise<void>((resolve) => {
    finished = resolve;
  });
  const next = () => {
    settled++;
    if (started < job.count) {
      started++;
      client.open();
    } else if (settled === job.count) finished();
  };
  const hooks: Listener = {
    ready(conn) {
      held.push(conn);
      next();
    },
    failed() {
      next();
    },
  };
  const client = new Client(job, hooks);
  const begin = performance.now();
  for (; started < Math.min(job.concurrency, job.count); started++) client.open();
  if (job.count === 0) finished();
  await allSettled;
  // Idle connections must not time out while held.
  client.close();
  emit({
    type: "holding",
    open: held.length,
    errors: client.errors,
    errorKinds: client.errorKinds,
    openS: (performance.now() - begin) / 1000,
  });
  const errorsAtHold = client.errors;
  // Hold until told "release" (or until stdin ends: the orchestrator is gone). Then the echo
  // server closes first, so TIME_WAIT stays on the listening sides and ties up no ephemeral port.
  let released = false;
  for await (const chunk of Bun.stdin.stream()) {
    if (new TextDecoder().decode(chunk).includes("release")) {
      released = true;
      break;
    }
  }
  const errorsWhileHeld = client.errors - errorsAtHold;
  const open = held.filter((conn) => conn.phase === Phase.Ready);
  if (released) {
    let closed = 0;
    let allClosed!: () => void;
    const done = new Promise<void>((resolve) => {
      allClosed = resolve;
    });
    for (const conn of open) conn.closeExpected = true;
    hooks.closed = () => {
      if (++closed === open.length) allClosed();
    };
    emit({ type: "releasing" });
    if (open.length > 0) {
      await Promise.race([done, Bun.sleep(job.timeoutMs)]);
    }
    for (const conn of open) {
      if (conn.phase !== Phase.Done) client.countError("not-closed-by-server");
    }
  }
  for (const conn of open) client.finish(conn);
  emit({
    type: "closed",
    errorsWhileHeld,
    errorsOnRelease: client.errors - errorsAtHold - errorsWhileHeld,
  });
}

// ── slow ───────────────────────────────────────────────────────────────────────────────────────

async function runSlow(job: SlowJob): Promise<void> {
  const ready: Conn[] = [];
  let settled = 0;
  let phase: "stall" | "slow" | "drain" = "stall";
  let connected!: () => void;
  const allConnected = new Promise<void>((resolve) => {
    connected = resolve;
  });
  let drained!: () => void;
  const allDrained = new Promise<void>((resolve) => {
    drained = resolve;
  });
  let complete = 0;
  let receivedBytes = 0;
  const client: Client = new Client(job, {
    ready(conn) {
      ready.push(conn);
      if (++settled === job.count) connected();
    },
    failed(conn) {
      if (conn.phase === Phase.Done && ready.includes(conn)) {
        if (++complete === ready.length) drained(); // a stream that broke counts as finished
        return;
      }
      if (++settled === job.count) connected();
    },
    stream(conn, bytes) {
      receivedBytes += bytes;
      if (phase === "slow") conn.socket?.pause(); // one chunk per tick
      if (conn.receivedBytes > job.streamBytes) {
        client.countError("stream-too-long");
      }
      if (conn.receivedBytes >= job.streamBytes && phase === "drain") {
        client.finish(conn);
        if (++complete === ready.length) drained();
      }
    },
  });
  // The whole connection must finish within its timeout, not just the handshake: sweep later.
  for (let index = 0; index < job.count; index++) client.open();
  await allConnected;
  emit({ type: "stalling", connected: ready.length, errors: client.errors });
  await Bun.sleep(job.stallMs);

  phase = "slow";
  emit({ type: "slow" });
  const slowEnd = performance.now() + job.slowMs;
  while (performance.now() < slowEnd) {
    for (const conn of ready) if (conn.phase === Phase.Ready) conn.socket?.resume();
    await Bun.sleep(job.slowTickMs);
  }

  phase = "drain";
  emit({ type: "draining", receivedBytes });
  const drainStart = performance.now();
  for (const conn of ready) {
    if (conn.phase !== Phase.Ready) continue;
    if (conn.receivedBytes >= job.streamBytes) {
      client.finish(conn);
      complete++;
    } else {
      conn.socket?.resume();
    }
  }
  if (complete === ready.length) drained();
  const timedOut = await Promise.race([
    allDrained.then(() => false),
    Bun.sleep(job.timeoutMs).then(() => true),
  ]);
  if (timedOut) {
    for (const conn of ready) {
      if (conn.phase === Phase.Ready) {
        client.countError("drain-timeout");
        client.finish(conn);
      }
    }
  }
  client.close();
  emit({
    type: "drained",
    receivedBytes,
    errors: client.errors,
    errorKinds: client.errorKinds,
    drainS: (performance.now() - drainStart) / 1000,
  });
}

// ── main ───────────────────────────────────────────────────────────────────────────────────────

if (import.meta.main) {
  const job = JSON.parse(Bun.argv[2] ?? "null") as LoadJob | null;
  if (job === null) {
    console.error("usage: bun bench/e2e/child-load.ts '<job JSON>' (started by bench/e2e/main.ts)");
    process.exit(2);
  }
  const run =
    job.mode === "rate" ? runRate(job) : job.mode === "idle" ? runIdle(job) : runSlow(job);
  run.then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`e2e-load: ${error instanceof Error ? error.stack : String(error)}`);
      process.exit(1);
    },
  );
}
