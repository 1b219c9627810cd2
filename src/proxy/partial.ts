// A handshake message that arrived split across reads, held in one pool slot until the rest comes.
// Not a general buffer: it holds at most one slot, which always fits a whole handshake message
// (slot_bytes is at least the largest one, asserted at start-up), so it never grows.
//
// Every handshake of one Worker shares one budget of slots (pool.handshake_share_percent, split
// evenly across the Workers), so clients that never finish their handshake, authenticated or not,
// cannot take the slots the relays need: past the budget a split message is refused.

import { type BufferPool, EXHAUSTED } from "../pool/index.ts";

/** The slots one Worker's handshakes hold together, and how many they may. */
export interface HandshakeBudget {
  held: number;
  readonly max: number;
}

export class PartialMessage {
  /** Bytes held; 0 when nothing is. */
  length = 0;
  private readonly pool: BufferPool;
  private readonly budget: HandshakeBudget;
  private slot = EXHAUSTED;

  constructor(pool: BufferPool, budget: HandshakeBudget) {
    this.pool = pool;
    this.budget = budget;
  }

  /** Appends what can belong to the held message and returns the whole of it (a view of the
   *  slot). Only called while something is held. */
  extend(chunk: Uint8Array): Uint8Array {
    const view = this.pool.view(this.slot);
    const take = Math.min(chunk.length, view.length - this.length);
    view.set(chunk.subarray(0, take), this.length);
    return view.subarray(0, this.length + take);
  }

  /** Keeps `input` (a message prefix) for the next read. False when no slot is free, or the
   *  handshakes' budget is spent. */
  keep(input: Uint8Array): boolean {
    if (this.slot !== EXHAUSTED) {
      this.length = input.length; // already in the slot: input is the view extend() returned
      return true;
    }
    if (this.budget.held >= this.budget.max) return false;
    const slot = this.pool.acquire();
    if (slot === EXHAUSTED) return false;
    this.budget.held++;
    this.slot = slot;
    this.pool.view(slot).set(input, 0);
    this.length = input.length;
    return true;
  }

  /** Returns the slot, if one is held. */
  drop(): void {
    if (this.slot === EXHAUSTED) return;
    this.pool.release(this.slot);
    this.budget.held--;
    this.slot = EXHAUSTED;
    this.length = 0;
  }
}
