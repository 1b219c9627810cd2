// One proxied connection's lifecycle: its two Pipes, its deadlines, its teardown and its log line.
// Not the relay (relay.ts) and not SOCKS (socks5.ts, a subclass): this is what both kinds share.
//
//   open ─▶ [handshake] ─▶ connecting ─▶ relaying ─▶ one side done (FIN) ─▶ both done ─▶ closed
//                │               │             │               │
//                └───────────────┴─────────────┴── deadline / error / shutdown ──▶ closed
//
// Socket events arrive through the handler tables in server.ts, which call the methods below.

import type { Socket, SocketHandler } from "bun";
import type { Config } from "../config/schema.ts";
import { formatHostPort } from "../protocol/host-port.ts";
import type { Logger } from "../log.ts";
import type { BufferPool } from "../pool/index.ts";
import { Reply, replyForConnectError } from "../protocol/index.ts";
import { connectAny, DialError, resolveHost } from "./dial.ts";
import { Pipe, type PipeOwner } from "./relay.ts";

export type Outcome =
  | "ok"
  | "aborted"
  | "refused"
  | "timeout"
  | "unreachable"
  | "auth_failed"
  | "bad_request"
  | "unsupported"
  | "handshake_timeout"
  | "idle_timeout"
  | "fin_timeout"
  | "error"
  | "shutdown"
  | "limit";

export type Phase = "handshake" | "connecting" | "relaying" | "closed";

/** A coarse clock the sweeper advances each tick, so the hot path never reads the time. It lags
 *  real time by up to one sweep, so readers of it allow that much margin (see server.ts). Deadlines,
 *  set once per phase, use performance.now() and are exact. */
export interface Clock {
  now: number;
}

/** What every connection of one server shares. */
export interface ConnectionContext {
  readonly config: Config;
  readonly pool: BufferPool;
  readonly log: Logger;
  readonly clock: Clock;
  readonly upstreamHandlers: SocketHandler<Connection>;
  /** Called once when the connection is closed and logged. */
  readonly forget: (connection: Connection) => void;
}

export type ClientSocket = Socket<Connection>;

/** Maps a SOCKS reply code for a failed dial to the outcome in the log. */
function outcomeOfReply(reply: number): Outcome {
  switch (reply) {
    case Reply.CONNECTION_REFUSED:
      return "refused";
    case Reply.TTL_EXPIRED:
      return "timeout";
    case Reply.HOST_UNREACHABLE:
    case Reply.NETWORK_UNREACHABLE:
      return "unreachable";
    default:
      return "error";
  }
}

export abstract class Connection implements PipeOwner {
  abstract readonly kind: "socks" | "forward";
  phase: Phase;
  /** Absolute time (performance.now() ms) at which the current phase's deadline expires. */
  deadline: number;
  lastActivity: number;
  readonly up: Pipe; // client → upstream
  readonly down: Pipe; // upstream → client
  protected readonly ctx: ConnectionContext;
  protected readonly client: ClientSocket;
  protected upstream: Socket<Connection> | null = null;
  protected target = "";
  private readonly startedAt: number;
  private readonly clientAddress: string;
  private reply: number | undefined;

  constructor(ctx: ConnectionContext, client: ClientSocket, phase: Phase, deadlineMs: number) {
    this.ctx = ctx;
    this.client = client;
    this.phase = phase;
    this.startedAt = performance.now();
    this.lastActivity = ctx.clock.now;
    this.deadline = performance.now() + deadlineMs;
    this.clientAddress = formatHostPort(client.remoteAddress, client.remotePort);
    const backlogMax = ctx.config.relay.backlog_bytes_max;
    this.up = new Pipe(ctx.pool, backlogMax, this);
    this.down = new Pipe(ctx.pool, backlogMax, this);
    this.up.connect(client, null); // client bytes queue (paused) until the upstream is there
  }

  // ── socket events ────────────────────────────────────────────────────────────────────────────

  clientData(chunk: Uint8Array): void {
    this.lastActivity = this.ctx.clock.now;
    this.up.data(chunk);
  }

  upstreamData(chunk: Uint8Array): void {
    this.lastActivity = this.ctx.clock.now;
    this.down.data(chunk);
  }

  clientDrain(): void {
    this.down.drain();
  }

  upstreamDrain(): void {
    this.up.drain();
  }

  clientEnd(): void {
    this.up.end();
  }

  upstreamEnd(): void {
    this.down.end();
  }

  /** Bun reports a FIN as close (not end) once we have shut our side down: treat it as FIN plus
   *  "cannot write there any more", and let the other direction finish flushing. */
  clientClosed(): void {
    if (this.phase !== "relaying") {
      this.close("aborted");
      return;
    }
    this.down.sinkClosed();
    this.up.end();
    this.checkDone();
  }

  upstreamClosed(): void {
    if (this.phase !== "relaying") return;
    this.up.sinkClosed();
    this.down.end();
    this.checkDone();
  }

  /** A socket error or reset on either side: tear both down at once and return every slot. */
  failed(error: Error): void {
    if (this.phase === "closed") return;
    const code = (error as { code?: string }).code;
    this.ctx.log.debug("socket error", {
      client: this.clientAddress,
      target: this.target,
      error: code ?? error.message,
    });
    this.close("error");
  }

  pipeFinished(): void {
    if (!this.checkDone()) this.deadline = performance.now() + this.ctx.config.relay.fin_timeout_ms;
  }

  /** The sweeper found `now` past the deadline of the current phase. */
  expire(): void {
    if (this.phase === "handshake") this.close("handshake_timeout");
    else if (this.phase === "connecting")
      this.dialFailed(new DialError("ETIMEDOUT", "connect timed out"));
    else if (this.phase === "relaying") this.close("fin_timeout");
  }

  // ── upstream ─────────────────────────────────────────────────────────────────────────────────

  /** Resolves and connects; on success the subclass answers the client and relaying starts. */
  protected async dial(host: string, port: number): Promise<void> {
    const upstream = this.ctx.config.upstream;
    this.phase = "connecting";
    this.target = formatHostPort(host, port);
    this.deadline = performance.now() + upstream.dns_timeout_ms + upstream.connect_timeout_ms;
    const abandoned = () => this.phase !== "connecting";
    try {
      const addresses = await resolveHost(host, upstream.dns_timeout_ms);
      const socket = await connectAny(
        addresses,
        port,
        this as Connection,
        this.ctx.upstreamHandlers,
        abandoned,
      );
      if (socket === null) return;
      this.upstream = socket;
      this.phase = "relaying";
      this.deadline = Number.POSITIVE_INFINITY;
      this.lastActivity = this.ctx.clock.now;
      if (!this.connected(socket)) return;
      this.up.connect(this.client, socket);
      this.down.connect(socket, this.client);
      this.up.drain(); // early data, and a FIN that came with it
      this.down.drain(); // anything the upstream said before we were ready
    } catch (error) {
      if (!abandoned()) this.dialFailed(error as Error);
    }
  }

  /** The upstream is connected; answer the client. False if the connection was closed instead. */
  protected abstract connected(upstream: Socket<Connection>): boolean;

  /** Reaching the upstream failed; answer the client (if the protocol has a way) and close. */
  protected dialFailed(error: Error): void {
    const code = error instanceof DialError ? error.code : "EUNKNOWN";
    const reply = replyForConnectError(code);
    this.ctx.log.debug("upstream unreachable", {
      client: this.clientAddress,
      target: this.target,
      code,
    });
    this.close(outcomeOfReply(reply), this.failureReply(reply));
  }

  /** The bytes that tell the client a dial failed (SOCKS reply); null when there are none. */
  protected abstract failureReply(reply: number): Uint8Array | null;

  // ── teardown ─────────────────────────────────────────────────────────────────────────────────

  /** Writes a short control message (handshake reply) straight to the client. A fresh socket takes
   *  a few bytes whole; if it does not, the connection is beyond saving and is closed. */
  protected send(bytes: Uint8Array): boolean {
    if (this.client.write(bytes) === bytes.length) return true;
    this.close("error");
    return false;
  }

  /** True when both directions are done, after closing the connection. */
  private checkDone(): boolean {
    if (!(this.up.sinkDone && this.down.sinkDone)) return false;
    this.close("ok");
    return true;
  }

  /** Closes both sockets, returns every slot, logs one line. Idempotent. */
  close(outcome: Outcome, reply?: Uint8Array | null): void {
    if (this.phase === "closed") return;
    this.phase = "closed";
    if (reply) {
      this.reply = reply[1];
      this.client.write(reply);
    }
    this.up.dispose();
    this.down.dispose();
    this.client.end();
    if (this.upstream !== null) this.upstream.end();
    this.ctx.forget(this);
    this.ctx.log.info("connection", {
      kind: this.kind,
      client: this.clientAddress,
      target: this.target,
      bytes_up: this.up.bytes,
      bytes_down: this.down.bytes,
      duration_ms: Math.round(performance.now() - this.startedAt),
      outcome,
      reply: this.reply,
    });
  }

  /** Relayed bytes held in pool slots right now, both directions. */
  backlogBytes(): number {
    return this.up.backlog.bytes + this.down.backlog.bytes;
  }
}

/** A static forward: every client is relayed to one fixed target, no handshake. */
export class ForwardConnection extends Connection {
  readonly kind = "forward";

  constructor(
    ctx: ConnectionContext,
    client: ClientSocket,
    targetHost: string,
    targetPort: number,
  ) {
    super(
      ctx,
      client,
      "connecting",
      ctx.config.upstream.dns_timeout_ms + ctx.config.upstream.connect_timeout_ms,
    );
    void this.dial(targetHost, targetPort);
  }

  protected connected(): boolean {
    return true;
  }

  protected failureReply(): null {
    return null;
  }
}
