// One test socket, either side: receive queue, write queue, bounded waits. Not how it opens (sockets.ts).

import type { Socket } from "bun";
import { bytes, toHex } from "./bytes.ts";
import { DEADLINE_MS, withDeadline } from "./wait.ts";

/** What a Bun socket carries: its Conn, once open. */
export interface Holder {
  conn: Conn | null;
}

type Waiter = () => void;

/**
 * One TCP socket with what tests need on top of Bun's callbacks:
 * - a receive queue (`read(n)`, `readToEnd()`), or a streaming sink (`streamTo()`);
 * - a write queue that keeps the unsent tail and retries on drain (Bun keeps no copy);
 * - flags for FIN received (`eof`) and fully closed (`closed`), and waits on them.
 */
export class Conn {
  readonly socket: Socket<Holder>;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Captured at open: Bun's getters return undefined once the socket has closed. */
  readonly localPort: number;
  /** Received but not yet read. */
  private readonly chunks: Uint8Array[] = [];
  private buffered = 0;
  /** When set, every received chunk goes here instead of the queue. */
  private sink: ((chunk: Uint8Array) => void) | null = null;
  private readonly outbox: Uint8Array[] = [];
  private outboxBytes = 0;
  private readonly waiters = new Set<Waiter>();
  /** Total bytes received / accepted by the kernel for sending. */
  receivedBytes = 0;
  sentBytes = 0;
  eof = false;
  closed = false;
  error: Error | null = null;
  /** Hooks for server behaviours. */
  onData: ((chunk: Uint8Array) => void) | null = null;
  onEnd: (() => void) | null = null;

  constructor(socket: Socket<Holder>) {
    this.socket = socket;
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort;
    this.localPort = socket.localPort;
  }

  // Called by the socket handlers.
  handleData(chunk: Uint8Array): void {
    this.receivedBytes += chunk.length;
    if (this.onData) this.onData(chunk);
    else if (this.sink) this.sink(chunk);
    else {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    this.notify();
  }

  handleEnd(): void {
    this.eof = true;
    this.onEnd?.();
    this.notify();
  }

  handleClose(error?: Error): void {
    this.closed = true;
    this.eof = true;
    if (error && !this.error) this.error = error;
    this.outbox.length = 0;
    this.outboxBytes = 0;
    openConns.delete(this);
    this.notify();
  }

  handleDrain(): void {
    // Idempotent: pause()/resume() fire spurious drains.
    while (this.outbox.length > 0) {
      const head = this.outbox[0]!;
      const accepted = this.writeNow(head);
      if (accepted === null) return;
      this.outboxBytes -= accepted;
      if (accepted < head.length) {
        this.outbox[0] = head.subarray(accepted);
        break;
      }
      this.outbox.shift();
    }
    this.notify();
  }

  /** Writes what the kernel takes now and counts it; null (the Conn closes) on a closed socket. */
  private writeNow(data: Uint8Array): number | null {
    const accepted = this.socket.write(data);
    if (accepted < 0) {
      this.handleClose(new Error("write on a closed socket"));
      return null;
    }
    this.sentBytes += accepted;
    return accepted;
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Resolves when `check` returns a value other than undefined; re-checked on every event. */
  private until<T>(check: () => T | undefined, ms: number, what: string): Promise<T> {
    let attempt: Waiter = () => {};
    const promise = new Promise<T>((resolve, reject) => {
      attempt = () => {
        let value: T | undefined;
        try {
          value = check();
        } catch (error) {
          this.waiters.delete(attempt);
          reject(error);
          return;
        }
        if (value === undefined) return;
        this.waiters.delete(attempt);
        resolve(value);
      };
      this.waiters.add(attempt);
      attempt();
    });
    return withDeadline(promise, ms, what).finally(() => this.waiters.delete(attempt));
  }

  // ── Writing ──

  /** Queues `data` and returns once the kernel has accepted all of it (or the socket closed). */
  write(data: Uint8Array | string, ms = DEADLINE_MS): Promise<void> {
    this.send(typeof data === "string" ? bytes(data) : data);
    return this.flushed(ms);
  }

  /** Queues `data` without waiting. Writes keep their order. */
  send(data: Uint8Array): void {
    if (this.closed) return;
    if (this.outbox.length === 0) {
      const accepted = this.writeNow(data);
      if (accepted === null || accepted === data.length) return;
      data = data.subarray(accepted);
    }
    this.outbox.push(data);
    this.outboxBytes += data.length;
  }

  get pendingBytes(): number {
    return this.outboxBytes;
  }

  flushed(ms = DEADLINE_MS): Promise<void> {
    return this.until(
      () => {
        if (this.outboxBytes === 0) return true;
        if (this.closed) throw new Error(`socket closed with ${this.outboxBytes} bytes unsent`);
        return undefined;
      },
      ms,
      `the kernel to accept ${this.outboxBytes} queued bytes`,
    ).then(() => undefined);
  }

  /** Sends FIN; reading goes on. */
  shutdown(): void {
    if (!this.closed) this.socket.shutdown();
  }

  /** Sends FIN once everything queued has been accepted by the kernel. */
  async shutdownAfterFlush(ms = DEADLINE_MS): Promise<void> {
    await this.flushed(ms);
    this.shutdown();
  }

  end(): void {
    if (!this.closed) this.socket.end();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  // ── Reading ──

  get available(): number {
    return this.buffered;
  }

  private take(count: number): Uint8Array {
    const out = new Uint8Array(count);
    let at = 0;
    while (at < count) {
      const head = this.chunks[0]!;
      const used = Math.min(head.length, count - at);
      out.set(head.subarray(0, used), at);
      at += used;
      if (used === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(used);
    }
    this.buffered -= count;
    return out;
  }

  /** Exactly `count` bytes; fails if the peer ends first or the deadline passes. */
  read(count: number, ms = DEADLINE_MS): Promise<Uint8Array> {
    return this.until(
      () => {
        if (this.buffered >= count) return this.take(count);
        if (this.eof) {
          throw new Error(
            `peer closed after ${this.buffered} of ${count} bytes (got ${toHex(this.take(this.buffered))})`,
          );
        }
        return undefined;
      },
      ms,
      `${count} bytes (have ${this.buffered})`,
    );
  }

  /** Everything until the peer's FIN (or close). */
  readToEnd(ms = DEADLINE_MS): Promise<Uint8Array> {
    return this.until(
      () => (this.eof ? this.take(this.buffered) : undefined),
      ms,
      `the peer to close (have ${this.buffered} bytes)`,
    );
  }

  /** Resolves once the peer has sent FIN or the socket closed. Bytes stay queued. */
  waitEnd(ms = DEADLINE_MS, what = "the peer to close"): Promise<void> {
    return this.until(() => (this.eof ? true : undefined), ms, what).then(() => undefined);
  }

  /** From now on every received chunk (queued ones first) goes to `sink` instead of the queue. */
  streamTo(sink: (chunk: Uint8Array) => void): void {
    for (const chunk of this.chunks) sink(chunk);
    this.chunks.length = 0;
    this.buffered = 0;
    this.sink = sink;
  }
}

/** Open sockets of every kind, so afterAll can close what a failing test left behind. */
export const openConns = new Set<Conn>();

/** Terminates every socket a test left open. */
export function closeOpenConns(): void {
  for (const conn of openConns) if (!conn.closed) conn.socket.terminate();
  openConns.clear();
}
