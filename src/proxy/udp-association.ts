// One SOCKS5 UDP association (RFC 1928 §6–7): a UDP socket of its own, bound on the TCP listener's
// address, that relays the client's datagrams to their destinations and the destinations' answers
// back, each with the SOCKS UDP header. Not the control connection (connection.ts keeps it, and
// closes the association with it) and not the header codec (src/protocol/udp.ts).
//
//   client ──[RSV FRAG ATYP DST.ADDR DST.PORT | data]──▶ relay socket ──[data]──▶ destination
//   client ◀──[RSV FRAG ATYP SRC.ADDR SRC.PORT | data]── relay socket ◀──[data]── destination
//
// Who may send: the client's address as the control connection has it (never the DST.ADDR of the
// request, which a client could point anywhere), and the port it declared when not zero (else the
// first datagram from that address fixes the port). Replies only from an address and port this
// association has sent to. Anything else is dropped and counted ("foreign").
//
// One socket per association rather than one shared socket: the kernel then demultiplexes the
// destinations' answers by port, so an answer can only reach the association that asked, and two
// clients talking to the same destination never share a source port (a shared socket would need a
// NAT table and still could not tell their answers apart). It costs one descriptor per
// association, which udp.associations_max bounds.
//
// A datagram that must wait (its destination's name is being resolved, or the socket's send buffer
// is full) is copied into a pool slot, up to LIMITS.udp_held_datagrams_max per association and
// within the Worker's UDP share of the pool; with no slot free it is dropped and counted
// ("pool_full"), never held in memory of its own.

import type { udp } from "bun";
import type { Config } from "../config/schema.ts";
import { LIMITS } from "../limits.ts";
import type { Logger } from "../log.ts";
import type { AccessPolicy } from "../policy/access.ts";
import { type BufferPool, EXHAUSTED } from "../pool/index.ts";
import { formatHostPort } from "../protocol/host-port.ts";
import { parseIPLiteral } from "../protocol/ip.ts";
import { decodeUdpHeader, encodeUdpHeader } from "../protocol/udp.ts";
import type { UdpDropReason, WorkerCounters } from "../stats/counters.ts";
import { logUnexpected } from "./connection.ts"; // a cycle, but only a function called later
import { resolveHost } from "./dial.ts";
import type { HandshakeBudget } from "./partial.ts";

/** What every association of one Worker shares. */
export interface UdpContext {
  readonly config: Config;
  readonly pool: BufferPool;
  readonly log: Logger;
  readonly access: AccessPolicy;
  readonly counters: WorkerCounters;
  /** The slots this Worker's associations hold together, and their bound: the same share of the
   *  pool as the handshakes' (pool.handshake_share_percent), counted apart, so datagrams cannot
   *  starve the relays of slots. */
  readonly udpSlots: HandshakeBudget;
}

export interface AssociationRequest {
  /** Where the relay binds: the TCP listener's host. */
  bindHost: string;
  /** The control connection's peer address (undefined if Bun gave none: nothing is accepted). */
  clientHost: string | undefined;
  /** The port the client declared in its request; 0: not known yet. */
  declaredPort: number;
  user: string | undefined;
  /** The listen address as configured, for access rules naming listeners. */
  listen: string;
}

type DestinationState = "resolving" | "ready" | "denied";

interface Destination {
  state: DestinationState;
  host: string;
  port: number;
  /** The address datagrams go to once ready. */
  address: string;
  /** The header of answers from it, encoded once. */
  header: Uint8Array | null;
}

/** A datagram waiting in a pool slot: for a destination still resolving, or for the socket. */
interface Held {
  slot: number;
  length: number;
  /** Where it goes: to `destination` once it is ready, else to `address`:`port`. */
  destination: Destination | null;
  port: number;
  address: string;
  direction: "up" | "down";
  /** Its payload, without the SOCKS UDP header (the counters count payload bytes). */
  payloadBytes: number;
}

/** "::ffff:1.2.3.4" and "1.2.3.4" are one client; IPv6 text is compared as parsed. */
function canonicalHost(host: string): string {
  const literal = parseIPLiteral(host);
  if (literal === null) return host.toLowerCase();
  const bytes = literal.bytes;
  if (literal.family === 6 && bytes.subarray(0, 10).every((b) => b === 0)) {
    if (bytes[10] === 0xff && bytes[11] === 0xff) return bytes.subarray(12).join(".");
  }
  return literal.family === 4 ? bytes.join(".") : host.toLowerCase();
}

function familyOf(host: string): 4 | 6 | null {
  return parseIPLiteral(host)?.family ?? null;
}

/** Opens an association, or returns null when udp.associations_max is reached (all Workers). */
export async function openAssociation(
  ctx: UdpContext,
  request: AssociationRequest,
): Promise<UdpAssociation | null> {
  if (ctx.counters.udpOpenAll() >= ctx.config.udp.associations_max) {
    ctx.counters.udp("refused");
    return null;
  }
  ctx.counters.udp("opened"); // taken before the await, so concurrent opens see it
  try {
    const association = new UdpAssociation(ctx, request);
    await association.bind(request.bindHost);
    return association;
  } catch (error) {
    ctx.counters.udp("closed");
    throw error;
  }
}

export class UdpAssociation {
  private socket: udp.Socket<"uint8array"> | null = null;
  private closed = false;
  private readonly ctx: UdpContext;
  private readonly request: AssociationRequest;
  private readonly clientHost: string | null;
  private clientPort: number;
  /** By "host:port" as the client named it. */
  private readonly byTarget = new Map<string, Destination>();
  /** By "address:port" answers come from. */
  private readonly byAddress = new Map<string, Destination>();
  private readonly held: Held[] = [];
  /** Datagrams the socket would not take yet, in order (a subset of `held`, the ones addressed). */
  private waitingForSocket = 0;
  private socketFamily: 4 | 6 = 4;
  /** Bound on "::": IPv4 peers are reached (and seen) as IPv4-mapped IPv6 addresses. */
  private dualStack = false;
  private tokens: number;
  private tokensAt = performance.now();
  lastActivity = performance.now();
  datagramsUp = 0;
  datagramsDown = 0;

  constructor(ctx: UdpContext, request: AssociationRequest) {
    this.ctx = ctx;
    this.request = request;
    this.clientHost = request.clientHost === undefined ? null : canonicalHost(request.clientHost);
    this.clientPort = request.declaredPort;
    this.tokens = ctx.config.udp.datagrams_per_second;
  }

  /** The relay's bound address and port. */
  get address(): { host: string; port: number } {
    const bound = this.socket!.address;
    return { host: bound.address, port: bound.port };
  }

  async bind(host: string): Promise<void> {
    const socket = await Bun.udpSocket({
      hostname: host,
      port: 0,
      binaryType: "uint8array",
      socket: {
        data: (_socket, data, port, address) => this.onDatagram(data, port, address),
        drain: () => this.guarded(() => this.flush()),
        // An ICMP error for an earlier datagram (port unreachable…): UDP has no connection to
        // fail, so it is only noted; the client learns nothing, as with any lost datagram.
        error: (_socket, error) => {
          this.ctx.log.debug("udp relay error", {
            client: this.request.clientHost,
            error: String(error),
          });
        },
      },
    });
    if (this.closed) {
      socket.close();
      return;
    }
    this.socket = socket;
    this.socketFamily = socket.address.family === "IPv6" ? 6 : 4;
    this.dualStack = this.socketFamily === 6 && canonicalHost(socket.address.address) === "::";
  }

  /** True when no datagram passed either way for udp.idle_timeout_ms. */
  idle(now: number): boolean {
    return now - this.lastActivity >= this.ctx.config.udp.idle_timeout_ms;
  }

  /** Closes the socket and returns every held slot. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket?.close();
    for (const held of this.held) this.release(held.slot);
    this.held.length = 0;
    this.ctx.counters.udp("closed");
  }

  private drop(reason: UdpDropReason): void {
    this.ctx.counters.udpDropped(reason);
  }

  // ── datagrams in ─────────────────────────────────────────────────────────────────────────────

  private onDatagram(data: Uint8Array, port: number, address: string): void {
    if (this.closed) return;
    this.guarded(() => {
      const host = canonicalHost(address);
      if (this.clientPort !== 0 && port === this.clientPort && host === this.clientHost) {
        this.fromClient(data);
        return;
      }
      const destination = this.byAddress.get(formatHostPort(host, port));
      if (destination !== undefined) {
        this.fromDestination(destination, data);
        return;
      }
      if (this.clientPort === 0 && host === this.clientHost) {
        this.clientPort = port; // the first datagram from the client's address fixes its port
        this.fromClient(data);
        return;
      }
      this.drop("foreign");
    });
  }

  /** Runs a step on a socket or resolver path: a peer's bytes never crash the Worker, and an
   *  exception here is a bug, logged with its stack. */
  private guarded(step: () => void): void {
    try {
      step();
    } catch (error) {
      logUnexpected(this.ctx.log, error, { client: this.request.clientHost, at: "udp" });
    }
  }

  private fromClient(datagram: Uint8Array): void {
    const decoded = decodeUdpHeader(datagram);
    if (decoded.kind === "invalid") {
      this.drop("malformed");
      return;
    }
    const { header } = decoded;
    if (header.frag !== 0) {
      this.drop("fragmented");
      return;
    }
    if (!this.takeToken()) {
      this.drop("rate");
      return;
    }
    this.lastActivity = performance.now();
    const key = formatHostPort(header.address.host, header.port);
    let destination = this.byTarget.get(key) ?? null;
    if (destination === null) {
      if (this.byTarget.size >= this.ctx.config.udp.destinations_max) {
        this.drop("destinations");
        return;
      }
      destination = this.addDestination(key, header.address.host, header.port);
      if (destination === null) {
        this.drop("unreachable");
        return;
      }
    }
    const payload = datagram.subarray(header.dataOffset);
    switch (destination.state) {
      case "denied":
        this.drop("denied");
        break;
      case "resolving":
        this.hold(payload, { destination, port: 0, address: "", direction: "up" });
        break;
      case "ready":
        this.sendTo(payload, destination.port, destination.address, "up");
    }
  }

  private fromDestination(destination: Destination, data: Uint8Array): void {
    this.lastActivity = performance.now();
    const header = destination.header!;
    const datagram = new Uint8Array(header.length + data.length);
    datagram.set(header);
    datagram.set(data, header.length);
    this.sendTo(datagram, this.clientPort, this.request.clientHost!, "down", data.length);
  }

  /** A token bucket of udp.datagrams_per_second, with a burst of one second's worth. */
  private takeToken(): boolean {
    const rate = this.ctx.config.udp.datagrams_per_second;
    if (rate === 0) return true;
    const now = performance.now();
    this.tokens = Math.min(rate, this.tokens + ((now - this.tokensAt) * rate) / 1000);
    this.tokensAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  // ── destinations ─────────────────────────────────────────────────────────────────────────────

  /** A new destination: judged by the access rules now (an IP, or a domain rule), or once its
   *  name resolves. Null when an IP of the other family than the relay's is named. */
  private addDestination(key: string, host: string, port: number): Destination | null {
    const family = familyOf(host);
    if (family !== null && !this.reachable(host)) return null;
    const access = this.ctx.access;
    const prepared = access.prepare({
      client: this.request.clientHost,
      user: this.request.user,
      host,
      port,
      listener: this.request.listen,
    });
    const early = access.decide(prepared);
    const destination: Destination = {
      state: "resolving",
      host,
      port,
      address: host,
      header: null,
    };
    this.byTarget.set(key, destination);
    if (early !== null && !early.allow) {
      this.denied(destination, early.rule);
    } else if (family !== null) {
      const verdict = early ?? access.decideAddress(prepared, host);
      if (verdict.allow) this.ready(destination, host);
      else this.denied(destination, verdict.rule);
    } else {
      this.resolve(destination, key, (address) =>
        early === null ? access.decideAddress(prepared, address) : early,
      ).catch((error: unknown) => {
        logUnexpected(this.ctx.log, error, { client: this.request.clientHost, at: "udp resolve" });
      });
    }
    return destination;
  }

  /** Resolves a domain with the DNS timeout; its held datagrams go out once it has an address. */
  private async resolve(
    destination: Destination,
    key: string,
    judge: (address: string) => { allow: true } | { allow: false; rule: string },
  ): Promise<void> {
    let addresses: string[];
    try {
      addresses = await resolveHost(destination.host, this.ctx.config.upstream.dns_timeout_ms);
    } catch {
      addresses = [];
    }
    if (this.closed) return;
    const usable = addresses.filter((address) => this.reachable(address));
    let denial: string | null = null;
    for (const address of usable) {
      const verdict = judge(address);
      if (verdict.allow) {
        this.ready(destination, address);
        this.guarded(() => this.flush());
        return;
      }
      denial ??= verdict.rule;
    }
    if (denial !== null) {
      this.denied(destination, denial);
      this.releaseHeld(destination, "denied");
      return;
    }
    // Not resolved (or no address of the relay's family): forgotten, so a later datagram retries.
    this.byTarget.delete(key);
    this.releaseHeld(destination, "unreachable");
  }

  /** Whether the relay's socket can send to this address (its family, or IPv4 on a dual stack). */
  private reachable(address: string): boolean {
    const family = familyOf(address);
    return family === this.socketFamily || (family === 4 && this.dualStack);
  }

  private ready(destination: Destination, address: string): void {
    destination.state = "ready";
    // An IPv6 socket sends to an IPv4 peer at its IPv4-mapped address.
    const mapped = familyOf(address) === 4 && this.socketFamily === 6;
    destination.address = mapped ? `::ffff:${address}` : address;
    destination.header = encodeUdpHeader(address, destination.port);
    this.byAddress.set(formatHostPort(canonicalHost(address), destination.port), destination);
  }

  private denied(destination: Destination, rule: string): void {
    destination.state = "denied";
    this.ctx.log.info("access denied", {
      client: this.request.clientHost,
      user: this.request.user,
      target: formatHostPort(destination.host, destination.port),
      rule,
      udp: true,
    });
  }

  // ── datagrams out, and the ones held in pool slots ───────────────────────────────────────────

  /** Sends now, or holds behind datagrams already waiting for the socket (order is kept). */
  private sendTo(
    datagram: Uint8Array,
    port: number,
    address: string,
    direction: "up" | "down",
    payloadBytes = datagram.length,
  ): void {
    if (this.waitingForSocket > 0 || !this.socket!.send(datagram, port, address)) {
      this.hold(datagram, { destination: null, port, address, direction, payloadBytes });
      return;
    }
    this.counted(direction, payloadBytes);
  }

  private counted(direction: "up" | "down", payloadBytes: number): void {
    const counters = this.ctx.counters;
    if (direction === "up") {
      this.datagramsUp++;
      counters.udp("datagrams_up");
      counters.udp("bytes_up", payloadBytes);
    } else {
      this.datagramsDown++;
      counters.udp("datagrams_down");
      counters.udp("bytes_down", payloadBytes);
    }
  }

  /** Copies a datagram into a pool slot to wait; dropped when it cannot be held. */
  private hold(
    datagram: Uint8Array,
    where: Omit<Held, "slot" | "length" | "payloadBytes"> & { payloadBytes?: number },
  ): void {
    if (datagram.length > this.ctx.pool.slotBytes) {
      this.drop("oversize");
      return;
    }
    const budget = this.ctx.udpSlots;
    if (this.held.length >= LIMITS.udp_held_datagrams_max || budget.held >= budget.max) {
      this.drop("pool_full");
      return;
    }
    const slot = this.ctx.pool.acquire();
    if (slot === EXHAUSTED) {
      this.drop("pool_full");
      return;
    }
    budget.held++;
    this.ctx.pool.view(slot).set(datagram);
    const payloadBytes = where.payloadBytes ?? datagram.length;
    this.held.push({ ...where, slot, length: datagram.length, payloadBytes });
    if (where.destination === null) this.waitingForSocket++;
  }

  /** Sends what is held and can go, in order; stops at the first the socket refuses. Runs on
   *  drain and when a name resolves. */
  private flush(): void {
    if (this.closed || this.socket === null) return;
    let index = 0;
    while (index < this.held.length) {
      const held = this.held[index]!;
      const destination = held.destination;
      if (destination !== null && destination.state !== "ready") {
        index++; // still resolving: stays, later ones to other destinations may go
        continue;
      }
      const view = this.ctx.pool.view(held.slot).subarray(0, held.length);
      const port = destination === null ? held.port : destination.port;
      const address = destination === null ? held.address : destination.address;
      if (!this.socket.send(view, port, address)) return;
      this.counted(held.direction, held.payloadBytes);
      if (destination === null) this.waitingForSocket--;
      this.release(held.slot);
      this.held.splice(index, 1);
    }
  }

  private release(slot: number): void {
    this.ctx.pool.release(slot);
    this.ctx.udpSlots.held--;
  }

  /** Drops the datagrams held for a destination that will not get an address. */
  private releaseHeld(destination: Destination, reason: UdpDropReason): void {
    for (let index = this.held.length - 1; index >= 0; index--) {
      const held = this.held[index]!;
      if (held.destination !== destination) continue;
      this.release(held.slot);
      this.held.splice(index, 1);
      this.drop(reason);
    }
  }
}
