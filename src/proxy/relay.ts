// The relay, the hot path: one Pipe per direction moves bytes from a source socket to a sink socket.
// Not connection setup or teardown policy: connection.ts owns the sockets' lifecycles and calls in.
//
//   client ──data──▶ Pipe "up"   ──write──▶ upstream
//   client ◀─write── Pipe "down" ◀─data──── upstream
//
//   data(chunk):  backlog empty → write straight through (no copy);
//                 the part write() did not take → backlog (pool slots), pause the source
//   drain():      the sink has room → flush the backlog, releasing slots as they empty;
//                 once empty → resume the source, or pass on a FIN that was waiting behind the bytes
//   end():        FIN from the source → sink.shutdown() once the backlog is empty, and the opposite
//                 Pipe keeps flowing (half-close); the owner closes both sockets when both Pipes are done
//   write() −1:   the sink's peer is gone (a reset that a write found: Bun then reports a FIN and
//                 a clean close, not the reset) → the owner is told, and resets the other side
//
// Bun's write() keeps no copy of what it does not accept, so the unsent tail is ours to hold; Bun's
// pause()/resume() each fire a drain, so drain() must be idempotent (it is: it only acts on state).

import type { BufferPool } from "../pool/index.ts";
import { Backlog, type Sink } from "./backlog.ts";

/** A Bun socket as a Pipe end: readable (pause/resume), writable, and able to half-close. */
export interface PipeSocket extends Sink {
  pause(): void;
  resume(): void;
  shutdown(halfClose?: boolean): void;
}

/** Told when a Pipe has delivered its FIN, or found its sink gone. */
export interface PipeOwner {
  pipeFinished(pipe: Pipe): void;
  /** A write found the sink closed under us: its peer reset, however Bun reports it after. */
  pipeBroken(pipe: Pipe): void;
}

/** Where a Pipe built without counters (unit tests) adds its bytes: read by no one. */
const UNCOUNTED = new Float64Array(1);

export class Pipe {
  /** Bytes read from the source (counted on arrival: the admin API's live view). */
  bytes = 0;
  /** Bytes read that never reached the sink: held when it closed or the Pipe was disposed, or
   *  read after it was gone. */
  private undelivered = 0;
  /** The source sent FIN or closed: nothing more will arrive. */
  sourceDone = false;
  /** The sink got our FIN, or is gone: nothing more will be written. */
  sinkDone = false;
  readonly backlog: Backlog;
  private source: PipeSocket | null = null;
  private sink: PipeSocket | null = null;
  private paused = false;
  private readonly owner: PipeOwner;

  // The Worker's shared counters (src/stats/counters.ts) and this direction's word in them: one
  // Float64 add per chunk, the whole cost of the admin API's byte counts on the hot path.
  private readonly counters: Float64Array;
  private readonly counterWord: number;

  constructor(
    pool: BufferPool,
    backlogBytesMax: number,
    owner: PipeOwner,
    counters: Float64Array = UNCOUNTED,
    counterWord = 0,
  ) {
    this.backlog = new Backlog(pool, backlogBytesMax);
    this.owner = owner;
    this.counters = counters;
    this.counterWord = counterWord;
  }

  /** Sets the ends. A null sink (upstream still connecting) makes data() queue everything. */
  connect(source: PipeSocket | null, sink: PipeSocket | null): void {
    this.source = source;
    this.sink = sink;
  }

  /** Bytes from the source. */
  data(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    this.counters[this.counterWord]! += chunk.length;
    if (this.sinkDone) {
      this.undelivered += chunk.length; // the sink is gone; what it would have received goes nowhere
      return;
    }
    if (this.sink === null || !this.backlog.empty) {
      this.hold(chunk, 0); // keep order: nothing overtakes bytes already waiting
      return;
    }
    const written = this.sink.write(chunk);
    if (written < 0) {
      this.undelivered += chunk.length;
      this.owner.pipeBroken(this); // the owner closes both; nothing to hold
    } else if (written < chunk.length) this.hold(chunk, written);
  }

  /** The sink can take more (or has just connected). */
  drain(): void {
    if (this.sink === null || this.sinkDone) return;
    if (!this.backlog.empty) {
      const flushed = this.backlog.flushTo(this.sink);
      if (flushed === "closed") this.owner.pipeBroken(this);
      if (flushed !== "empty") return;
    }
    if (this.sourceDone) {
      this.finish();
    } else if (this.paused) {
      this.paused = false;
      this.source?.resume();
    }
  }

  /** FIN from the source: pass it on after everything that came before it. */
  end(): void {
    this.sourceDone = true;
    if (this.sink !== null && this.backlog.empty) this.finish();
  }

  /** Bytes that reached the sink (written to its socket), for the connection log. */
  get delivered(): number {
    return this.bytes - this.undelivered - this.backlog.bytes;
  }

  /** The sink closed under us: drop what it can no longer receive. */
  sinkClosed(): void {
    this.sinkDone = true;
    this.drop();
  }

  /** Returns every slot; the Pipe is dead afterwards. */
  dispose(): void {
    this.sinkDone = true;
    this.sourceDone = true;
    this.drop();
  }

  private drop(): void {
    this.undelivered += this.backlog.bytes;
    this.backlog.clear();
  }

  private hold(chunk: Uint8Array, from: number): void {
    this.backlog.keep(chunk, from);
    if (!this.paused) {
      this.paused = true;
      this.source?.pause(); // resumed by drain() once the backlog is out
    }
  }

  private finish(): void {
    if (this.sinkDone) return;
    this.sinkDone = true;
    this.sink!.shutdown(); // FIN to the sink; its other direction keeps flowing
    this.owner.pipeFinished(this);
  }
}
