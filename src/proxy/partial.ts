// A handshake message that arrived split across reads, held in one pool slot until the rest comes.
// Not a general buffer: it holds at most one slot, which always fits a whole handshake message
// (slot_bytes is at least the largest one, asserted at start-up), so it never grows.

import { type BufferPool, EXHAUSTED } from "../pool/index.ts";

export class PartialMessage {
  /** Bytes held; 0 when nothing is. */
  length = 0;
  private readonly pool: BufferPool;
  private slot = EXHAUSTED;

  constructor(pool: BufferPool) {
    this.pool = pool;
  }

  /** Appends what can belong to the held message and returns the whole of it (a view of the
   *  slot). Only called while something is held. */
  extend(chunk: Uint8Array): Uint8Array {
    const view = this.pool.view(this.slot);
    const take = Math.min(chunk.length, view.length - this.length);
    view.set(chunk.subarray(0, take), this.length);
    return view.subarray(0, this.length + take);
  }

  /** Keeps `input` (a message prefix) for the next read. False when no slot is free. */
  keep(input: Uint8Array): boolean {
    if (this.slot !== EXHAUSTED) {
      this.length = input.length; // already in the slot: input is the view extend() returned
      return true;
    }
    const slot = this.pool.acquire();
    if (slot === EXHAUSTED) return false;
    this.slot = slot;
    this.pool.view(slot).set(input, 0);
    this.length = input.length;
    return true;
  }

  /** Returns the slot, if one is held. */
  drop(): void {
    if (this.slot === EXHAUSTED) return;
    this.pool.release(this.slot);
    this.slot = EXHAUSTED;
    this.length = 0;
  }
}
