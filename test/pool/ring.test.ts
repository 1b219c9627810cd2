// The shared free list itself: FIFO order, empty and full, wraparound of the u32 positions, and that
// the TypeScript and Zig queues serve the same memory interchangeably.

import { describe, expect, test } from "bun:test";
import {
  CELL_BYTES,
  CELLS_OFFSET,
  DEQUEUE_POS_OFFSET,
  ENQUEUE_POS_OFFSET,
  queueBytes,
} from "../../src/pool/freelist/layout.ts";
import { NativeRing, nativeInitRing } from "../../src/pool/freelist/native.ts";
import { initRing, type SlotQueue, TsRing } from "../../src/pool/freelist/ring.ts";

/** An empty ring whose positions start at `start`, with every cell's sequence consistent with it. */
function ringStartingAt(capacity: number, start: number): SharedArrayBuffer {
  const memory = new SharedArrayBuffer(queueBytes(capacity));
  initRing(memory, capacity);
  const words = new Int32Array(memory);
  words[ENQUEUE_POS_OFFSET / 4] = start | 0;
  words[DEQUEUE_POS_OFFSET / 4] = start | 0;
  for (let i = 0; i < capacity; i++) {
    const pos = (start + i) | 0;
    words[(CELLS_OFFSET + (pos & (capacity - 1)) * CELL_BYTES) / 4] = pos; // sequence = position
  }
  return memory;
}

const backends: [
  string,
  (memory: SharedArrayBuffer) => SlotQueue & { tryPush(v: number): boolean },
][] = [
  ["typescript", (memory) => new TsRing(memory)],
  ["native", (memory) => new NativeRing(memory)],
];

describe.each(backends)("%s ring", (_name, open) => {
  test("is FIFO, reports empty as -1 and full as a failed tryPush", () => {
    const ring = open(ringStartingAt(8, 0));
    expect(ring.pop()).toBe(-1);
    for (let v = 0; v < 8; v++) expect(ring.tryPush(100 + v)).toBe(true);
    expect(ring.tryPush(999)).toBe(false);
    expect(ring.length()).toBe(8);
    for (let v = 0; v < 8; v++) expect(ring.pop()).toBe(100 + v);
    expect(ring.pop()).toBe(-1);
    expect(ring.length()).toBe(0);
  });

  test.each([0x7fff_fff0, 0xffff_fff0])(
    "keeps FIFO order across the position wrap (start %d)",
    (start) => {
      const ring = open(ringStartingAt(8, start));
      const popped: number[] = [];
      for (let round = 0; round < 6; round++) {
        for (let v = 0; v < 5; v++) ring.push(round * 10 + v);
        for (let v = 0; v < 5; v++) popped.push(ring.pop());
      }
      expect(popped).toEqual(
        Array.from({ length: 30 }, (_, i) => Math.floor(i / 5) * 10 + (i % 5)),
      );
      expect(ring.pop()).toBe(-1);
    },
  );

  test("a push into a truly full ring throws POOL_FREE_LIST_FULL instead of hanging", () => {
    const ring = open(ringStartingAt(8, 0));
    for (let v = 0; v < 8; v++) ring.push(v);
    expect(() => ring.push(8)).toThrow(
      /free list is full while releasing slot 8: some slot was released twice/,
    );
    expect(ring.length()).toBe(8);
    for (let v = 0; v < 8; v++) expect(ring.pop()).toBe(v); // the failed push changed nothing
  });

  test("a batch push into a truly full ring throws POOL_FREE_LIST_FULL instead of hanging", () => {
    const ring = open(ringStartingAt(8, 0));
    const batch = ring.createBatch(10);
    batch.values.set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(() => ring.pushBatch(batch, 0, 10)).toThrow(
      /free list is full while releasing slot 8: some slot was released twice/,
    );
    expect(ring.length()).toBe(8);
    for (let v = 0; v < 8; v++) expect(ring.pop()).toBe(v); // what fitted stays, in order
  });

  test("batches pop what is there and push everything", () => {
    const ring = open(ringStartingAt(16, 0));
    const batch = ring.createBatch(16);
    batch.values.set([5, 6, 7, 8]);
    ring.pushBatch(batch, 0, 4);
    batch.values.fill(0);
    expect(ring.popBatch(batch, 2, 10)).toBe(4); // fewer available than asked
    expect([...batch.values.subarray(0, 7)]).toEqual([0, 0, 5, 6, 7, 8, 0]);
    expect(ring.popBatch(batch, 0, 4)).toBe(0);
  });
});

test("the TypeScript and native queues serve the same memory", () => {
  const memory = new SharedArrayBuffer(queueBytes(64));
  nativeInitRing(memory, 64, 10); // native writes header, sequences and 0..9
  const ts = new TsRing(memory);
  const native = new NativeRing(memory);
  expect(ts.pop()).toBe(0);
  expect(native.pop()).toBe(1);
  ts.push(42);
  native.push(43);
  const rest: number[] = [];
  for (let v = native.pop(); v !== -1; v = ts.pop()) rest.push(v);
  expect(rest).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 42, 43]);
});
