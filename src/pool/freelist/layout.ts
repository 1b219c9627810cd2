// Memory layout of the shared slot-index queue: the single TypeScript statement of it.
// ffi/queue.zig declares the same layout and exports it through sp_queue_layout(); test/pool/layout.test.ts
// checks that the two agree field by field. Not the algorithm: see ring.ts and ffi/queue.zig.
//
//   byte 0    ┌──────────────────────────────────────────────┐
//             │ magic u32 │ version u32 │ capacity u32 │ mask u32 │ … padding to one cache line
//   byte 128  ├──────────────────────────────────────────────┤
//             │ enqueue_pos u32  (producers' CAS target)     │ … padding
//   byte 256  ├──────────────────────────────────────────────┤
//             │ dequeue_pos u32  (consumers' CAS target)     │ … padding
//   byte 384  ├──────────────────────────────────────────────┤
//             │ cell[0] = { sequence u32, value u32 }        │
//             │ cell[1] …  cell[capacity - 1]                │
//             └──────────────────────────────────────────────┘
//
// Positions are u32 and wrap; every comparison is done on the signed 32-bit difference, which is
// exact while capacity <= 2^30. Padding is 128 bytes, not 64, because adjacent-line prefetch on x86
// pulls cache lines in pairs, so two hot counters 64 bytes apart still false-share.

export const QUEUE_MAGIC = 0x5350_5131; // "SPQ1"
export const QUEUE_LAYOUT_VERSION = 1;
export const CACHE_LINE_BYTES = 128;

export const HEADER_MAGIC_OFFSET = 0;
export const HEADER_VERSION_OFFSET = 4;
export const HEADER_CAPACITY_OFFSET = 8;
export const HEADER_MASK_OFFSET = 12;
export const ENQUEUE_POS_OFFSET = CACHE_LINE_BYTES; // 128
export const DEQUEUE_POS_OFFSET = 2 * CACHE_LINE_BYTES; // 256
export const CELLS_OFFSET = 3 * CACHE_LINE_BYTES; // 384
export const CELL_BYTES = 8;
export const CELL_SEQUENCE_OFFSET = 0;
export const CELL_VALUE_OFFSET = 4;

/** Smallest ring: one cell cannot tell "just written" from "just read" apart in Vyukov's scheme as the
 *  Zig side implements it, so both sides require two. */
export const QUEUE_CAPACITY_MIN = 2;
/** Largest ring: signed 32-bit position differences need capacity <= 2^30, and queueBytes() must fit
 *  the u32 byte count of the C ABI, which caps it at 2^28. */
export const QUEUE_CAPACITY_MAX = 1 << 28;

/** Bytes of shared memory a queue of `capacity` cells needs. */
export function queueBytes(capacity: number): number {
  return CELLS_OFFSET + capacity * CELL_BYTES;
}

/** The layout as the native library reports it; field order matches `Layout` in ffi/queue.zig. */
export const LAYOUT_FIELDS = [
  "magic",
  "version",
  "cache_line_bytes",
  "capacity_offset",
  "mask_offset",
  "enqueue_pos_offset",
  "dequeue_pos_offset",
  "cells_offset",
  "cell_bytes",
  "cell_sequence_offset",
  "cell_value_offset",
] as const;

export type LayoutField = (typeof LAYOUT_FIELDS)[number];

export const TS_LAYOUT: Record<LayoutField, number> = {
  magic: QUEUE_MAGIC,
  version: QUEUE_LAYOUT_VERSION,
  cache_line_bytes: CACHE_LINE_BYTES,
  capacity_offset: HEADER_CAPACITY_OFFSET,
  mask_offset: HEADER_MASK_OFFSET,
  enqueue_pos_offset: ENQUEUE_POS_OFFSET,
  dequeue_pos_offset: DEQUEUE_POS_OFFSET,
  cells_offset: CELLS_OFFSET,
  cell_bytes: CELL_BYTES,
  cell_sequence_offset: CELL_SEQUENCE_OFFSET,
  cell_value_offset: CELL_VALUE_OFFSET,
};
