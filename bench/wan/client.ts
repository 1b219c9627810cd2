// The WAN benchmark's load client, run as its own process (so its CPU is not the proxy's): C
// concurrent loops, each connecting (straight to the target, or SOCKS5 CONNECT through the proxy on
// loopback), sending the request, reading the whole response until the target closes, then starting
// the next connection, until `count` connections are done or `seconds` run out. It times each step
// and prints one JSON result line. Not a SOCKS library: it knows exactly the bytes it sends.
//
//   bun bench/wan/client.ts '<ClientJob as JSON>'      (started by bench/wan/run.ts)

import type { Socket } from "bun";
import { percentile } from "../e2e/child-load.ts";
import {
  type ClientJob,
  type ClientResult,
  type Percentiles,
  REQUEST,
  RESPONSE_BYTES,
} from "./protocol.ts";
import { concat, hex } from "../lib/bytes.ts";

// Greeting: VER=05 NMETHODS=01 METHOD=00 (no auth). Answer: VER=05 METHOD=00.
const GREETING = Uint8Array.of(0x05, 0x01, 0x00);
/** An IPv4 CONNECT reply: VER REP RSV ATYP=01 + BND.ADDR (4) + BND.PORT (2). */
const REPLY_IPV4_BYTES = 10;
const RESPONSE_START = new TextEncoder().encode("HTTP/1.0 200 ");

/** CONNECT request: VER=05 CMD=01 RSV=00 ATYP=01 ADDR(4) PORT(2). */
function connectRequest(host: string, port: number): Uint8Array {
  const octets = host.split(".").map(Number);
  if (octets.length !== 4 || octets.some((octet) => !(octet >= 0 && octet <= 255))) {
    throw new Error(`expected an IPv4 target, got ${JSON.stringify(host)}`);
  }
  return Uint8Array.of(0x05, 0x01, 0x00, 0x01, ...octets, port >> 8, port & 0xff);
}

const Phase = {
  Connecting: 0,
  Greeting: 1, // sent the greeting, want "05 00"
  Reply: 2, // sent CONNECT, want the reply
  Response: 3, // sent the request, reading the response
  Done: 4,
} as const;
type Phase = (typeof Phase)[keyof typeof Phase];

interface Conn {
  phase: Phase;
  startMs: number;
  connectMs: number;
  connectSentMs: number;
  replyMs: number;
  firstByteMs: number;
  /** Handshake bytes not yet complete. */
  pending: Uint8Array;
  received: number;
  socket: Socket<Conn> | null;
}

function summary(values: number[]): Percentiles {
  const sorted = Float64Array.from(values).sort();
  return {
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p99: percentile(sorted, 0.99),
    max: sorted.length === 0 ? 0 : sorted[sorted.length - 1]!,
  };
}

async function run(job: ClientJob): Promise<ClientResult> {
  const socks = job.proxyPort !== null;
  const request = connectRequest(job.targetHost, job.targetPort);
  const firstByte: number[] = [];
  const connect: number[] = [];
  const reply: number[] = [];
  const errorKinds: Record<string, number> = {};
  let errors = 0;
  let started = 0;
  let settled = 0;
  const inFlight = new Set<Conn>();
  const begin = performance.now();
  const endMs = begin + job.seconds * 1000;
  let finished!: () => void;
  const allDone = new Promise<void>((resolve) => {
    finished = resolve;
  });

  const next = (): void => {
    settled++;
    if (started < job.count && performance.now() < endMs) open();
    else if (settled === started) finished();
  };
  const fail = (conn: Conn, kind: string): void => {
    if (conn.phase === Phase.Done) return;
    conn.phase = Phase.Done;
    inFlight.delete(conn);
    conn.socket?.terminate();
    errors++;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
    setTimeout(next, 1); // a refused port would otherwise spin
  };
  const complete = (conn: Conn): void => {
    conn.phase = Phase.Done;
    inFlight.delete(conn);
    firstByte.push(conn.firstByteMs - conn.startMs);
    connect.push(conn.connectMs - conn.startMs);
    if (socks) reply.push(conn.replyMs - conn.connectSentMs);
    next();
  };
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const conn of inFlight) if (now - conn.startMs > job.timeoutMs) fail(conn, "timeout");
  }, 100);

  const sendRequest = (conn: Conn, socket: Socket<Conn>): void => {
    conn.phase = Phase.Response;
    if (socket.write(REQUEST) !== REQUEST.length) fail(conn, "short-write");
  };
  const onResponse = (conn: Conn, chunk: Uint8Array): void => {
    if (conn.received === 0) conn.firstByteMs = performance.now();
    for (let index = 0; index < chunk.length; index++) {
      const at = conn.received + index;
      if (at < RESPONSE_START.length && chunk[index] !== RESPONSE_START[at]) {
        fail(conn, "bad-response");
        return;
      }
    }
    conn.received += chunk.length;
    if (conn.received > RESPONSE_BYTES) fail(conn, "response-too-long");
  };
  const onHandshake = (conn: Conn, socket: Socket<Conn>, chunk: Uint8Array): void => {
    const input = conn.pending.length === 0 ? chunk : concat(conn.pending, chunk);
    if (conn.phase === Phase.Greeting) {
      if (input.length < 2) {
        conn.pending = input;
        return;
      }
      if (input[0] !== 0x05 || input[1] !== 0x00 || input.length > 2) {
        fail(conn, `greeting ${hex(input.subarray(0, 3))}`);
        return;
      }
      conn.pending = new Uint8Array(0);
      conn.phase = Phase.Reply;
      conn.connectSentMs = performance.now();
      if (socket.write(request) !== request.length) fail(conn, "short-write");
      return;
    }
    if (input.length >= 2 && input[1] !== 0x00) {
      fail(conn, `reply ${hex(input.subarray(0, 2))}`);
      return;
    }
    if (input.length < REPLY_IPV4_BYTES) {
      conn.pending = input;
      return;
    }
    conn.replyMs = performance.now();
    conn.pending = new Uint8Array(0);
    if (input[3] !== 0x01 || input.length > REPLY_IPV4_BYTES) {
      fail(conn, `reply-shape ${hex(input.subarray(0, 4))}`);
      return;
    }
    sendRequest(conn, socket);
  };
  const onPeerClose = (socket: Socket<Conn>): void => {
    const conn = socket.data;
    if (conn.phase === Phase.Done) return;
    if (conn.phase !== Phase.Response || conn.received !== RESPONSE_BYTES) {
      fail(conn, conn.phase === Phase.Response ? "short-response" : "closed-early");
      return;
    }
    complete(conn); // marks it done first: end() may run the close handler right away
    socket.end();
  };

  const handlers = {
    open(socket: Socket<Conn>) {
      const conn = socket.data;
      if (conn.phase === Phase.Done) {
        socket.terminate(); // timed out while connecting: already counted
        return;
      }
      conn.socket = socket;
      conn.connectMs = performance.now();
      if (!socks) {
        sendRequest(conn, socket);
        return;
      }
      conn.phase = Phase.Greeting;
      if (socket.write(GREETING) !== GREETING.length) fail(conn, "short-write");
    },
    data(socket: Socket<Conn>, chunk: Uint8Array) {
      const conn = socket.data;
      if (conn.phase === Phase.Greeting || conn.phase === Phase.Reply) {
        onHandshake(conn, socket, chunk);
      } else if (conn.phase === Phase.Response) {
        onResponse(conn, chunk);
      }
    },
    end: onPeerClose,
    close: onPeerClose,
    error(socket: Socket<Conn>, error: Error) {
      fail(socket.data, `socket-error ${(error as { code?: string }).code ?? error.name}`);
    },
    connectError(socket: Socket<Conn>, error: Error) {
      fail(socket.data, `connect ${(error as { code?: string }).code ?? error.name}`);
    },
    drain() {},
  };

  function open(): void {
    started++;
    const conn: Conn = {
      phase: Phase.Connecting,
      startMs: performance.now(),
      connectMs: 0,
      connectSentMs: 0,
      replyMs: 0,
      firstByteMs: 0,
      pending: new Uint8Array(0),
      received: 0,
      socket: null,
    };
    inFlight.add(conn);
    Bun.connect<Conn>({
      hostname: socks ? "127.0.0.1" : job.targetHost,
      port: job.proxyPort ?? job.targetPort,
      data: conn,
      socket: handlers,
    }).catch(() => {
      // connectError has counted it.
    });
  }

  for (let loop = 0; loop < Math.min(job.concurrency, job.count); loop++) open();
  if (job.count === 0) finished();
  await allDone;
  clearInterval(sweeper);
  return {
    type: "result",
    completed: firstByte.length,
    errors,
    errorKinds,
    elapsedS: (performance.now() - begin) / 1000,
    firstByte: summary(firstByte),
    connect: summary(connect),
    reply: socks ? summary(reply) : null,
    fastReplies: reply.filter((ms) => ms < job.fastReplyMs).length,
  };
}

if (import.meta.main) {
  const job = JSON.parse(Bun.argv[2] ?? "null") as ClientJob | null;
  if (job === null) {
    console.error("usage: bun bench/wan/client.ts '<job JSON>' (started by bench/wan/run.ts)");
    process.exit(2);
  }
  run(job).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      console.error(`wan-client: ${error instanceof Error ? error.stack : String(error)}`);
      process.exit(1);
    },
  );
}
