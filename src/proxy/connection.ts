// One proxied connection from accept to its log line: the pipeline's stages in the order a
// connection meets them, and the Bun socket events that drive them. Not the listeners or the
// sweeper (server.ts), not the byte moving (relay.ts), not any wire format (src/protocol/).
//
//   accept + admission (server.ts; clients.ts: per-client limits; admission.ts: connections_max)
//     │
//     ▼
//   0. proxy     a listener with proxy_protocol: the PROXY   deadline: handshake_timeout_ms
//     │          header from a trusted balancer names the    (one deadline from accept
//     │          client (proxy-header-reader.ts); per-client  through the front)
//     │          limits are taken then, for that address
//     ▼
//   1. front     the front protocol reads the handshake     deadline: handshake_timeout_ms
//     │          (SOCKS5, HTTP CONNECT, or either by the first byte; none for a forward)
//     ▼
//   2. dial      access rules, then a warm connection from  deadline: dns + connect timeout
//                the upstream pool (src/upstream/), else
//                resolve, the rules again for each address,
//                connect (dial.ts)
//     ▼
//   3. relay     two Pipes, one per direction (relay.ts)    idle_timeout_ms, then fin_timeout_ms
//     │                                                     once one direction has passed its FIN
//     ▼
//   4. close     both sockets, every slot, one log line     (from any stage: deadline, error,
//                                                            reset, refusal, shutdown)
//
// Failures before the relay are answered and named by the one table in src/protocol/failures.ts.
// Longer than most files here (about 475 lines) on purpose: the whole path of a connection, in the
// order it runs, is one read from top to bottom; the parts with a job of their own (codecs, access
// rules, relay, dial, admission, per-client counts) are already elsewhere.

import type { Socket, SocketHandler } from "bun";
import type { ConnectionInfo } from "../admin/types.ts";
import type { Config } from "../config/schema.ts";
import { descriptorsExhausted } from "../fd-limit.ts";
import type { Logger } from "../log.ts";
import type { AccessPolicy } from "../policy/access.ts";
import type { BufferPool } from "../pool/index.ts";
import { formatHostPort } from "../protocol/host-port.ts";
import {
  type AnswerCode,
  type DialRequest,
  dialFailure,
  type FrontProtocol,
  type FrontStep,
  handshakeFailure,
  type LoginVerdict,
  type Outcome,
} from "../protocol/index.ts";
import { FIELD, type WorkerCounters } from "../stats/counters.ts";
import type { UpstreamOwner } from "../upstream/owner.ts";
import { upstreamEvents } from "../upstream/owner.ts";
import type { UpstreamPool } from "../upstream/pool.ts";
import type { Network } from "../policy/network.ts";
import { addressInNetworks } from "../policy/network.ts";
import type { ClientRefusal, ClientTable } from "./clients.ts";
import { type Connected, connectAny, DialError, resolveHost } from "./dial.ts";
import { type HandshakeBudget, PartialMessage } from "./partial.ts";
import { ProxyHeaderReader } from "./proxy-header-reader.ts";
import { Pipe, type PipeOwner } from "./relay.ts";
import { openAssociation, type UdpAssociation } from "./udp-association.ts";
import type { ListenerInfo } from "./server.ts";

/** "proxy": reading the PROXY protocol header, before the front. "udp": a UDP ASSOCIATE's control
 *  connection, kept open while its association relays. */
export type Stage = "proxy" | "front" | "dial" | "relay" | "udp" | "closed";

/** A coarse clock the sweeper advances each tick, so the hot path never reads the time. It lags
 *  real time by up to one sweep, so readers of it allow that much margin (see server.ts).
 *  Deadlines, set once per stage, use performance.now() and are exact. */
export interface Clock {
  now: number;
}

/** What every connection of one server shares. */
export interface ConnectionContext {
  readonly config: Config;
  readonly pool: BufferPool;
  readonly log: Logger;
  readonly clock: Clock;
  /** Who may reach what (src/policy/access.ts), asked before and after resolving. */
  readonly access: AccessPolicy;
  /** Per-client counts shared by every Worker; failed logins are reported to it. */
  readonly clients: ClientTable;
  /** The slots this Worker's handshakes hold together, and their bound. */
  readonly handshakeSlots: HandshakeBudget;
  /** The slots this Worker's UDP associations hold together (udp-association.ts), and their bound. */
  readonly udpSlots: HandshakeBudget;
  /** Called once, when the connection has closed: returns its place under connections_max. */
  readonly forget: (connection: Connection) => void;
  /** This Worker's counters for the admin API (src/stats/counters.ts), and its index. */
  readonly counters: WorkerCounters;
  readonly worker: number;
  /** This Worker's upstream warm-connection pool; absent when server.pool is off. */
  readonly upstreamPool?: UpstreamPool;
  /** server.trusted_proxies, parsed: who may send a PROXY header. */
  readonly trustedProxies: readonly Network[];
  /** Takes a per-client place for a client a PROXY header named (counted and logged as at accept
   *  when refused); null when admitted. */
  readonly admitClient: (host: string | undefined) => ClientRefusal | null;
  /** Counts and reports a connection a proxy_protocol listener refused (`peer`: its socket's IP). */
  readonly proxyRefused: (reason: ProxyRefusal, peer: string | undefined) => void;
}

/** Why a listener with proxy_protocol closed a connection before its front (its log line's reason). */
export type ProxyRefusal = "untrusted_proxy" | "bad_proxy_header" | "no_proxy_header";

const NO_DEADLINE = Number.POSITIVE_INFINITY;

export class Connection implements PipeOwner, UpstreamOwner {
  stage: Stage;
  // One deadline per stage, each NO_DEADLINE outside its stage (absolute performance.now() ms).
  private handshakeDeadline = NO_DEADLINE;
  private connectDeadline = NO_DEADLINE;
  private finDeadline = NO_DEADLINE;
  /** Last relayed chunk, on the coarse clock: the idle timeout counts from it. */
  private lastActivity: number;
  private readonly up: Pipe; // client → upstream
  private readonly down: Pipe; // upstream → client
  // A handshake message split across reads; made only when one is (most clients send whole ones).
  private partial: PartialMessage | null = null;
  /** While a password is checked: the client's bytes after its login (null otherwise). */
  private loginHeld: Uint8Array | null = null;
  private readonly ctx: ConnectionContext;
  private readonly listener: ListenerInfo;
  // Null for a forward, and once the front has answered the dial: idle connections hold no front.
  private front: FrontProtocol | null;
  private readonly client: Socket<Connection>;
  private upstream: Socket<UpstreamOwner> | null = null;
  /** A UDP ASSOCIATE's relay, open while this control connection is (udp-association.ts). */
  private association: UdpAssociation | null = null;
  private target = "";
  private fromPool = false;
  private readonly startedAt: number;
  /** The client as logged: the socket's peer, or the client a PROXY header names. */
  private clientAddress: string;
  /** The client's IP (undefined if Bun gave none), for per-client counts and access rules: the
   *  socket's peer, or the client a PROXY header names. */
  clientHost: string | undefined;
  /** True while this connection holds a per-client place (clients.ts) to give back at close: from
   *  accept, or on a PROXY listener from the header on. */
  admitted: boolean;
  /** Stage 0 on a listener with proxy_protocol (null otherwise, and once the header is read). */
  private proxyReader: ProxyHeaderReader | null = null;
  /** The peer that sent the PROXY header (the balancer), for the log; unset without one. */
  private proxyPeer: string | undefined;
  /** A forward's target, kept while its PROXY header is read. */
  private forwardTarget: DialRequest | undefined;
  /** Why the connection was refused before the front, when the outcome alone does not say, and
   *  the parser's own words for a malformed PROXY header (both logged). */
  private reason: string | undefined;
  private detail: string | undefined;
  /** The failure answer the client got (a SOCKS reply byte or an HTTP status), for the log. */
  private answer: AnswerCode | undefined;
  /** The answer the front sent when the dial succeeded (00, 200), for the counters by reply. */
  private succeededAnswer: AnswerCode | undefined;
  /** The listener kind's word in the counters, resolved once. */
  readonly kindIndex: number;
  private user: string | undefined;
  /** The upstream's address:port as connected (a name resolved); unset until the dial succeeds. */
  private upstreamAt: string | undefined;
  /** When the dial stage began (performance.now()), for the connect-latency histogram. */
  private dialStartedAt = 0;
  /** True when the upstream came warm from the upstream pool. */
  get pooled(): boolean {
    return this.fromPool;
  }

  constructor(
    ctx: ConnectionContext,
    client: Socket<Connection>,
    listener: ListenerInfo,
    front: FrontProtocol | null,
  ) {
    this.ctx = ctx;
    this.client = client;
    this.listener = listener;
    this.front = front;
    const expectsHeader = listener.proxyProtocol === true;
    this.stage = expectsHeader ? "proxy" : front === null ? "dial" : "front";
    this.admitted = !expectsHeader; // server.ts admits at accept unless a header is to name the client
    this.startedAt = performance.now();
    this.lastActivity = ctx.clock.now;
    this.clientAddress = peerAddress(client);
    this.clientHost = client.remoteAddress;
    this.kindIndex = ctx.counters.kind(listener.kind);
    const backlogMax = ctx.config.relay.backlog_bytes_max;
    const words = ctx.counters.words;
    this.up = new Pipe(ctx.pool, backlogMax, this, words, FIELD.bytes_up);
    this.down = new Pipe(ctx.pool, backlogMax, this, words, FIELD.bytes_down);
    this.up.connect(client, null); // client bytes queue (paused) until the upstream is there
  }

  /** Starts the first stage: the PROXY header, the front protocol's handshake, or for a forward the
   *  dial itself. */
  start(forwardTarget?: DialRequest): void {
    if (this.stage === "proxy") {
      // Only a trusted balancer may name the client; anyone else is closed before a byte is read.
      if (!addressInNetworks(this.ctx.trustedProxies, this.clientHost)) {
        this.proxyRefused("untrusted_proxy");
        this.close("bad_request");
        return;
      }
      this.handshakeDeadline = performance.now() + this.ctx.config.socks.handshake_timeout_ms;
      this.proxyReader = new ProxyHeaderReader(this.ctx.pool, this.ctx.handshakeSlots);
      this.forwardTarget = forwardTarget;
    } else if (this.front !== null) {
      this.handshakeDeadline = performance.now() + this.ctx.config.socks.handshake_timeout_ms;
    } else if (forwardTarget !== undefined) {
      void this.dial(forwardTarget);
    }
  }

  // ── 0. proxy ─────────────────────────────────────────────────────────────────────────────────

  /** Reads the PROXY header; once whole, the client it names is this connection's client (logs,
   *  per-client limits, access rules), and the bytes after it go to the front, or for a forward
   *  are early data. A LOCAL or UNKNOWN header names none: the socket's peer stays the client. */
  private proxyHeader(reader: ProxyHeaderReader, chunk: Uint8Array): void {
    const read = reader.feed(chunk);
    if (read.kind === "need-more") return;
    this.proxyReader = null;
    if (read.kind === "no-room") {
      this.reason = "proxy_header_no_room";
      this.refuse("POOL_EXHAUSTED", null);
      return;
    }
    if (read.kind === "invalid") {
      this.detail = read.reason;
      this.proxyRefused("bad_proxy_header");
      this.close("bad_request");
      return;
    }
    this.proxyPeer = this.clientAddress;
    const source = read.header.source;
    if (source !== undefined) {
      this.clientHost = source.host;
      this.clientAddress = formatHostPort(source.host, source.port);
    }
    const refusal = this.ctx.admitClient(this.clientHost);
    if (refusal !== null) {
      this.reason = refusal;
      this.close("limit");
      return;
    }
    this.admitted = true;
    if (this.front !== null) {
      this.stage = "front"; // under the same handshake deadline, counted from accept
      if (read.rest.length > 0) this.handshake(this.front, read.rest);
    } else {
      this.handshakeDeadline = NO_DEADLINE;
      if (read.rest.length > 0) this.up.data(read.rest); // early data, queued until the dial
      void this.dial(this.forwardTarget!);
    }
  }

  /** Stage 0 refuses: the reason goes on the log line, and server.ts counts and reports it. */
  private proxyRefused(reason: ProxyRefusal): void {
    this.reason = reason;
    this.ctx.proxyRefused(reason, this.clientHost);
  }

  // ── 1. front ─────────────────────────────────────────────────────────────────────────────────

  /** Feeds the client's bytes to the front protocol, one message at a time. A message split across
   *  reads waits in one pool slot; bytes after the last handshake message are early data. */
  private handshake(front: FrontProtocol, chunk: Uint8Array): void {
    let rest = chunk;
    while (rest.length > 0 && this.stage === "front") {
      const held = this.partial?.length ?? 0;
      const input = held > 0 ? this.partial!.extend(rest) : rest;
      const step: FrontStep = front.feed(input);
      if (step.kind === "need-more") {
        this.partial ??= new PartialMessage(this.ctx.pool, this.ctx.handshakeSlots);
        if (!this.partial.keep(input)) this.refuse("POOL_EXHAUSTED", null); // no room to wait
        return;
      }
      this.partial?.drop();
      const next = this.act(
        front,
        step,
        step.kind === "refuse" ? rest : rest.subarray(step.consumed - held),
      );
      if (next === null) return;
      rest = next;
    }
  }

  /** Acts on one step of the front protocol. Returns the bytes still to feed it, or null when the
   *  handshake is over or waiting (refused, dialling, a password being checked). */
  private act(front: FrontProtocol, step: FrontStep, rest: Uint8Array): Uint8Array | null {
    switch (step.kind) {
      case "need-more":
        throw new Error("assert: act() on need-more");
      case "refuse":
        this.refused(step);
        return null;
      case "reply":
        return this.send(step.bytes) ? rest : null;
      case "login":
        this.awaitLogin(front, step.verdict, rest);
        return null;
      case "dial":
        this.handshakeDeadline = NO_DEADLINE;
        this.partial = null;
        this.ctx.counters.handshakeSeconds((performance.now() - this.startedAt) / 1000);
        if (rest.length > 0) this.up.data(rest); // pipelined early data, queued until the dial
        void this.dial(step.request, step.user);
        return null;
      case "associate":
        this.handshakeDeadline = NO_DEADLINE;
        this.partial = null;
        this.ctx.counters.handshakeSeconds((performance.now() - this.startedAt) / 1000);
        void this.associate(front, step.client.port, step.user);
        return null;
    }
  }

  /** UDP ASSOCIATE: opens the relay and answers with the address clients send to (the announce
   *  address, else the relay's own, else for a wildcard listener the control connection's local
   *  address). The control connection then stays open as the association's lifeline. */
  private async associate(
    front: FrontProtocol,
    declaredPort: number,
    user?: string,
  ): Promise<void> {
    this.stage = "udp";
    this.user = user;
    let association: UdpAssociation | null;
    try {
      association = await openAssociation(this.ctx, {
        bindHost: this.listener.host,
        clientHost: this.clientHost,
        declaredPort,
        user,
        listen: this.listener.listen,
      });
    } catch (error) {
      logUnexpected(this.ctx.log, error, { client: this.clientAddress, at: "udp associate" });
      if (this.stage === "udp") this.close("error", front.dialFailed(dialFailure(undefined)));
      return;
    }
    if (association === null) {
      const failure = handshakeFailure("ASSOCIATIONS_MAX");
      if (this.stage === "udp") this.close(failure.outcome, front.dialFailed(failure));
      return;
    }
    if (this.stage !== "udp") {
      association.close(); // the client left while the socket was being bound
      return;
    }
    this.association = association;
    const relay = association.address;
    const announced = this.ctx.config.udp.announce_address;
    const wildcard = relay.host === "0.0.0.0" || relay.host === "::";
    // A wildcard relay: the address the client reached us on (an IPv4 client of a dual-stack
    // listener is told its IPv4 form, which is what its UDP socket can send to).
    const local = this.client.localAddress.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "");
    const host = announced ?? (wildcard ? local : relay.host);
    this.target = `udp:${formatHostPort(relay.host, relay.port)}`;
    const reply = front.succeeded({ host, port: relay.port });
    if (!this.send(reply)) return;
    this.succeededAnswer = front.describe(reply);
    this.front = null;
  }

  /** A hashed password is being checked off the event loop (credentials.ts). The client is paused
   *  and what it sent after its login waits in a copy (one read at most) for the verdict. The
   *  handshake deadline keeps running. */
  private awaitLogin(front: FrontProtocol, verdict: Promise<LoginVerdict>, rest: Uint8Array): void {
    this.loginHeld = rest.slice();
    this.client.pause();
    verdict.then(
      (result) => {
        if (this.stage !== "front") return; // closed meanwhile: deadline, client gone
        const held = this.loginHeld!;
        this.loginHeld = null;
        this.client.resume();
        const next = this.act(front, front.loginResult(result), held);
        if (next !== null && next.length > 0) this.handshake(front, next);
      },
      (error: unknown) => {
        logUnexpected(this.ctx.log, error, { client: this.clientAddress, at: "login" });
        this.close("error");
      },
    );
  }

  /** The front protocol refused the client: log why (never a password), answer, close. */
  private refused(step: Extract<FrontStep, { kind: "refuse" }>): void {
    if (step.code === "AUTH_FAILED") {
      // An unknown username is not logged: it may carry password bytes (see the front).
      this.ctx.log.info("authentication failed", {
        client: this.clientAddress,
        ...(step.username === undefined ? { user_known: false } : { username: step.username }),
      });
      if (this.ctx.clients.authFailed(this.clientHost)) {
        this.ctx.log.warn("client blocked after too many failed logins", {
          client: this.clientHost,
          auth_failures_max: this.ctx.config.clients.auth_failures_max,
          block_ms: this.ctx.config.clients.auth_block_ms,
        });
      }
    } else if (step.error !== undefined) {
      this.ctx.log.debug("bad handshake", { code: step.error.code, error: step.error.message });
    }
    this.refuse(step.code, step.reply);
  }

  private refuse(code: Parameters<typeof handshakeFailure>[0], reply: Uint8Array | null): void {
    this.close(handshakeFailure(code).outcome, reply);
  }

  // ── 2. dial ──────────────────────────────────────────────────────────────────────────────────

  /** Checks the access rules, resolves, checks each address, connects. Abandoned when the
   *  connection leaves the dial stage meanwhile (deadline, client gone): a late upstream socket is
   *  then closed by connectAny. `user` is the name the front protocol authenticated, if any. */
  private async dial(request: DialRequest, user?: string): Promise<void> {
    const { dns_timeout_ms, connect_timeout_ms } = this.ctx.config.upstream;
    this.stage = "dial";
    this.user = user;
    this.target = formatHostPort(request.host, request.port);
    this.dialStartedAt = performance.now();
    this.connectDeadline = this.dialStartedAt + dns_timeout_ms + connect_timeout_ms;
    const access = this.ctx.access.prepare({
      client: this.clientHost,
      user,
      host: request.host,
      port: request.port,
      listener: this.listener.listen,
    });
    // Before resolving: a verdict that does not depend on the address (null: it does).
    const early = this.ctx.access.decide(access);
    if (early !== null && !early.allow) {
      this.denied(early.rule, user);
      return;
    }
    const upstreamPool = this.ctx.upstreamPool;
    if (upstreamPool !== undefined) {
      // The rules still apply to a warm connection: when they depend on the address, it is the
      // pooled connection's that is judged (a refusal is a miss, and the dial below judges all).
      const allowed =
        early === null
          ? (address: string) => this.ctx.access.decideAddress(access, address).allow
          : null;
      const handoff = upstreamPool.take(this.target, request.host, request.port, allowed, this);
      if (handoff !== null) {
        this.fromPool = true;
        this.upstreamAt = formatHostPort(handoff.address, request.port);
        this.relay(handoff.socket, handoff.banner);
        return;
      }
    }
    const abandoned = () => this.stage !== "dial";
    let upstream: Connected<UpstreamOwner> | null;
    try {
      let addresses = await resolveHost(request.host, dns_timeout_ms);
      if (early === null) {
        // After resolving: every address is judged on its own; a name cannot launder a denied one.
        const verdicts = addresses.map((address) => this.ctx.access.decideAddress(access, address));
        const allowed = addresses.filter((_, index) => verdicts[index].allow);
        const denial = verdicts.find((verdict) => !verdict.allow);
        if (allowed.length === 0 && denial !== undefined && !denial.allow) {
          if (!abandoned()) this.denied(denial.rule, user);
          return;
        }
        addresses = allowed;
      }
      upstream = await connectAny<UpstreamOwner>(
        addresses,
        request.port,
        this,
        upstreamEvents,
        abandoned,
      );
    } catch (error) {
      if (!abandoned()) this.dialFailed(dialErrorCode(error));
      return;
    }
    if (upstream === null) return;
    // A miss that connected: the pool warms one for the next client asking for this destination.
    upstreamPool?.dialed(this.target, request.host, request.port);
    this.upstreamAt = formatHostPort(upstream.address, request.port);
    this.relay(upstream.socket);
  }

  /** The access rules refused the destination: answer 02 (SOCKS5) or 403 and close, naming the
   *  rule. */
  private denied(rule: string, user: string | undefined): void {
    this.ctx.log.info("access denied", {
      client: this.clientAddress,
      user,
      target: this.target,
      rule,
    });
    const failure = handshakeFailure("ACCESS_DENIED");
    this.close(failure.outcome, this.front?.dialFailed(failure) ?? null);
  }

  /** Reaching the upstream failed (or timed out): answer the client if the front can, and close. */
  private dialFailed(code: string | undefined): void {
    const failure = dialFailure(code);
    this.ctx.log.debug("upstream unreachable", {
      client: this.clientAddress,
      target: this.target,
      code: code ?? "EUNKNOWN",
    });
    this.close(failure.outcome, this.front?.dialFailed(failure) ?? null);
  }

  // ── 3. relay ─────────────────────────────────────────────────────────────────────────────────

  /** `banner`: bytes a pooled upstream sent while idle, delivered to the client first. */
  private relay(upstream: Socket<UpstreamOwner>, banner: Uint8Array | null = null): void {
    this.upstream = upstream;
    this.stage = "relay";
    this.connectDeadline = NO_DEADLINE;
    this.ctx.counters.connectSeconds((performance.now() - this.dialStartedAt) / 1000);
    this.lastActivity = this.ctx.clock.now;
    if (this.front !== null) {
      const bound = { host: upstream.localAddress, port: upstream.localPort };
      const reply = this.front.succeeded(bound);
      if (!this.send(reply)) return;
      this.succeededAnswer = this.front.describe(reply);
      this.front = null; // its job is done
    }
    this.up.connect(this.client, upstream);
    this.down.connect(upstream, this.client);
    if (banner !== null) this.down.data(banner); // before any later byte: those come in later events
    this.up.drain(); // early data, and a FIN that came with it
    this.down.drain(); // anything the upstream said before we were ready
  }

  /** A write found a sink closed under us. Bun reports such a peer's reset as write() −1, then a
   *  FIN and a clean close, so without this the other side would get a FIN for a cut-off stream:
   *  it is a reset, and passed on as one. */
  pipeBroken(): void {
    this.close("reset");
  }

  /** One direction has passed its FIN on: the other gets fin_timeout_ms to finish. */
  pipeFinished(): void {
    if (!this.closeIfDone())
      this.finDeadline = performance.now() + this.ctx.config.relay.fin_timeout_ms;
  }

  /** True when both directions are done, after closing the connection. */
  private closeIfDone(): boolean {
    if (!(this.up.sinkDone && this.down.sinkDone)) return false;
    this.close("ok");
    return true;
  }

  // ── deadlines ────────────────────────────────────────────────────────────────────────────────

  /** The sweeper's visit: ends the connection if a deadline of its stage has passed.
   *  `idleAfterMs` is idle_timeout_ms plus the coarse clock's lag; 0 disables the idle timeout. */
  sweep(now: number, idleAfterMs: number): void {
    if (now >= this.handshakeDeadline) {
      if (this.stage === "proxy") this.proxyRefused("no_proxy_header");
      this.refuse("HANDSHAKE_TIMEOUT", null);
    } else if (now >= this.connectDeadline) this.dialFailed("ETIMEDOUT");
    else if (now >= this.finDeadline) this.close("fin_timeout");
    else if (this.association?.idle(now)) this.close("idle_timeout");
    else if (idleAfterMs > 0 && this.stage === "relay" && now - this.lastActivity >= idleAfterMs) {
      this.close("idle_timeout");
    }
  }

  // ── 4. close ─────────────────────────────────────────────────────────────────────────────────

  /** Writes a short control message (a handshake reply) straight to the client. A fresh socket
   *  takes a few bytes whole; if it does not, the connection is beyond saving and is closed. */
  private send(bytes: Uint8Array): boolean {
    if (this.client.write(bytes) === bytes.length) return true;
    this.close("error");
    return false;
  }

  /** A socket error on either side, or an exception thrown on a socket path: tear both down at
   *  once and return every slot. A reset is passed on as a reset (see close()), so the other end
   *  cannot take a cut-off transfer for a complete one. An exception is a bug: logged with its
   *  stack. */
  failed(error: Error): void {
    if (this.stage === "closed") return;
    if (!isSocketError(error)) {
      logUnexpected(this.ctx.log, error, { client: this.clientAddress, target: this.target });
      this.close("error");
      return;
    }
    const code = (error as { code?: string }).code;
    this.ctx.log.debug("socket error", {
      client: this.clientAddress,
      target: this.target,
      error: code ?? error.message,
    });
    // EPIPE: we wrote to a peer that had already reset (Linux reports the reset to the writer).
    this.close(code === "ECONNRESET" || code === "EPIPE" ? "reset" : "error");
  }

  /** Closes both sockets, returns every slot, logs one line. Idempotent. */
  close(outcome: Outcome, reply?: Uint8Array | null): void {
    if (this.stage === "closed") return;
    this.stage = "closed";
    if (reply) {
      this.answer = this.front?.describe(reply);
      this.client.write(reply);
    }
    this.partial?.drop();
    this.proxyReader?.drop();
    this.association?.close();
    this.up.dispose();
    this.down.dispose();
    if (outcome === "reset") {
      // terminate() sends RST: the other end sees ECONNRESET, not a FIN that would pass a cut-off
      // stream for a complete one. (The side that reset is gone already; this is a no-op there.)
      this.client.terminate();
      this.upstream?.terminate();
    } else {
      this.client.end();
      this.upstream?.end();
    }
    if (this.fromPool) this.ctx.upstreamPool?.finished(this.target);
    this.ctx.forget(this);
    this.ctx.counters.closed(this.kindIndex, outcome, this.answer ?? this.succeededAnswer);
    this.ctx.log.info("connection", {
      kind: this.listener.kind,
      listener: this.listener.listen,
      client: this.clientAddress,
      proxy: this.proxyPeer, // the balancer that sent the PROXY header naming the client
      user: this.user,
      target: this.target,
      // The address actually connected to (a name's resolved address), once there is one.
      upstream: this.upstreamAt,
      // Bytes that reached the other side, not bytes read: a refused dial's early data is not counted.
      bytes_up: this.up.delivered,
      bytes_down: this.down.delivered,
      duration_ms: Math.round(performance.now() - this.startedAt),
      outcome,
      ...this.answer, // reply=NN (SOCKS5) or status=NNN (HTTP) when a failure was answered
      pooled: this.fromPool ? true : undefined, // the upstream came warm from the upstream pool
      datagrams_up: this.association?.datagramsUp,
      datagrams_down: this.association?.datagramsDown,
      reason: this.reason,
      detail: this.detail,
    });
  }

  /** Relayed bytes held in pool slots right now, both directions. */
  backlogBytes(): number {
    return this.up.backlog.bytes + this.down.backlog.bytes;
  }

  // ── socket events ────────────────────────────────────────────────────────────────────────────
  // Bun calls these through two tables: clientEvents below, and upstreamEvents
  // (src/upstream/owner.ts), which an idle pooled upstream shares until it is handed over. A FIN is
  // seen only because both sides set allowHalfOpen and have an `end` handler; a reset arrives only
  // as close's error argument.

  /** The client's bytes: handshake while the front reads, else relay. */
  onClientData(chunk: Uint8Array): void {
    if (this.loginHeld !== null) {
      // Read before the pause took hold: kept behind the rest, in order, up to one slot's worth.
      this.loginHeld = concatBytes(this.loginHeld, chunk);
      if (this.loginHeld.length > this.ctx.pool.slotBytes) this.refuse("POOL_EXHAUSTED", null);
    } else if (this.stage === "proxy") {
      this.proxyHeader(this.proxyReader!, chunk);
    } else if (this.stage === "front") {
      this.handshake(this.front!, chunk);
    } else if (this.stage === "udp") {
      // Bytes on a UDP association's control connection mean nothing (RFC 1928 §6): discarded.
    } else {
      this.lastActivity = this.ctx.clock.now;
      this.up.data(chunk);
    }
  }

  onUpstreamData(upstream: Socket<UpstreamOwner>, chunk: Uint8Array): void {
    if (this.stage === "closed") {
      upstream.end(); // a late socket of an abandoned dial
      return;
    }
    this.lastActivity = this.ctx.clock.now;
    this.down.data(chunk);
  }

  /** The client's FIN: before the handshake is done it is an abort; after, a half-close. */
  onClientEnd(): void {
    if (this.stage === "front" || this.stage === "proxy") this.refuse("CLIENT_ABORTED", null);
    else if (this.stage === "udp")
      this.close("ok"); // the association ends with its connection
    else this.up.end();
  }

  /** Bun reports a FIN as close (not end) once we have shut our side down: treat it as FIN plus
   *  "cannot write there any more", and let the other direction finish flushing. */
  onClientClosed(): void {
    if (this.stage !== "relay") {
      this.close(this.stage === "udp" ? "ok" : "aborted");
      return;
    }
    this.down.sinkClosed();
    this.up.end();
    this.closeIfDone();
  }

  onUpstreamEnd(): void {
    this.down.end();
  }

  onUpstreamClosed(): void {
    if (this.stage !== "relay") return;
    this.up.sinkClosed();
    this.down.end();
    this.closeIfDone();
  }

  onClientDrain(): void {
    this.down.drain();
  }

  onUpstreamDrain(): void {
    this.up.drain();
  }

  /** This open connection, as GET /api/connections lists it. */
  info(now: number): ConnectionInfo {
    return {
      worker: this.ctx.worker,
      kind: this.listener.kind,
      listener: formatHostPort(this.listener.host, this.listener.port), // as bound: port 0 resolved
      client: this.clientAddress,
      target: this.target,
      ...(this.user === undefined ? {} : { user: this.user }),
      phase:
        this.stage === "closed" || this.stage === "udp"
          ? "relay"
          : this.stage === "proxy"
            ? "front"
            : this.stage,
      bytes_up: this.up.bytes,
      bytes_down: this.down.bytes,
      age_ms: Math.round(now - this.startedAt),
      pooled: this.pooled,
    };
  }
}

/** Events of a client socket. `socket.data` is unset only for a client refused at accept. */
export const clientEvents: SocketHandler<Connection | undefined> = {
  data: (socket, chunk) => socket.data?.onClientData(chunk),
  drain: (socket) => socket.data?.onClientDrain(),
  end: (socket) => socket.data?.onClientEnd(),
  close: (socket, error) => (error ? socket.data?.failed(error) : socket.data?.onClientClosed()),
  error: (socket, error) => socket.data?.failed(error),
};

/** The code of a failed dial. Bun reports a connect that failed for lack of descriptors as
 *  ECONNREFUSED; when this process is out of them, it is EMFILE (answered 01, not 05). */
function dialErrorCode(error: unknown): string | undefined {
  const code = error instanceof DialError ? error.code : undefined;
  return code === "ECONNREFUSED" && descriptorsExhausted() ? "EMFILE" : code;
}

function concatBytes(first: Uint8Array, second: Uint8Array): Uint8Array {
  const joined = new Uint8Array(first.length + second.length);
  joined.set(first);
  joined.set(second, first.length);
  return joined;
}

/** `host:port` of the peer; a client that reset before `open` may have no address in Bun 1.4.5. */
function peerAddress(socket: Socket<unknown>): string {
  const host = socket.remoteAddress;
  return host ? formatHostPort(host, socket.remotePort) : "unknown";
}

/** A system error from a socket (ECONNRESET, EPIPE…), as opposed to an exception of our own. */
export function isSocketError(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && /^E[A-Z0-9_]+$/.test(code);
}

/** An exception on a socket path is a bug: logged once at error level with its stack. */
export function logUnexpected(log: Logger, error: unknown, fields: Record<string, unknown>): void {
  const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
  log.error("unexpected exception on a socket path", { ...fields, error: stack });
}
