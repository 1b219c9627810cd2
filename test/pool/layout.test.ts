// The Zig and TypeScript sides must agree on every offset and size of the shared queue.

import { expect, test } from "bun:test";
import {
  LAYOUT_FIELDS,
  QUEUE_CAPACITY_MAX,
  queueBytes,
  TS_LAYOUT,
} from "../../src/pool/freelist/layout.ts";
import { loadNative, nativeLayout, nativeQueueBytes } from "../../src/pool/freelist/native.ts";
import { initRing } from "../../src/pool/freelist/ring.ts";

test("the native library is built and loads (the suite must not silently test the fallback)", () => {
  const native = loadNative();
  expect(native.ok ? "loaded" : native.reason).toBe("loaded");
});

test("Zig's exported layout equals TypeScript's, field by field", () => {
  const zig = nativeLayout();
  expect(Object.keys(zig)).toEqual([...LAYOUT_FIELDS]);
  for (const field of LAYOUT_FIELDS)
    expect({ field, value: zig[field] }).toEqual({ field, value: TS_LAYOUT[field] });
});

test("both sides size a queue the same, and Zig rejects what TypeScript rejects", () => {
  for (const capacity of [2, 64, 4096, 1 << 20, QUEUE_CAPACITY_MAX])
    expect(nativeQueueBytes(capacity)).toBe(queueBytes(capacity));
  for (const bad of [0, 1, 3, 1000, QUEUE_CAPACITY_MAX * 2]) {
    expect({ bad, bytes: nativeQueueBytes(bad) }).toEqual({ bad, bytes: 0 });
    expect(() => initRing(new SharedArrayBuffer(1 << 16), bad)).toThrow(/power of two/);
  }
});
