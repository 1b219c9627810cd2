// One direction's backlog: bytes read from one peer that the other could not take yet, kept in pool
// slots. Not a general buffer: it only appends, flushes in order, and is bounded by design.
//
// Memory bound. Slots come from the shared pool and at most `slotsMax` of them are held
// (backlog_bytes_max / slot_bytes, rounded up). Bytes that arrive when the bound is reached or the
// pool is exhausted are not copied anywhere: the chunk Bun already handed us is held in place and
// the caller pauses the reader, so at most the chunk already read from the kernel sits outside the
// pool per paused direction. Nothing is ever allocated to get around the bound.

import { type BufferPool, EXHAUSTED } from "../pool/index.ts";

/** What a flush did: everything went out, the sink took part of it, or the sink is closed. */
export type FlushResult = "empty" | "partial" | "closed";

/** The writing half of a Bun socket, as the backlog needs it. */
export interface Sink {
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
}

export class Backlog {
  /** Bytes waiting, in slots and held chunks. */
  bytes = 0;
  private readonly pool: BufferPool;
  private readonly slotsMax: number;
  private slots: number[] | null = null; // FIFO of slot indices, allocated on first use
  private head = 0; // read offset in slots[0]
  private tail = 0; // write offset in the last slot
  private held: Uint8Array[] | null = null; // chunks kept in place, always after the slot bytes

  constructor(pool: BufferPool, bytesMax: number) {
    this.pool = pool;
    this.slotsMax = Math.max(1, Math.ceil(bytesMax / pool.slotBytes));
  }

  get empty(): boolean {
    return this.bytes === 0;
  }

  /** Slots this backlog holds now. */
  get slotCount(): number {
    return this.slots === null ? 0 : this.slots.length;
  }

  /** Keeps `chunk[from..]` to send later: copied into slots while the bound and the pool allow,
   *  the rest held in place. The caller must pause the reader after any keep(). */
  keep(chunk: Uint8Array, from: number): void {
    const length = chunk.length - from;
    if (length <= 0) return;
    this.bytes += length;
    let offset = from;
    if (this.held === null) offset = this.copyIntoSlots(chunk, offset);
    if (offset < chunk.length) {
      this.held ??= [];
      this.held.push(offset === 0 ? chunk : chunk.subarray(offset));
    }
  }

  /** Writes as much as `sink` takes, releasing each slot as it empties. */
  flushTo(sink: Sink): FlushResult {
    const slots = this.slots;
    while (slots !== null && slots.length > 0) {
      const end = slots.length === 1 ? this.tail : this.pool.slotBytes;
      const pending = end - this.head;
      const written = pending > 0 ? sink.write(this.pool.view(slots[0]!), this.head, pending) : 0;
      if (written < 0) return "closed";
      this.head += written;
      this.bytes -= written;
      if (written < pending) return "partial";
      this.pool.release(slots.shift()!);
      this.head = 0;
      if (slots.length === 0) this.tail = 0;
    }
    const held = this.held;
    while (held !== null && held.length > 0) {
      const chunk = held[0]!;
      const written = sink.write(chunk, this.head, chunk.length - this.head);
      if (written < 0) return "closed";
      this.head += written;
      this.bytes -= written;
      if (this.head < chunk.length) return "partial";
      held.shift();
      this.head = 0;
    }
    this.held = null;
    return "empty";
  }

  /** Drops everything and returns every slot to the pool. */
  clear(): void {
    if (this.slots !== null) {
      for (const slot of this.slots) this.pool.release(slot);
      this.slots.length = 0;
    }
    this.held = null;
    this.head = 0;
    this.tail = 0;
    this.bytes = 0;
  }

  private copyIntoSlots(chunk: Uint8Array, from: number): number {
    const slotBytes = this.pool.slotBytes;
    this.slots ??= [];
    const slots = this.slots;
    let offset = from;
    while (offset < chunk.length) {
      if (slots.length === 0 || this.tail === slotBytes) {
        if (slots.length >= this.slotsMax) break; // at the per-connection bound
        const slot = this.pool.acquire();
        if (slot === EXHAUSTED) break; // pool dry: hold the rest in place, reader stays paused
        slots.push(slot);
        this.tail = 0;
      }
      const n = Math.min(slotBytes - this.tail, chunk.length - offset);
      this.pool.view(slots[slots.length - 1]!).set(chunk.subarray(offset, offset + n), this.tail);
      this.tail += n;
      offset += n;
    }
    return offset;
  }
}
