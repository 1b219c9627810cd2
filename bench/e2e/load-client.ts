// The load client's connections: raw SOCKS5 (no auth, CONNECT to 127.0.0.1), raw HTTP CONNECT, or
// plain TCP, each a
// small state machine from connect through handshake and echo to Ready, with a timeout sweep and
// every failure counted by kind. Not a SOCKS library: it knows exactly the bytes this benchmark
// sends, and nothing else. Not the modes either: child-load.ts drives rate, idle and slow with it.

import type { Socket } from "bun";
import { type ErrorKinds, type LoadJob, PAYLOAD_BYTES } from "./protocol.ts";
import { concat, hex } from "../lib/bytes.ts";

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

/** HTTP CONNECT request head to 127.0.0.1:PORT: the request line and the empty line, no headers. */
function httpConnectRequest(port: number): Uint8Array {
  return new TextEncoder().encode(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\n\r\n`);
}

/** A proxy's response head is short; more than this without its end is an error. */
const HTTP_HEAD_MAX = 4096;
const HTTP_OK = new TextEncoder().encode("HTTP/1.1 200");

/** Offset just past the response head's CRLF CRLF in `input`, or -1 when not there yet. */
function httpHeadEnd(input: Uint8Array): number {
  for (let index = 3; index < input.length; index++) {
    if (
      input[index] === 0x0a &&
      input[index - 1] === 0x0d &&
      input[index - 2] === 0x0a &&
      input[index - 3] === 0x0d
    ) {
      return index + 1;
    }
  }
  return -1;
}

const PAYLOAD = new Uint8Array(PAYLOAD_BYTES).map((_, index) => 0x41 + (index % 26));

// ── One connection's state machine ─────────────────────────────────────────────────────────────

export const Phase = {
  Connecting: 0,
  Greeting: 1, // sent the greeting, want "05 00"
  Request: 2, // sent CONNECT, want the reply
  Echo: 3, // sent the payload, want it back
  Ready: 4, // idle: holding; slow: receiving the stream
  Done: 5,
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

export interface Conn {
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

export type Listener = {
  /** The connection reached Ready (after the echo, or the reply in slow mode). */
  ready(conn: Conn): void;
  failed(conn: Conn, kind: string): void;
  /** The far side closed a connection whose close was expected. */
  closed?(conn: Conn): void;
  /** Slow mode: stream bytes arrived. */
  stream?(conn: Conn, bytes: number): void;
};

export class Client {
  readonly errorKinds: ErrorKinds = {};
  errors = 0;
  readonly inFlight = new Set<Conn>();
  private readonly request: Uint8Array | null;
  private readonly sweeper: ReturnType<typeof setInterval>;

  constructor(
    private readonly job: LoadJob,
    private readonly listener: Listener,
  ) {
    this.request =
      job.socksTarget === null
        ? null
        : job.http === true
          ? httpConnectRequest(job.socksTarget)
          : connectRequest(job.socksTarget);
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
      } else if (this.job.http === true) {
        conn.phase = Phase.Request; // no greeting: the request head, then the response head
        if (socket.write(this.request) !== this.request.length) this.fail(conn, "short-write");
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
    if (this.job.http === true) {
      this.onHttpResponseBytes(conn, socket, input);
      return;
    }
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

  /** HTTP CONNECT: the response head, "HTTP/1.1 200 …" up to CRLF CRLF; bytes after it are the
   *  tunnel's. */
  private onHttpResponseBytes(conn: Conn, socket: Socket<Conn>, input: Uint8Array): void {
    const end = httpHeadEnd(input);
    if (end < 0) {
      if (input.length > HTTP_HEAD_MAX) this.fail(conn, "http-head-too-long");
      else conn.pending = input;
      return;
    }
    if (!HTTP_OK.every((byte, index) => input[index] === byte)) {
      const line = new TextDecoder().decode(input.subarray(0, Math.min(end, 12)));
      this.fail(conn, `http ${line.replace(/[^ -~]/g, "?")}`);
      return;
    }
    conn.pending = new Uint8Array(0);
    this.afterHandshake(conn, socket, input.subarray(end));
  }

  /** A connection we are done with: no error for its close. */
  finish(conn: Conn): void {
    conn.phase = Phase.Done;
    this.inFlight.delete(conn);
    conn.socket?.end();
  }
}
